"""User administration: deactivate, unlock, reset a password, change roles. Each is decided by Cedar
(`users.cedar`: administrators only, never on their own account) and recorded by `user_event`, so the
ledger holds the roles, the active flag and the password digest the verifier replays.

Segregation of duties stays in Cedar: an administrator may hand out clinical roles to others, but no
rule lets an administrator code or attest, whatever roles they hold."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, col

from audit.errors import Conflict, InvalidInput
from audit.ledger import service as ledger
from audit.models import ApiToken, User, utcnow
from audit.policy.engine import UserRes
from audit.policy.guard import Grant, Target, authorize
from audit.principal import ROLES, CurrentUser
from audit.security import hash_password
from audit.user.records import public_view, user_event
from audit.user.service import get_user


def _decide(session: Session, admin: CurrentUser, action: str, user_id: str) -> tuple[Grant, User]:
    row = get_user(session, user_id)
    grant = authorize(admin, action, Target("user", row.id), UserRes(id=row.id, roles=frozenset(row.roles)))
    return grant, row


def _end_sessions(session: Session, user_id: str) -> None:
    stmt = update(ApiToken).where(col(ApiToken.user_id) == user_id, col(ApiToken.revoked_at).is_(None))
    session.execute(stmt.values(revoked_at=utcnow()))


def _record(session: Session, event_type: str, row: User, admin: CurrentUser, grant: Grant,
            before: dict[str, object], reason: str | None = None) -> User:  # fmt: skip
    session.add(row)
    session.flush()
    draft = user_event(
        event_type, user=row, actor=admin.actor(grant.role), policy=grant.policy, before=before
    )
    draft.reason = reason
    ledger.append_one(session, draft)
    return row


def set_active(session: Session, *, admin: CurrentUser, user_id: str, active: bool, reason: str) -> User:
    """Deactivate (every session ends; sign-in answers as for a wrong password) or reactivate."""
    action = "user.deactivate" if not active else "user.reactivate"
    grant, row = _decide(session, admin, action, user_id)
    if row.is_active == active:
        raise Conflict(f"the account is already {'active' if active else 'inactive'}")
    before = public_view(row)
    row.is_active = active
    if not active:
        _end_sessions(session, row.id)
    return _record(session, action, row, admin, grant, before, reason)


def unlock(session: Session, *, admin: CurrentUser, user_id: str, reason: str) -> User:
    """Lift an administrator's account lock and the signing lock left by wrong passwords at signing."""
    grant, row = _decide(session, admin, "user.unlock", user_id)
    before = public_view(row)
    row.locked_until = None
    row.signing_locked_until = None
    row.failed_signings = 0
    return _record(session, "user.unlock", row, admin, grant, before, reason)


def reset_password(session: Session, *, admin: CurrentUser, user_id: str, new_password: str) -> User:
    """Set a temporary password (given to the user out of band); every session of the user ends."""
    if not 12 <= len(new_password) <= 256:
        raise InvalidInput("new_password", "the new password must have 12 to 256 characters")
    grant, row = _decide(session, admin, "user.reset_password", user_id)
    before = public_view(row)
    row.password_hash = hash_password(new_password)
    _end_sessions(session, row.id)
    return _record(session, "user.reset_password", row, admin, grant, before)


def change_roles(
    session: Session, *, admin: CurrentUser, user_id: str, roles: list[str], reason: str
) -> User:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise InvalidInput("roles", f"choose one or more of {list(ROLES)}")
    grant, row = _decide(session, admin, "user.change_roles", user_id)
    before = public_view(row)
    row.roles = sorted(set(roles))
    return _record(session, "user.change_roles", row, admin, grant, before, reason)
