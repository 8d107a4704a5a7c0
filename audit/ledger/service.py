"""The ONLY writer of audit events. Appends join the caller's transaction and never commit.

Appends are serialised per log: on SQLite by the BEGIN IMMEDIATE every transaction starts with
(see audit.db), on PostgreSQL by `pg_advisory_xact_lock` under READ COMMITTED, so the head read
here is always the committed head. A batch takes the lock and reads the head once.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, func, insert, select
from sqlmodel import Session

from audit.config import get_settings
from audit.errors import DomainError
from audit.ledger import changes, pipelined, rollups
from audit.ledger.chain import (
    ZERO_HASH,
    StoredEvent,
    VerifyResult,
    canonical_json,
    chain_hash,
    leaf_hash,
    rfc3339,
    verify_chain,
)
from audit.ledger.columns import INDEXED_COLUMNS, indexed_values
from audit.ledger.events import EventDraft
from audit.models import LedgerEvent, utcnow

LEDGER = LedgerEvent.__table__  # type: ignore[attr-defined]
# Set in session.info once a session has appended: its head is then not (yet) committed, and a
# checkpoint over it must not be signed (see audit.ledger.checkpoints.create).
APPENDED = "ledger_appended"
# Set in session.info inside `one_append`: the events appended are held until it closes.
PENDING = "ledger_pending"
E = TypeVar("E", bound=DomainError)


def advisory_key(log_id: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock, derived from the log id."""
    return int(struct.unpack(">q", hashlib.sha256(log_id.encode()).digest()[:8])[0])


def _locked_head(session: Session, log_id: str) -> tuple[int, bytes]:
    """Serialise the log's writers, then read its head (see the module's docstring)."""
    if session.get_bind().dialect.name == "postgresql":
        return pipelined.locked_head(session, advisory_key(log_id), log_id)
    return head(session, log_id)


_HEAD = (
    select(LEDGER.c.seq, LEDGER.c.chain_hash)
    .where(LEDGER.c.log_id == bindparam("log_id"))
    .order_by(LEDGER.c.seq.desc())
    .limit(1)
)  # built once: it runs under the log's lock in every append


def head(session: Session, log_id: str | None = None) -> tuple[int, bytes]:
    """(seq, chain_hash) of the last event, or (-1, zeros) for an empty log."""
    log_id = log_id or get_settings().log_id
    row = session.execute(_HEAD, {"log_id": log_id}).first()
    return (int(row[0]), bytes(row[1])) if row else (-1, ZERO_HASH)


def append(session: Session, drafts: Sequence[EventDraft], *, now: datetime | None = None) -> list[int]:
    """Append events in order inside the caller's transaction; returns their seqs.

    Inside `one_append` the events are held and appended when it closes: the seqs are not known
    yet, and -1 stands for each."""
    pending = session.info.get(PENDING)
    if pending is not None:
        pending.extend((draft, now) for draft in drafts)
        return [-1] * len(drafts)
    return append_timed(session, [(draft, now) for draft in drafts])


HeldEvent = tuple[EventDraft, datetime | None]
"""An event a caller appended while appends were held (see one_append), with its time (None: now)."""


def append_timed(session: Session, drafts: Sequence[HeldEvent]) -> list[int]:
    """Append events, each with its own time (None: now), under one lock and one head read."""
    if not drafts:
        return []
    log_id = get_settings().log_id
    session.flush()
    prev_seq, prev_chain = _locked_head(session, log_id)
    default_ts = utcnow()
    rows = []
    for draft, moment in drafts:
        prev_seq += 1
        ts = moment or default_ts
        body = draft.payload(log_id=log_id, seq=prev_seq, ts=rfc3339(ts), event_id=str(uuid.uuid4()))
        payload = canonical_json(body)
        leaf = leaf_hash(payload)
        prev_chain = chain_hash(prev_chain, prev_seq, leaf)
        rows.append(_row(body, ts, payload, leaf, prev_chain))
    lines = rollups.new_lines(rows)
    with pipelined.pipeline(session):  # on PostgreSQL one round trip for the three
        session.execute(insert(LEDGER), rows)
        if lines:
            rollups.count_new_lines(session, lines)  # before knowing `added`: `record` then recounts
        added = changes.record(session, log_id, rows)  # the changes after attestation, then the
    rollups.record(session, log_id, rows, changes_added=added, counted_lines=lines)  # roll-ups
    session.info[APPENDED] = True
    return list(range(prev_seq - len(rows) + 1, prev_seq + 1))


