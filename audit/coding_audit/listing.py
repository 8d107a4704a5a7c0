"""The audits a user may list (the `/audits` page). Each candidate audit is judged by the same Cedar
action and context as opening it (`coding_audit.read` in `access.audit_context`): compliance reads every
audit (one decision), an auditor their own audits inside a live engagement, a provider or coder those
whose sample holds their coding. The page is then sorted and cut by SQL inside that set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, String, cast, false, func, or_, true
from sqlalchemy import select as core_select
from sqlalchemy.orm import load_only
from sqlmodel import Session, col, select

from audit.coding_audit import service
from audit.coding_audit.access import audit_context, audit_res
from audit.coding_audit.models import AuditFinding, CodingAudit
from audit.ledger import service as ledger
from audit.ledger.events import EventDraft
from audit.models import Encounter, User
from audit.policy.engine import CodingAuditRes
from audit.policy.guard import check
from audit.principal import CurrentUser

#: The permit that reads every audit: a list it allows is the whole organisation's.
ORGANISATION_RULE = "coding_audits.compliance_runs_audits"
MAX_CANDIDATES = 2000  # the audits one auditor ran or one provider's coding is part of
PARTY_ROLES = frozenset({"provider", "coder"})
# the columns the read decision is made from (the frame and sample, which can be large, stay unloaded)
JUDGED = ("id", "auditor_id", "parties", "status", "date_from", "date_to", "provider_ids")


@dataclass(frozen=True)
class AuditListScope:
    """`ids` are the audits Cedar lets the reader read (None: every audit); `basis` says why."""

    reader_id: str
    ids: tuple[str, ...] | None
    basis: tuple[str, ...]

    def clause(self) -> ColumnElement[bool]:
        if self.ids is None:
            return true()
        return col(CodingAudit.id).in_(self.ids) if self.ids else false()

    def as_dict(self) -> dict[str, Any]:
        return {"everything": self.ids is None, "audits": None if self.ids is None else len(self.ids)}


def _candidates(session: Session, user: CurrentUser) -> list[CodingAudit]:
    """Audits a non-organisation permit could allow: the reader's own (the auditor rule needs
    `resource.auditor == principal`) and, for a provider or coder, those naming them as a party.
    Only a pre-filter: every one is then judged by Cedar."""
    mine: list[ColumnElement[bool]] = [col(CodingAudit.auditor_id) == user.id]
    if user.roles & PARTY_ROLES:
        mine.append(cast(col(CodingAudit.parties), String).like(f'%"{user.id}"%'))
    stmt = (
        select(CodingAudit)
        .options(load_only(*(getattr(CodingAudit, c) for c in JUDGED)))
        .where(or_(*mine))
        .order_by(col(CodingAudit.opened_at).desc())
        .limit(MAX_CANDIDATES)
    )
    return list(session.exec(stmt).all())


def audit_list_scope(session: Session, user: CurrentUser) -> AuditListScope:
    whole = check(user, "coding_audit.read", CodingAuditRes(id="list", auditor_id=""), {})
    if whole.allowed and ORGANISATION_RULE in whole.rule_ids:
        return AuditListScope(user.id, None, whole.rule_ids)
    ids: list[str] = []
    basis: set[str] = set()
    for audit in _candidates(session, user):
        decision = check(user, "coding_audit.read", audit_res(audit), audit_context(session, user, audit))
        if decision.allowed:
            ids.append(audit.id)
            basis.update(decision.rule_ids)
    return AuditListScope(user.id, tuple(ids), tuple(sorted(basis)))


def _open_disputes() -> Any:
    return (
        select(func.count())
        .where(
            col(AuditFinding.audit_id) == col(CodingAudit.id),
            col(AuditFinding.status) == "disputed",
            col(AuditFinding.replaced_by).is_(None),
        )
        .correlate(CodingAudit)
        .scalar_subquery()
    )


SHOWN = ("id", "name", "date_from", "date_to", "method", "n", "strata", "sampled_at", "status", "opened_at")

#: The list's columns: sort key -> SQL expression (every column sorts).
COLUMNS: dict[str, Any] = {
    "name": col(CodingAudit.name),
    "scope": col(CodingAudit.date_from),
    "method": col(CodingAudit.method),
    "n": col(CodingAudit.n),
    "sampled": col(CodingAudit.sampled_at),
    "signed": col(CodingAudit.status) == "signed",
    "disputes": _open_disputes(),
    "created_by": col(User.display_name),
    "opened": col(CodingAudit.opened_at),
}


@dataclass(frozen=True)
class AuditPage:
    rows: list[dict[str, Any]]
    total: int
    scope: AuditListScope


def audit_page(
    session: Session, user: CurrentUser, *, sort: str, desc: bool, limit: int, offset: int
) -> AuditPage:
    """One sorted page of the audits in the reader's list scope, with the auditor's name."""
    scope = audit_list_scope(session, user)
    base = select(CodingAudit.id).where(scope.clause())
    total = int(session.exec(select(func.count()).select_from(base.subquery())).one())
    order = COLUMNS[sort]
    shown = [col(getattr(CodingAudit, c)) for c in SHOWN]
    stmt = (
        core_select(*shown, col(User.display_name).label("created_by"), COLUMNS["disputes"].label("disputes"))
        .join(User, col(User.id) == col(CodingAudit.auditor_id))
        .where(scope.clause())
        .order_by(order.desc() if desc else order.asc(), col(CodingAudit.id))
        .limit(limit)
        .offset(offset)
    )
    rows = [dict(r) for r in session.execute(stmt).mappings()]
    return AuditPage(rows, total, scope)


def list_viewed(session: Session, *, user: CurrentUser, page: AuditPage, where: str) -> None:
    """Record the page view as a `coding_audit.read` of the list (as `read_audit` records one audit's
    view): the scope it was built from and how many rows it showed."""
    ledger.append_one(
        session,
        EventDraft(
            type="coding_audit.read",
            actor=user.actor(),
            subject_type="page",
            subject_id=where,
            detail={
                "view": "list",
                "page": where,
                "scope": page.scope.as_dict(),
                "basis": list(page.scope.basis),
                "row_count": len(page.rows),
                "total": page.total,
            },
        ),
    )


#: The "findings for me" table of a provider or coder: sort key -> SQL expression.
FINDING_COLUMNS: dict[str, Any] = {
    "audit": col(CodingAudit.name),
    "encounter": col(Encounter.external_id),
    "dos": col(Encounter.date_of_service),
    "code": col(AuditFinding.line_code),
    "verdict": col(AuditFinding.verdict),
    "category": col(AuditFinding.category),
    "status": col(AuditFinding.status),
    "recorded": col(AuditFinding.recorded_at),
}


def findings_page(
    session: Session,
    user: CurrentUser,
    scope: AuditListScope,
    *,
    sort: str,
    desc: bool,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """One sorted page of the current findings addressed to a provider or coder (on their encounters or
    their lines, as the audit page shows them) in the audits of their list scope, and the total."""
    where = (scope.clause(), service.addressed_to(user), col(AuditFinding.replaced_by).is_(None))
    base = core_select(col(AuditFinding.id)).join(
        CodingAudit, col(CodingAudit.id) == col(AuditFinding.audit_id)
    )
    total = int(
        session.execute(core_select(func.count()).select_from(base.where(*where).subquery())).scalar_one()
    )
    order = FINDING_COLUMNS[sort]
    stmt: Any = (
        core_select(
            col(AuditFinding.id),
            col(AuditFinding.audit_id),
            col(CodingAudit.name).label("audit"),
            col(Encounter.external_id).label("encounter"),
            col(Encounter.date_of_service).label("dos"),
            col(AuditFinding.line_system),
            col(AuditFinding.line_code),
            col(AuditFinding.verdict),
            col(AuditFinding.revised_code),
            col(AuditFinding.category),
            col(AuditFinding.status),
            col(AuditFinding.recorded_at),
        )
        .join(CodingAudit, col(CodingAudit.id) == col(AuditFinding.audit_id))
        .join(Encounter, col(Encounter.id) == col(AuditFinding.encounter_id))
        .where(*where)
        .order_by(order.desc() if desc else order.asc(), col(AuditFinding.id))
        .limit(limit)
        .offset(offset)
    )
    return [dict(r) for r in session.execute(stmt).mappings()], total
