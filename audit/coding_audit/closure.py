"""Rebuttal and closure: the provider of record (and the coder, for their own lines) accepts or disputes
a finding; compliance upholds or reverses each dispute; the auditor signs the audit report with their
password re-entered, a manifestation and a digest over the findings and scores, as a provider attests.
It cannot be signed while a dispute is open, and any later change to a finding supersedes it."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from audit.attestation.service import failed_signing
from audit.coding_audit.access import authorize_audit, authorize_finding, load_audit, load_finding
from audit.coding_audit.followup import follow_up
from audit.coding_audit.models import AuditFinding, AuditSignature, CodingAudit, FindingResponse
from audit.coding_audit.scoring import method_version, score_audit
from audit.coding_audit.views import (
    audit_state,
    finding_state,
    response_state,
    signature_state,
)
from audit.encounter.service import load_encounter
from audit.errors import Conflict, InvalidInput
from audit.ledger import service as ledger
from audit.ledger.digest import audit_findings_digest, ledger_safe
from audit.ledger.events import FAILED, ROW_TIME
from audit.models import User, utcnow
from audit.policy.guard import Grant
from audit.policy.runtime import get_compliance, get_policy_engine
from audit.principal import CurrentUser
from audit.security import verify_password

OPEN_FOR_RESPONSE = ("open", "accepted", "disputed")


def _finding_in_force(session: Session, finding_id: str) -> tuple[AuditFinding, CodingAudit]:
    finding = load_finding(session, finding_id, for_update=True)
    if finding.replaced_by is not None:
        raise Conflict(f"finding {finding.id} was replaced by {finding.replaced_by}", field="finding_id")
    return finding, load_audit(session, finding.audit_id, for_update=True)


def respond(
    session: Session, *, user: CurrentUser, finding_id: str, response: str, comment: str
) -> FindingResponse:
    finding, audit = _finding_in_force(session, finding_id)
    encounter = load_encounter(session, finding.encounter_id)
    grant = authorize_finding(
        session,
        user,
        "coding_audit.respond",
        audit,
        encounter,
        finding_id=finding.id,
        line_author_id=finding.line_author_id,
    )
    if finding.status not in OPEN_FOR_RESPONSE:
        raise Conflict(f"finding {finding.id} was already decided ({finding.status})", field="finding_id")
    if response == "dispute" and finding.verdict == "agree":
        raise InvalidInput("response", "an agree finding has nothing to dispute")
    now = utcnow()
    before = finding_state(finding)
    answer = FindingResponse(
        finding_id=finding.id,
        responder_id=user.id,
        role=grant.role,
        response=response,
        comment=comment,
        responded_at=now,
    )
    if response == "dispute":
        finding.status = "disputed"
    elif finding.status == "open":
        finding.status = "accepted"
    session.add_all([answer, finding])
    session.flush()
    ledger.append_one(
        session,
        grant.event(
            before=before,
            after={**finding_state(finding), "response": response_state(answer)},
            detail={**ROW_TIME, "audit_id": audit.id},
        ),
        now=now,
    )
    supersede_signature(session, audit=audit, grant=grant, cause=f"finding {finding.id} answered")
    return answer


def decide(
    session: Session, *, user: CurrentUser, finding_id: str, decision: str, comment: str
) -> AuditFinding:
    finding, audit = _finding_in_force(session, finding_id)
    encounter = load_encounter(session, finding.encounter_id)
    grant = authorize_finding(
        session,
        user,
        "coding_audit.decide",
        audit,
        encounter,
        finding_id=finding.id,
        line_author_id=finding.line_author_id,
    )
    if finding.status != "disputed":
        raise Conflict(f"finding {finding.id} is not disputed ({finding.status})", field="finding_id")
    now = utcnow()
    before = finding_state(finding)
    finding.status, finding.decision_comment = decision, comment
    finding.decided_by, finding.decided_at = user.id, now
    session.add(finding)
    session.flush()
    ledger.append_one(
        session,
        grant.event(before=before, after=finding_state(finding), detail={**ROW_TIME, "audit_id": audit.id}),
        now=now,
    )
    supersede_signature(session, audit=audit, grant=grant, cause=f"finding {finding.id} decided")
    return finding


def valid_signature(session: Session, audit_id: str) -> AuditSignature | None:
    return session.exec(
        select(AuditSignature).where(AuditSignature.audit_id == audit_id, AuditSignature.status == "valid")
    ).first()


def supersede_signature(session: Session, *, audit: CodingAudit, grant: Grant, cause: str) -> None:
    """A change to a finding after signing supersedes the signature; the audit needs signing again."""
    signature = valid_signature(session, audit.id)
    if signature is None:
        return
    now = utcnow()
    before = signature_state(signature)
    signature.status, signature.superseded_at = "superseded", now
    audit.status = "sampled"
    session.add_all([signature, audit])
    session.flush()
    ledger.append_one(
        session,
        grant.event(
            type="coding_audit.signature_supersede",
            subject_type="audit_signature",
            subject_id=signature.id,
            encounter_id=None,
            provider_id=None,
            reason=cause,
            before=before,
            after=signature_state(signature),
            detail={**ROW_TIME, "audit_id": audit.id},
        ),
        now=now,
    )


def current_findings(session: Session, audit_id: str) -> list[AuditFinding]:
    return list(
        session.exec(
            select(AuditFinding)
            .where(AuditFinding.audit_id == audit_id, col(AuditFinding.replaced_by).is_(None))
            .order_by(col(AuditFinding.id))
        ).all()
    )


def findings_digest(audit: CodingAudit, findings: list[AuditFinding], scores: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of what the signature covers: the frame's hash, the sample, every
    current finding and the scores (with their method version). `audit verify` recomputes it from the
    stored signed report (audit.ledger.digest)."""
    return audit_findings_digest(
        audit_id=audit.id,
        frame_sha256=audit.frame_sha256,
        sample=audit.sample,
        findings=[finding_state(f) for f in findings],
        scores=scores,
    )


