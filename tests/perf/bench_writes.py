"""Interactive writes (issue 12 item 2, issue 14 item 6): POST a code line to `audit serve` against a
bare FastAPI + SQLModel insert endpoint (tests/perf/bare_insert_app.py), same uvicorn settings, same
database engine, same run, alternating.

- throughput and p99 under wrk, 16 connections (closed loop): target product >= 1.0x bare;
- p99 at a fixed 100 requests/s (tests/perf/fixed_rate.py, open loop, latency from each request's
  due time so coordinated omission is not hidden): target < 50 ms, bare reported as the baseline;
- SQLite only: product throughput with synchronous=FULL (the default) against NORMAL.

Run: python tests/perf/bench_writes.py                  (SQLite, a temporary folder)
     BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/writes_bench python tests/perf/bench_writes.py
     (the PostgreSQL database is emptied). BENCH_RUNS (3), BENCH_SECONDS (10), BENCH_PORT (9300).
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.crash.servers import Server, seed, server_env, start_server  # noqa: E402
from tests.perf.bench_workers import reset  # noqa: E402
from tests.perf.fixed_rate import fixed_rate  # noqa: E402
from tests.perf.table import engine_of, report  # noqa: E402

BODY = '{"system":"CPT","code":"99213","units":1}'
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
local paths = {{{paths}}}
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, paths[(i % #paths) + 1], nil, '{body}')
end
"""


@dataclass(frozen=True)
class Target:
    """A server under load: where to POST and with which token."""

    name: str
    base: str
    token: str
    paths: list[str]


@dataclass(frozen=True)
class WrkResult:
    rate: float
    p99_ms: float


