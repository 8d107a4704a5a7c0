"""The cost of SQLite synchronous=FULL (the default: an acknowledged write survives power loss) against
NORMAL (survives a process crash only), on the real write path: one ledger event appended and
committed per unit of work, alternating the two settings in the same run.

Run: python tests/perf/bench_sqlite_sync.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def commits_per_second(mode: str, folder: Path, n: int) -> float:
    from audit.config import get_settings
    from audit.db import make_engine
    from audit.ledger import service as ledger
    from audit.ledger.events import Actor, EventDraft
    from audit.migrate import upgrade
    from audit.uow import unit_of_work

    os.environ["AUDIT_SQLITE_SYNCHRONOUS"] = mode
    get_settings.cache_clear()
    url = f"sqlite:///{folder / f'{mode}-{time.monotonic_ns()}.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == {"NORMAL": 1, "FULL": 2}[mode]
    actor = Actor(id=None, role="cli", username="bench")
    start = time.perf_counter()
    for i in range(n):
        with unit_of_work(engine) as session:
            ledger.append_one(session, EventDraft(type="bench.write", actor=actor, detail={"i": i}))
    elapsed = time.perf_counter() - start
    engine.dispose()
    return n / elapsed


def main(n: int = 300, runs: int = 5) -> int:
    os.environ.setdefault("AUDIT_SIGNING_KEY_FILE", str(Path(tempfile.mkdtemp()) / "k"))
    results: dict[str, list[float]] = {"NORMAL": [], "FULL": []}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        for _ in range(runs):
            for mode in ("NORMAL", "FULL"):
                results[mode].append(commits_per_second(mode, Path(tmp), n))
    base = statistics.median(results["NORMAL"])
    print(f"audited commits/s, {runs} runs of {n} one-event transactions (WAL), same run")
    print(f"{'synchronous':<12} {'min':>8} {'median':>8} {'ratio to NORMAL':>16}")
    for mode, values in results.items():
        median = statistics.median(values)
        print(f"{mode:<12} {min(values):8.0f} {median:8.0f} {median / base:16.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
