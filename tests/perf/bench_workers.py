"""Interactive write throughput with `audit serve --workers 2` against one worker, on PostgreSQL, in the
same run: wrk (16 connections, fixed duration) POSTs code lines to fresh encounters. Target: 2 workers
>= 1.5x one worker.

Run: BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench python tests/perf/bench_workers.py
(the database is emptied; needs `wrk`: apt-get install wrk). Exits 1 when the ratio misses the target.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from audit.db import make_engine  # noqa: E402
from audit.migrate import upgrade  # noqa: E402
from tests.crash.servers import seed, start_server  # noqa: E402

TARGET = 1.5
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
local encs = {{{encs}}}
local i = 0
request = function()
  i = i + 1
  local path = "/api/v1/encounters/" .. encs[(i % #encs) + 1] .. "/codes"
  return wrk.format(nil, path, nil, '{{"system":"CPT","code":"99213","units":1}}')
end
"""


def reset(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade(url)


def run_once(url: str, workers: int, seconds: int, folder: Path, port: int) -> float:
    server = start_server(url, folder, port=port, workers=workers, demo=True)
    try:
        token, encounters = seed(server.base, count=64)
        script = folder / f"post-{workers}.lua"
        script.write_text(LUA.format(token=token, encs=", ".join(f'"{e}"' for e in encounters)))
        subprocess.run(
            ["wrk", "-t2", "-c16", "-d2s", "-s", str(script), server.base], capture_output=True
        )  # warm-up
        done = subprocess.run(
            ["wrk", "-t2", "-c16", f"-d{seconds}s", "-s", str(script), server.base],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        server.stop()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if rate is None or non2xx is not None:
        raise RuntimeError(f"wrk: {done.stdout}")
    return float(rate.group(1))


def main(runs: int = 5, seconds: int = 10) -> int:
    url = os.environ.get("BENCH_DATABASE_URL", "")
    if not url.startswith("postgresql") or shutil.which("wrk") is None:
        print("needs BENCH_DATABASE_URL=postgresql://... (emptied) and wrk (apt-get install wrk)")
        return 2
    results: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AUDIT_WITNESS_FILE"] = str(Path(tmp) / "witness.txt")
        for _ in range(runs):
            for workers in (1, 2):
                reset(url)
                Path(os.environ["AUDIT_WITNESS_FILE"]).unlink(missing_ok=True)
                results[workers].append(run_once(url, workers, seconds, Path(tmp), 9150 + workers))
                print(f"  --workers {workers}: {results[workers][-1]:.0f} req/s", flush=True)
    one, two = statistics.median(results[1]), statistics.median(results[2])
    print(f"POST a code line, PostgreSQL, wrk 16 connections, {runs} x {seconds} s, same run")
    print(f"{'workers':<8} {'min':>8} {'median':>8} {'ratio':>6}")
    for workers, values in results.items():
        median = statistics.median(values)
        print(f"{workers:<8} {min(values):8.0f} {median:8.0f} {median / one:6.2f}")
    ok = two / one >= TARGET
    print(f"2 workers / 1 worker = {two / one:.2f}x (target >= {TARGET}x): {'pass' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
