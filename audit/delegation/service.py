"""Delegations: a provider grants a coder authority; the grantor or compliance revokes it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from audit.delegation.schemas import DelegationCreate
from audit.errors import Conflict, InvalidInput, NotFound
from audit.ledger import service as ledger
from audit.ledger.events import EventDraft
from audit.models import Delegation, User, utcnow
from audit.policy.guard import Target, authorize, delegation_res, may
from audit.principal import CurrentUser


def delegation_state(d: Delegation) -> dict[str, Any]:
    return {
        "id": d.id,
        "provider_id": d.provider_id,
        "coder_id": d.coder_id,
        "code_systems": sorted(d.code_systems),
        "valid_from": d.valid_from.isoformat(),
        "valid_until": d.valid_until.isoformat(),
        "dos_from": d.dos_from.isoformat() if d.dos_from else None,
        "dos_until": d.dos_until.isoformat() if d.dos_until else None,
        "revoked_at": d.revoked_at.isoformat() if d.revoked_at else None,
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
    target = Target("delegation", None, provider_id=delegation.provider_id)
    grant = authorize(user, "delegation.grant", target, delegation_res(delegation))
    session.add(delegation)
    session.flush()
    ledger.append_one(
        session,
        EventDraft(
            type="delegation.grant",
            actor=user.actor(grant.role),
            subject_type="delegation",
            subject_id=delegation.id,
            provider_id=delegation.provider_id,
            policy=grant.policy,
            after=delegation_state(delegation),
        ),
    )
    return delegation


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
    ledger.append_one(
        session,
        EventDraft(
            type="delegation.revoke",
            actor=user.actor(grant.role),
            subject_type="delegation",
            subject_id=delegation.id,
            provider_id=delegation.provider_id,
            policy=grant.policy,
            reason=reason,
            before=before,
            after=delegation_state(delegation),
        ),
    )
    return delegation


def list_delegations(
    session: Session,
    *,
    user: CurrentUser,
    provider_id: str | None = None,
    coder_id: str | None = None,
    active: bool | None = None,
) -> list[Delegation]:
    """Delegations the user may read: each row is checked by the policy (lists here are small)."""
    stmt = select(Delegation).order_by(col(Delegation.granted_at).desc())
    if provider_id:
        stmt = stmt.where(Delegation.provider_id == provider_id)
    if coder_id:
        stmt = stmt.where(Delegation.coder_id == coder_id)
    if not user.roles & {"compliance", "auditor"}:
        stmt = stmt.where((col(Delegation.provider_id) == user.id) | (col(Delegation.coder_id) == user.id))
    now = utcnow()
    rows = [d for d in session.exec(stmt).all() if active is None or is_active(d, now) == active]
    return [d for d in rows if may(user, "delegation.read", delegation_res(d))]