@contextmanager
def one_append(session: Session, *, append: bool = True) -> Iterator[list[HeldEvent]]:
    """Hold every event the services append inside, then append them all at once when it closes
    (one lock, one head read, one insert): how a bulk import writes a batch of lines. The list
    yielded is the held events; a caller that undoes part of its work (a savepoint rolled back)
    truncates it to what it held before. Nothing is appended if the block raises. `append=False`:
    the caller appends the held list itself (a read unit of work, audit.uow)."""
    if PENDING in session.info:
        raise RuntimeError("one_append does not nest")
    pending: list[HeldEvent] = []
    session.info[PENDING] = pending
    try:
        yield pending
    finally:
        session.info.pop(PENDING, None)
    if append:
        append_timed(session, pending)


def append_one(session: Session, draft: EventDraft, *, now: datetime | None = None) -> int:
    """Append one event; its seq, or -1 while appends are held (see `append_now`)."""
    return append(session, [draft], now=now)[0]


def append_now(session: Session, draft: EventDraft, *, now: datetime | None = None) -> int:
    """Append one event at once, after the events held before it, and return its seq: for a caller
    that stores the seq (an attestation's `ledger_seq`). While appends are held (a unit of work),
    the log's lock is then taken here and kept until the unit commits; later events are held again."""
    pending = session.info.get(PENDING)
    if pending is None:
        return append_timed(session, [(draft, now)])[0]
    seqs = append_timed(session, [*pending, (draft, now)])
    pending.clear()
    return seqs[-1]


def held(session: Session) -> list[HeldEvent]:
    """The events held in the session's open `one_append` (a unit of work's), to be appended when
    it closes."""
    pending: list[HeldEvent] | None = session.info.get(PENDING)
    if pending is None:
        raise RuntimeError("appends are not held in this session")
    return pending


def _row(body: dict[str, Any], ts: datetime, payload: bytes, leaf: bytes, chained: bytes) -> dict[str, Any]:
    """The stored row: the indexed columns are derived from the payload by the same function that
    verification checks them with (audit.ledger.columns)."""
    row = dict(zip(INDEXED_COLUMNS, indexed_values(body), strict=True))
    row.update(ts=ts, payload=payload, leaf_hash=leaf, chain_hash=chained)
    return row


def refuse_with(error: E, draft: EventDraft) -> E:
    """Attach the refusal's evidence to a domain error: the unit of work rolls the refused work back,
    then appends `draft` in its own transaction (see audit.uow)."""
    error.recording(lambda session: append_one(session, draft))
    return error


def iter_stored(
    session: Session, *, log_id: str, start_seq: int = 0, batch: int = 5000
) -> Iterator[StoredEvent]:
    """Stream the ledger in seq order in keyset-paged batches (never the whole table at once)."""
    next_seq = start_seq
    while True:
        rows = session.execute(
            select(LEDGER.c.seq, LEDGER.c.payload, LEDGER.c.leaf_hash, LEDGER.c.chain_hash)
            .where(LEDGER.c.log_id == log_id, LEDGER.c.seq >= next_seq)
            .order_by(LEDGER.c.seq)
            .limit(batch)
        ).all()
        if not rows:
            return
        for seq, payload, leaf, chained in rows:
            yield StoredEvent(int(seq), bytes(payload), bytes(leaf), bytes(chained))
        next_seq = int(rows[-1][0]) + 1


def verify(session: Session, *, start_seq: int = 0, previous_chain: bytes = ZERO_HASH) -> VerifyResult:
    log_id = get_settings().log_id
    return verify_chain(
        iter_stored(session, log_id=log_id, start_seq=start_seq),
        start_seq=start_seq,
        previous_chain=previous_chain,
        log_id=log_id,
    )


def count(session: Session) -> int:
    log_id = get_settings().log_id
    return int(
        session.execute(
            select(func.count()).select_from(LEDGER).where(LEDGER.c.log_id == log_id)
        ).scalar_one()
    )
