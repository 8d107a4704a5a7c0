"""The facts Cedar judges a coding-audit action on (policies/access/coding_audits.cedar), and the one
way this package asks: `authorize()` with the audit or finding as resource and, for an auditor, the
engagement covering the audit's scope (or the finding's encounter)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from audit.coding_audit.models import AuditFinding, CodingAudit
from audit.errors import NotFound
from audit.models import Attestation, CodeLine, Encounter
from audit.policy.engine import AuditFindingRes, CodingAuditRes
from audit.policy.guard import Grant, Target, authorize
from audit.policy.scope import Area, engagement_context
from audit.principal import CurrentUser


def audit_area(audit: CodingAudit) -> Area:
    return Area.of(audit.date_from, audit.date_to, audit.provider_ids)


def audit_res(audit: CodingAudit) -> CodingAuditRes:
    return CodingAuditRes(
        id=audit.id, auditor_id=audit.auditor_id, parties=frozenset(audit.parties), status=audit.status
    )


def audit_target(audit: CodingAudit) -> Target:
    return Target("coding_audit", audit.id)


def audit_context(session: Session, user: CurrentUser, audit: CodingAudit) -> dict[str, Any]:
    """The Cedar context an audit-wide action is judged in: for an auditor, the newest live engagement
    covering the audit's dates and providers (empty for anyone else)."""
    return engagement_context(session, user, audit_area(audit))


def authorize_audit(
    session: Session, user: CurrentUser, action: str, audit: CodingAudit, *, reauth_at: datetime | None = None
) -> Grant:
    """Decide an audit-wide action; an auditor is judged in the engagement covering the audit."""
    context = audit_context(session, user, audit)
    if reauth_at is not None:
        context = {**context, "reauth_at": reauth_at}
    return authorize(user, action, audit_target(audit), audit_res(audit), context)


def load_audit(session: Session, audit_id: str, *, for_update: bool = False) -> CodingAudit:
    stmt = select(CodingAudit).where(CodingAudit.id == audit_id)
    audit = session.exec(stmt.with_for_update() if for_update else stmt).first()
    if audit is None:
        raise NotFound(f"audit {audit_id} not found")
    return audit


def load_finding(session: Session, finding_id: str, *, for_update: bool = False) -> AuditFinding:
    stmt = select(AuditFinding).where(AuditFinding.id == finding_id)
    finding = session.exec(stmt.with_for_update() if for_update else stmt).first()
    if finding is None:
        raise NotFound(f"finding {finding_id} not found")
    return finding


def coders_of(session: Session, encounter_ids: list[str]) -> dict[str, set[str]]:
    """Everyone who entered or last changed an active line, by encounter."""
    rows = session.exec(
        select(CodeLine.encounter_id, CodeLine.entered_by, CodeLine.changed_by).where(
            col(CodeLine.encounter_id).in_(encounter_ids), CodeLine.status == "active"
        )
    ).all()
    out: dict[str, set[str]] = {e: set() for e in encounter_ids}
    for encounter_id, entered_by, changed_by in rows:
        out[encounter_id].update({entered_by, changed_by})
    return out


def attesters_of(session: Session, encounter_ids: list[str]) -> dict[str, set[str]]:
    """Whoever signed a valid attestation, by encounter."""
    rows = session.exec(
        select(Attestation.encounter_id, Attestation.signer_id).where(
            col(Attestation.encounter_id).in_(encounter_ids), Attestation.status == "valid"
        )
    ).all()
    out: dict[str, set[str]] = {e: set() for e in encounter_ids}
    for encounter_id, signer_id in rows:
        out[encounter_id].add(signer_id)
    return out


def finding_res(
    session: Session, audit: CodingAudit, encounter: Encounter, finding_id: str, line_author_id: str | None
) -> AuditFindingRes:
    return AuditFindingRes(
        id=finding_id,
        auditor_id=audit.auditor_id,
        provider_id=encounter.rendering_provider_id,
        date_of_service=encounter.date_of_service,
        coders=frozenset(coders_of(session, [encounter.id])[encounter.id]),
        attesters=frozenset(attesters_of(session, [encounter.id])[encounter.id]),
        line_author_id=line_author_id,
    )


def authorize_finding(
    session: Session,
    user: CurrentUser,
    action: str,
    audit: CodingAudit,
    encounter: Encounter,
    *,
    finding_id: str,
    line_author_id: str | None,
) -> Grant:
    """Decide an action on one finding; an auditor is judged in the engagement covering its encounter."""
    dos = encounter.date_of_service
    context = engagement_context(session, user, Area(dos, dos, frozenset({encounter.rendering_provider_id})))
    target = Target("audit_finding", finding_id, encounter.id, encounter.rendering_provider_id)
    resource = finding_res(session, audit, encounter, finding_id, line_author_id)
    return authorize(user, action, target, resource, context)
