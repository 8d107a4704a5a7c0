"""Benchmark: the provider-responsibility report over 200,000 encounters and 1,000,000 ledger events.

    .venv/bin/python tests/perf/bench_reports.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]
        [--encounters 200000] [--events 1000000]

Builds a fresh SQLite file (and, with --pg, a PostgreSQL database named by --pg-db, kept for the next
run when it is already loaded) through the real migrations, bulk-inserts a valid hash chain
(audit.ledger.chain) with a realistic
mix of event types, providers and encounters plus code lines and attestations, then times
`provider-responsibility` for one year of dates of service directly and through the HTTP route, beside a
baseline measured in the same run: `SELECT provider_id, count(*) FROM ledger_event GROUP BY provider_id`.
The bulk load bypasses the ledger writer, so the report roll-ups are rebuilt after it (what the
migration does for an existing database). Target (issue 12): under 1 s over HTTP and within 3x the
plain aggregate, on both engines. Each figure goes through tests/perf/table.py (min; median printed).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("AUDIT_ENV", "test")
os.environ.setdefault("AUDIT_SIGNING_KEY_FILE", str(Path(tempfile.gettempdir()) / "bench-reports.key"))

from sqlalchemy import insert, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

from audit.ledger import changes, rollups
from audit.ledger.chain import ZERO_HASH, canonical_json, chain_hash, leaf_hash, rfc3339
from audit.report.sql import ATT, ENC, LED, LINE, USR
from tests.perf import table
from tests.perf.table import engine_of

LOG = "coding-audit"
BATCH = 20_000
TARGET_S = 1.0
TARGET_RATIO = 3.0
RUNS = 5
EM = ["99212", "99213", "99213", "99214", "99214", "99214", "99215", "99203", "99204"]
OTHER = ["36415", "93000", "81002", "J1100", "G0439"]
TODAY = datetime.now(UTC).date()
NOW = datetime.now(UTC)


class Loader:
    """Streams rows into the tables in big Core batches, keeping the ledger chain valid."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seq, self.prev = -1, ZERO_HASH
        self.buffers: dict[str, list[dict[str, Any]]] = {"enc": [], "line": [], "att": [], "led": []}
        self.tables = {"enc": ENC, "line": LINE, "att": ATT, "led": LED}

    def event(self, ts: datetime, type_: str, actor: tuple[str, str], **kw: Any) -> int:
        self.seq += 1
        event_id = str(uuid.UUID(int=random.getrandbits(128), version=4))
        body = {
            "log_id": LOG,
            "seq": self.seq,
            "ts": rfc3339(ts),
            "event_id": event_id,
            "type": type_,
            "actor": {"id": actor[0], "role": actor[1], "username": None},
            "on_behalf_of": None,
            "subject": {"type": kw.get("subject_type"), "id": kw.get("subject_id")},
            "encounter_id": kw.get("encounter_id"),
            "provider_id": kw.get("provider_id"),
            "outcome": kw.get("outcome", "allowed"),
            "reason": None,
            "policy": {"version": "bench", "rule_ids": ["bench.rule"]},
            "before": kw.get("before"),
            "after": kw.get("after"),
        }
        payload = canonical_json(body)
        leaf = leaf_hash(payload)
        self.prev = chain_hash(self.prev, self.seq, leaf)
        self.add(
            "led",
            {
                "log_id": LOG,
                "seq": self.seq,
                "event_id": event_id,
                "ts": ts,
                "type": type_,
                "actor_id": actor[0],
                "actor_role": actor[1],
                "on_behalf_of": None,
                "subject_type": kw.get("subject_type"),
                "subject_id": kw.get("subject_id"),
                "encounter_id": kw.get("encounter_id"),
                "provider_id": kw.get("provider_id"),
                "outcome": kw.get("outcome", "allowed"),
                "payload": payload,
                "leaf_hash": leaf,
                "chain_hash": self.prev,
            },
        )
        return self.seq

    def add(self, key: str, row: dict[str, Any]) -> None:
        self.buffers[key].append(row)
        if len(self.buffers[key]) >= BATCH:
            self.flush()

    def flush(self) -> None:
        with self.engine.begin() as conn:
            for key in ("enc", "line", "att", "led"):  # parents before children
                if self.buffers[key]:
                    conn.execute(insert(self.tables[key]), self.buffers[key])
                    self.buffers[key] = []


