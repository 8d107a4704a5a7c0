"""Exponential back-off on failed sign-ins, per account name and per source address.

`delay_seconds` and `wait_seconds` are pure; `take` and `settle` keep the counters in the database
(one row per key, locked while it is read and written), so several API processes share them.

Every attempt is counted as a failure *before* its password is checked, in its own committed
transaction (`take`), and a correct password takes that back (`settle`). So parallel guesses cannot
all slip through before the first failure is recorded, and the slow Argon2 check holds no lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from audit.db import locked_row
from audit.policy.compliance import BackoffRule, SigninPolicy
from audit.security import keyed_digest
from audit.user.models import SigninBackoff

ACCOUNT = "account"
ADDRESS = "address"


def delay_seconds(failures: int, rule: BackoffRule, base: int) -> int:
    """How long after the latest of `failures` consecutive failures the next attempt must wait."""
    over = failures - rule.free_failures
    if over <= 0:
        return 0
    if over > 62:  # 2**62 seconds is far past any cap; avoid building huge integers
        return rule.max_delay_seconds
    return int(min(base * 2 ** (over - 1), rule.max_delay_seconds))


def wait_seconds(row: SigninBackoff, rule: BackoffRule, policy: SigninPolicy, now: datetime) -> int:
    """Whole seconds still to wait before this key may try again (0: may try now)."""
    if _forgotten(row, policy, now):
        return 0
    delay = delay_seconds(row.failures, rule, policy.base_delay_seconds)
    if delay == 0:  # (a parallel attempt may have stamped a time later than this one's `now`)
        return 0
    until = row.last_failure_at + timedelta(seconds=delay)
    return max(0, math.ceil((until - now).total_seconds()))


def _forgotten(row: SigninBackoff, policy: SigninPolicy, now: datetime) -> bool:
    return now - row.last_failure_at >= timedelta(minutes=policy.forget_after_minutes)


@dataclass(frozen=True)
class Keys:
    """The back-off keys of one attempt: its account name and its source address."""

    account: str
    address: str

    @classmethod
    def of(cls, username: str, address: str) -> Keys:
        return cls(keyed_digest(ACCOUNT, username.strip().casefold()), keyed_digest(ADDRESS, address))

    def rules(self, policy: SigninPolicy) -> tuple[tuple[str, str, BackoffRule], ...]:
        return ((self.account, ACCOUNT, policy.account), (self.address, ADDRESS, policy.address))


def _row(session: Session, key: str, kind: str, now: datetime) -> SigninBackoff:
    values = {"key": key, "kind": kind, "failures": 0, "last_failure_at": now}
    row: SigninBackoff = locked_row(session, SigninBackoff, values, "key")
    return row


def take(session: Session, keys: Keys, policy: SigninPolicy, now: datetime) -> int:
    """Seconds to wait (nothing counted), or 0 after counting this attempt as a failure on both keys."""
    rows = [(_row(session, key, kind, now), rule) for key, kind, rule in keys.rules(policy)]
    wait = max(wait_seconds(row, rule, policy, now) for row, rule in rows)
    if wait:
        return wait
    for row, _rule in rows:
        row.failures = 1 if _forgotten(row, policy, now) else row.failures + 1
        row.last_failure_at = max(row.last_failure_at, now)
        session.add(row)
    session.flush()
    return 0


def settle(session: Session, keys: Keys, now: datetime) -> None:
    """A correct password: the account starts again from zero, and the address gets back the failure
    counted in advance (a success from one address does not excuse its other failures)."""
    for key in (keys.account, keys.address):
        row = session.get(SigninBackoff, key, with_for_update=True, populate_existing=True)
        if row is not None:
            row.failures = 0 if key == keys.account else max(0, row.failures - 1)
            session.add(row)
    session.flush()


def prune(session: Session, policy: SigninPolicy, now: datetime) -> int:
    """Delete keys whose failures are forgotten anyway; returns how many."""
    from sqlalchemy import delete

    cutoff = now - timedelta(minutes=policy.forget_after_minutes)
    result = session.execute(delete(SigninBackoff).where(SigninBackoff.last_failure_at < cutoff))  # type: ignore[arg-type]
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
