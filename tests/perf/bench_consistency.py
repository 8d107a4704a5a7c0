"""Benchmark: an RFC 6962 consistency proof over a 1,000,000-event ledger, from the stored leaf hashes.

    .venv/bin/python tests/perf/bench_consistency.py [--events 1000000] [--pg postgresql://.../postgres]
        [--pg-name bench_consistency] [--skip-sqlite] [--sqlite-file F]   (kept and reused when it
        already holds the events)

Builds a fresh SQLite file (and, with --pg, a fresh `bench_consistency` PostgreSQL database, dropped at
the end) through the real migrations and bulk-inserts a valid chain of small events. Then, min and
median of several runs each, measured in the same run:
* baseline: read every leaf hash 0..N-1 from the database in keyset pages (the least any proof built
  from the database must do);
* `proofs.consistency(first=N/3+7, second=N)`: the proof and both roots, one pass, O(log n) memory;
* its peak Python memory (tracemalloc), beside the 32 bytes x N a list of the leaves would take.

No issue set a time target for the proof; the budget reported (tests/perf/table.py, medians) is within
3x the baseline, and peak memory under what a list of 1,000,000 leaves takes (32 MB): the proof keeps
O(log n) hashes and one page of rows, whatever the ledger's size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("AUDIT_ENV", "test")
os.environ.setdefault("AUDIT_SIGNING_KEY_FILE", str(Path(tempfile.gettempdir()) / "bench-consistency.key"))

from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from audit.db import make_engine
from audit.ledger import proofs
from audit.ledger.chain import ZERO_HASH, canonical_json, chain_hash, leaf_hash, rfc3339
from audit.ledger.merkle import verify_consistency
from audit.ledger.service import LEDGER
from audit.migrate import upgrade
from tests.perf.scratch_db import pg_database
from tests.perf.table import engine_of, report

LOG = "coding-audit"
BATCH = 20_000
TIME_BUDGET_RATIO = 3.0
MEMORY_CAP = 32 * 1_000_000  # a list of the leaves of 1,000,000 events: the proof must stay well under it


def build(engine: Engine, n: int) -> None:
    prev, ts = ZERO_HASH, datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for seq in range(n):
            event_id = str(uuid.UUID(int=seq, version=4))
            payload = canonical_json(
                {"log_id": LOG, "seq": seq, "ts": rfc3339(ts), "event_id": event_id, "type": "bench.tick"}
            )
            leaf = leaf_hash(payload)
            prev = chain_hash(prev, seq, leaf)
            rows.append(
                {"log_id": LOG, "seq": seq, "event_id": event_id, "ts": ts, "type": "bench.tick",
                 "outcome": "allowed", "payload": payload, "leaf_hash": leaf, "chain_hash": prev}
            )  # fmt: skip
            if len(rows) == BATCH:
                conn.execute(insert(LEDGER), rows)
                rows = []
        if rows:
            conn.execute(insert(LEDGER), rows)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def read_leaves(engine: Engine, n: int) -> int:
    count, after = 0, -1
    with engine.connect() as conn:
        while True:
            rows = conn.execute(
                select(LEDGER.c.seq, LEDGER.c.leaf_hash)
                .where(LEDGER.c.log_id == LOG, LEDGER.c.seq > after, LEDGER.c.seq < n)
                .order_by(LEDGER.c.seq)
                .limit(proofs.PAGE)
            ).all()
            if not rows:
                return count
            count += len(rows)
            after = int(rows[-1][0])


def measure(name: str, engine: Engine, n: int, runs: int) -> None:
    first = n // 3 + 7

    def prove() -> proofs.Consistency:
        with Session(engine) as session:
            return proofs.consistency(session, first=first, second=n)

    answer = prove()
    assert verify_consistency(first, n, answer.proof, answer.first_root, answer.second_root)
    base = timed(lambda: read_leaves(engine, n), runs)
    got = timed(prove, runs)
    tracemalloc.start()
    prove()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{name}: {n:,} events, proof of {len(answer.proof)} hashes from {first:,} to {n:,}")
    print(f"  baseline, read the leaf hashes: min {base[0]:.2f}s, median {base[1]:.2f}s")
    print(
        f"  consistency proof + both roots: min {got[0]:.2f}s, median {got[1]:.2f}s "
        f"({got[0] / base[0]:.2f}x baseline min, {got[1] / base[1]:.2f}x median)"
    )
    print(f"  peak Python memory {peak / 1e6:.1f} MB (a list of the leaves alone: {32 * n / 1e6:.0f} MB)")
    engine_name = engine_of(str(engine.url))
    report(f"consistency proof + both roots, {n:,} events", product=got[1], unit="s", baseline=base[1],
           ratio=base[1] / got[1], target=f"<= {TIME_BUDGET_RATIO:.0f}x reading the leaf hashes (budget)",
           passed=got[1] <= TIME_BUDGET_RATIO * base[1], engine=engine_name)  # fmt: skip
    report(f"consistency proof peak Python memory, {n:,} events", product=peak / 1e6, unit="MB",
           baseline=32 * n / 1e6, ratio=32 * n / peak, target=f"< {MEMORY_CAP / 1e6:.0f} MB (1M leaves)",
           passed=peak < MEMORY_CAP, engine=engine_name)  # fmt: skip


def run(name: str, url: str, n: int, runs: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        have = conn.execute(text("SELECT count(*) FROM ledger_event")).scalar_one()
    if have != n:
        if have:
            raise SystemExit(f"{url} holds {have} events, not {n}: use another file")
        start = time.perf_counter()
        build(engine, n)
        print(f"{name}: built {n:,} events in {time.perf_counter() - start:.0f}s")
    measure(name, engine, n, runs)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg", help="admin URL of a PostgreSQL server (a scratch database is made)")
    parser.add_argument("--pg-name", default="bench_consistency", help="the scratch database's name")
    parser.add_argument("--skip-sqlite", action="store_true", help="measure PostgreSQL only")
    parser.add_argument("--sqlite-file", help="keep the SQLite ledger here and reuse it next time")
    args = parser.parse_args()
    if args.skip_sqlite:
        pass
    elif args.sqlite_file:
        run("SQLite", f"sqlite:///{Path(args.sqlite_file).resolve()}", args.events, args.runs)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run("SQLite", f"sqlite:///{tmp}/bench.db", args.events, args.runs)
    if args.pg:
        with pg_database(args.pg, args.pg_name) as url:
            run("PostgreSQL", url, args.events, args.runs)


if __name__ == "__main__":
    main()
