"""Benchmark: `audit import` of an N-line charge feed against a raw executemany + SHA-256 chain insert
of the same rows into our own `ledger_event` schema, in the same run, on one engine.

Run: .venv/bin/python tests/perf/bench_import.py [N]
     AUDIT_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/DB  (default: a SQLite temp file;
     the PostgreSQL database is emptied first), AUDIT_BENCH_RUNS (default 3).

- product: the real `audit import FILE` command in its own process, as the host's operator, on a
  fresh database holding the demo organisation (every line through the code and encounter services,
  the policy, delegations, code-set checks and NCCI/MUE findings, batched ledger appends). Lines/s is
  N over the command's wall time (start-up included) and over its CPU time (user + system: on a
  shared machine the wall time also measures the neighbours). Peak memory is the child's ru_maxrss.
- baseline: the same N rows as `code.add`-shaped canonical JSON payloads, leaf and chain hashes,
  inserted with DB-API executemany into a fresh `ledger_event` table (our schema, its indexes and
  triggers), 2,000 rows per transaction, in this process. Wall and CPU.
Min and median of the runs; the ratio is product lines/s over baseline rows/s. Each figure is also
reported through tests/perf/table.py (median; a `BENCH {json}` line each).
Targets (issue 12): 50,000 lines/s on SQLite, 35,000 on PostgreSQL, >= 0.6x baseline, < 300 MB.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from audit.db import make_engine  # noqa: E402
from audit.demo import last_demo_day  # noqa: E402
from audit.migrate import upgrade  # noqa: E402
from tests.perf.table import engine_of, report  # noqa: E402

RUNS = int(os.environ.get("AUDIT_BENCH_RUNS", "3"))
BATCH = 2000
CODES = ("99213", "99214", "83036", "94010", "93000", "36415", "81002", "87880")


def fresh_url(work: Path, tag: str) -> str:
    url = os.environ.get("AUDIT_BENCH_DATABASE_URL")
    if not url:
        return f"sqlite:///{work / f'{tag}.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def write_feed(path: Path, n: int) -> None:
    """Four procedure lines per encounter for dr.okafor, entered for coder.chen (demo delegation)."""
    dos = last_demo_day(date.today()).isoformat()
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["external_id", "patient_ref", "date_of_service", "rendering_npi", "entered_by",
                      "system", "code", "modifiers", "units", "diagnosis_pointers", "line_ref"])  # fmt: skip
        for i in range(n):
            out.writerow([f"B-{i // 4}", f"P-{i // 4}", dos, "1987654328", "coder.chen", "CPT",
                          CODES[i % 4], "", "1", "", f"L-{i}"])  # fmt: skip


def env_for(url: str, work: Path) -> dict[str, str]:
    return {**os.environ, "AUDIT_DATABASE_URL": url, "AUDIT_SIGNING_KEY_FILE": str(work / "bench.key")}


def product_run(feed: Path, work: Path, n: int) -> tuple[float, float, int]:
    """(wall s, CPU s, peak RSS KiB) of `audit import` on a fresh database with the demo seeded."""
    url = fresh_url(work, f"p-{uuid.uuid4().hex[:6]}")
    env = env_for(url, work)
    subprocess.run([sys.executable, "-m", "audit.cli", "demo"], env=env, cwd=work, check=True,
                   capture_output=True)  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "audit.cli", "import", str(feed), "--batch", str(BATCH)],
        env=env, cwd=work, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or f"{n:,} new lines" not in done.stdout:
        raise SystemExit(f"import failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss


def baseline_rows(n: int) -> list[tuple[str, str]]:
    return [(f"B-{i // 4}", CODES[i % 4]) for i in range(n)]


def raw_chain_insert(n: int, work: Path) -> tuple[float, float]:
    """(wall s, CPU s): payloads, hashes and executemany into a fresh ledger_event table."""
    url = fresh_url(work, f"b-{uuid.uuid4().hex[:6]}")
    upgrade(url)
    engine = make_engine(url)
    postgres = engine.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    columns = ("log_id", "seq", "event_id", "ts", "type", "actor_id", "actor_role", "on_behalf_of",
               "subject_type", "subject_id", "encounter_id", "provider_id", "outcome", "payload",
               "leaf_hash", "chain_hash")  # fmt: skip
    sql = f"INSERT INTO ledger_event ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
    rows = baseline_rows(n)
    ts = datetime.now(UTC).replace(tzinfo=None)
    stamp = ts.isoformat() + "Z"
    prev = bytes(32)
    raw = engine.raw_connection()
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    cursor = raw.cursor()
    for first in range(0, n, BATCH):
        params = []
        for seq in range(first, min(first + BATCH, n)):
            external_id, code = rows[seq]
            event_id, line_id = str(uuid.uuid4()), str(uuid.uuid4())
            body = {
                "log_id": "coding-audit", "seq": seq, "ts": stamp, "event_id": event_id, "type": "code.add",
                "actor": {"id": None, "role": "operator", "username": "bench"},
                "on_behalf_of": {"user_id": "coder", "role": "coder", "delegation_id": "d"},
                "subject": {"type": "code_line", "id": line_id}, "encounter_id": external_id,
                "provider_id": "provider", "outcome": "allowed", "reason": None, "policy": None,
                "before": None,
                "after": {"system": "CPT", "code": code, "modifiers": [], "units": 1, "version": 1},
            }  # fmt: skip
            payload = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
            leaf = hashlib.sha256(b"\x00" + payload).digest()
            prev = hashlib.sha256(b"\x02" + prev + struct.pack(">Q", seq) + leaf).digest()
            params.append(("coding-audit", seq, event_id, ts, "code.add", None, "operator", "coder",
                           "code_line", line_id, external_id, "provider", "allowed", payload, leaf,
                           prev))  # fmt: skip
        if not postgres:
            cursor.execute("BEGIN IMMEDIATE")
        cursor.executemany(sql, params)
        raw.commit()
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    raw.close()
    engine.dispose()
    return wall, cpu


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("AUDIT_BENCH_IMPORT_LINES", "100000"))
    engine_name = "postgresql" if os.environ.get("AUDIT_BENCH_DATABASE_URL") else "sqlite"
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        work = Path(tmp)
        feed = work / "feed.csv"
        write_feed(feed, n)
        products, baselines = [], []
        for run in range(RUNS):
            products.append(product_run(feed, work, n))
            baselines.append(raw_chain_insert(n, work))
            p, b = products[-1], baselines[-1]
            print(f"run {run + 1}: import {n / p[0]:,.0f} lines/s wall, {n / p[1]:,.0f} lines/s CPU, "
                  f"peak {p[2] / 1024:.0f} MB; raw {n / b[0]:,.0f} rows/s wall, {n / b[1]:,.0f} CPU",
                  flush=True)  # fmt: skip
    target = 50_000 if engine_name == "sqlite" else 35_000
    print(f"\nbench_import ({engine_name}, {n:,} lines, {RUNS} runs; min / median)")
    print(f"{'figure':<28}{'product':>18}{'baseline':>18}{'ratio':>14}  target")
    engine = engine_of(os.environ.get("AUDIT_BENCH_DATABASE_URL"))
    for label, index in (("wall", 0), ("CPU", 1)):
        prod = [n / p[index] for p in products]
        base = [n / b[index] for b in baselines]
        ratio = [p / b for p, b in zip(prod, base, strict=True)]
        print(f"{'lines/s (' + label + ')':<28}{_mm(prod):>18}{_mm(base):>18}{_mm(ratio, '.2f'):>14}  "
              f"{target:,}/s and >= 0.6x")  # fmt: skip
        median_ratio = statistics.median(ratio)
        report(
            f"import {n:,} lines, lines/s ({label}, median of {RUNS}; min {min(prod):,.0f})",
            product=statistics.median(prod),
            baseline=statistics.median(base),
            ratio=median_ratio,
            unit="lines/s",
            target=f">= {target:,}/s and >= 0.6x raw executemany + chain",
            passed=statistics.median(prod) >= target and median_ratio >= 0.6,
            engine=engine,
        )
    peak = [p[2] / 1024 for p in products]
    print(f"{'peak memory MB (maxrss)':<28}{_mm(peak):>18}{'':>18}{'':>14}  < 300 MB")
    report(
        f"import {n:,} lines, peak memory (max of {RUNS})",
        product=max(peak),
        unit="MB",
        target="< 300 MB",
        passed=max(peak) < 300,
        engine=engine,
    )


def _mm(values: list[float], fmt: str = ",.0f") -> str:
    return f"{min(values):{fmt}} / {statistics.median(values):{fmt}}"


if __name__ == "__main__":
    main()