def sign(session: Session, *, user: CurrentUser, audit_id: str, password: str) -> AuditSignature:
    audit = load_audit(session, audit_id, for_update=True)
    now = utcnow()
    grant = authorize_audit(session, user, "coding_audit.sign", audit)
    signer = session.get(User, user.id)
    assert signer is not None
    if not verify_password(password, signer.password_hash):
        raise failed_signing(grant, "password re-entry failed")
    findings = current_findings(session, audit.id)
    disputed = [f.id for f in findings if f.status == "disputed"]
    if disputed:
        raise _refused(
            grant, f"{len(disputed)} dispute(s) are open: compliance must decide them first", disputed
        )
    if not findings:
        raise _refused(grant, "the audit has no findings to sign", [])
    if valid_signature(session, audit.id) is not None:
        raise Conflict("the audit is already signed and unchanged since", field="audit_id")
    scores = score_audit(session, audit.id)
    digest = findings_digest(audit, findings, scores)
    signature = AuditSignature(
        audit_id=audit.id,
        signer_id=signer.id,
        printed_name=signer.display_name,
        credential=signer.credential or "",
        signed_at=now,
        meaning=get_compliance().coding_audits.signature_meaning,
        findings_digest=digest,
        method_version=method_version(),
        policy_version=get_policy_engine().version,
    )
    signature.report = {
        "audit": audit_state(audit),
        "findings": [finding_state(f) for f in findings],
        "scores": scores,
        "findings_digest": digest,
    }
    before = {"status": audit.status}
    audit.status = "signed"
    signer.failed_signings = 0
    session.add_all([signature, audit, signer])
    session.flush()
    signature.ledger_seq = ledger.append_now(
        session,
        grant.event(
            subject_type="audit_signature",
            subject_id=signature.id,
            before=before,
            after=signature_state(signature),
            detail={**ROW_TIME, "audit_id": audit.id, "scores": ledger_safe(scores["audit"])},
        ),
        now=now,
    )
    session.add(signature)
    follow_up(session, grant=grant, audit=audit, scores=scores, findings=findings, now=now)
    return signature


def _refused(grant: Grant, reason: str, finding_ids: list[str]) -> Conflict:
    error = Conflict(reason, field="audit_id", finding_ids=finding_ids)
    return ledger.refuse_with(
        error, grant.event(outcome=FAILED, reason=reason, detail={"finding_ids": finding_ids})
    )
