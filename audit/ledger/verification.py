"""Verification of everything the views trust, used by `audit verify` and `GET /api/v1/audit/verify`.

One streaming pass over the ledger (keyset pages, each payload parsed once and then dropped) checks
the hash chain, compares each row's indexed columns with its payload and replays the events into
the state they imply; then the latest signed checkpoint is checked and every state table is read in
pages of its primary key and reconciled with that state (audit.ledger.reconcile). Reads run in one
consistent read-only snapshot, so events appended meanwhile never look like rows with no event.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, select, text
from sqlalchemy.engine import Connection
from sqlmodel import Session

from audit.config import get_settings
from audit.db import metadata, read_snapshot
from audit.ledger import changes, checkpoints, rollups
from audit.ledger import service as ledger
from audit.ledger.chain import ZERO_HASH, ChainWalker, parse_payload
from audit.ledger.checkpoint import CheckpointError
from audit.ledger.checkpoints import CheckpointCheck
from audit.ledger.columns import INDEXED_COLUMNS, TS, column_problems, indexed_values
from audit.ledger.merkle import MerkleBuilder
from audit.ledger.problems import CHAIN, CHECKPOINT, COLUMN, Problem, Unreconciled
from audit.ledger.reconcile import RECONCILED, TOKEN_COLUMNS, Reconciliation
from audit.ledger.replay import Replay

PAGE = 5000
KEPT_PROBLEMS = 1000  # problems kept for the answer; all are counted
FULL, CHAIN_ONLY, INCREMENTAL = "full", "chain-only", "incremental"


@dataclass
class Verification:
    ok: bool
    checks: str  # FULL, CHAIN_ONLY or INCREMENTAL
    events_checked: int
    head_seq: int | None
    chain_hash: bytes
    first_bad_seq: int | None
    problem: str | None  # the chain's (or else the checkpoint's) first problem, in one line
    checkpoint: CheckpointCheck
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    unreconciled: list[Unreconciled] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase (for benchmarks)

    def as_dict(self, limit: int = 100) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": self.checks,
            "events_checked": self.events_checked,
            "head_seq": self.head_seq,
            "chain_hash": self.chain_hash.hex(),
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "checkpoint": {
                "tree_size": self.checkpoint.tree_size,
                "ok": self.checkpoint.ok,
                "problem": self.checkpoint.problem,
            },
            "witnesses": [
                {"name": w.name, "tree_size": w.tree_size, "ok": w.ok, "problem": w.problem, "notes": w.notes}
                for w in self.checkpoint.witnesses
            ],
            "problem_count": self.problem_count,
            "problems": [p.as_dict() for p in self.problems[:limit]],
            "unreconciled": [u.as_dict() for u in self.unreconciled],
        }


class _Found:
    """Problems as they are found: the first KEPT_PROBLEMS kept, all counted."""

    def __init__(self) -> None:
        self.kept: list[Problem] = []
        self.count = 0
        self.first_seq: int | None = None

    def add(self, problems: Any) -> None:
        for problem in problems:
            self.count += 1
            if len(self.kept) < KEPT_PROBLEMS:
                self.kept.append(problem)
            if problem.seq is not None and (self.first_seq is None or problem.seq < self.first_seq):
                self.first_seq = problem.seq


def verify_ledger(session: Session, *, checks: str = FULL) -> Verification:
    """Run the checks in a read-only snapshot of the database (or, inside a test's transaction, in
    that transaction) and return every problem found."""
    bind = session.get_bind()
    with _collector_paused():
        if isinstance(bind, Connection):
            return _verify(session, checks)
        with read_snapshot(bind) as snapshot:
            return _verify(snapshot, checks)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The pass allocates a dict per payload and keeps the replayed state: the cyclic garbage collector
    would rescan that growing state again and again (about half the time), for cycles it never makes."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _verify(session: Session, checks: str) -> Verification:
    found = _Found()
    start_seq, previous = 0, ZERO_HASH
    if checks == INCREMENTAL:
        try:
            start_seq, previous = checkpoints.trusted_start(session)
        except CheckpointError:
            start_seq, previous = 0, ZERO_HASH  # the checkpoint check below names the bad signature
    log_id = get_settings().log_id
    walker = ChainWalker(start_seq=start_seq, previous_chain=previous, log_id=log_id)
    replay = Replay() if checks == FULL else None
    with_columns = checks != CHAIN_ONLY
    tree = _TreeCheck(session) if start_seq == 0 else None  # the Merkle tree from every leaf
    leaves: list[bytes] = []
    clock = _Clock()
    for rows in clock.pages(_ledger_pages(session, log_id, start_seq, with_columns)):
        bodies = walker.walk(rows, leaves)
        verified = len(bodies)
        if verified < len(rows):  # past a broken chain: the other checks still read every row
            bodies += [parse_payload(bytes(row[1])) for row in rows[verified:]]
        clock.lap("chain")
        if with_columns:
            found.add(_column_problems(rows, bodies, log_id, verified))
            clock.lap("columns")
        if replay is not None:
            feed = replay.feed
            for row, body in zip(rows, bodies, strict=False):
                feed(row[0], body)
            clock.lap("replay")
        if tree is not None:
            tree.extend(leaves)
            clock.lap("merkle")
        leaves.clear()
    if with_columns:
        found.add(_moved_rows(session, log_id))
    chain = walker.result()
    if not chain.ok:
        found.add([Problem(CHAIN, chain.problem or "chain broken", seq=chain.first_bad_seq)])
    if tree is not None:
        found.add(tree.problems(chain.ok))
    else:
        found.add(_start_frontier_problems(session))
    clock.lap("other")
    signed = checkpoints.check_against_latest(session, persisted=tree is None)
    clock.lap("checkpoint")
    if not signed.ok:
        found.add(
            [
                Problem(
                    CHECKPOINT,
                    signed.problem or "checkpoint differs",
                    field="tree_size",
                    expected=signed.tree_size,
                )
            ]
        )
    unreconciled: list[Unreconciled] = []
    if replay is not None:
        found.add(replay.problems)
        reconciliation = Reconciliation(replay)
        for table in RECONCILED:
            found.add(reconciliation.compare(table, _table_rows(session, table, RECONCILED[table])))
            found.add(reconciliation.missing(table))
        found.add(reconciliation.tokens(_table_rows(session, "api_token", TOKEN_COLUMNS)))
        found.add(rollups.problems(session, log_id))
        found.add(changes.problems(session, log_id))
        unreconciled = reconciliation.unreconciled()
        clock.lap("reconcile")
    first_bad = chain.first_bad_seq if not chain.ok else found.first_seq
    return Verification(
        ok=found.count == 0,
        checks=checks,
        events_checked=chain.events_checked,
        head_seq=chain.head_seq,
        chain_hash=chain.chain_hash,
        first_bad_seq=first_bad,
        problem=chain.problem or signed.problem or (found.kept[0].detail if found.kept else None),
        checkpoint=signed,
        problems=found.kept,
        problem_count=found.count,
        unreconciled=unreconciled,
        seconds=clock.seconds,
    )


def _start_frontier_problems(session: Session) -> list[Problem]:
    """Incremental verification: the stored frontier at the newest checkpoint, the one a new process
    starts from, must fold to that checkpoint's signed root (otherwise it was not used, and is named)."""
    last = checkpoints.latest(session)
    if last is None or checkpoints.frontier_at(session, last.tree_size) is None:
        return []
    trusted = checkpoints.trusted_frontier(session, last.tree_size)
    if trusted is not None and trusted[0].size == last.tree_size:
        return []
    return [
        Problem(
            CHECKPOINT,
            f"stored Merkle frontier at tree size {last.tree_size} does not fold to the signed root",
            table="merkle_frontier",
            id=str(last.tree_size),
            field="nodes",
        )
    ]


