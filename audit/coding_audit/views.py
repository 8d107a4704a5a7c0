"""What the ledger events and the API say of audits and findings (one shape for both)."""

from __future__ import annotations

from datetime import date
from typing import Any

from audit.coding_audit.models import (
    AuditFinding,
    AuditFollowUp,
    AuditSignature,
    CodingAudit,
    FindingResponse,
)
from audit.ledger.chain import rfc3339


def audit_state(a: CodingAudit) -> dict[str, Any]:
    return {
        "id": a.id,
        "name": a.name,
        "auditor_id": a.auditor_id,
        "engagement_id": a.engagement_id,
        "scope": {
            "from": a.date_from.isoformat(),
            "to": a.date_to.isoformat(),
            "provider_ids": sorted(a.provider_ids) or None,
            "code_systems": sorted(a.code_systems) or None,
            "em_only": a.em_only,
        },
        "sampling": {"method": a.method, "n": a.n, "strata": a.strata},
        "seed": a.seed,
        "status": a.status,
        "parent_id": a.parent_id,
        "not_before": a.not_before.isoformat() if a.not_before else None,
        "frame_sha256": a.frame_sha256,
        "frame_size": len(a.frame) if a.frame is not None else None,
        "sample": list(a.sample) if a.sample is not None else None,
        "sampled_at": rfc3339(a.sampled_at) if a.sampled_at else None,
        "opened_at": rfc3339(a.opened_at),
    }


def finding_state(f: AuditFinding) -> dict[str, Any]:
    return {
        "id": f.id,
        "audit_id": f.audit_id,
        "encounter_id": f.encounter_id,
        "provider_id": f.provider_id,
        "line_id": f.line_id,
        "line": {
            "version": f.line_version,
            "system": f.line_system,
            "code": f.line_code,
            "author_id": f.line_author_id,
            "attested_by": f.attested_by,
            "attestation_id": f.attestation_id,
        },
        "verdict": f.verdict,
        "revised": f.revised,
        "category": f.category,
        "rationale": f.rationale,
        "auditor_id": f.auditor_id,
        "recorded_at": rfc3339(f.recorded_at),
        "status": f.status,
        "decision_comment": f.decision_comment,
        "decided_by": f.decided_by,
        "decided_at": rfc3339(f.decided_at) if f.decided_at else None,
        "replaced_by": f.replaced_by,
    }


def response_state(r: FindingResponse) -> dict[str, Any]:
    return {
        "id": r.id,
        "finding_id": r.finding_id,
        "responder_id": r.responder_id,
        "role": r.role,
        "response": r.response,
        "comment": r.comment,
        "responded_at": rfc3339(r.responded_at),
    }


def signature_state(s: AuditSignature) -> dict[str, Any]:
    return {
        "id": s.id,
        "audit_id": s.audit_id,
        "signer_id": s.signer_id,
        "printed_name": s.printed_name,
        "credential": s.credential,
        "signed_at": rfc3339(s.signed_at),
        "meaning": s.meaning,
        "findings_digest": s.findings_digest,
        "method_version": s.method_version,
        "policy_version": s.policy_version,
        "status": s.status,
        "superseded_at": rfc3339(s.superseded_at) if s.superseded_at else None,
    }


def follow_up_state(f: AuditFollowUp, today: date | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": f.id,
        "audit_id": f.audit_id,
        "kind": f.kind,
        "provider_id": f.provider_id,
        "encounter_id": f.encounter_id,
        "reaudit_id": f.reaudit_id,
        "identified_on": f.identified_on.isoformat(),
        "due_on": f.due_on.isoformat(),
        "detail": f.detail,
    }
    if today is not None:
        out["days_left"] = (f.due_on - today).days
    return out
