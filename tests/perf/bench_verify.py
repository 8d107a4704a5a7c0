"""Benchmark: verification at scale (issue 12, item 4), in events/s, with baselines from the same run.

    .venv/bin/python tests/perf/bench_verify.py [N] [--large M]     # SQLite (files under /tmp)
    AUDIT_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench \
    AUDIT_BENCH_LARGE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench_large \
        .venv/bin/python tests/perf/bench_verify.py [N] [--large M]

The ledger of N events (default 1,000,000) is a real population built through the services
(tests/ledger/population.py), then cloned until it holds N events: each clone re-files the
population's encounter events under new ids (code lines, attestations with their digests
recomputed, notes; the same users and delegations) and copies their rows, so the clone reconciles
exactly like the original (the benchmark checks that it does). The large ledger of M events
(default 10,000,000) is written by direct bulk insert of valid chained rows (tests/perf/large_ledger.py:
through the services it would take hours here). The databases are kept between runs.

Prints, as the best (= minimum time) and median of several runs, events/s of:
- baseline: the raw SHA-256 loop over the same payloads (leaf hash and chain hash, DESIGN 5), held in
  memory, so only the hashing is timed; and the same loop reading the rows from the database;
- chain only (hashes, Merkle tree, checkpoint), full (also indexed columns, replay and state
  reconciliation) and, from the full runs, the reconciliation on its own (replay + table comparison);
- incremental verification of 10,000 new events on the large ledger, in a fresh frontier cache (as a
  new process), against the raw loop over the same 10,000 rows;
with the ratios and pass/fail against the targets: full >= 200,000/s and >= 0.7x the raw loop,
reconciliation >= 100,000/s, incremental +10,000 under 1 s.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import statistics
import struct
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import tests.support  # noqa: F401  (the test settings; the key and database are the benchmark's own)

os.environ["AUDIT_SIGNING_KEY_FILE"] = (
    os.environ.get("AUDIT_BENCH_DIR") or "/tmp/audit-bench-verify"
) + ".key"

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from audit.config import get_settings
from audit.db import make_engine, metadata
from audit.ledger import changes, checkpoints, rollups
from audit.ledger.chain import canonical_json
from audit.ledger.columns import INDEXED_COLUMNS, indexed_values
from audit.ledger.digest import code_set_digest
from audit.ledger.service import LEDGER
from audit.ledger.verification import CHAIN_ONLY, FULL, INCREMENTAL, Verification, verify_ledger
from audit.migrate import upgrade
from tests.perf.table import report

TARGET_FULL = 200_000
TARGET_RATIO = 0.7
TARGET_RECONCILE = 100_000
NEW_EVENTS = 10_000
BENCH_DIR = os.environ.get("AUDIT_BENCH_DIR") or "/tmp/audit-bench-verify"
CLONED_TABLES = ("encounter", "code_line", "attestation", "encounter_note")
RUNS = int(os.environ.get("AUDIT_BENCH_RUNS") or 5)


def database(n: int, url: str) -> tuple[str, Engine]:
    os.environ["AUDIT_DATABASE_URL"] = url
    get_settings.cache_clear()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            have = conn.execute(select(func.count()).select_from(LEDGER)).scalar_one()
        if have >= n:
            return url, engine
    except Exception:  # no schema yet
        pass
    _reset(url)
    upgrade(url)
    engine = make_engine(url)
    _build(engine, n)
    return url, engine


def _reset(url: str) -> None:
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        return
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def _build(engine: Engine, n: int) -> None:
    from tests.ledger.population import populate

    started = time.perf_counter()
    pop = populate(engine, encounters=24)
    print(f"population through the services: {time.perf_counter() - started:.1f} s")
    with engine.connect() as conn:
        first = conn.execute(
            select(func.min(LEDGER.c.seq)).where(LEDGER.c.type == "encounter.create")
        ).scalar_one()
        events = conn.execute(
            select(LEDGER.c.seq, LEDGER.c.payload).where(LEDGER.c.seq >= first).order_by(LEDGER.c.seq)
        ).all()
        rows = {
            t: [dict(r) for r in conn.execute(select(metadata.tables[t])).mappings()] for t in CLONED_TABLES
        }
    template = [json.loads(bytes(p)) for _, p in events]
    ids = {r["id"] for t in CLONED_TABLES for r in rows[t]}
    externals = {r["external_id"] for r in rows["encounter"]}
    clone = 0
    started = time.perf_counter()
    while _head(engine) + 1 < n:
        clone += 1
        _clone(engine, clone, template, rows, ids, externals)
    derive_tables(engine)
    checkpoints.create_in_own_transaction(engine)
    took = time.perf_counter() - started
    print(f"{clone} clones of {len(template)} events: {took:.1f} s ({len(pop.users)} users)")


def derive_tables(engine: Engine) -> None:
    """The roll-ups and the changes after attestation, which the services keep with every event,
    computed over the cloned rows (written directly, so nothing kept them): full verification checks
    both and would otherwise fail. Statistics first: PostgreSQL plans the GROUP BY badly without."""
    log_id = get_settings().log_id
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
        rollups.rebuild(conn, log_id)
        changes.rebuild(conn, log_id)
        conn.execute(text("ANALYZE"))


def _head(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.max(LEDGER.c.seq))).scalar_one())


def _clone(
    engine: Engine,
    k: int,
    template: list[dict[str, Any]],
    rows: dict[str, list[dict[str, Any]]],
    ids: set[str],
    externals: set[str],
) -> None:
    """Re-file the template's events and rows under new ids (users and delegations stay)."""
    mapping = {old: str(uuid.uuid5(uuid.NAMESPACE_OID, f"{old}/{k}")) for old in ids}
    mapping.update({ext: f"{ext}-c{k}" for ext in externals})
    digests: dict[str, str] = {}
    seqs: dict[str, int] = {}
    for encounter in rows["encounter"]:
        _ENCOUNTERS[mapping[encounter["id"]]] = (
            encounter["rendering_provider_id"],
            encounter["date_of_service"],
        )
    with engine.begin() as conn:
        head = conn.execute(
            select(LEDGER.c.seq, LEDGER.c.chain_hash).order_by(LEDGER.c.seq.desc()).limit(1)
        ).one()
        seq, prev = int(head[0]), bytes(head[1])
        batch = []
        for original in template:
            body = _remap(original, mapping, digests)
            seq += 1
            body.update(seq=seq, event_id=str(uuid.uuid4()))
            if body["type"] == "encounter.attest" and body["outcome"] == "allowed":
                seqs[body["subject"]["id"]] = seq
            payload = canonical_json(body)
            leaf = hashlib.sha256(b"\x00" + payload).digest()
            prev = hashlib.sha256(b"\x02" + prev + struct.pack(">Q", seq) + leaf).digest()
            values = dict(zip(INDEXED_COLUMNS, indexed_values(body), strict=True))
            values.update(
                ts=datetime.fromisoformat(values["ts"]), payload=payload, leaf_hash=leaf, chain_hash=prev
            )
            batch.append(values)
        conn.execute(insert(LEDGER), batch)
        for table in CLONED_TABLES:
            copies = [_remap(r, mapping, digests) for r in rows[table]]
            if table == "attestation":
                for copy in copies:
                    copy["ledger_seq"] = seqs[copy["id"]]
            conn.execute(insert(metadata.tables[table]), copies)