def users(loader: Loader, providers: int, coders: int) -> tuple[list[str], list[str]]:
    rows: list[dict[str, Any]] = [
        {
            "id": f"prov-{i:04d}",
            "display_name": f"Dr Provider {i}",
            "roles": ["provider"],
            "npi": "1234567893",
        }
        for i in range(providers)
    ]
    rows += [
        {"id": f"coder-{i:04d}", "display_name": f"Coder {i}", "roles": ["coder"], "npi": None}
        for i in range(coders)
    ]
    full = [
        {
            **r,
            "username": r["id"],
            "password_hash": "x",
            "credential": None,
            "credential_active": True,
            "is_active": True,
            "failed_signings": 0,
            "locked_until": None,
            "created_at": NOW,
        }
        for r in rows
    ]
    with loader.engine.begin() as conn:
        conn.execute(insert(USR), full)
    return [r["id"] for r in rows[:providers]], [r["id"] for r in rows[providers:]]


def encounter_block(loader: Loader, i: int, provider: str, coder: str) -> None:
    """One encounter's life: create, 1-4 lines (mostly by the delegate), maybe attest, maybe amend."""
    eid = f"enc-{i:07d}"
    dos = TODAY - timedelta(days=random.randrange(730))
    t = datetime.combine(dos, datetime.min.time(), tzinfo=UTC) + timedelta(hours=random.randrange(8, 18))
    roll = random.random()
    status = "open" if roll < 0.2 else ("amended" if roll < 0.28 else "attested")
    loader.add(
        "enc",
        {
            "id": eid,
            "source": "bench",
            "external_id": eid,
            "patient_ref": f"MRN-{i}",
            "date_of_service": dos,
            "rendering_provider_id": provider,
            "supervising_provider_ids": [],
            "status": status,
            "created_by": coder,
            "created_at": t,
        },
    )
    loader.event(
        t,
        "encounter.create",
        (coder, "coder"),
        subject_type="encounter",
        subject_id=eid,
        encounter_id=eid,
        provider_id=provider,
    )
    for n in range(random.choice((1, 2, 2, 3, 4))):
        author = provider if random.random() < 0.25 else coder
        code = EM[random.randrange(len(EM))] if n == 0 else OTHER[random.randrange(len(OTHER))]
        lid = f"{eid}-l{n}"
        loader.add(
            "line",
            {
                "id": lid,
                "encounter_id": eid,
                "system": "CPT" if code[0].isdigit() else "HCPCS",
                "code": code,
                "modifiers": [],
                "units": 1,
                "diagnosis_pointers": [],
                "version": 1,
                "status": "active",
                "entered_by": author,
                "entered_role": "provider" if author == provider else "coder",
                "delegation_id": None,
                "entered_at": t,
                "changed_by": author,
                "changed_at": t,
            },
        )
        after = {"id": lid, "system": "CPT", "code": code, "version": 1}
        loader.event(
            t,
            "code.add",
            (author, "provider" if author == provider else "coder"),
            subject_type="code_line",
            subject_id=lid,
            encounter_id=eid,
            provider_id=provider,
            after=after,
        )
    if status != "open":
        attest(loader, eid, dos, t, provider, coder, status)
    if random.random() < 0.01:
        loader.event(
            t,
            "code.add",
            ("coder-0000", "coder"),
            outcome="denied",
            subject_type="code_line",
            encounter_id=eid,
            provider_id=provider,
        )


def attest(loader: Loader, eid: str, dos: date, t: datetime, provider: str, coder: str, status: str) -> None:
    signed = t + timedelta(days=random.choice((1, 2, 5, 12, 25, 40)))
    seq = loader.event(
        signed,
        "encounter.attest",
        (provider, "provider"),
        subject_type="attestation",
        subject_id=f"att-{eid}",
        encounter_id=eid,
        provider_id=provider,
    )
    loader.add(
        "att",
        {
            "id": f"att-{eid}",
            "encounter_id": eid,
            "signer_id": provider,
            "printed_name": provider,
            "credential": "MD",
            "npi": "1234567893",
            "signed_at": signed,
            "meaning": "I attest",
            "code_set_digest": "0" * 64,
            "policy_version": "bench",
            "late": (signed.date() - dos).days > 30,
            "status": "superseded" if status == "amended" else "valid",
            "superseded_at": None,
            "ledger_seq": seq,
        },
    )
    if status == "amended":
        later = signed + timedelta(days=1)
        loader.event(
            later,
            "code.change",
            (coder, "coder"),
            subject_type="code_line",
            subject_id=f"{eid}-l0",
            encounter_id=eid,
            provider_id=provider,
            before={"code": "99213"},
            after={"code": "99214"},
        )
        loader.event(
            later,
            "attestation.supersede",
            (coder, "coder"),
            subject_type="attestation",
            subject_id=f"att-{eid}",
            encounter_id=eid,
            provider_id=provider,
        )


