"""Findings: the auditor's verdict on each line of a sampled encounter (or a line the coder missed).

A finding names the exact line version it judged, who entered that line and who attested the
encounter, so accountability is exact. Recording one again on the same line replaces the earlier one;
any change to a finding after the audit was signed supersedes the signature."""

from __future__ import annotations

from sqlmodel import Session, col, select

from audit.coding_audit.access import authorize_finding, load_audit
from audit.coding_audit.closure import supersede_signature
from audit.coding_audit.models import AuditFinding
from audit.coding_audit.schemas import FindingCreate
from audit.coding_audit.views import finding_state
from audit.encounter.service import load_encounter
from audit.encounter.signature import current_attestation
from audit.errors import InvalidInput
from audit.ledger import service as ledger
from audit.ledger.events import ROW_TIME
from audit.models import CodeLine, new_id, utcnow
from audit.principal import CurrentUser


def _check_shape(data: FindingCreate) -> None:
    if data.verdict == "added":
        if data.line_id is not None:
            raise InvalidInput("line_id", "an added line has no line_id: it is the line the coder missed")
        if data.revised is None:
            raise InvalidInput("revised", "an added line needs revised (the code that was missed)")
    elif data.line_id is None:
        raise InvalidInput("line_id", f"a finding of {data.verdict} needs the line_id it judges")
    if data.verdict == "agree" and (data.revised is not None or data.category is not None):
        field = "revised" if data.revised is not None else "category"
        raise InvalidInput(field, f"an agree finding has no {field}")
    if data.verdict == "disagree" and data.revised is None:
        raise InvalidInput("revised", "a disagree finding needs revised (code, modifiers, units)")
    if data.verdict != "agree" and data.category is None:
        raise InvalidInput("category", f"a finding of {data.verdict} needs a category")


def _line(session: Session, encounter_id: str, line_id: str) -> CodeLine:
    line = session.get(CodeLine, line_id)
    if line is None or line.encounter_id != encounter_id or line.status != "active":
        raise InvalidInput("line_id", f"line {line_id} is not an active line of encounter {encounter_id}")
    return line


def record_finding(
    session: Session, *, user: CurrentUser, audit_id: str, data: FindingCreate
) -> AuditFinding:
    audit = load_audit(session, audit_id, for_update=True)
    _check_shape(data)
    if audit.sample is None or data.encounter_id not in audit.sample:
        raise InvalidInput("encounter_id", "findings are accepted only on the audit's sampled encounters")
    encounter = load_encounter(session, data.encounter_id)
    line = _line(session, encounter.id, data.line_id) if data.line_id else None
    finding_id = new_id()
    grant = authorize_finding(
        session,
        user,
        "coding_audit.record_finding",
        audit,
        encounter,
        finding_id=finding_id,
        line_author_id=line.entered_by if line else None,
    )
    attestation = current_attestation(session, encounter.id)
    revised = data.revised.model_dump() if data.revised else None
    if revised is not None and data.verdict == "added":
        revised["system"] = revised.get("system") or "CPT"
    now = utcnow()
    finding = AuditFinding(
        id=finding_id,
        audit_id=audit.id,
        encounter_id=encounter.id,
        provider_id=encounter.rendering_provider_id,
        line_id=line.id if line else None,
        line_version=line.version if line else None,
        line_system=line.system if line else (revised or {}).get("system"),
        line_code=line.code if line else (revised or {}).get("code"),
        line_author_id=line.entered_by if line else None,
        attested_by=attestation.signer_id if attestation else None,
        attestation_id=attestation.id if attestation else None,
        verdict=data.verdict,
        revised=revised,
        revised_code=revised["code"] if revised else None,
        category=data.category,
        rationale=data.rationale,
        auditor_id=user.id,
        recorded_at=now,
    )
    replaced = _replace_earlier(session, finding)
    session.add(finding)
    session.flush()
    before = finding_state(replaced) if replaced else None
    ledger.append_one(
        session,
        grant.event(before=before, after=finding_state(finding), detail={**ROW_TIME, "audit_id": audit.id}),
        now=now,
    )
    supersede_signature(session, audit=audit, grant=grant, cause=f"finding {finding.id} recorded")
    return finding


def _replace_earlier(session: Session, finding: AuditFinding) -> AuditFinding | None:
    """A new verdict on a line replaces the current one (the earlier row stays, pointing to it)."""
    if finding.line_id is None:
        return None
    earlier = session.exec(
        select(AuditFinding)
        .where(
            AuditFinding.audit_id == finding.audit_id,
            AuditFinding.line_id == finding.line_id,
            col(AuditFinding.replaced_by).is_(None),
        )
        .with_for_update()
    ).first()
    if earlier is not None:
        earlier.replaced_by = finding.id
        session.add(earlier)
    return earlier
