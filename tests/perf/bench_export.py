"""Benchmark: a full export bundle over 1,000,000 events streams with flat memory.

    .venv/bin/python tests/perf/bench_export.py [--events N --encounters M] [--sqlite-file F] [--pg URL]
        [--pg-name bench_export] [--skip-sqlite]

Builds the same data as bench_reports.py (valid chain), then runs, each in its own process so peak RSS
is measured per run (os.wait4): the full export (checkpoint + every event into events.jsonl + reports)
and a baseline measured in the same run, a plain SQL aggregate over the same ledger
(SELECT provider_id, count(*) FROM ledger_event GROUP BY provider_id). Prints time and peak memory of
both and their ratios, and the uncompressed events.jsonl size: flat memory means the export's peak
stays far below the data it streamed.

Figures go through tests/perf/table.py. Issue 5's target is flat memory: each export's peak RSS within
1.5x the plain aggregate's. It sets none for the time, which is reported beside the aggregate's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))
MEMORY_BUDGET_RATIO = 1.5


def child(kind: str, url: str, out: str) -> None:
    """One measured run: the baseline aggregate, the export of events only, or with its reports."""
    os.environ["AUDIT_DATABASE_URL"] = url
    from sqlalchemy import text

    from audit.db import get_engine
    from audit.export.service import ExportRequest, export_bundle
    from audit.principal import CurrentUser
    from audit.uow import unit_of_work

    start = time.perf_counter()
    if kind == "baseline":
        with get_engine().connect() as conn:
            conn.execute(text("SELECT provider_id, count(*) FROM ledger_event GROUP BY provider_id")).all()
    else:
        officer = CurrentUser(
            id="bench-compliance", username="bench", display_name="Bench", roles=frozenset({"compliance"})
        )
        reports = () if kind == "export-events" else ExportRequest().reports
        with unit_of_work() as session:
            export_bundle(session, user=officer, req=ExportRequest(reports=reports), out=Path(out))
    print(f"{time.perf_counter() - start:.3f}")


def run_child(kind: str, url: str, out: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one child process."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", kind, "--url", url, "--out", str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    output = proc.stdout.read() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"{kind} failed: {output}")
    return float(output.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def build(url: str, args: argparse.Namespace) -> None:
    """bench_reports.py's data, without running its own measurements (they report figures of their own)."""
    import bench_reports

    from audit.config import get_settings
    from audit.db import make_engine
    from audit.migrate import upgrade

    os.environ["AUDIT_DATABASE_URL"] = url
    get_settings.cache_clear()
    upgrade(url)
    engine = make_engine(url)
    seconds = bench_reports.build(engine, args.encounters, args.events)
    print(f"built {args.encounters:,} encounters and {args.events:,} events in {seconds:.0f} s")
    engine.dispose()


def measure(name: str, url: str, tmp: Path) -> None:
    from tests.perf.table import engine_of, report

    engine = engine_of(url)
    # One witness per ledger: a witness that has seen the SQLite ledger's head refuses another log's.
    os.environ["AUDIT_WITNESS_FILE"] = str(tmp / f"{name}-witness.txt")
    bundle = tmp / f"{name}.zip"
    base_s, base_mb = run_child("baseline", url, bundle)
    full_s, full_mb = run_child("export", url, bundle)
    print(f"[{name}] full export with 3 reports (CSV + PDF): {full_s:.2f} s, peak RSS {full_mb:.0f} MB")
    flat = f"<= {MEMORY_BUDGET_RATIO}x the aggregate's (flat memory, issue 5)"
    export_s, export_mb = run_child("export-events", url, bundle)
    with zipfile.ZipFile(bundle) as zf:
        events = zf.getinfo("events.jsonl")
        lines = sum(1 for _ in zf.open("events.jsonl"))
    print(f"[{name}] baseline SQL aggregate: {base_s:.2f} s, peak RSS {base_mb:.0f} MB")
    print(
        f"[{name}] full export of {lines:,} events: {export_s:.2f} s ({lines / export_s:,.0f} events/s), "
        f"peak RSS {export_mb:.0f} MB"
    )
    print(
        f"[{name}] ratios to baseline: time {export_s / base_s:.1f}x, memory {export_mb / base_mb:.2f}x; "
        f"events.jsonl {events.file_size / 1e6:.0f} MB uncompressed, "
        f"bundle {bundle.stat().st_size / 1e6:.0f} MB"
    )
    for what, mb in (("events only", export_mb), ("with 3 reports", full_mb)):
        passed = mb <= MEMORY_BUDGET_RATIO * base_mb
        report(f"full export peak RSS, {lines:,} events, {what}", product=mb, unit="MB", baseline=base_mb,
               ratio=base_mb / mb, target=flat, passed=passed, engine=engine)  # fmt: skip
    report(f"full export time, {lines:,} events", product=export_s, unit="s", baseline=base_s,
           ratio=base_s / export_s, target="none set (issue 5: printed beside the aggregate)", passed=True,
           engine=engine)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["export", "export-events", "baseline"])
    parser.add_argument("--url")
    parser.add_argument("--out")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--encounters", type=int, default=200_000)
    parser.add_argument("--sqlite-file", help="Keep the SQLite database here (reused when it exists)")
    parser.add_argument("--pg", help="PostgreSQL maintenance-database URL (--pg-name is created)")
    parser.add_argument("--pg-name", default="bench_export", help="the scratch database made with --pg")
    parser.add_argument("--skip-sqlite", action="store_true", help="measure PostgreSQL only")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.out)
        return
    os.environ.setdefault("AUDIT_CHECKPOINT_TIMER", "false")
    with tempfile.TemporaryDirectory(prefix="bench-export-") as name:
        tmp = Path(name)
        os.environ["AUDIT_SIGNING_KEY_FILE"] = str(tmp / "signing.key")
        db = Path(args.sqlite_file) if args.sqlite_file else tmp / "bench.db"
        url = f"sqlite:///{db}"
        if not args.skip_sqlite:
            if not db.exists():
                build(url, args)
            measure("sqlite", url, tmp)
        if args.pg:
            from tests.perf.scratch_db import pg_database

            with pg_database(args.pg, args.pg_name) as pg_url:
                build(pg_url, args)
                measure("postgresql", pg_url, tmp)


if __name__ == "__main__":
    main()
