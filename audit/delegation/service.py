"""Delegations: a provider grants a coder authority; the grantor or compliance revokes it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, not_
from sqlmodel import Session, col, select

from audit.delegation.schemas import DelegationCreate
from audit.errors import Conflict, InvalidInput, NotFound
from audit.ledger import service as ledger
from audit.ledger.chain import rfc3339
from audit.ledger.events import ROW_TIME
from audit.models import Delegation, User, utcnow
from audit.policy.filters import delegation_clause
from audit.policy.guard import Target, authorize, delegation_res
from audit.policy.runtime import get_compliance
from audit.policy.scope import delegation_list_scope
from audit.principal import CurrentUser


def delegation_state(d: Delegation) -> dict[str, Any]:
    return {
        "id": d.id,
        "provider_id": d.provider_id,
        "coder_id": d.coder_id,
        "code_systems": sorted(d.code_systems),
        "valid_from": rfc3339(d.valid_from),
        "valid_until": rfc3339(d.valid_until),
        "dos_from": d.dos_from.isoformat() if d.dos_from else None,
        "dos_until": d.dos_until.isoformat() if d.dos_until else None,
        "revoked_at": rfc3339(d.revoked_at) if d.revoked_at else None,
        "revoked_by": d.revoked_by,
        "reason": d.reason,
    }


def is_active(d: Delegation, now: datetime) -> bool:
    return d.revoked_at is None and d.valid_from <= now <= d.valid_until


def grant_delegation(session: Session, *, user: CurrentUser, data: DelegationCreate) -> Delegation:
    coder = session.get(User, data.coder_id)
    if coder is None or "coder" not in coder.roles or not coder.is_active:
        raise InvalidInput("coder_id", f"user {data.coder_id} is not an active coder")
    now = utcnow()
    delegation = Delegation(
        provider_id=data.provider_id or user.id,
        coder_id=coder.id,
        code_systems=sorted(set(data.code_systems)),
        valid_from=data.valid_from or now,
        valid_until=data.valid_until,
        dos_from=data.dos_from,
        dos_until=data.dos_until,
        granted_by=user.id,
        granted_at=now,
    )
    if delegation.valid_until <= now:
        raise InvalidInput("valid_until", "valid_until is in the past")
    _within_max_days(delegation)
    target = Target("delegation", None, provider_id=delegation.provider_id)
    grant = authorize(user, "delegation.grant", target, delegation_res(delegation))
    session.add(delegation)
    session.flush()
    ledger.append_one(
        session,
        grant.event(subject_id=delegation.id, after=delegation_state(delegation), detail=dict(ROW_TIME)),
        now=now,
    )
    return delegation


def _within_max_days(delegation: Delegation) -> None:
    """compliance.yaml `delegations.max_days`: how long one grant of coding authority may run."""
    max_days = get_compliance().delegations.max_days
    if delegation.valid_until - delegation.valid_from > timedelta(days=max_days):
        raise InvalidInput(
            "valid_until",
            f"a delegation may run at most {max_days} days from valid_from "
            f"(delegations.max_days in compliance.yaml); grant a new one when it ends",
        )


def revoke_delegation(session: Session, *, user: CurrentUser, delegation_id: str, reason: str) -> Delegation:
    delegation = session.get(Delegation, delegation_id)
    if delegation is None:
        raise NotFound(f"delegation {delegation_id} not found")
    target = Target("delegation", delegation.id, provider_id=delegation.provider_id)
    grant = authorize(user, "delegation.revoke", target, delegation_res(delegation))
    if delegation.revoked_at is not None:
        raise Conflict(f"delegation {delegation.id} was already revoked", field="delegation_id")
    before = delegation_state(delegation)
    delegation.revoked_at, delegation.revoked_by, delegation.reason = utcnow(), user.id, reason
    session.add(delegation)
    session.flush()
    ledger.append_one(session, grant.event(reason=reason, before=before, after=delegation_state(delegation)))
    return delegation


def list_delegations(
    session: Session,
    *,
    user: CurrentUser,
    provider_id: str | None = None,
    coder_id: str | None = None,
    active: bool | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[Delegation]:
    """A page of the delegations the user may read, newest first: the SQL comes from the user's list
    scope (`delegation_list_scope`), the parameters only filter inside it, and the policy confirms
    each row of the page (`delegation.read`)."""
    scope, readable = delegation_list_scope(session, user)
    stmt = select(Delegation).where(delegation_clause(scope))
    if provider_id:
        stmt = stmt.where(Delegation.provider_id == provider_id)
    if coder_id:
        stmt = stmt.where(Delegation.coder_id == coder_id)
    if active is not None:
        now = utcnow()
        live = and_(
            col(Delegation.revoked_at).is_(None),
            col(Delegation.valid_from) <= now,
            col(Delegation.valid_until) >= now,
        )
        stmt = stmt.where(live if active else not_(live))
    page = stmt.order_by(col(Delegation.granted_at).desc(), col(Delegation.id)).limit(limit).offset(offset)
    return [d for d in session.exec(page).all() if readable(d)]
