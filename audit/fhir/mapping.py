"""What the FHIR resources share: the code systems, small builders, and the searchset Bundle.

The resources are plain dicts (no session, no clock): `audit.fhir.audit_event` maps a ledger event to
an AuditEvent (IHE BALP), `audit.fhir.provenance` an attestation to a Provenance (US Core pattern),
`audit.fhir.outcome` an error to an OperationOutcome, `audit.fhir.capability` the server to its
CapabilityStatement. FHIR R4 (4.0.1). The tests validate every resource with two independent tools:
`fhir.resources.R4B` (R4B keeps R4's shapes for these resources) and the npm `fhir` package (R4).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

FHIR_VERSION = "4.0.1"
PRODUCT = "https://coding-audit.example/fhir"
EVENT_TYPE_SYSTEM = f"{PRODUCT}/CodeSystem/event-type"
ROLE_SYSTEM = f"{PRODUCT}/CodeSystem/role"
ENTITY_TYPE_SYSTEM = f"{PRODUCT}/CodeSystem/entity-type"
ACTIVITY_SYSTEM = f"{PRODUCT}/CodeSystem/provenance-activity"
ATTESTATION_STATUS_SYSTEM = f"{PRODUCT}/CodeSystem/attestation-status"
RULE_SYSTEM = f"{PRODUCT}/CodeSystem/policy-rule"
USER_ID_SYSTEM = f"{PRODUCT}/sid/user"
PATIENT_REF_SYSTEM = f"{PRODUCT}/sid/patient-ref"
LEDGER_SID = f"{PRODUCT}/sid/ledger"

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
PROVENANCE_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DOCUMENT_COMPLETION = "http://terminology.hl7.org/CodeSystem/v3-DocumentCompletion"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
SIGNATURE_TYPE_SYSTEM = "urn:iso-astm:E1762-95:2013"
AUTHOR_SIGNATURE = "1.2.840.10065.1.12.1.1"


def coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    result = {"system": system, "code": code}
    if display:
        result["display"] = display
    return result


def concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [coding(system, code, display)]}


def instant(moment: datetime) -> str:
    """FHIR instant in UTC with a `Z`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def roles(role: str | None) -> list[dict[str, Any]]:
    """Our role names (`coder`, or `provider,compliance`) as agent roles in our code system."""
    return [concept(ROLE_SYSTEM, r.strip()) for r in (role or "").split(",") if r.strip()]


def user_ref(user_id: str | None, display: str | None) -> dict[str, Any]:
    """A reference to one of our users by identifier (we serve no Practitioner resources)."""
    ref: dict[str, Any] = {}
    if user_id:
        ref["identifier"] = {"system": USER_ID_SYSTEM, "value": user_id}
    ref["display"] = display or (user_id or "anonymous")
    return ref


def bundle(
    *, total: int, entries: list[tuple[str, dict[str, Any]]], links: list[tuple[str, str]]
) -> dict[str, Any]:
    """A searchset Bundle: `entries` are (fullUrl, resource), `links` are (relation, url)."""
    result: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": rel, "url": url} for rel, url in links],
    }
    if entries:  # FHIR JSON never carries empty arrays
        result["entry"] = [
            {"fullUrl": full_url, "resource": resource, "search": {"mode": "match"}}
            for full_url, resource in entries
        ]
    return result
