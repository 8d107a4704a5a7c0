"""Benchmark: the compliance, auditor and admin list pages over 200,000 encounters and 1,000,000 events.

    .venv/bin/python tests/perf/bench_pages.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]
        [--encounters 200000] [--events 1000000] [--runs 5]

Builds the same database as bench_reports.py (real migrations, a valid hash chain, a realistic mix),
adds a compliance officer, an administrator and an auditor with a one-year engagement, signs them in
through the sign-in page, and times each list page server-side (a full GET through the ASGI app: the
session check, the SQL, the Jinja render), min and median of --runs. Beside each page, the baseline
measured in the same run: a bare Jinja render of the same rows (the rows the page showed, as a plain
table). Target: every list page < 300 ms. Each figure goes through tests/perf/table.py. With --pg-db
the PostgreSQL database is reused when loaded (bench_reports.py --pg-db loads the same one).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("AUDIT_ENV", "test")
os.environ.setdefault("AUDIT_SIGNING_KEY_FILE", str(Path(tempfile.gettempdir()) / "bench-pages.key"))

import bench_reports  # the same builder as the report benchmark
import table
from jinja2 import Environment
from sqlalchemy.engine import Engine

TARGET_S = 0.300
PASSWORD = "bench password 1"
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
BARE = Environment(autoescape=True).from_string(
    "<table>{% for r in rows %}<tr>{% for v in r %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>"
)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def people(engine: Engine) -> dict[str, str]:
    from audit.errors import Conflict
    from audit.ledger.events import Actor
    from audit.models import Engagement, User
    from audit.uow import unit_of_work
    from audit.user.schemas import UserCreate
    from audit.user.service import bootstrap_user

    ids = {}
    with unit_of_work(engine) as s:
        for role in ("compliance", "admin", "auditor"):
            data = UserCreate(
                username=f"bench-{role}", password=PASSWORD, display_name=f"Bench {role}", roles=[role]
            )
            try:
                ids[role] = bootstrap_user(s, data=data, actor=Actor(id=None, role="bench")).id
            except Conflict:
                ids[role] = s.exec(select_user(User, data.username)).one().id
        s.add(Engagement(auditor_id=ids["auditor"], date_from=bench_reports.TODAY - timedelta(days=365),
                         date_to=bench_reports.TODAY, provider_ids=[], opened_by=ids["compliance"],
                         expires_at=bench_reports.NOW + timedelta(days=30), purpose="bench"))  # fmt: skip
    return ids


def select_user(user: Any, username: str) -> Any:
    from sqlmodel import select

    return select(user).where(user.username == username)


def client_for(engine: Engine, role: str) -> Any:
    from fastapi.testclient import TestClient

    from audit.deps import get_bind
    from audit.main import create_app

    app = create_app()
    app.dependency_overrides[get_bind] = lambda: engine
    client = TestClient(app, base_url="https://testserver")
    client.__enter__()
    token = CSRF.search(client.get("/signin").text)
    assert token
    form = {"csrf_token": token.group(1), "username": f"bench-{role}", "password": PASSWORD}
    r = client.post("/signin", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def table_rows(html: str) -> list[list[str]]:
    """The rows of every table on the page, as text (what the bare render is given)."""
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", html, flags=re.S):
        rows.append(
            [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, flags=re.S)]
        )
    return rows


PAGES = {
    "compliance": ["/compliance", "/compliance?aging_sort=provider&aging_dir=desc&aging_page=50",
                   "/compliance?changes_sort=actor&changes_page=20&attempts_sort=actor",
                   "/compliance/engagements"],
    "admin": ["/admin/users", "/admin/users?sort=roles&dir=desc&page=2&per=50"],
    "auditor": ["/auditor"],
}  # fmt: skip


def measure(name: str, engine_: Engine, runs: int, engine: str) -> None:
    people(engine_)
    worst = 0.0
    for role, paths in PAGES.items():
        client = client_for(engine_, role)
        for path in paths:
            first = client.get(path)
            assert first.status_code == 200, (path, first.status_code, first.text[:500])
            rows = table_rows(first.text)

            def page(path: str = path, client: Any = client) -> None:
                assert client.get(path).status_code == 200

            def bare(rows: list[list[str]] = rows) -> None:
                BARE.render(rows=rows)

            (p_min, p_med), (b_min, b_med) = timed(page, runs), timed(bare, runs)
            worst = max(worst, p_med)
            for label, product, base in (("min", p_min, b_min), ("median", p_med, b_med)):
                table.report(f"page {role} {path} ({label})", product=product * 1000, unit="ms",
                             baseline=base * 1000, target=f"< {TARGET_S * 1000:.0f} ms",
                             passed=product < TARGET_S, engine=engine)  # fmt: skip
            print(f"[{name}] {role:<10} {path:<72} min {p_min * 1000:7.1f} ms  median {p_med * 1000:7.1f} ms "
                  f"bare Jinja ({len(rows)} rows) {b_min * 1000:6.2f}/{b_med * 1000:6.2f} ms  "
                  f"ratio {p_med / max(b_med, 1e-9):7.0f}x")  # fmt: skip
        client.__exit__(None, None, None)
    print(f"[{name}] slowest median {worst * 1000:.0f} ms; target < {TARGET_S * 1000:.0f} ms: "
          f"{'OK' if worst < TARGET_S else 'OVER TARGET'}")  # fmt: skip


def run(name: str, url: str, args: argparse.Namespace, *, reuse: bool = False) -> None:
    from audit.config import get_settings
    from audit.db import make_engine
    from audit.ledger import checkpoints
    from audit.migrate import upgrade

    os.environ["AUDIT_DATABASE_URL"] = url
    get_settings.cache_clear()
    upgrade(url)
    engine = make_engine(url)
    if not reuse:
        seconds = bench_reports.build(engine, args.encounters, args.events)
        print(f"[{name}] built {args.encounters:,} encounters and {args.events:,} events in {seconds:.0f} s")
    # A checkpoint over the loaded ledger first: with none stored, the app's signer folds every leaf
    # once (seconds at 1,000,000 events) in a thread that competes with the timed requests.
    checkpoints.create_in_own_transaction(engine)
    measure(name, engine, args.runs, table.engine_of(url))
    engine.dispose()


def pg_database(admin_url: str, name: str) -> Iterator[str]:
    """A fresh database of its own name (other benchmarks may be using theirs), dropped at the end."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from audit.db import make_engine

    admin = make_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", help="PostgreSQL URL of a maintenance database (bench_reports is created)")
    parser.add_argument("--encounters", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sqlite-file", help="Keep the SQLite database here (reused when it exists)")
    parser.add_argument("--pg-db", help="PostgreSQL database to load once and reuse (else a fresh one)")
    args = parser.parse_args()
    if args.sqlite_file:
        run("sqlite", f"sqlite:///{args.sqlite_file}", args, reuse=Path(args.sqlite_file).exists())
    else:
        with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
            run("sqlite", f"sqlite:///{tmp}/bench.db", args)
    if args.pg and args.pg_db:
        url, loaded = bench_reports.pg_database(args.pg, args.pg_db)
        run("postgresql", url, args, reuse=loaded)
    elif args.pg:
        for url in pg_database(args.pg, "bench_pages"):
            run("postgresql", url, args)


if __name__ == "__main__":
    main()
