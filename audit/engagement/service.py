"""Auditor engagements: compliance opens and revokes an external auditor's scope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from audit.engagement.schemas import EngagementCreate
from audit.errors import Conflict, InvalidInput, NotFound
from audit.ledger import service as ledger
from audit.ledger.events import EventDraft
from audit.models import Engagement, User, utcnow
from audit.policy.engine import DEFAULT_DENY, Decision
from audit.policy.guard import Target, authorize, refusal
from audit.policy.runtime import get_policy_engine
from audit.policy.scope import engagement_res
from audit.principal import CurrentUser


def engagement_state(e: Engagement) -> dict[str, Any]:
    return {
        "id": e.id,
        "auditor_id": e.auditor_id,
        "date_from": e.date_from.isoformat(),
        "date_to": e.date_to.isoformat(),
        "provider_ids": sorted(e.provider_ids),
        "expires_at": e.expires_at.isoformat(),
        "purpose": e.purpose,
        "revoked_at": e.revoked_at.isoformat() if e.revoked_at else None,
        "revoked_by": e.revoked_by,
    }


def is_live(e: Engagement, now: datetime) -> bool:
    return e.revoked_at is None and now < e.expires_at


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _validate(session: Session, data: EngagementCreate, now: datetime) -> None:
    auditor = session.get(User, data.auditor_id)
    if auditor is None or "auditor" not in auditor.roles or not auditor.is_active:
        raise InvalidInput("auditor_id", f"user {data.auditor_id} is not an active auditor")
    if data.date_to < data.date_from:
        raise InvalidInput("date_to", "date_to must not be before date_from")
    if _aware(data.expires_at) <= now:
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
        expires_at=_aware(data.expires_at),
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
        EventDraft(
            type="engagement.open",
            actor=user.actor(grant.role),
            subject_type="engagement",
            subject_id=engagement.id,
            policy=grant.policy,
            reason=data.purpose,
            before=None,
            after=engagement_state(engagement),
        ),
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
    ledger.append_one(
        session,
        EventDraft(
            type="engagement.revoke",
            actor=user.actor(grant.role),
            subject_type="engagement",
            subject_id=engagement.id,
            policy=grant.policy,
            reason=reason,
            before=before,
            after=engagement_state(engagement),
        ),
    )
    return engagement


def list_engagements(session: Session, *, user: CurrentUser) -> list[Engagement]:
    """Compliance sees every engagement, an auditor their own; anyone else is refused (and recorded)."""
    stmt = select(Engagement).order_by(col(Engagement.opened_at).desc())
    if user.has("compliance"):
        return list(session.exec(stmt).all())
    if user.has("auditor"):
        return list(session.exec(stmt.where(Engagement.auditor_id == user.id)).all())
    decision = Decision(False, (DEFAULT_DENY,), (), get_policy_engine().version)
    raise refusal(user, "engagement.read", Target("engagement", None), decision)
