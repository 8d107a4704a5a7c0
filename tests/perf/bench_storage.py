"""Benchmark: storage per ledger event, indexes included (issue 12, Storage), on a kept ledger.

    .venv/bin/python tests/perf/bench_storage.py [DATABASE_URL]

The database is one `tests/perf/bench_verify.py` built (default: the largest of its SQLite files,
/tmp/audit-bench-verify/verify-N.db; AUDIT_BENCH_DATABASE_URL or the argument for another one,
PostgreSQL included). It is measured as it is (the schema revision it is at), so run it before and
after `audit db upgrade` on a copy to see what a migration changes. Measured:
- bytes per event of `ledger_event` with every index (SQLite: `dbstat`, the pages each b-tree holds,
  free space included; PostgreSQL: `pg_total_relation_size`, heap, TOAST and indexes), and per index;
- the baseline: the payload alone (average `length(payload)`: the hashed bytes, which no schema
  change may shrink), so the ratio is what the rest of the row and the indexes add;
- the ledger's bytes per code line (the whole ledger over the `code_line` rows), and the bytes of a
  `code.add` event (its payload plus the per-event overhead measured above).
Target: under 600 bytes per event, indexes included.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from tests.perf.table import engine_of, report

TARGET = 600
DEFAULT = "sqlite:////tmp/audit-bench-verify/verify-50000.db"


def kept_ledger() -> str:
    """The largest ledger bench_verify.py has kept (its default 1,000,000 events, or the 20,000 of
    `run_all.py --quick`), else DEFAULT (which then fails, naming the file to build)."""
    folder = Path(DEFAULT.removeprefix("sqlite:///")).parent
    kept = sorted(folder.glob("verify-[0-9]*.db"), key=lambda p: int(p.stem.split("-")[1]))
    return f"sqlite:///{kept[-1]}" if kept else DEFAULT


def sizes(conn: Connection) -> dict[str, int]:
    """Bytes of the ledger table and of each of its indexes."""
    if conn.dialect.name == "sqlite":
        rows = conn.execute(
            text(
                "SELECT name, sum(pgsize) FROM dbstat WHERE name IN "
                "(SELECT name FROM sqlite_master WHERE tbl_name = 'ledger_event') GROUP BY name"
            )
        )
        return {str(name): int(size) for name, size in rows}
    table = int(conn.execute(text("SELECT pg_table_size('ledger_event')")).scalar_one())
    rows = conn.execute(
        text(
            "SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes "
            "WHERE relname = 'ledger_event'"
        )
    )
    return {"ledger_event": table, **{str(name): int(size) for name, size in rows}}


def main() -> None:
    url = (sys.argv[1:] or [os.environ.get("AUDIT_BENCH_DATABASE_URL") or kept_ledger()])[0]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url)
    name = engine_of(url)
    with engine.connect() as conn:
        events, payload = conn.execute(text("SELECT count(*), avg(length(payload)) FROM ledger_event")).one()
        code_add = conn.execute(
            text("SELECT avg(length(payload)) FROM ledger_event WHERE type = 'code.add'")
        ).scalar_one()
        lines = conn.execute(text("SELECT count(*) FROM code_line")).scalar_one()
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        parts = sizes(conn)
    engine.dispose()
    total = sum(parts.values())
    per_event, payload = total / events, float(payload)
    print(f"{name}: {events:,} events at revision {revision}, {lines:,} code lines, {total / 1e6:,.1f} MB")
    for part, size in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {part:<40} {size / events:8.1f} B/event")
    report(
        f"storage per ledger event incl. indexes ({revision})",
        product=per_event,
        unit="B/event",
        baseline=payload,
        ratio=payload / per_event,
        target=f"< {TARGET} B",
        passed=per_event < TARGET,
        engine=name,
    )
    overhead = per_event - payload
    report(
        f"storage per ledger event beyond its payload ({revision})",
        product=overhead,
        unit="B/event",
        target="(informative)",
        passed=True,
        engine=name,
    )
    report(
        f"storage of a code.add event ({revision})",
        product=float(code_add or 0) + overhead,
        unit="B/event",
        baseline=float(code_add or 0),
        ratio=float(code_add or 0) / (float(code_add or 0) + overhead),
        target=f"< {TARGET} B",
        passed=float(code_add or 0) + overhead < TARGET,
        engine=name,
    )
    report(
        f"ledger bytes per code line ({revision})",
        product=total / max(lines, 1),
        unit="B/line",
        target="(informative)",
        passed=True,
        engine=name,
    )


if __name__ == "__main__":
    main()
