"""The server's CapabilityStatement (`GET /fhir/metadata`): what it reads and searches, and how."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from audit.fhir.mapping import FHIR_VERSION

# When this statement last changed (CapabilityStatement.date): bump it with the statement.
STATEMENT_DATE = "2026-11-29"
_SECURITY = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def _version() -> str:
    try:
        return version("coding-audit")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        return "0"


def _param(name: str, kind: str, documentation: str) -> dict[str, str]:
    return {"name": name, "type": kind, "documentation": documentation}


_PAGING = (
    "_count (page size, default 50, at most 500) and _offset page the searchset; the Bundle's `next` "
    "link holds the following page."
)


def capability_statement(base_url: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": STATEMENT_DATE,
        "publisher": "coding-audit",
        "kind": "instance",
        "software": {"name": "coding-audit", "version": _version()},
        "implementation": {"description": "Compliance and responsibility audit trail", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Read-only. AuditEvent follows IHE BALP's patterns (one per ledger event, id = ledger "
                    "seq); Provenance follows US Core Provenance's pattern (one per attestation). Errors "
                    "are OperationOutcome. Compliance reads everything; an auditor only what an open "
                    "engagement covers; a read outside the caller's scope is 404."
                ),
                "security": {
                    "service": [{"coding": [{"system": _SECURITY, "code": "OAuth", "display": "OAuth"}]}],
                    "description": "Bearer token from POST /api/v1/auth/token.",
                },
                "resource": [
                    {
                        "type": "AuditEvent",
                        "interaction": [{"code": "read"}, {"code": "search-type", "documentation": _PAGING}],
                        "searchParam": [
                            _param("date", "date", "when recorded; eq, ge, gt, le, lt; any FHIR date"),
                            _param("entity", "reference", "Encounter/<id>"),
                            _param("subtype", "token", "our event types, comma-separated"),
                        ],
                    },
                    {
                        "type": "Provenance",
                        "interaction": [{"code": "read"}, {"code": "search-type", "documentation": _PAGING}],
                        "searchParam": [_param("target", "reference", "Encounter/<id> (required)")],
                    },
                ],
            }
        ],
    }
