"""Benchmark: encounter reads over HTTP beside bare FastAPI + SQLModel endpoints returning the same rows,
same uvicorn settings, same wrk load (16 connections), same run: GET an encounter, its history, and the
encounter list (50 rows), with 200,000 encounters and 1,000,000 events. Target: each >= 0.8x.

    .venv/bin/python tests/perf/bench_reads.py [--sqlite-file F] [--pg postgresql://.../reads_bench]
        [--runs 3] [--seconds 8] [--port 9210]

The data is bench_reports.py's organisation (built once into the given database, then reused); the
busiest provider signs in (a real token) and also supervises 1% of the other providers' encounters,
so the list's scope includes the supervisor association. Prints min and median req/s of each app per
path, and reports the median ratio through tests/perf/table.py.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "perf"))
os.environ.setdefault("AUDIT_ENV", "test")

import bench_reports as data  # noqa: E402
from sqlalchemy import text, update  # noqa: E402
from table import engine_of, report  # noqa: E402

TARGET = 0.8
PASSWORD = "bench password 1"
LUA = """
wrk.headers["Authorization"] = "Bearer {token}"
local paths = {{{paths}}}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
"""


def prepare(url: str) -> tuple[str, list[str]]:
    """(the busiest provider, 200 of their encounter ids), after building the data if the DB is empty."""
    from audit.config import get_settings
    from audit.db import make_engine
    from audit.migrate import upgrade
    from audit.models import User
    from audit.security import hash_password

    os.environ["AUDIT_DATABASE_URL"] = url
    get_settings.cache_clear()
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        empty = conn.execute(text("SELECT count(*) FROM encounter")).scalar_one() == 0
    if empty:
        seconds = data.build(engine, 200_000, 1_000_000)
        print(f"built 200,000 encounters and 1,000,000 events in {seconds:.0f} s")
    with engine.begin() as conn:
        busiest = conn.execute(
            text("SELECT rendering_provider_id FROM encounter GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
        ).scalar_one()
        conn.execute(update(User).where(User.id == busiest).values(password_hash=hash_password(PASSWORD)))
        if not conn.execute(text("SELECT count(*) FROM encounter_supervisor")).scalar_one():
            conn.execute(
                text(
                    "UPDATE encounter SET supervising_provider_ids = :sup "
                    "WHERE rendering_provider_id <> :p AND id LIKE '%7'"  # ~1 in 10 of ids end in 7
                    " AND substr(id, length(id) - 1, 1) = '1'"
                ),
                {"sup": f'["{busiest}"]', "p": busiest},
            )
        ids = (
            conn.execute(
                text("SELECT id FROM encounter WHERE rendering_provider_id = :p ORDER BY id LIMIT 200"),
                {"p": busiest},
            )
            .scalars()
            .all()
        )
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return busiest, list(ids)


def checkpoint_first(url: str, folder: Path) -> None:
    """Sign a checkpoint over the loaded ledger with the server's key, so the server's periodic
    verification (`audit.ops.watch`) checks only what came after it: without one, a freshly loaded
    ledger is verified whole (1,000,000 events) inside the server while it is being measured."""
    from tests.crash.servers import server_env

    done = subprocess.run(
        [sys.executable, "-m", "audit.cli", "checkpoint"], env=server_env(url, folder), cwd=folder,
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:  # e.g. a reused database whose witness was lost: its checkpoints still
        print(f"(no new checkpoint: {done.stderr.strip()[:200]})")  # bound the verification


def start_bare(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "uvicorn", "tests.perf.bare_reads:app", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*args, "--no-access-log", "--log-level", "warning"], env=env, cwd=ROOT,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=2)
            return process
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(log.read_text()[-2000:])


def wrk(base: str, paths: list[str], token: str, seconds: int, folder: Path) -> float:
    script = folder / f"reads-{abs(hash(tuple(paths))) % 10**8}.lua"
    script.write_text(LUA.format(token=token, paths=", ".join(f'"{p}"' for p in paths)))
    done = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "--timeout", "30s", "-s", str(script), base],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if rate is None or "Non-2xx" in done.stdout:
        raise RuntimeError(f"wrk: {done.stdout}")
    return float(rate.group(1))


def measure(url: str, args: argparse.Namespace, folder: Path) -> bool:
    from tests.crash.servers import start_server

    engine = engine_of(url)
    busiest, ids = prepare(url)
    sample = random.Random(1).sample(ids, 100)
    checkpoint_first(url, folder)
    product = start_server(url, folder, port=args.port, demo=False)
    time.sleep(5)  # its first incremental verification and checkpoint tick, before any measurement
    bare = start_bare(url, args.port + 1, folder / "bare.log")
    ok = True
    try:
        signed = httpx.post(
            f"{product.base}/api/v1/auth/token", data={"username": busiest, "password": PASSWORD}, timeout=60
        )
        signed.raise_for_status()
        token = signed.json()["access_token"]
        api, plain = product.base, f"http://127.0.0.1:{args.port + 1}"
        paths = {
            "GET an encounter": ([f"/api/v1/encounters/{i}" for i in sample], [f"/enc/{i}" for i in sample]),
            "GET an encounter's history": (
                [f"/api/v1/encounters/{i}/history" for i in sample],
                [f"/hist/{i}" for i in sample],
            ),
            "GET the encounter list (50 rows)": (["/api/v1/encounters?limit=50"], [f"/list/{busiest}"]),
        }
        for figure, (mine, theirs) in paths.items():
            if args.only and args.only not in figure:
                continue
            wrk(api, mine, token, 2, folder), wrk(plain, theirs, token, 2, folder)  # warm both
            ours, base = [], []
            for _ in range(args.runs):  # interleaved, so drift in the machine's load hits both
                ours.append(wrk(api, mine, token, args.seconds, folder))
                base.append(wrk(plain, theirs, token, args.seconds, folder))
            mid, low = statistics.median, min
            print(f"  {figure} [{engine}]: product min {low(ours):.0f} median {mid(ours):.0f} req/s; "
                  f"bare min {low(base):.0f} median {mid(base):.0f} req/s")  # fmt: skip
            ratio = statistics.median(ours) / statistics.median(base)
            passed = ratio >= TARGET
            ok &= passed
            report(
                f"{figure}, wrk 16 connections", product=statistics.median(ours), unit="req/s",
                target=f">= {TARGET}x bare", passed=passed, engine=engine,
                baseline=statistics.median(base), ratio=ratio,
            )  # fmt: skip
    finally:
        product.stop()
        os.killpg(bare.pid, 15)
        bare.wait(10)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite-file", help="SQLite database file (built when missing, then reused)")
    parser.add_argument("--pg", help="PostgreSQL database URL of your own (built when empty, then reused)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--port", type=int, default=9210)
    parser.add_argument("--only", help="measure only the figures whose name contains this (e.g. list)")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-reads-") as tmp:
        # A reused database keeps its checkpoints: keep the signing key and witness beside it.
        state = Path(args.sqlite_file).parent / "bench-reads-state" if args.sqlite_file else Path(tmp)
        state.mkdir(exist_ok=True)
        os.environ["AUDIT_WITNESS_FILE"] = str(state / "witness.txt")
        sqlite_file = args.sqlite_file or str(Path(tmp) / "bench.db")
        ok &= measure(f"sqlite:///{sqlite_file}", args, state)
        if args.pg:
            pg_state = state / "pg"
            pg_state.mkdir(exist_ok=True)
            os.environ["AUDIT_WITNESS_FILE"] = str(pg_state / "witness.txt")
            ok &= measure(args.pg, args, pg_state)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
