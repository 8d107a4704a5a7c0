"""Sign-in: back-off instead of lockout, one answer whatever the state, evidence without flooding.

A sign-in is three steps (audit.user.entry runs them as units of work):

1. `admit` (its own short transaction): sweep closed report windows; during back-off refuse with 429
   and `Retry-After` *without checking the password*, so right and wrong passwords get the same
   answer; otherwise count the attempt as a failure in advance (audit.user.backoff).
2. `password_matches` (no transaction): the slow Argon2 check, against a dummy hash for unknown
   usernames so timing does not reveal which exist.
3. `conclude` (its own transaction): a wrong password is 401 and a failure record; a right one takes
   the advance failure back and returns the user.

A failed sign-in never locks an account and never touches sessions already open.

Lock order, in every transaction here, so concurrent sign-ins on PostgreSQL cannot deadlock:
back-off rows, then report-window rows (the sweep skips locked ones), then the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from audit.errors import NotAuthenticated, TooManyAttempts
from audit.ledger import service as ledger
from audit.ledger.events import Actor, EventDraft
from audit.models import ApiToken, User, utcnow
from audit.policy.runtime import get_compliance
from audit.security import dummy_hash, keyed_digest, new_token, verify_password
from audit.user import backoff, signin_events
from audit.user.signin_events import Claimant

WRONG = "incorrect username or password"


@dataclass(frozen=True)
class Attempt:
    """An admitted sign-in attempt, counted in advance, waiting for its password check."""

    claimant: Claimant
    keys: backoff.Keys
    password_hash: str
    active: bool
    now: datetime


def source_tag(address: str) -> str:
    """What events say about where an attempt came from: a short keyed digest, not the address."""
    return keyed_digest("source", address)[:16]


def admit(session: Session, *, username: str, address: str, now: datetime | None = None) -> Attempt:
    now = now or utcnow()
    user = session.exec(select(User).where(User.username == username)).first()
    claimant = Claimant(user.id if user else None, username, source_tag(address))
    keys = backoff.Keys.of(username, address)
    wait = backoff.take(session, keys, get_compliance().signin, now)
    if wait:
        error = TooManyAttempts(
            f"too many failed sign-ins: try again in {wait} s", retry_after=wait, field="username"
        )
        return _refused(error, claimant, now, wait)
    signin_events.sweep(session, now)
    password_hash = user.password_hash if user else dummy_hash()
    return Attempt(claimant, keys, password_hash, bool(user and user.is_active), now)


def _refused(error: TooManyAttempts, claimant: Claimant, now: datetime, wait: int) -> Attempt:
    """Raise the 429; its record (after the rollback) sweeps too, so summaries keep coming even
    while every attempt is refused."""

    def record(session: Session) -> None:
        signin_events.record_failure(
            session, claimant, reason="refused during back-off", throttled=True, now=now, retry_after=wait
        )
        signin_events.sweep(session, now)

    raise error.recording(record)


def password_matches(attempt: Attempt, password: str) -> bool:
    """The Argon2 check (slow on purpose): run it outside any transaction."""
    return verify_password(password, attempt.password_hash) and attempt.active


def conclude(session: Session, *, attempt: Attempt, password_ok: bool) -> User:
    """The user, or 401 (the same answer for a wrong password, an unknown name and a disabled account)."""
    who = attempt.claimant
    user = session.get(User, who.user_id) if who.user_id else None
    if not password_ok or user is None or not user.is_active:
        reason = "unknown username" if who.user_id is None else "wrong password"
        if user is not None and not user.is_active:
            reason = "account disabled"
        error = NotAuthenticated(WRONG)
        raise error.recording(
            lambda s: signin_events.record_failure(s, who, reason=reason, throttled=False, now=attempt.now)
        )
    backoff.settle(session, attempt.keys, attempt.now)
    return user


def issue_token(
    session: Session,
    *,
    user: User,
    source: str,
    now: datetime | None = None,
    lifetime: int | None = None,
    channel: str = "api",
) -> tuple[str, int]:
    """A bearer token for a user whose password was just checked: (token, lifetime in seconds).
    A web session (`channel="web"`) passes its idle timeout as `lifetime` (audit.web.session
    slides it forward on each request)."""
    now = now or utcnow()
    token, digest = new_token()
    lifetime = lifetime or get_compliance().tokens.lifetime_minutes * 60
    session.add(
        ApiToken(
            token_hash=digest, user_id=user.id, issued_at=now, expires_at=now + timedelta(seconds=lifetime)
        )
    )
    ledger.append_one(
        session,
        EventDraft(
            type="auth.signin",
            actor=Actor(user.id, None, user.username),
            subject_type="user",
            subject_id=user.id,
            detail={"source": source} if channel == "api" else {"source": source, "channel": channel},
        ),
        now=now,
    )
    return token, lifetime
