"""Benchmark: the web list pages over 200,000 encounters and 1,000,000 ledger events, beside a bare
Jinja render of the same rows measured in the same run.

    .venv/bin/python tests/perf/bench_web_lists.py [--encounters 200000] [--events 1000000]
        [--sqlite-file F] [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Builds the organisation of bench_reports.py (60 providers, 2 years of dates of service, a valid hash
chain), gives the busiest provider a password and a delegation to a coder (through the services), signs
both in through the sign-in page, then times each list page on the server (TestClient: routing, session,
scope, SQL, the page-view event, the template), as min and median of several runs. Baseline: rendering
the same template with the same rows already fetched (no SQL, no session). Target: < 300 ms per page.
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
os.environ.setdefault("AUDIT_SIGNING_KEY_FILE", str(Path(tempfile.gettempdir()) / "bench-web.key"))

import bench_reports as data
from sqlalchemy import text, update
from sqlalchemy.engine import Engine
from sqlmodel import col
from table import engine_of, report

TARGET_MS = 300.0
PASSWORD = "bench password 1"


def timed(fn: Callable[[], Any], runs: int = 7) -> tuple[float, float]:
    fn()  # warm
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return min(times), statistics.median(times)


def prepare(engine: Engine) -> tuple[str, str]:
    """The busiest provider and a coder, able to sign in, the coder delegated for everything."""
    from audit.delegation.schemas import DelegationCreate
    from audit.delegation.service import grant_delegation
    from audit.models import User, utcnow
    from audit.principal import CurrentUser
    from audit.security import hash_password
    from audit.uow import unit_of_work

    with engine.connect() as conn:
        busiest = conn.execute(
            text("SELECT rendering_provider_id FROM encounter GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
        ).scalar_one()
    coder = "coder-0007"
    with engine.begin() as conn:
        conn.execute(
            update(User)
            .where(col(User.id).in_([busiest, coder]))
            .values(password_hash=hash_password(PASSWORD))
        )
    with unit_of_work(engine) as session:
        provider = session.get(User, busiest)
        assert provider is not None
        body = DelegationCreate(
            coder_id=coder, code_systems=["CPT", "ICD-10-CM"], valid_until=utcnow() + timedelta(days=30)
        )
        grant_delegation(session, user=CurrentUser.of(provider), data=body)
    return busiest, coder


def signed_in(app: Any, username: str) -> Any:
    from fastapi.testclient import TestClient

    client = TestClient(app, base_url="https://testserver")
    client.__enter__()
    token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', client.get("/signin").text).group(1)  # type: ignore[union-attr]
    r = client.post(
        "/signin",
        data={"csrf_token": token, "username": username, "password": PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return client


PAGES = {
    "provider": ["/provider/queue", "/provider/queue?sort=external_id&dir=desc&page=20"],
    "coder": [
        "/coder/worklist",
        "/coder/worklist?sort=provider&dir=desc&per=100",
        "/coder/worklist?sort=patient_ref&page=100",
        "/coder/worklist?status=open&sort=dos&dir=desc",
        "/coder/worklist?external_id=enc-00012",
        f"/coder/worklist?from={data.TODAY - timedelta(days=90)}&to={data.TODAY}",
    ],
}


def bare_render(engine: Engine, coder: str, busiest: str) -> Callable[[], Any]:
    """The worklist template rendered with 25 rows fetched beforehand: the floor a page cannot beat."""
    from sqlmodel import Session, col, select
    from starlette.requests import Request

    from audit.models import Encounter, User
    from audit.web.deps import Listing
    from audit.web.queries import Filters
    from audit.web.templating import TEMPLATES, with_query

    with Session(engine) as s:
        joined = select(Encounter, User).join(User, col(User.id) == col(Encounter.rendering_provider_id))
        rows = list(s.exec(joined.where(col(Encounter.rendering_provider_id) == busiest).limit(25)).all())
    request = Request({"type": "http", "path": "/coder/worklist", "query_string": b"", "headers": []})
    ctx = {
        "request": request,
        "me": None,
        "csrf_token": "0" * 64,
        "with_query": lambda **kw: with_query(request, **kw),
        "rows": rows,
        "total": 200000,
        "lst": Listing("dos", False, 1, 25),
        "filters": Filters(),
        "providers": [],
        "statuses": ("open", "attested", "amended"),
    }
    template = TEMPLATES.env.get_template("worklist.html")
    return lambda: template.render(ctx)


def measure(name: str, engine: Engine) -> bool:
    from audit.deps import get_bind
    from audit.main import create_app

    busiest, coder = prepare(engine)
    app = create_app()
    app.dependency_overrides[get_bind] = lambda: engine
    clients = {"provider": signed_in(app, busiest), "coder": signed_in(app, coder)}
    base_min, base_med = timed(bare_render(engine, coder, busiest))
    what = "bare Jinja render of the worklist, 25 rows"
    print(f"[{name}] baseline: {what}: min {base_min:.1f} ms, median {base_med:.1f} ms")
    worst = 0.0
    for role, urls in PAGES.items():
        for url in urls:

            def get(u: str = url, c: Any = clients[role]) -> None:
                r = c.get(u)
                assert r.status_code == 200, (u, r.status_code, r.text[:300])

            low, med = timed(get)
            worst = max(worst, med)
            figures = f"min {low:7.1f} ms  median {med:7.1f} ms  ({med / base_med:5.1f}x)"
            print(f"[{name}] {role:8s} {url:60s} {figures}")
            report(
                f"web list page {url} (server time, min {low:.0f} ms)", product=med, unit="ms",
                target=f"< {TARGET_MS:.0f} ms", passed=med < TARGET_MS, engine=engine_of(str(engine.url)),
                baseline=base_med, ratio=base_med / med,
            )  # fmt: skip
    ok = worst < TARGET_MS
    print(f"[{name}] slowest median {worst:.1f} ms: {'OK' if ok else 'OVER'} target < {TARGET_MS:.0f} ms")
    return ok


def run(name: str, url: str, args: argparse.Namespace, *, reuse: bool = False) -> bool:
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
    try:
        return measure(name, engine)
    finally:
        engine.dispose()


def pg_database(admin_url: str) -> Iterator[str]:
    yield from data.pg_database(admin_url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", help="PostgreSQL URL of a maintenance database (bench_reports is created)")
    parser.add_argument("--encounters", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sqlite-file", help="Keep the SQLite database here (reused when it exists)")
    args = parser.parse_args()
    ok = True
    if args.sqlite_file:
        ok &= run("sqlite", f"sqlite:///{args.sqlite_file}", args, reuse=Path(args.sqlite_file).exists())
    else:
        with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
            ok &= run("sqlite", f"sqlite:///{tmp}/bench.db", args)
    if args.pg:
        for url in pg_database(args.pg):
            ok &= run("postgresql", url, args)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
