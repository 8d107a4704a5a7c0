"""Failed sign-ins as evidence, without letting an anonymous caller flood the ledger.

The ledger is append-only, so a burst cannot be one event that grows. Instead, per account (or, for
usernames that do not exist, one shared bucket), a reporting window opens with the first failure:

1. the first failed or refused attempt in a window is a full `auth.signin` `failed` event;
2. later attempts in the window are only counted (`signin_burst`);
3. once the window has closed, one summary event with the counts (and the seq of the first event) is
   appended: by the next sign-in attempt from anyone (each attempt sweeps closed windows first) or by
   the serving process's sweeper, whichever comes first. So a burst leaves at most two events per
   window, and every attempt is accounted for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from audit.db import locked_row
from audit.ledger import service as ledger
from audit.ledger.chain import rfc3339
from audit.ledger.events import ANONYMOUS, FAILED, Actor, EventDraft
from audit.policy.runtime import get_compliance
from audit.user.models import SigninBurst

UNKNOWN_BUCKET = "unknown-username"
USERNAME_IN_EVENTS = 64  # longest real username; anything longer is shown cut
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Claimant:
    """Who tried to sign in: the account the username names (if any), as typed, and from where."""

    user_id: str | None
    username: str
    source: str  # a short keyed digest of the source address: correlates without storing it

    @property
    def bucket(self) -> str:
        return self.user_id or UNKNOWN_BUCKET

    def actor(self) -> Actor:
        return Actor(self.user_id, None, shown_username(self.username)) if self.user_id else ANONYMOUS

    def detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"username": shown_username(self.username), "source": self.source}
        if len(self.username) > USERNAME_IN_EVENTS:
            detail["username_length"] = len(self.username)
        return detail


def shown_username(username: str) -> str:
    return username[:USERNAME_IN_EVENTS]


def record_failure(
    session: Session, who: Claimant, *, reason: str, throttled: bool, now: datetime, **detail: Any
) -> int | None:
    """Account for one failed (or back-off refused) attempt; returns the seq of its event, or None
    when it was only counted toward the open window's summary."""
    window = timedelta(seconds=get_compliance().signin.report_window_seconds)
    burst = _locked_burst(session, who.bucket, now)
    if burst.closes_at > now:
        burst.throttled += int(throttled)
        burst.failed += int(not throttled)
        burst.last_at = now
        session.add(burst)
        session.flush()
        return None
    _summarise(session, burst)
    seq = ledger.append_now(
        session,
        EventDraft(
            type="auth.signin",
            actor=who.actor(),
            outcome=FAILED,
            subject_type="user",
            subject_id=who.user_id,
            reason=reason,
            detail={**who.detail(), **detail},
        ),
        now=now,
    )
    burst.opened_at, burst.closes_at, burst.last_at = now, now + window, now
    burst.first_seq, burst.failed, burst.throttled = seq, 0, 0
    session.add(burst)
    session.flush()
    return seq


def sweep(session: Session, now: datetime, limit: int = 100) -> int:
    """Append the summaries of closed windows and forget them; returns how many summaries."""
    stmt = (
        select(SigninBurst)
        .where(SigninBurst.closes_at <= now)  # type: ignore[arg-type]
        .order_by(SigninBurst.closes_at)  # type: ignore[arg-type]
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    summarised = 0
    for burst in session.scalars(stmt).all():
        summarised += int(_summarise(session, burst))
        session.delete(burst)
    session.flush()
    return summarised


def _locked_burst(session: Session, bucket: str, now: datetime) -> SigninBurst:
    values = {"bucket": bucket, "opened_at": now, "closes_at": _NEVER, "first_seq": -1, "last_at": now}
    burst: SigninBurst = locked_row(session, SigninBurst, values, "bucket")
    return burst


def _summarise(session: Session, burst: SigninBurst) -> bool:
    """The summary event of a closed window, if anything in it went unreported."""
    attempts = burst.failed + burst.throttled
    if attempts == 0 or burst.first_seq < 0:
        return False
    user_id = None if burst.bucket == UNKNOWN_BUCKET else burst.bucket
    actor = Actor(user_id, None, None) if user_id else ANONYMOUS
    ledger.append_one(
        session,
        EventDraft(
            type="auth.signin",
            actor=actor,
            outcome=FAILED,
            subject_type="user",
            subject_id=user_id,
            reason=f"{attempts} more failed sign-in attempt(s) after seq {burst.first_seq}",
            detail={
                "summary": True,
                "attempts": attempts,
                "failed": burst.failed,
                "throttled": burst.throttled,
                "since_seq": burst.first_seq,
                "window": {"from": rfc3339(burst.opened_at), "last_attempt": rfc3339(burst.last_at)},
            },
        ),
    )
    return True