def wrk(target: Target, seconds: int, folder: Path) -> WrkResult:
    script = folder / f"{target.name}.lua"
    quoted = ", ".join(f'"{p}"' for p in target.paths)
    script.write_text(LUA.format(token=target.token, paths=quoted, body=BODY))
    args = ["wrk", "-t2", "-c16", "--latency", "-s", str(script), target.base]
    subprocess.run([*args[:1], "-d2s", *args[1:]], capture_output=True, check=True)  # warm-up
    done = subprocess.run([*args[:1], f"-d{seconds}s", *args[1:]], capture_output=True, text=True, check=True)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", done.stdout)
    if rate is None or p99 is None or "Non-2xx" in done.stdout:
        raise RuntimeError(f"wrk against {target.name}: {done.stdout}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return WrkResult(float(rate.group(1)), float(p99.group(1)) * scale)


def p99_at_fixed_rate(target: Target, seconds: int, rate: float = 100.0) -> float:
    paths = target.paths
    result = fixed_rate(
        target.base, rate=rate, seconds=seconds, request=lambda i: (paths[i % len(paths)], _body()),
        headers={"Authorization": f"Bearer {target.token}"},
    )  # fmt: skip
    if result.errors:  # counted at the time they failed (a timeout: 30 s), so they raise the p99
        print(f"  {target.name}: {result.errors} of {result.sent} failed at {rate}/s: {result.failures}")
    if result.sent_late > result.sent // 20:
        print(f"  note: the generator sent {result.sent_late} of {result.sent} requests > 5 ms late")
    return result.percentile(99)


def _body() -> dict[str, object]:
    return {"system": "CPT", "code": "99213", "units": 1}


def product_target(server: Server) -> Target:
    token, encounters = seed(server.base, count=64)
    return Target("product", server.base, token, [f"/api/v1/encounters/{e}/codes" for e in encounters])


def start_bare(url: str, folder: Path, port: int) -> Server:
    """The bare app on the same engine: PostgreSQL, the same database (its own table); SQLite, a file
    of its own in the same folder (one file would make the two servers queue on one write lock)."""
    if url.startswith("sqlite"):
        url = f"sqlite:///{folder / 'bare.db'}"
    log = folder / f"bare-{port}.log"
    env = {**server_env(url, folder), "BARE_DATABASE_URL": url}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests/perf/bare_insert_app.py"), str(port)], env=env, cwd=folder,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Server(process, f"http://127.0.0.1:{port}", log)
    for _ in range(300):
        try:
            httpx.get(f"{server.base}/docs", timeout=1)
            return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill9()
    raise RuntimeError(f"the bare app did not start: {log.read_text()[-2000:]}")


def bare_target(server: Server) -> Target:
    return Target("bare", server.base, "-", [f"/lines/enc-{n}" for n in range(64)])


def drained(base: str, limit: float = 180.0) -> None:
    """Wait until a server past its capacity has worked off what the fixed-rate load queued (requests
    the client gave up on still run), so the next run does not start on a backlog."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        started = time.monotonic()
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{base}/healthz", timeout=limit)
        if time.monotonic() - started < 0.5:
            return
    raise RuntimeError(f"{base} still busy {limit:.0f} s after the fixed-rate load")


def throughput_and_latency(url: str, folder: Path, runs: int, seconds: int, port: int) -> None:
    engine = engine_of(url)
    product = start_server(url, folder, port=port)
    bare = start_bare(url, folder, port + 1)
    rates: dict[str, list[WrkResult]] = {"product": [], "bare": []}
    fixed: dict[str, list[float]] = {"product": [], "bare": []}
    try:
        for n in range(runs):
            targets = [product_target(product), bare_target(bare)]  # fresh encounters each run
            for target in targets:
                rates[target.name].append(wrk(target, seconds, folder))
            for target in targets:
                fixed[target.name].append(p99_at_fixed_rate(target, seconds))
                drained(target.base)
            print(f"  run {n + 1}: " + ", ".join(
                f"{k} {v[-1].rate:.0f} req/s p99 {v[-1].p99_ms:.0f} ms, fixed-rate p99 {fixed[k][-1]:.1f} ms"
                for k, v in rates.items()
            ), flush=True)  # fmt: skip
    finally:
        product.stop()
        bare.stop()
    mine = [r.rate for r in rates["product"]]
    base = [r.rate for r in rates["bare"]]
    ratios = [a / b for a, b in zip(mine, base, strict=True)]
    for label, pick in (("min", min), ("median", statistics.median)):
        report(f"POST a code line, wrk 16 connections ({label} of {runs})", product=pick(mine),
               baseline=pick(base), ratio=pick(ratios), unit="req/s", target=">= 1.0x bare insert",
               passed=pick(ratios) >= 1.0, engine=engine)  # fmt: skip
    wrk_p99 = statistics.median(r.p99_ms for r in rates["product"])
    wrk_p99_base = statistics.median(r.p99_ms for r in rates["bare"])
    report("POST a code line, p99 under wrk 16 connections (median)", product=wrk_p99,
           baseline=wrk_p99_base, ratio=wrk_p99_base / wrk_p99, unit="ms", target="reported",
           passed=True, engine=engine)  # a time: ratio = baseline / product  # fmt: skip
    p99 = statistics.median(fixed["product"])
    p99_base = statistics.median(fixed["bare"])
    worst = max(fixed["product"])
    report(f"POST a code line, p99 at a fixed 100 req/s (median of {runs}; worst {worst:.1f})",
           product=p99, baseline=p99_base, ratio=p99_base / p99, unit="ms", target="< 50 ms",
           passed=p99 < 50, engine=engine)  # fmt: skip


def sqlite_synchronous_cost(url: str, folder: Path, runs: int, seconds: int, port: int) -> None:
    results: dict[str, list[float]] = {"NORMAL": [], "FULL": []}
    for _ in range(runs):
        for mode in ("NORMAL", "FULL"):
            os.environ["AUDIT_SQLITE_SYNCHRONOUS"] = mode
            server = start_server(url, folder, port=port)
            try:
                results[mode].append(wrk(product_target(server), seconds, folder).rate)
            finally:
                server.stop()
            print(f"  synchronous={mode}: {results[mode][-1]:.0f} req/s", flush=True)
    os.environ.pop("AUDIT_SQLITE_SYNCHRONOUS")
    full, normal = statistics.median(results["FULL"]), statistics.median(results["NORMAL"])
    report(f"POST a code line, synchronous=FULL (default) vs NORMAL (median of {runs})", product=full,
           baseline=normal, unit="req/s", target="reported (the cost of power-loss durability)",
           passed=True, engine="SQLite")  # fmt: skip


def main() -> int:
    url = os.environ.get("BENCH_DATABASE_URL", "")
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    seconds = int(os.environ.get("BENCH_SECONDS", "10"))
    port = int(os.environ.get("BENCH_PORT", "9300"))
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        folder = Path(tmp)
        os.environ["AUDIT_WITNESS_FILE"] = str(folder / "witness.txt")
        if url.startswith("postgresql"):
            reset(url)
        else:
            url = f"sqlite:///{folder / 'writes.db'}"
        throughput_and_latency(url, folder, runs, seconds, port)
        if not url.startswith("postgresql"):
            sqlite_synchronous_cost(url, folder, runs, seconds, port + 2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