def _remap(value: Any, mapping: dict[str, str], digests: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {k: _remap(v, mapping, digests) for k, v in value.items()}
        if "code_set_digest" in out and "lines" in out:  # an attestation's after: sign the clone's lines
            new = code_set_digest(
                encounter_id=out["encounter_id"],
                rendering_provider_id=out.get("rendering_provider_id") or _provider_of(out),
                date_of_service=_dos_of(out),
                lines=out["lines"],
            )
            digests[value["code_set_digest"]] = new
            out["code_set_digest"] = new
        elif "code_set_digest" in out:
            out["code_set_digest"] = digests.get(out["code_set_digest"], out["code_set_digest"])
        return out
    if isinstance(value, list):
        return [_remap(v, mapping, digests) for v in value]
    if isinstance(value, str):
        return mapping.get(value, value)
    return value


_ENCOUNTERS: dict[str, tuple[str, Any]] = {}  # encounter id -> (rendering provider, date of service)


def _provider_of(after: dict[str, Any]) -> str:
    return _ENCOUNTERS[after["encounter_id"]][0]


def _dos_of(after: dict[str, Any]) -> Any:
    return _ENCOUNTERS[after["encounter_id"]][1]


def timed(fn: Callable[[], Any]) -> list[tuple[float, Any]]:
    """(seconds, result) of RUNS runs of fn, the garbage collector paused as verification pauses it."""
    gc.disable()
    out = []
    for _ in range(RUNS):
        started = time.perf_counter()
        result = fn()
        out.append((time.perf_counter() - started, result))
    gc.enable()
    return out


def rates(events: int, seconds: list[float]) -> tuple[float, float]:
    """(best, median) events/s: best is the minimum time."""
    return events / min(seconds), events / statistics.median(seconds)


def read_payloads(engine: Engine, start: int = 0) -> list[tuple[int, bytes]]:
    with engine.connect() as conn:
        rows = conn.execute(text(_PAYLOADS), _key(start)).all()
    return [(int(seq), bytes(payload)) for seq, payload in rows]


_PAYLOADS = "SELECT seq, payload FROM ledger_event WHERE log_id = :log_id AND seq >= :start ORDER BY seq"


def _key(start: int) -> dict[str, Any]:
    """A range of the primary key (log_id first), as verification reads it: without the log_id the
    baseline would scan the whole table."""
    return {"log_id": get_settings().log_id, "start": int(start)}


def raw_sha_loop(payloads: list[tuple[int, bytes]]) -> int:
    """The baseline: leaf hash and chain hash of every payload (DESIGN 5), nothing else."""
    sha, pack, prev = hashlib.sha256, struct.Struct(">Q").pack, bytes(32)
    for seq, payload in payloads:
        leaf = sha(b"\x00" + payload).digest()
        prev = sha(b"\x02" + prev + pack(seq) + leaf).digest()
    return len(payloads)


def read_and_hash(engine: Engine, start: int = 0) -> int:
    """The baseline with the read: the rows streamed from the database by the driver, then hashed."""
    sha, pack, prev, count = hashlib.sha256, struct.Struct(">Q").pack, bytes(32), 0
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=5000).execute(
            text(_PAYLOADS), _key(start)
        )
        for seq, payload in result:
            leaf = sha(b"\x00" + payload).digest()
            prev = sha(b"\x02" + prev + pack(seq) + leaf).digest()
            count += 1
    return count


