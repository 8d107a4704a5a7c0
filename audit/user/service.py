"""Users and tokens (sign-in itself is audit.user.signin)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from audit.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from audit.ledger import service as ledger
from audit.ledger.events import ALLOWED, Actor, EventDraft, PolicyRef
from audit.models import ApiToken, User, utcnow
from audit.policy.engine import UserRes
from audit.policy.filters import user_clause
from audit.policy.guard import Target, authorize
from audit.policy.scope import user_list_scope
from audit.principal import CurrentUser
from audit.security import hash_password, token_digest
from audit.user.records import user_event
from audit.user.schemas import UserCreate

HOST_ACTOR = Actor(id=None, role="cli", username="cli")


def create_user(session: Session, *, user: CurrentUser, data: UserCreate) -> User:
    """Create a user on behalf of a signed-in user: `user.create` is decided by the policy (an
    administrator) before anything is stored; a refusal is recorded as a `denied` event."""
    resource = UserRes(id="new", roles=frozenset(data.roles))
    grant = authorize(user, "user.create", Target("user", None), resource)
    return _store(session, data, actor=grant.actor, policy=grant.policy)


def bootstrap_user(session: Session, *, data: UserCreate, actor: Actor = HOST_ACTOR) -> User:
    """Create a user from the host, with no policy decision: the way the first administrator comes to
    exist (`audit user add`, before anyone can sign in), and the host-side seeding of the demo.
    There is no signed-in principal to authorise; what stands in for it is access to the host and
    its database URL. The event names the host-side `actor` and carries no policy (none was made).
    The API never reaches this: its route calls `create_user`."""
    return _store(session, data, actor=actor, policy=None)


def _store(session: Session, data: UserCreate, *, actor: Actor, policy: PolicyRef | None) -> User:
    if session.exec(select(User).where(User.username == data.username)).first():
        raise Conflict(f"username '{data.username}' is taken", field="username")
    now = utcnow()
    user = User(
        username=data.username,
        display_name=data.display_name,
        password_hash=hash_password(data.password),
        roles=sorted(set(data.roles)),
        npi=data.npi,
        credential=data.credential,
        created_at=now,
    )
    session.add(user)
    session.flush()
    ledger.append_one(session, user_event("user.create", user=user, actor=actor, policy=policy), now=now)
    return user


def list_users(session: Session, *, user: CurrentUser, limit: int = 500, offset: int = 0) -> list[User]:
    """A page of the users the reader may list (`user_list_scope`), by username."""
    _, scope = user_list_scope(user)
    stmt = select(User).where(user_clause(scope)).order_by(col(User.username)).limit(limit).offset(offset)
    return list(session.exec(stmt).all())


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def resolve_token(session: Session, token: str, now: datetime | None = None) -> User:
    """The active user of a live token, in one query (every authenticated request runs it first)."""
    now = now or utcnow()
    found = session.exec(
        select(ApiToken, User)
        .join(User, col(User.id) == col(ApiToken.user_id))
        .where(ApiToken.token_hash == token_digest(token))
    ).first()
    if found is None:
        raise NotAuthenticated("token is missing, expired or revoked")
    row, user = found
    if row.revoked_at is not None or row.expires_at <= now or not user.is_active:
        raise NotAuthenticated("token is missing, expired or revoked")
    return user


def sign_out(session: Session, *, token: str, user: CurrentUser) -> None:
    session.execute(
        update(ApiToken).where(ApiToken.token_hash == token_digest(token)).values(revoked_at=utcnow())  # type: ignore[arg-type]
    )
    ledger.append_one(
        session,
        EventDraft(
            type="auth.signout", actor=user.actor(), subject_type="user", subject_id=user.id, outcome=ALLOWED
        ),
    )


def change_own_password(
    session: Session, *, user: CurrentUser, new_password: str, keep_token: str | None = None
) -> User:
    """Set the user's own password (the caller has just checked the current one through the sign-in
    back-off, audit.user.entry.authenticate). Every other session and token of the user ends."""
    from audit.inputs import unsafe_character
    from audit.policy.engine import UserRes
    from audit.policy.guard import Target, authorize
    from audit.user.records import public_view, user_event

    if not 12 <= len(new_password) <= 256:  # the rules UserCreate.password holds at creation
        raise InvalidInput("new_password", "the new password must have 12 to 256 characters")
    problem = unsafe_character(new_password)
    if problem:
        raise InvalidInput("new_password", f"new_password: {problem}")
    grant = authorize(
        user, "user.change_password", Target("user", user.id), UserRes(id=user.id, roles=user.roles)
    )
    row = get_user(session, user.id)
    before = public_view(row)
    row.password_hash = hash_password(new_password)
    session.add(row)
    now = utcnow()
    others = update(ApiToken).where(col(ApiToken.user_id) == user.id, col(ApiToken.revoked_at).is_(None))
    if keep_token:
        others = others.where(col(ApiToken.token_hash) != token_digest(keep_token))
    session.execute(others.values(revoked_at=now))
    session.flush()
    event = user_event(
        "user.change_password", user=row, actor=user.actor(grant.role), policy=grant.policy, before=before
    )
    ledger.append_one(session, event, now=now)
    return row
