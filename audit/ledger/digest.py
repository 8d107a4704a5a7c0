"""The digests signatures bind to (pure): the code set an attestation signs, and the findings and
scores an auditor's signature covers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import date
from typing import Any

from audit.ledger.chain import canonical_json


def code_set_digest(
    *, encounter_id: str, rendering_provider_id: str, date_of_service: date, lines: Iterable[dict[str, Any]]
) -> str:
    """SHA-256 hex over the canonical JSON of the encounter and its active lines sorted by line id."""
    body = {
        "encounter_id": encounter_id,
        "rendering_provider_id": rendering_provider_id,
        "date_of_service": date_of_service.isoformat(),
        "lines": sorted(
            (
                {
                    "id": line["id"],
                    "system": line["system"],
                    "code": line["code"],
                    "modifiers": list(line["modifiers"]),
                    "units": line["units"],
                    "diagnosis_pointers": list(line["diagnosis_pointers"]),
                    "version": line["version"],
                }
                for line in lines
            ),
            key=lambda line: str(line["id"]),
        ),
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def ledger_safe(value: Any) -> Any:
    """Ratios as decimal strings: ledger payloads hold no floats (DESIGN §5), and a digest over text
    is the same in every language."""
    if isinstance(value, float):
        return format(value, ".4f")
    if isinstance(value, dict):
        return {k: ledger_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [ledger_safe(v) for v in value]
    return value


def audit_findings_digest(
    *, audit_id: str, frame_sha256: str | None, sample: Any, findings: list[Any], scores: Any
) -> str:
    """SHA-256 over the canonical JSON of what an audit signature covers: the frame's hash, the
    sample, every current finding (as `finding_state` shows it) and the scores (ratios as text)."""
    covered = {
        "audit_id": audit_id,
        "frame_sha256": frame_sha256,
        "sample": sample,
        "findings": findings,
        "scores": ledger_safe(scores),
    }
    canonical = json.dumps(covered, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def signed_report_digest(report: Any) -> str | None:
    """The digest a stored signed report's body implies (what its signature's `findings_digest` must
    be), or None when the body is not a signed report's shape."""
    try:
        audit = report["audit"]
        return audit_findings_digest(
            audit_id=audit["id"],
            frame_sha256=audit["frame_sha256"],
            sample=audit["sample"],
            findings=report["findings"],
            scores=report["scores"],
        )
    except (KeyError, TypeError, ValueError):
        return None