def verification(engine: Engine, checks: str) -> Verification:
    checkpoints._frontier.clear()  # as a new process
    with Session(engine) as session:
        result = verify_ledger(session, checks=checks)
    assert result.ok, [p.as_dict() for p in result.problems[:5]]
    return result


class Table:
    def __init__(self, engine_name: str) -> None:
        self.engine = engine_name
        self.lines: list[str] = []

    def add(
        self, figure: str, best: float, median: float, baseline: float | None, target: str, ok: bool | None
    ) -> None:
        ratio = f"{best / baseline:5.2f}x" if baseline else "     "
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        line = (
            f"{self.engine:<10} {figure:<44} best {best:>11,.0f}/s  median {median:>11,.0f}/s  "
            f"ratio {ratio}  target {target:<22} {verdict}"
        )
        self.lines.append(line)
        print(line, flush=True)
        if ok is None:  # a baseline: shown as the ratio's denominator of the figures with a target
            return
        for which, value in (("best", best), ("median", median)):
            report(
                f"verify: {figure.strip()} ({which} of {RUNS})",
                product=value,
                unit="events/s",
                target=target,
                passed=ok,
                engine="PostgreSQL" if self.engine == "postgresql" else "SQLite",
                baseline=baseline,
            )


def bench_full(engine: Engine, table: Table) -> None:
    payloads = read_payloads(engine)
    runs = timed(lambda: raw_sha_loop(payloads))
    events = len(payloads)
    base_best, base_med = rates(events, [t for t, _ in runs])
    table.add(
        f"raw SHA-256 loop, {events:,} payloads in memory", base_best, base_med, None, "(baseline)", None
    )
    payloads.clear()  # free the memory before the verification runs
    runs = timed(lambda: read_and_hash(engine))
    read_best, read_med = rates(events, [t for t, _ in runs])
    table.add("read + raw SHA-256 loop", read_best, read_med, base_best, "(baseline with read)", None)
    runs = timed(lambda: verification(engine, CHAIN_ONLY))
    best, med = rates(events, [t for t, _ in runs])
    table.add("chain only (hashes, Merkle, checkpoint)", best, med, base_best, "-", None)
    runs = timed(lambda: verification(engine, FULL))
    best, med = rates(events, [t for t, _ in runs])
    ok = best >= TARGET_FULL and best / base_best >= TARGET_RATIO
    table.add("full verification", best, med, base_best, f">= {TARGET_FULL:,}/s, 0.7x", ok)
    phases = [r.seconds for _, r in runs]
    reconcile = [p.get("replay", 0.0) + p.get("reconcile", 0.0) for p in phases]
    best, med = rates(events, reconcile)
    table.add(
        "  of which state reconciliation",
        best,
        med,
        None,
        f">= {TARGET_RECONCILE:,}/s",
        best >= TARGET_RECONCILE,
    )
    shown = {k: round(v, 2) for k, v in sorted(phases[0].items())}
    print(f"{table.engine:<10} full verification, seconds per phase (first run): {shown}", flush=True)


