"""Benchmark: `audit serve` to its first answered request (issue 12, Start-up), against a bare app.

    .venv/bin/python tests/perf/bench_startup.py            # SQLite, an empty database per run
    AUDIT_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/NAME_bench \
        .venv/bin/python tests/perf/bench_startup.py        # PostgreSQL (its schema is reset per run)

Each run starts a fresh process on an empty database and polls `GET /healthz` until it answers 200,
then reads the process's CPU time (utime + stime from /proc/PID/stat, the children included: uvicorn
runs in the same process with one worker) and the wall time since the start. The baseline is a bare
FastAPI app with one route under the same uvicorn, started the same way in the same run. Target: the
first answer within 3 s of CPU time. Prints min and median of AUDIT_BENCH_RUNS runs (default 5).

As deployed, the modules' bytecode is cached (pip byte-compiles what it installs): the processes run
without PYTHONDONTWRITEBYTECODE, after one uncounted warm-up start of each, so neither compiles our
sources from scratch (about 0.3 s of CPU per start here when a shell exports that variable).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.perf.table import engine_of, report

PORT = int(os.environ.get("AUDIT_BENCH_PORT") or 9350)
RUNS = int(os.environ.get("AUDIT_BENCH_RUNS") or 5)
TARGET_CPU = 3.0
VENV = Path(sys.executable).parent
BARE = """
from fastapi import FastAPI
app = FastAPI()
@app.get("/healthz")
def healthz():
    return {"status": "ok"}
"""
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process and of its waited-for children, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime + cutime + cstime) / TICKS


def first_answer(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s) from the start of `cmd` to its first 200 on /healthz."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - started, cpu_seconds(proc.pid)
            except OSError:
                time.sleep(0.01)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def fresh_database(url: str | None, folder: str, run: int) -> str:
    if not url:
        return f"sqlite:///{folder}/startup{run}.db"
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def main() -> None:
    url = os.environ.get("AUDIT_BENCH_DATABASE_URL")
    engine = engine_of(url)
    product: list[tuple[float, float]] = []
    bare: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="audit-bench-startup-") as folder:
        (Path(folder) / "bare_app.py").write_text(BARE)
        for run in range(-1, RUNS):  # run -1: the warm-up, which writes the bytecode caches
            env = {
                **os.environ,
                "AUDIT_DATABASE_URL": fresh_database(url, folder, run),
                "AUDIT_SIGNING_KEY_FILE": f"{folder}/signing.key",
                "AUDIT_WITNESS_FILE": f"{folder}/witness-{run}.txt",
                "AUDIT_ENV": "development",
            }
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            mine = first_answer([str(VENV / "audit"), "serve", "--port", str(PORT)], env)
            bare_cmd = [str(VENV / "uvicorn"), "bare_app:app", "--port", str(PORT), "--app-dir", folder]
            theirs = first_answer(bare_cmd, env)
            if run < 0:
                continue
            product.append(mine)
            bare.append(theirs)
            print(f"run {run}: audit serve {product[-1][0]:.2f} s wall {product[-1][1]:.2f} s CPU; "
                  f"bare {bare[-1][0]:.2f} s wall {bare[-1][1]:.2f} s CPU", flush=True)  # fmt: skip
    for index, what in ((1, "CPU"), (0, "wall")):
        ours = sorted(p[index] for p in product)
        base = sorted(b[index] for b in bare)
        for label, pick in (("min", min), ("median", statistics.median)):
            value, baseline = pick(ours), pick(base)
            report(
                f"start-up to first 200, empty DB, {what} s ({label} of {RUNS})",
                product=value,
                unit="s",
                baseline=baseline,
                ratio=baseline / value,
                target=f"< {TARGET_CPU} s CPU" if what == "CPU" else "(informative)",
                passed=value < TARGET_CPU if what == "CPU" else True,
                engine=engine,
            )


if __name__ == "__main__":
    main()