class _Clock:
    """Wall time per phase of the pass, summed over pages (reading the next page counts as "read")."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self.last
        self.last = now

    def pages(self, pages: Iterator[list[Any]]) -> Iterator[list[Any]]:
        for page in pages:
            self.lap("read")
            yield page
        self.lap("read")


class _TreeCheck:
    """The Merkle tree rebuilt from the leaves a full pass hashes, stopping at every stored frontier's
    size (`merkle_frontier`, a cache incremental verification starts from) to compare it, and at the
    newest checkpoint's size, whose frontier is then handed to the checkpoint check (so the root is
    not rebuilt by re-reading every leaf)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.stored = checkpoints.stored_frontiers(session)
        last = checkpoints.latest(session)
        self.latest = last.tree_size if last is not None else None
        wanted = set(self.stored) | ({self.latest} if self.latest else set())
        self.stops = sorted(wanted, reverse=True)  # popped from the end, smallest first
        self.builder = MerkleBuilder()
        self.computed: dict[int, bytes] = {}
        self.at_latest: MerkleBuilder | None = None

    def extend(self, leaves: list[bytes]) -> None:
        builder, stops = self.builder, self.stops
        start = builder.size
        while stops and stops[-1] <= start + len(leaves):
            stop = stops.pop()
            if stop < builder.size:
                continue
            builder.extend(leaves[builder.size - start : stop - start])
            self.computed[stop] = builder.frontier()
            if stop == self.latest:
                self.at_latest = builder.copy()
        builder.extend(leaves[builder.size - start :])

    def problems(self, chain_ok: bool) -> list[Problem]:
        """Every stored frontier that is not the tree's right edge at its size (one past the ledger's
        end is named too). The checkpoint check reuses the rebuilt tree only when the chain held."""
        found = []
        for size, nodes in sorted(self.stored.items()):
            if self.computed.get(size) != nodes and (chain_ok or size in self.computed):
                found.append(
                    Problem(
                        CHECKPOINT,
                        f"stored Merkle frontier at tree size {size} is not the tree's right edge",
                        table="merkle_frontier",
                        id=str(size),
                        field="nodes",
                    )
                )
        if chain_ok and self.at_latest is not None and self.latest:
            edge = checkpoints.chain_at(self.session, self.latest - 1)
            if edge is not None:
                checkpoints.remember_frontier(self.at_latest, edge)
        return found


