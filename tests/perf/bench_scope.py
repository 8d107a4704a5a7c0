"""Benchmark: reads filtered by an authorised scope (audit.policy.filters) at 200,000 encounters and
1,000,000 ledger events, beside unscoped baselines measured in the same run.

    .venv/bin/python tests/perf/bench_scope.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]
        [--pg-name bench_scope] [--encounters 200000] [--events 1000000] [--sqlite-file F]
        [--skip-sqlite] [--pg-built URL]

Builds the same organisation as bench_reports.py (60 providers, 2 years of dates of service), then
times, as min and median of several runs:
  - an encounter list page (50 rows plus the total) for compliance, a provider (own and supervised),
    a coder with one six-month delegation and an auditor with a one-provider, three-month engagement;
    baseline: the same page and count with no scope;
  - a page of 100 ledger events (first and at 90 % of the ledger, `event_page_clause`, which picks
    its shape by the scope's size) and the FHIR-style total count (`event_clause`) for compliance,
    that auditor and an all-provider one-year auditor; baseline: the same keyset page and count with
    no scope.

Each figure goes through tests/perf/table.py as the median, beside the unscoped baseline's median. No
issue set a target for the scope filter itself; the budget reported is issue 11's for a list page
(under 300 ms at 200,000 encounters and 1,000,000 events) for pages, and within 3x the unscoped count
for counts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_reports as data
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from audit.policy.filters import ENC, LED, encounter_clause, event_clause, event_page_clause, in_log
from audit.policy.scope import Area, ReadScope
from tests.perf.scratch_db import pg_database
from tests.perf.table import engine_of, report

TODAY = data.TODAY
PAGE, EVENTS_PAGE = 50, 100
PAGE_BUDGET_S = 0.300
COUNT_BUDGET_RATIO = 3.0


def timed(fn: Callable[[], Any], runs: int = 7) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def scopes(engine: Engine) -> dict[str, ReadScope]:
    with engine.connect() as conn:
        busiest = conn.execute(
            text("SELECT rendering_provider_id FROM encounter GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
        ).scalar_one()
    quarter = Area(TODAY - timedelta(days=90), TODAY, frozenset({busiest}))
    return {
        "compliance": ReadScope("c", None),
        "provider": ReadScope("p", (Area(provider_ids=frozenset({busiest})),), party_id=busiest),
        "coder (1 delegation, 6 months)": ReadScope(
            "k", (Area(TODAY - timedelta(days=180), TODAY, frozenset({busiest})),)
        ),
        "auditor (1 provider, 3 months)": ReadScope("a", (quarter,)),
        "auditor (all providers, 1 year)": ReadScope("a", (Area(TODAY - timedelta(days=365), TODAY),)),
    }


def encounter_page(session: Session, where: Any) -> None:
    stmt = select(ENC.c.id).where(where)
    session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    page = stmt.order_by(ENC.c.date_of_service.desc(), ENC.c.id).limit(PAGE)
    assert session.execute(page).all() is not None


def event_page(session: Session, where: Any, after: int) -> None:
    stmt = select(LED.c.seq, LED.c.payload).where(where, LED.c.seq > after).order_by(LED.c.seq)
    session.execute(stmt.limit(EVENTS_PAGE + 1)).all()


def event_count(session: Session, where: Any) -> None:
    session.execute(select(func.count()).select_from(LED).where(where)).scalar_one()


def measure(name: str, engine: Engine) -> None:
    true_ = in_log()
    with engine.connect() as conn:
        head = int(conn.execute(text("SELECT max(seq) FROM ledger_event")).scalar_one())
    deep = head * 9 // 10
    readers = scopes(engine)
    with Session(engine) as session:
        rows: list[tuple[str, str, tuple[float, float], tuple[float, float]]] = []
        base = timed(lambda: encounter_page(session, ENC.c.id.is_not(None)))
        for who, scope in readers.items():
            if "all providers" in who:
                continue
            rows.append(
                (
                    "encounter page",
                    who,
                    timed(lambda s=scope: encounter_page(session, encounter_clause(s))),  # type: ignore[misc]
                    base,
                )
            )
        for label, after in (("event page, first", -1), ("event page, at 90%", deep)):
            base = timed(lambda a=after: event_page(session, true_, a))  # type: ignore[misc]
            for who, scope in readers.items():
                if who.startswith(("provider", "coder")):
                    continue
                cost = timed(lambda s=scope, a=after: event_page(session, event_page_clause(session, s), a))  # type: ignore[misc]
                rows.append((label, who, cost, base))
        base = timed(lambda: event_count(session, true_), runs=3)
        for who, scope in readers.items():
            if who.startswith(("provider", "coder", "compliance")):
                continue
            rows.append(
                (
                    "event count",
                    who,
                    timed(lambda s=scope: event_count(session, event_clause(s)), runs=3),  # type: ignore[misc]
                    base,
                )
            )
    for what, who, (lo, med), (blo, bmed) in rows:
        print(
            f"[{name}] {what:<20} {who:<34} min {lo * 1000:8.1f} ms  median {med * 1000:8.1f} ms"
            f"   baseline min {blo * 1000:8.1f} ms (x{lo / blo:5.1f})"
        )
        if what == "event count":
            target, passed = (
                f"<= {COUNT_BUDGET_RATIO:.0f}x the unscoped count (budget)",
                med <= COUNT_BUDGET_RATIO * bmed,
            )
        else:
            target, passed = f"< {PAGE_BUDGET_S * 1000:.0f} ms (issue 11 page budget)", med < PAGE_BUDGET_S
        report(f"scoped {what}, {who}", product=med * 1000, unit="ms", baseline=bmed * 1000, ratio=bmed / med,
               target=target, passed=passed, engine=engine_of(str(engine.url)))  # fmt: skip


def run(name: str, url: str, args: argparse.Namespace, *, reuse: bool = False) -> None:
    import os

    from audit.config import get_settings
    from audit.db import make_engine
    from audit.migrate import upgrade

    os.environ["AUDIT_DATABASE_URL"] = url
    get_settings.cache_clear()
    upgrade(url)
    engine = make_engine(url)
    if not reuse:
        seconds = data.build(engine, args.encounters, args.events)
        print(f"[{name}] built {args.encounters:,} encounters and {args.events:,} events in {seconds:.0f} s")
    measure(name, engine)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pg", help="PostgreSQL URL of a maintenance database (--pg-name is created)")
    parser.add_argument("--encounters", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sqlite-file", help="Keep the SQLite database here (reused when it exists)")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--pg-name", default="bench_scope", help="the scratch database made with --pg")
    parser.add_argument("--pg-built", help="measure this already built PostgreSQL database instead")
    args = parser.parse_args()
    if not args.skip_sqlite:
        if args.sqlite_file:
            run("sqlite", f"sqlite:///{args.sqlite_file}", args, reuse=Path(args.sqlite_file).exists())
        else:
            with tempfile.TemporaryDirectory(prefix="bench-scope-") as tmp:
                run("sqlite", f"sqlite:///{tmp}/bench.db", args)
    if args.pg_built:
        run("postgresql", args.pg_built, args, reuse=True)
    elif args.pg:
        with pg_database(args.pg, args.pg_name) as url:
            run("postgresql", url, args)


if __name__ == "__main__":
    main()