def filler(loader: Loader, total: int, providers: list[str]) -> None:
    """The rest of a realistic log: reads, report views, sign-ins, verifications."""
    kinds = ["encounter.read", "encounter.read", "report.view", "auth.login", "audit.verify"]
    while loader.seq + 1 < total:
        kind = kinds[random.randrange(len(kinds))]
        provider = providers[random.randrange(len(providers))] if kind == "encounter.read" else None
        eid = f"enc-{random.randrange(1000):07d}" if kind == "encounter.read" else None
        loader.event(
            NOW - timedelta(seconds=random.randrange(10**7)),
            kind,
            ("coder-0001", "coder"),
            encounter_id=eid,
            provider_id=provider,
        )


def build(engine: Engine, n_encounters: int, n_events: int) -> float:
    random.seed(20261122)
    start = time.perf_counter()
    loader = Loader(engine)
    providers, coders = users(loader, 60, 120)
    weights = [1 / (i + 1) ** 0.6 for i in range(len(providers))]
    chosen = random.choices(providers, weights, k=n_encounters)
    for i, provider in enumerate(chosen):
        encounter_block(loader, i, provider, coders[hash(provider) % len(coders)])
    loader.flush()
    filler(loader, n_events, providers)
    loader.flush()
    with engine.begin() as conn:
        # Statistics first: without them PostgreSQL plans the roll-ups' GROUP BY over a million
        # freshly loaded events as nested loops (still running after 24 minutes).
        conn.execute(text("ANALYZE"))
        rollups.rebuild(conn, LOG)
        changes.rebuild(conn, LOG)
        conn.execute(text("ANALYZE"))
    return time.perf_counter() - start


