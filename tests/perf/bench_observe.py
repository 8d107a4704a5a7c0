"""What the request observer (request id, Prometheus count and latency, JSON access log) adds to each
request, measured on the ASGI app directly (no network), against the same app without it, same run.

Run: python tests/perf/bench_observe.py

No issue set a target for the observer; the budget reported here is that it adds under 100 us of CPU
per request (median minus the bare app's median), beside a FastAPI request that itself costs hundreds.
"""

from __future__ import annotations

import asyncio
import io
import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fastapi import FastAPI  # noqa: E402

from audit.ops.logs import JsonFormatter  # noqa: E402
from audit.ops.metrics import RequestObserver  # noqa: E402
from tests.perf.table import report  # noqa: E402

BUDGET_US = 100.0


async def minimal(scope: dict[str, object], receive: object, send: object) -> None:
    """The cheapest ASGI endpoint: isolates what the observer itself costs."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    return app


async def drive(app: object, n: int) -> float:
    """Seconds per request over n requests through the ASGI interface."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/api/v1/things/abc", "raw_path": b"/api/v1/things/abc", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1), "server": ("bench", 80),
    }  # fmt: skip

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict[str, object]) -> None:
        return None

    start = time.process_time()  # CPU time: on a shared machine the wall clock measures the neighbours
    for _ in range(n):
        await app(dict(scope), receive, send)  # type: ignore[operator]
    return (time.process_time() - start) / n


def measure(inner: object, outer: object, n: int, runs: int) -> dict[str, list[float]]:
    sink = logging.StreamHandler(io.StringIO())
    sink.setFormatter(JsonFormatter())
    access = logging.getLogger("audit.access")
    access.propagate = False
    results: dict[str, list[float]] = {"without": [], "observed, log off": [], "observed, JSON log on": []}
    asyncio.run(drive(inner, 500))
    asyncio.run(drive(outer, 500))
    for _ in range(runs):
        results["without"].append(asyncio.run(drive(inner, n)))
        access.setLevel(logging.WARNING)
        results["observed, log off"].append(asyncio.run(drive(outer, n)))
        access.addHandler(sink)
        access.setLevel(logging.INFO)
        results["observed, JSON log on"].append(asyncio.run(drive(outer, n)))
        access.removeHandler(sink)
    return results


def main(n: int = 2000, runs: int = 7) -> int:
    print(f"CPU time per request, {runs} runs of {n} requests; added = median minus the baseline's median")
    print(f"{'endpoint':<10} {'path':<24} {'min us':>8} {'median us':>10} {'added us':>9} {'ratio':>6}")
    ok = True
    for label, inner in (("minimal", minimal), ("FastAPI", bare_app())):
        results = measure(inner, RequestObserver(inner), n, runs)  # type: ignore[arg-type]
        base = statistics.median(results["without"]) * 1e6
        for name, values in results.items():
            lo, med = min(values) * 1e6, statistics.median(values) * 1e6
            print(f"{label:<10} {name:<24} {lo:8.1f} {med:10.1f} {med - base:9.1f} {med / base:6.2f}")
        for name, values in results.items():
            if name == "without":
                continue
            med = statistics.median(values) * 1e6
            passed = med - base < BUDGET_US
            ok = ok and passed
            target = f"adds < {BUDGET_US:.0f} us (budget, no issue target; added {med - base:.0f})"
            report(f"request observer, {label} endpoint, {name}", product=med, unit="us/request",
                   baseline=base, ratio=base / med, engine="no DB", passed=passed, target=target)  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