def ledger_query(with_columns: bool) -> str:
    """The one ordered query a verification reads the ledger with (`:log_id`, `:start`)."""
    columns = ["seq", "payload", "leaf_hash", "chain_hash"]
    if with_columns:
        columns += list(INDEXED_COLUMNS[2:])  # log_id and seq are the key
    where = "WHERE log_id = :log_id AND seq >= :start ORDER BY seq"
    return f"SELECT {', '.join(columns)} FROM ledger_event {where}"


def _ledger_pages(session: Session, log_id: str, start_seq: int, with_columns: bool) -> Iterator[list[Any]]:
    """(seq, payload, leaf_hash, chain_hash, *indexed columns after seq) in seq order, in pages of
    PAGE rows from ONE ordered query, read as the driver returns them (no ORM types). On PostgreSQL a
    server-side cursor, planned for a fast start: an index scan of the primary key, never a bitmap
    scan plus a sort of the whole ledger (what LIMIT pages were planned as before ANALYZE)."""
    query = text(ledger_query(with_columns)).bindparams(log_id=log_id, start=start_seq)
    result = session.execute(query, execution_options={"stream_results": True, "yield_per": PAGE})
    try:
        # The size is given here: through a Session, `yield_per` did not reach the partitions of a
        # text() query, which came one row each (every per-page step then ran once per event).
        for page in result.partitions(PAGE):
            yield list(page)
    finally:
        result.close()


def _column_problems(rows: list[Any], bodies: list[Any], log_id: str, verified: int) -> Iterator[Problem]:
    """`column_problems` for a page: for the first `verified` rows (whose payload's seq and log_id the
    chain walk matched with the row) a fast comparison of the stored values as the driver returns
    them, and the exact one (typed `ts`) for any other row or a row that differs."""
    values = indexed_values
    for i, (row, body) in enumerate(zip(rows, bodies, strict=True)):
        expected = values(body)
        stored_ts, ts = row[5], expected[TS]
        if (
            i < verified
            and expected[2] == row[4]
            and expected[TS + 1 :] == tuple(row[6:])
            and stored_ts is not None
            and ts.__class__ is str
            and _same_instant(stored_ts, ts)
        ):
            continue
        stored = (log_id, row[0], row[4], _aware(stored_ts), *row[6:])
        yield from column_problems(row[0], stored, body)


def _same_instant(stored: Any, text_ts: str) -> bool:
    """A stored `ts` as the driver returns it (SQLite: 'YYYY-MM-DD HH:MM:SS.ffffff'; PostgreSQL: a
    naive UTC datetime) that is, character for character, the payload's RFC 3339 `...Z` time; False
    means only "compare exactly"."""
    if stored.__class__ is str:
        return (
            stored[:10] == text_ts[:10]
            and stored[10:11] == " "
            and stored[11:] == text_ts[11:-1]
            and text_ts[-1:] == "Z"
        )
    return isinstance(stored, datetime) and stored.isoformat() == text_ts[:-1] and text_ts[-1:] == "Z"


def _aware(stored: Any) -> datetime | None:
    if stored is None:
        return None
    if isinstance(stored, str):
        try:
            stored = datetime.fromisoformat(stored)
        except ValueError:
            return None
    return stored.replace(tzinfo=UTC) if isinstance(stored, datetime) else None


def _moved_rows(session: Session, log_id: str) -> Iterator[Problem]:
    """Rows filed under another log whose payload names this one: moving the last event out of the
    log would otherwise look like an honest, shorter ledger."""
    table = ledger.LEDGER
    columns = (table.c.seq, table.c.log_id, table.c.payload)
    # Two ranges of the primary key, each an ordered stream (on PostgreSQL a cursor planned for a fast
    # start: an index range scan even on a never-analysed table, where `!=` or an OR was a full scan).
    for other in (table.c.log_id < log_id, table.c.log_id > log_id):
        yield from _moved_in(
            session.execute(
                select(*columns).where(other).order_by(table.c.log_id, table.c.seq),
                execution_options={"stream_results": True, "yield_per": PAGE},
            )
        )


def _moved_in(rows: Any) -> Iterator[Problem]:
    for seq, stored, payload in rows:
        named = indexed_values(parse_payload(bytes(payload)))[0]
        if named != stored:
            yield Problem(
                COLUMN,
                "indexed column log_id differs from the payload",
                seq=int(seq),
                table="ledger_event",
                field="log_id",
                expected=named,
                found=stored,
            )


def _table_rows(session: Session, name: str, reconciled: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """Every row of a state table as {id, reconciled columns}, from ONE query streamed in the table's
    own order (the comparison takes rows in any order). Paging by id read each row through the primary
    key's index: on SQLite a random UUID order, 47 us a code line."""
    table: Table = metadata.tables[name]
    names = ("id", *reconciled)
    result = session.execute(
        select(*(table.c[n] for n in names)), execution_options={"stream_results": True, "yield_per": PAGE}
    )
    try:
        for page in result.partitions(PAGE):
            for row in page:
                yield dict(zip(names, row, strict=True))
    finally:
        result.close()