def bench_incremental(url: str, n: int, table: Table) -> None:
    from tests.perf.large_ledger import append, build

    _witness_beside(url)
    upgrade(url)
    engine = make_engine(url)
    build(engine, n)
    with Session(engine) as session:
        covered = (checkpoints.latest(session) or _NoCheckpoint).tree_size
    if covered < n:
        started = time.perf_counter()
        checkpoints.create_in_own_transaction(engine)  # the Merkle root over every leaf, once
        print(f"first checkpoint over {n:,} events: {time.perf_counter() - started:.0f} s", flush=True)
    seconds, baseline = [], []
    for _ in range(RUNS):
        append(engine, NEW_EVENTS)
        head = large_head(engine)
        started = time.perf_counter()
        read_and_hash(engine, head - NEW_EVENTS + 1)
        baseline.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = verification(engine, INCREMENTAL)  # the whole call: snapshot, checkpoint, walk
        seconds.append(time.perf_counter() - started)
        assert result.events_checked == NEW_EVENTS, result.events_checked
        checkpoints._frontier.clear()
        checkpoints.create_in_own_transaction(engine)  # the next run's 10,000 are new again
    best, med = rates(NEW_EVENTS, seconds)
    base_best, _ = rates(NEW_EVENTS, baseline)
    table.add(
        f"incremental +{NEW_EVENTS:,} on {n / 1e6:.0f}M (took {min(seconds):.2f} s)",
        best,
        med,
        base_best,
        "under 1 s",
        min(seconds) < 1.0,
    )
    engine.dispose()


class _NoCheckpoint:
    tree_size = 0


def large_head(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.max(LEDGER.c.seq))).scalar_one())


def _witness_beside(url: str) -> None:
    """Each database its own witness file (a shared one would hold another ledger's checkpoints)."""
    name = url.rsplit("/", 1)[-1].replace(".db", "")
    os.environ["AUDIT_WITNESS_FILE"] = f"{BENCH_DIR}/{name}-witness.txt"
    os.environ["AUDIT_DATABASE_URL"] = url
    get_settings.cache_clear()


def main() -> None:
    args = sys.argv[1:]
    large = 10_000_000
    if "--large" in args:
        i = args.index("--large")
        large = int(args[i + 1])
        del args[i : i + 2]
    n = int(args[0]) if args else 1_000_000
    os.makedirs(BENCH_DIR, exist_ok=True)
    url = os.environ.get("AUDIT_BENCH_DATABASE_URL") or f"sqlite:///{BENCH_DIR}/verify-{n}.db"
    _witness_beside(url)
    url, engine = database(n, url)
    upgrade(url)
    table = Table(engine.dialect.name)
    with engine.connect() as conn:
        rows = {
            t: conn.execute(select(func.count()).select_from(metadata.tables[t])).scalar_one()
            for t in ("code_line", "attestation", "encounter")
        }
    print(f"database: {url.split('@')[-1]}  rows: {rows}", flush=True)
    if "--no-full" not in args:
        bench_full(engine, table)
    engine.dispose()
    if large:
        default = f"sqlite:///{BENCH_DIR}/verify-large-{large}.db"
        bench_incremental(os.environ.get("AUDIT_BENCH_LARGE_DATABASE_URL") or default, large, table)
    print()
    print("\n".join(table.lines))


if __name__ == "__main__":
    main()
