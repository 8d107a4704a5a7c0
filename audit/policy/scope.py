"""The request context an auditor's action is judged in: their engagement (opened by compliance).

`auditor_context(session, user, scope_from=, scope_to=, provider_ids=)` returns the Cedar context keys
(`engagement`, `scope_from`, `scope_to`, `scope_provider_ids`). For an auditor it picks the live
engagement that contains the requested scope and fills what the request leaves out from it (no dates:
the engagement's range; no providers: the engagement's providers), so the caller can read the effective
scope back from the context. When no engagement contains the scope, the newest live one is returned
with the scope as asked, and the policy denies. Non-auditors get only the scope keys they gave.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, col, select

from audit.models import Engagement, utcnow
from audit.policy.engine import EngagementRes
from audit.principal import CurrentUser


def engagement_res(e: Engagement) -> EngagementRes:
    return EngagementRes(
        id=e.id,
        auditor_id=e.auditor_id,
        date_from=e.date_from,
        date_to=e.date_to,
        provider_ids=frozenset(e.provider_ids),
        expires_at=e.expires_at,
        revoked=e.revoked_at is not None,
    )


def live_engagements(session: Session, auditor_id: str, now: datetime) -> list[Engagement]:
    """The auditor's unrevoked, unexpired engagements, newest first."""
    return list(
        session.exec(
            select(Engagement)
            .where(
                Engagement.auditor_id == auditor_id,
                col(Engagement.revoked_at).is_(None),
                col(Engagement.expires_at) > now,
            )
            .order_by(col(Engagement.opened_at).desc(), col(Engagement.id))
        ).all()
    )


def _given_scope(scope: dict[str, Any]) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    if scope.get("scope_from") is not None:
        ctx["scope_from"] = scope["scope_from"]
    if scope.get("scope_to") is not None:
        ctx["scope_to"] = scope["scope_to"]
    if scope.get("provider_ids"):
        ctx["scope_provider_ids"] = frozenset(scope["provider_ids"])
    return ctx


def _filled(e: Engagement, asked: dict[str, Any]) -> dict[str, Any]:
    """The requested scope with what it leaves out taken from the engagement."""
    ctx: dict[str, Any] = {
        "engagement": engagement_res(e),
        "scope_from": asked.get("scope_from", e.date_from),
        "scope_to": asked.get("scope_to", e.date_to),
    }
    providers = asked.get("scope_provider_ids") or frozenset(e.provider_ids)
    if providers:
        ctx["scope_provider_ids"] = frozenset(providers)
    return ctx


def _contains(e: Engagement, ctx: dict[str, Any]) -> bool:
    start: date = ctx["scope_from"]
    end: date = ctx["scope_to"]
    providers: Iterable[str] = ctx.get("scope_provider_ids", frozenset())
    inside_dates = e.date_from <= start <= end <= e.date_to
    return inside_dates and (not e.provider_ids or set(providers) <= set(e.provider_ids))


def auditor_context(session: Session, user: CurrentUser, **scope: Any) -> dict[str, Any]:
    """Context for `authorize`: keyword scope `scope_from`, `scope_to` (dates), `provider_ids`."""
    asked = _given_scope(scope)
    if not user.has("auditor"):
        return asked
    engagements = live_engagements(session, user.id, utcnow())
    for engagement in engagements:
        ctx = _filled(engagement, asked)
        if _contains(engagement, ctx):
            return ctx
    return _filled(engagements[0], asked) if engagements else asked


def encounter_scope(encounter: Any) -> dict[str, Any]:
    """The scope keywords for reading one encounter (so the engagement covering it is chosen)."""
    dos = encounter.date_of_service
    return {"scope_from": dos, "scope_to": dos, "provider_ids": [encounter.rendering_provider_id]}
