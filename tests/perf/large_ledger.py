"""A large ledger for the incremental-verification benchmark, written by direct bulk insert.

Appending 10,000,000 events through the services takes hours on a loaded 2-core machine, so the
rows are written directly: each a valid event (`bench.tick` by the CLI actor) with its payload, leaf
hash, chain hash and indexed columns exactly as `audit.ledger.service.append` writes them. The
secondary indexes (and SQLite's INSERT OR REPLACE guard trigger) are dropped during the load and
made again afterwards; on PostgreSQL the rows go in by COPY. What is measured afterwards
(incremental verification) reads the ledger through its primary key only.
"""

from __future__ import annotations

import hashlib
import struct
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from audit.config import get_settings
from audit.ledger import service as ledger
from audit.ledger.chain import ZERO_HASH, canonical_json, rfc3339
from audit.ledger.columns import INDEXED_COLUMNS, indexed_values
from audit.ledger.events import Actor, EventDraft

COLUMNS = (*INDEXED_COLUMNS, "payload", "leaf_hash", "chain_hash")
_SEQ_MARK, _ID_MARK = 987654321987654, "00000000-0000-4000-8000-00000000beef"
_pack = struct.Struct(">Q").pack


class Rows:
    """Valid chained ledger rows from `seq` on, as tuples in COLUMNS order (`ts` as the driver takes it)."""

    def __init__(self, seq: int, previous: bytes, *, sqlite: bool) -> None:
        self.seq, self.prev = seq, previous
        moment = datetime.now(UTC)
        stamp = rfc3339(moment)
        draft = EventDraft(type="bench.tick", actor=Actor(None, "cli", "bench"), detail={"n": 1})
        body = draft.payload(log_id=get_settings().log_id, seq=_SEQ_MARK, ts=stamp, event_id=_ID_MARK)
        template = canonical_json(body)
        head, rest = template.split(_ID_MARK.encode())  # sorted keys: event_id, then seq
        middle, tail = rest.split(str(_SEQ_MARK).encode())
        self.parts = (head, middle, tail)
        values = list(indexed_values(body))
        values[INDEXED_COLUMNS.index("ts")] = (
            moment.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
            if sqlite
            else moment.replace(tzinfo=None)
        )
        self.values = values

    def take(self, n: int) -> list[tuple[Any, ...]]:
        head, middle, tail = self.parts
        values, seq_at, id_at = self.values, INDEXED_COLUMNS.index("seq"), INDEXED_COLUMNS.index("event_id")
        sha, prev, out = hashlib.sha256, self.prev, []
        for seq in range(self.seq, self.seq + n):
            event_id = str(uuid.UUID(int=seq + 1))
            payload = head + event_id.encode() + middle + str(seq).encode() + tail
            leaf = sha(b"\x00" + payload).digest()
            prev = sha(b"\x02" + prev + _pack(seq) + leaf).digest()
            values[seq_at], values[id_at] = seq, event_id
            out.append((*values, payload, leaf, prev))
        self.seq, self.prev = self.seq + n, prev
        return out


def head(engine: Engine) -> tuple[int, bytes]:
    from sqlmodel import Session

    with Session(engine) as session:
        return ledger.head(session)


def append(engine: Engine, n: int, batch: int = 50_000) -> float:
    """Append n valid events after the head; returns the rows/s of the load."""
    seq, prev = head(engine)
    rows = Rows(seq + 1, prev if seq >= 0 else ZERO_HASH, sqlite=engine.dialect.name == "sqlite")
    started = time.perf_counter()
    for chunk in _chunks(n, batch):
        _insert(engine, rows.take(chunk))
    return n / (time.perf_counter() - started)


def _chunks(n: int, batch: int) -> Iterator[int]:
    while n > 0:
        yield min(n, batch)
        n -= batch


def _insert(engine: Engine, rows: list[tuple[Any, ...]]) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "sqlite":  # the engine's connections run in autocommit: one BEGIN
            marks = ", ".join("?" for _ in COLUMNS)
            cursor.execute("BEGIN IMMEDIATE")
            cursor.executemany(f"INSERT INTO ledger_event ({', '.join(COLUMNS)}) VALUES ({marks})", rows)
            cursor.execute("COMMIT")
        else:
            with cursor.copy(f"COPY ledger_event ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        raw.commit()
    finally:
        raw.close()


def build(engine: Engine, n: int) -> None:
    """Grow the ledger to n events: secondary indexes dropped, rows loaded, indexes rebuilt."""
    have = head(engine)[0] + 1
    if have >= n:
        return
    indexes = list(ledger.LEDGER.indexes)
    started = time.perf_counter()
    guards: list[str] = []
    with engine.begin() as conn:
        for index in indexes:
            conn.execute(text(f"DROP INDEX IF EXISTS {index.name}"))
        if engine.dialect.name == "sqlite":  # the INSERT OR REPLACE guard: two probes per row
            guards = [
                str(sql)
                for (sql,) in conn.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = 'ledger_event_no_replace'")
                )
            ]
            conn.execute(text("DROP TRIGGER IF EXISTS ledger_event_no_replace"))
    try:
        rate = append(engine, n - have)
        print(f"loaded {n - have:,} events at {rate:,.0f}/s", flush=True)
    finally:
        with engine.begin() as conn:
            for sql in guards:
                conn.execute(text(sql))
            for index in indexes:
                index.create(conn, checkfirst=True)
    print(f"large ledger of {n:,} events built in {time.perf_counter() - started:.0f} s", flush=True)
