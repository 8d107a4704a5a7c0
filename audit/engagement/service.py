"""Auditor engagements: compliance opens and revokes an external auditor's scope."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from audit.engagement.schemas import EngagementCreate
from audit.errors import Conflict, InvalidInput, NotFound
from audit.ledger import service as ledger
from audit.ledger.chain import rfc3339
from audit.ledger.events import ROW_TIME
from audit.models import Engagement, User, utcnow
from audit.policy.filters import engagement_clause
from audit.policy.guard import Target, authorize
from audit.policy.scope import engagement_list_scope, engagement_res
from audit.principal import CurrentUser


def engagement_state(e: Engagement) -> dict[str, Any]:
    return {
        "id": e.id,
        "auditor_id": e.auditor_id,
        "date_from": e.date_from.isoformat(),
        "date_to": e.date_to.isoformat(),
        "provider_ids": sorted(e.provider_ids),
        "expires_at": rfc3339(e.expires_at),
        "purpose": e.purpose,
        "revoked_at": rfc3339(e.revoked_at) if e.revoked_at else None,
        "revoked_by": e.revoked_by,
    }


def is_live(e: Engagement, now: datetime) -> bool:
    return e.revoked_at is None and now < e.expires_at


def _validate(session: Session, data: EngagementCreate, now: datetime) -> None:
    auditor = session.get(User, data.auditor_id)
    if auditor is None or "auditor" not in auditor.roles or not auditor.is_active:
        raise InvalidInput("auditor_id", f"user {data.auditor_id} is not an active auditor")
    if data.date_to < data.date_from:
        raise InvalidInput("date_to", "date_to must not be before date_from")
    if data.expires_at <= now:
        raise InvalidInput("expires_at", "expires_at is in the past")
    for i, provider_id in enumerate(data.provider_ids):
        provider = session.get(User, provider_id)
        if provider is None or "provider" not in provider.roles:
            raise InvalidInput(f"provider_ids[{i}]", f"user {provider_id} is not a provider")


def open_engagement(session: Session, *, user: CurrentUser, data: EngagementCreate) -> Engagement:
    now = utcnow()
    engagement = Engagement(
        auditor_id=data.auditor_id,
        date_from=data.date_from,
        date_to=data.date_to,
        provider_ids=sorted(set(data.provider_ids)),
        expires_at=data.expires_at,
        opened_by=user.id,
        opened_at=now,
        purpose=data.purpose,
    )
    grant = authorize(user, "engagement.open", Target("engagement", None), engagement_res(engagement))
    _validate(session, data, now)
    session.add(engagement)
    session.flush()
    ledger.append_one(
        session,
        grant.event(
            subject_id=engagement.id,
            reason=data.purpose,
            after=engagement_state(engagement),
            detail=dict(ROW_TIME),
        ),
        now=now,
    )
    return engagement


def revoke_engagement(session: Session, *, user: CurrentUser, engagement_id: str, reason: str) -> Engagement:
    engagement = session.get(Engagement, engagement_id)
    if engagement is None:
        raise NotFound(f"engagement {engagement_id} not found")
    target = Target("engagement", engagement.id)
    grant = authorize(user, "engagement.revoke", target, engagement_res(engagement))
    if engagement.revoked_at is not None:
        raise Conflict(f"engagement {engagement.id} was already revoked", field="engagement_id")
    before = engagement_state(engagement)
    engagement.revoked_at, engagement.revoked_by = utcnow(), user.id
    session.add(engagement)
    session.flush()
    ledger.append_one(session, grant.event(reason=reason, before=before, after=engagement_state(engagement)))
    return engagement


def list_engagements(
    session: Session, *, user: CurrentUser, limit: int = 200, offset: int = 0
) -> list[Engagement]:
    """Compliance sees every engagement, an auditor their own; anyone else is refused (and recorded)."""
    _, scope = engagement_list_scope(user)
    stmt = select(Engagement).where(engagement_clause(scope))
    page = stmt.order_by(col(Engagement.opened_at).desc(), col(Engagement.id)).limit(limit).offset(offset)
    return list(session.exec(page).all())
