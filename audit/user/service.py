"""Users, sign-in, tokens and lockout."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from audit.errors import Conflict, Locked, NotAuthenticated, NotFound
from audit.ledger import service as ledger
from audit.ledger.events import ALLOWED, ANONYMOUS, FAILED, Actor, EventDraft, PolicyRef
from audit.models import ApiToken, User, utcnow
from audit.policy.runtime import get_compliance
from audit.principal import CurrentUser
from audit.security import dummy_hash, hash_password, new_token, token_digest, verify_password
from audit.user.schemas import UserCreate


def public_view(user: User) -> dict[str, object]:
    """What the ledger and the API show of a user: never the password hash."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "roles": sorted(user.roles),
        "npi": user.npi,
        "credential": user.credential,
    }


def create_user(session: Session, *, data: UserCreate, actor: Actor, policy: PolicyRef | None = None) -> User:
    if session.exec(select(User).where(User.username == data.username)).first():
        raise Conflict(f"username '{data.username}' is taken", field="username")
    user = User(
        username=data.username,
        display_name=data.display_name,
        password_hash=hash_password(data.password),
        roles=sorted(set(data.roles)),
        npi=data.npi,
        credential=data.credential,
    )
    session.add(user)
    session.flush()
    ledger.append_one(
        session,
        EventDraft(
            type="user.create",
            actor=actor,
            subject_type="user",
            subject_id=user.id,
            policy=policy,
            after=public_view(user),
        ),
    )
    return user


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(User.username)).all())


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def _is_locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


def sign_in(
    session: Session, *, username: str, password: str, now: datetime | None = None
) -> tuple[str, int]:
    """Check the password and issue a token: (token, lifetime in seconds).

    A failure is refused with its audit event and failure counter written after the rollback.
    """
    now = now or utcnow()
    user = authenticate(session, username=username, password=password, now=now)
    token, digest = new_token()
    lifetime = get_compliance().tokens.lifetime_minutes * 60
    session.add(
        ApiToken(
            token_hash=digest, user_id=user.id, issued_at=now, expires_at=now + timedelta(seconds=lifetime)
        )
    )
    session.add(user)
    ledger.append_one(
        session,
        EventDraft(
            type="auth.signin",
            actor=Actor(user.id, None, user.username),
            subject_type="user",
            subject_id=user.id,
        ),
        now=now,
    )
    return token, lifetime


def authenticate(session: Session, *, username: str, password: str, now: datetime | None = None) -> User:
    """The user whose password this is (sign-in and the CLI); failures are evidence and count toward
    lockout, written after the refused unit of work rolls back."""
    now = now or utcnow()
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        verify_password(password, dummy_hash())
        raise _signin_failed(None, username, "unknown username")
    if _is_locked(user, now):
        raise _signin_failed(user.id, username, "account locked", locked=True)
    if not user.is_active or not verify_password(password, user.password_hash):
        raise _signin_failed(user.id, username, "wrong password" if user.is_active else "account disabled")
    user.failed_signins = 0
    session.add(user)
    return user


def _signin_failed(
    user_id: str | None, username: str, reason: str, locked: bool = False
) -> NotAuthenticated | Locked:
    error: NotAuthenticated | Locked
    if locked:
        error = Locked("account is locked after repeated failures; try again later or ask an admin")
    else:
        error = NotAuthenticated("incorrect username or password")

    def record(session: Session) -> None:
        lockout = get_compliance().lockout
        detail: dict[str, object] = {"username": username}
        if user_id is not None and not locked:
            detail.update(count_failure(session, user_id, "failed_signins", lockout.max_failed_signins))
        ledger.append_one(
            session,
            EventDraft(
                type="auth.signin",
                actor=Actor(user_id, None, username) if user_id else ANONYMOUS,
                outcome=FAILED,
                subject_type="user",
                subject_id=user_id,
                reason=reason,
                detail=detail,
            ),
        )

    error.recording(record)
    return error


def count_failure(session: Session, user_id: str, counter: str, threshold: int) -> dict[str, object]:
    """Increment a failure counter and lock the account when it reaches the policy threshold."""
    user = session.get(User, user_id)
    assert user is not None
    count = getattr(user, counter) + 1
    setattr(user, counter, count)
    locked_until = None
    if count >= threshold:
        locked_until = utcnow() + timedelta(minutes=get_compliance().lockout.duration_minutes)
        user.locked_until = locked_until
        setattr(user, counter, 0)
    session.add(user)
    session.flush()
    return {counter: count, "locked_until": locked_until.isoformat() if locked_until else None}


def resolve_token(session: Session, token: str, now: datetime | None = None) -> User:
    now = now or utcnow()
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == token_digest(token))).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise NotAuthenticated("token is missing, expired or revoked")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
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