def timed(fn: Callable[[], Any], runs: int = RUNS) -> tuple[float, float]:
    """(min, median) seconds over `runs` calls."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def best_of(fn: Callable[[], Any], runs: int = RUNS) -> float:
    return timed(fn, runs)[0]


def measure(name: str, engine: Engine, url: str) -> None:
    from audit.policy.scope import Area, ReadScope
    from audit.report.responsibility import provider_responsibility

    year = ReadScope("bench", None, narrow=Area(TODAY - timedelta(days=365), TODAY))

    def baseline() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT provider_id, count(*) FROM ledger_event GROUP BY provider_id")).all()

    def report() -> None:
        with Session(engine) as session:
            rows = provider_responsibility(session, year, NOW).main.rows
            assert rows

    def group_bys() -> None:  # the same report from the GROUP BYs (the path before the roll-ups)
        from audit.report import responsibility

        original = responsibility.by_provider_and_day
        responsibility.by_provider_and_day = lambda f: False  # type: ignore[assignment]
        try:
            with Session(engine) as session:
                rows = provider_responsibility(session, year, NOW).main.rows
                assert rows
        finally:
            responsibility.by_provider_and_day = original

    engine_name = engine_of(url)
    base, base_median = timed(baseline)
    direct, direct_median = timed(report)
    before, before_median = timed(group_bys, 2)
    print(
        f"[{name}] baseline GROUP BY provider_id over ledger_event: {base:.3f} s (median {base_median:.3f})"
    )
    print(f"[{name}] direct: {direct:.3f} s (median {direct_median:.3f}); "
          f"without roll-ups: {before:.3f} s (median {before_median:.3f})")  # fmt: skip
    table.report("provider-responsibility, 1 year, direct (min)", product=direct, unit="s", baseline=base,
                 target=f"<= {TARGET_RATIO:g}x GROUP BY", passed=direct <= TARGET_RATIO * base,
                 engine=engine_name)  # fmt: skip
    table.report("provider-responsibility, 1 year, direct (median)", product=direct_median, unit="s",
                 baseline=base_median, target=f"<= {TARGET_RATIO:g}x GROUP BY",
                 passed=direct_median <= TARGET_RATIO * base_median, engine=engine_name)  # fmt: skip
    table.report("provider-responsibility, 1 year, GROUP BYs without roll-ups (min)", product=before,
                 unit="s", baseline=base, target="before: for comparison", passed=True,
                 engine=engine_name)  # fmt: skip
    try:
        http, http_median = via_http(engine, url, year)
    except Exception as exc:  # named in the output; the figure is reported as failed
        print(f"[{name}] HTTP route not measured: {type(exc).__name__}: {exc}")
        http = http_median = float("inf")
    for label, value in (("min", http), ("median", http_median)):
        table.report(f"provider-responsibility, 1 year, HTTP ({label})", product=value, unit="s",
                     baseline=base if label == "min" else base_median,
                     target=f"< {TARGET_S:g} s and <= {TARGET_RATIO:g}x GROUP BY",
                     passed=value < TARGET_S and value <= TARGET_RATIO * (base, base_median)[label != "min"],
                     engine=engine_name)  # fmt: skip


def via_http(engine: Engine, url: str, year: Any) -> tuple[float, float]:
    from fastapi.testclient import TestClient

    from audit.deps import get_bind
    from audit.errors import Conflict
    from audit.ledger.events import Actor
    from audit.main import create_app
    from audit.report.routes import router
    from audit.uow import unit_of_work
    from audit.user.schemas import UserCreate
    from audit.user.service import bootstrap_user

    try:
        with unit_of_work(engine) as s:
            data = UserCreate(
                username="bench-compliance",
                password="bench password 1",
                display_name="Bench",
                roles=["compliance"],
            )
            bootstrap_user(s, data=data, actor=Actor(id=None, role="bench"))
    except Conflict:  # a reused database already has the user
        pass
    app = create_app()
    if not any(getattr(r, "path", "").startswith("/api/v1/reports") for r in app.routes):
        app.include_router(router)
    app.dependency_overrides[get_bind] = lambda: engine
    with TestClient(app) as client:
        token = client.post(
            "/api/v1/auth/token", data={"username": "bench-compliance", "password": "bench password 1"}
        ).json()["access_token"]
        params = {"from": year.narrow.date_from.isoformat(), "to": year.narrow.date_to.isoformat()}
        headers = {"Authorization": f"Bearer {token}"}

        def call() -> None:
            r = client.get("/api/v1/reports/provider-responsibility", params=params, headers=headers)
            assert r.status_code == 200, r.text

        call()  # warm: the first request imports and compiles
        return timed(call)


def run(name: str, url: str, args: argparse.Namespace, *, reuse: bool = False) -> None:
    from audit.config import get_settings
    from audit.db import make_engine
    from audit.migrate import upgrade

    os.environ["AUDIT_DATABASE_URL"] = url
    get_settings.cache_clear()
    upgrade(url)
    engine = make_engine(url)
    if not reuse:
        seconds = build(engine, args.encounters, args.events)
        print(f"[{name}] built {args.encounters:,} encounters and {args.events:,} events in {seconds:.0f} s")
    measure(name, engine, url)
    engine.dispose()


def pg_database(admin_url: str, name: str) -> tuple[str, bool]:
    """The benchmark's own database (created when missing) and whether it is already loaded."""
    from audit.db import make_engine

    admin = make_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    if not exists:
        return url, False
    probe = make_engine(url)
    try:
        with probe.connect() as conn:
            loaded = conn.execute(text("SELECT count(*) FROM encounter")).scalar_one() > 0
    except Exception:  # not migrated yet
        loaded = False
    probe.dispose()
    return url, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", help="PostgreSQL URL of a maintenance database (bench_reports is created)")
    parser.add_argument("--encounters", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sqlite-file", help="Keep the SQLite database here (reused when it exists)")
    parser.add_argument("--skip-sqlite", action="store_true", help="Measure PostgreSQL only")
    parser.add_argument("--pg-db", default="bench_reports", help="PostgreSQL database to load (and reuse)")
    args = parser.parse_args()
    if args.skip_sqlite:
        pass
    elif args.sqlite_file:
        run("sqlite", f"sqlite:///{args.sqlite_file}", args, reuse=Path(args.sqlite_file).exists())
    else:
        with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
            run("sqlite", f"sqlite:///{tmp}/bench.db", args)
    if args.pg:
        url, loaded = pg_database(args.pg, args.pg_db)
        run("postgresql", url, args, reuse=loaded)


if __name__ == "__main__":
    main()
