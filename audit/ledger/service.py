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
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, insert, select, text
from sqlmodel import Session

from audit.config import get_settings
from audit.errors import DomainError
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
from audit.ledger.events import EventDraft
from audit.models import LedgerEvent, utcnow

LEDGER = LedgerEvent.__table__  # type: ignore[attr-defined]
E = TypeVar("E", bound=DomainError)


def advisory_key(log_id: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock, derived from the log id."""
    return int(struct.unpack(">q", hashlib.sha256(log_id.encode()).digest()[:8])[0])


def _lock_log(session: Session, log_id: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(log_id)})


def head(session: Session, log_id: str | None = None) -> tuple[int, bytes]:
    """(seq, chain_hash) of the last event, or (-1, zeros) for an empty log."""
    log_id = log_id or get_settings().log_id
    row = session.execute(
        select(LEDGER.c.seq, LEDGER.c.chain_hash)
        .where(LEDGER.c.log_id == log_id)
        .order_by(LEDGER.c.seq.desc())
        .limit(1)
    ).first()
    return (int(row[0]), bytes(row[1])) if row else (-1, ZERO_HASH)


def append(session: Session, drafts: Sequence[EventDraft], *, now: datetime | None = None) -> list[int]:
    """Append events in order inside the caller's transaction; returns their seqs."""
    if not drafts:
        return []
    log_id = get_settings().log_id
    session.flush()
    _lock_log(session, log_id)
    prev_seq, prev_chain = head(session, log_id)
    ts = now or utcnow()
    stamp = rfc3339(ts)
    rows = []
    for draft in drafts:
        prev_seq += 1
        event_id = str(uuid.uuid4())
        payload = canonical_json(draft.payload(log_id=log_id, seq=prev_seq, ts=stamp, event_id=event_id))
        leaf = leaf_hash(payload)
        prev_chain = chain_hash(prev_chain, prev_seq, leaf)
        rows.append(_row(draft, log_id, prev_seq, event_id, ts, payload, leaf, prev_chain))
    session.execute(insert(LEDGER), rows)
    return list(range(prev_seq - len(rows) + 1, prev_seq + 1))


def append_one(session: Session, draft: EventDraft, *, now: datetime | None = None) -> int:
    return append(session, [draft], now=now)[0]


def _row(
    draft: EventDraft,
    log_id: str,
    seq: int,
    event_id: str,
    ts: datetime,
    payload: bytes,
    leaf: bytes,
    chained: bytes,
) -> dict[str, object]:
    on_behalf = (draft.on_behalf_of or {}).get("user_id")
    return {
        "log_id": log_id,
        "seq": seq,
        "event_id": event_id,
        "ts": ts,
        "type": draft.type,
        "actor_id": draft.actor.id,
        "actor_role": draft.actor.role,
        "on_behalf_of": on_behalf,
        "subject_type": draft.subject_type,
        "subject_id": draft.subject_id,
        "encounter_id": draft.encounter_id,
        "provider_id": draft.provider_id,
        "outcome": draft.outcome,
        "payload": payload,
        "leaf_hash": leaf,
        "chain_hash": chained,
    }


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
