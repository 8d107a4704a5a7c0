"""Coding audits: open one, draw its sample, read it. Findings, rebuttals and the signature live in
`findings.py` and `closure.py`; follow-up in `followup.py`."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, or_
from sqlmodel import Session, col, select

from audit.coding_audit import sample_script
from audit.coding_audit.access import (
    attesters_of,
    audit_area,
    audit_target,
    authorize_audit,
    coders_of,
    load_audit,
)
from audit.coding_audit.frame import build_frame
from audit.coding_audit.models import (
    AuditFinding,
    AuditFollowUp,
    AuditSignature,
    CodingAudit,
    FindingResponse,
)
from audit.coding_audit.schemas import AuditCreate
from audit.coding_audit.views import (
    audit_state,
    finding_state,
    follow_up_state,
    response_state,
    signature_state,
)
from audit.errors import Conflict, InvalidInput
from audit.ledger import service as ledger
from audit.ledger.events import ROW_TIME
from audit.models import User, utcnow
from audit.policy.engine import CodingAuditRes
from audit.policy.guard import authorize
from audit.policy.runtime import get_compliance
from audit.policy.scope import engagement_context
from audit.principal import CurrentUser

MANAGERS = frozenset({"compliance", "auditor"})


def today() -> date:
    """The calendar date (UTC) re-audit waits and overpayment clocks count in."""
    return utcnow().date()


def _validate(session: Session, data: AuditCreate) -> None:
    scope = data.scope
    if scope.date_to < scope.date_from:
        raise InvalidInput("scope.to", "scope.to must not be before scope.from")
    for i, provider_id in enumerate(scope.provider_ids or ()):
        provider = session.get(User, provider_id)
        if provider is None or "provider" not in provider.roles:
            raise InvalidInput(f"scope.provider_ids[{i}]", f"user {provider_id} is not a provider")
    accepted = set(get_compliance().code_systems)
    for i, system in enumerate(scope.code_systems or ()):
        if system not in accepted:
            raise InvalidInput(f"scope.code_systems[{i}]", f"{system} is not a code system in use")


def open_audit(session: Session, *, user: CurrentUser, data: AuditCreate) -> CodingAudit:
    _validate(session, data)
    now = utcnow()
    audit = CodingAudit(
        name=data.name,
        auditor_id=user.id,
        date_from=data.scope.date_from,
        date_to=data.scope.date_to,
        provider_ids=sorted(set(data.scope.provider_ids or ())),
        code_systems=sorted(set(data.scope.code_systems or ())),
        em_only=data.scope.em_only,
        method=data.sampling.method,
        n=data.sampling.n,
        strata=data.sampling.strata,
        seed=data.seed,
        opened_at=now,
    )
    context = engagement_context(session, user, audit_area(audit))
    resource = CodingAuditRes(id="new", auditor_id=user.id)
    grant = authorize(user, "coding_audit.open", audit_target(audit), resource, context)
    engagement = context.get("engagement")
    if engagement is not None and not user.has("compliance"):
        # an auditor's audit is bounded by the engagement it was opened in: its providers too
        audit.engagement_id = engagement.id
        if not audit.provider_ids and context.get("scope_provider_ids"):
            audit.provider_ids = sorted(context["scope_provider_ids"])
    session.add(audit)
    session.flush()
    ledger.append_one(
        session,
        grant.event(subject_id=audit.id, after=audit_state(audit), detail=dict(ROW_TIME)),
        now=now,
    )
    return audit


def _parties(session: Session, frame: list[dict[str, Any]], sample: list[str]) -> list[str]:
    providers = {row["provider_id"] for row in frame if row["id"] in set(sample)}
    people: set[str] = set(providers)
    for group in (coders_of(session, sample), attesters_of(session, sample)):
        for members in group.values():
            people |= members
    return sorted(people)


def draw_sample(session: Session, *, user: CurrentUser, audit_id: str) -> CodingAudit:
    """Draw the audit's sample (once: a later call returns the same one). The frame is frozen and
    hashed with it; `sample_script.py` (shipped in the export bundle) redraws it from the two."""
    audit = load_audit(session, audit_id, for_update=True)
    grant = authorize_audit(session, user, "coding_audit.sample", audit)
    if audit.sample is not None:
        return audit
    if audit.not_before is not None and today() < audit.not_before:
        raise Conflict(
            f"this re-audit's sample may be drawn from {audit.not_before.isoformat()}", field="not_before"
        )
    before = {"status": audit.status}
    frame = build_frame(session, audit)
    sample = sample_script.draw(frame, audit.method, audit.n, audit.seed, audit.strata)
    now = utcnow()
    audit.frame, audit.frame_sha256, audit.sample = frame, sample_script.frame_digest(frame), sample
    audit.sampled_at, audit.status = now, "sampled"
    audit.parties = _parties(session, frame, sample)
    session.add(audit)
    session.flush()
    detail = {
        "algorithm_version": sample_script.ALGORITHM_VERSION,
        "frame_ids": [r["id"] for r in frame],
        "parties": audit.parties,  # who may read the audit: reconciled by `audit verify`
    }
    ledger.append_one(session, grant.event(before=before, after=audit_state(audit), detail=detail), now=now)
    return audit


def sample_view(session: Session, audit: CodingAudit) -> dict[str, Any]:
    frame = {row["id"]: row for row in audit.frame or ()}
    return {
        "audit_id": audit.id,
        "frame_sha256": audit.frame_sha256,
        "frame_size": len(frame),
        "algorithm_version": sample_script.ALGORITHM_VERSION,
        "encounters": [{**frame[i], "position": n} for n, i in enumerate(audit.sample or ())],
    }


def read_audit(session: Session, *, user: CurrentUser, audit_id: str) -> dict[str, Any]:
    """The audit with its sample, findings (with their responses), signature and follow-up. A provider
    or coder who is a party sees only the findings on their encounters or their lines."""
    audit = load_audit(session, audit_id)
    grant = authorize_audit(session, user, "coding_audit.read", audit)
    ledger.append_one(session, grant.event(detail={"view": "audit"}))
    return audit_view(session, audit, user)


def addressed_to(user: CurrentUser) -> ColumnElement[bool]:
    """The findings a provider or coder sees in an audit they are a party to: those on their encounters
    as provider of record, or on lines they entered (the `/audits` page lists them by this too)."""
    return or_(col(AuditFinding.provider_id) == user.id, col(AuditFinding.line_author_id) == user.id)


def visible_findings(session: Session, audit: CodingAudit, user: CurrentUser) -> list[AuditFinding]:
    stmt = select(AuditFinding).where(AuditFinding.audit_id == audit.id)
    if not user.roles & MANAGERS:
        stmt = stmt.where(addressed_to(user))
    return list(session.exec(stmt.order_by(col(AuditFinding.recorded_at), col(AuditFinding.id))).all())


def _visible_sample(session: Session, audit: CodingAudit, user: CurrentUser) -> list[dict[str, Any]] | None:
    if audit.sample is None:
        return None
    rows: list[dict[str, Any]] = sample_view(session, audit)["encounters"]
    return rows if user.roles & MANAGERS else [r for r in rows if r["provider_id"] == user.id]


def audit_view(session: Session, audit: CodingAudit, user: CurrentUser) -> dict[str, Any]:
    findings = visible_findings(session, audit, user)
    ids = [f.id for f in findings]
    responses: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        for r in session.exec(
            select(FindingResponse)
            .where(col(FindingResponse.finding_id).in_(ids))
            .order_by(col(FindingResponse.responded_at))
        ).all():
            responses[r.finding_id].append(response_state(r))
    signatures = session.exec(
        select(AuditSignature)
        .where(AuditSignature.audit_id == audit.id)
        .order_by(col(AuditSignature.signed_at))
    ).all()
    follow_ups = session.exec(select(AuditFollowUp).where(AuditFollowUp.audit_id == audit.id)).all()
    day = today()
    return {
        **audit_state(audit),
        "sample": _visible_sample(session, audit, user),
        "findings": [{**finding_state(f), "responses": responses[f.id]} for f in findings],
        "open_disputes": sum(1 for f in findings if f.status == "disputed" and f.replaced_by is None),
        "signatures": [signature_state(s) for s in signatures],
        "follow_up": [follow_up_state(f, day) for f in follow_ups],
    }
