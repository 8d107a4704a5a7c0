"""Sign-in abuse state shared by every API process (so back-off holds behind a load balancer).

Nothing here is evidence: the ledger holds the events. These rows are counters that may be pruned.
Keys are HMAC-SHA256 digests (AUDIT_SECRET_KEY) of a username or a source address, so the table
holds neither addresses nor attacker-chosen text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel

import audit.db  # noqa: F401  (applies the naming convention before any table is declared)
from audit.dbtypes import UTCDateTime


def _utc(*, index: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=False, index=index))


class SigninBackoff(SQLModel, table=True):
    """Consecutive failed sign-ins for one account name or one source address."""

    __tablename__ = "signin_backoff"

    key: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)  # account | address
    failures: int = 0
    last_failure_at: datetime = _utc()


class SigninBurst(SQLModel, table=True):
    """The open reporting window of failed sign-ins on one account (or on unknown usernames).

    The window's first failure is a ledger event; later ones are only counted here, and one summary
    event with the counts is appended once the window has closed (see audit.user.signin_events).
    """

    __tablename__ = "signin_burst"

    bucket: str = Field(primary_key=True, max_length=64)  # a user id, or UNKNOWN_BUCKET
    opened_at: datetime = _utc()
    closes_at: datetime = _utc(index=True)
    first_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    failed: int = 0  # wrong passwords after the first, not yet reported
    throttled: int = 0  # attempts refused during back-off, not yet reported
    last_at: datetime = _utc()
