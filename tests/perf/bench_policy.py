"""Benchmark PolicyEngine.decide() against a bare cedarpy call measured in the same run.

Run: python tests/perf/bench_policy.py   (exits non-zero if decide() takes 1 ms or more)

Min and median per-call CPU time (this process: on a shared machine the wall clock mostly measures
the neighbours) over several runs of n calls each; target (issue 3): under 1 ms per decision.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cedarpy

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from audit.policy.engine import DelegationRes, EncounterRes, PolicyEngine, Principal  # noqa: E402
from tests.perf.table import report  # noqa: E402

RUNS = 7
CLOCK = time.process_time


def per_call_us(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(min, median) microseconds per call over RUNS runs of n calls."""
    for _ in range(max(50, n // 20)):
        fn()
    times = []
    for _ in range(RUNS):
        t0 = CLOCK()
        for _ in range(n):
            fn()
        times.append((CLOCK() - t0) / n * 1e6)
    return min(times), statistics.median(times)


def main(n: int = 2000) -> int:
    engine = PolicyEngine.load(ROOT / "policies")
    now = dt.datetime(2025, 3, 2, 10, tzinfo=dt.UTC)
    coder = Principal("cod1", frozenset({"coder"}))
    enc = EncounterRes("enc1", "drA", frozenset({"drS"}), dt.date(2025, 3, 1))
    dlg = DelegationRes(
        "d1", "drA", "cod1", frozenset({"CPT", "ICD-10-CM"}),
        dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 12, 31, tzinfo=dt.UTC),
        dt.date(2025, 1, 1), dt.date(2025, 6, 30),
    )  # fmt: skip
    ctx = {"code_system": "CPT", "delegation": dlg}
    assert engine.decide(coder, "code.add", enc, ctx, now=now).allowed

    trivial = 'permit (principal == User::"a", action == Action::"go", resource);'
    bare_req = {"principal": 'User::"a"', "action": 'Action::"go"', "resource": 'Thing::"t"', "context": {}}
    assert cedarpy.is_authorized(bare_req, trivial, []).allowed

    base = per_call_us(lambda: cedarpy.is_authorized(bare_req, trivial, []), n)
    ours = per_call_us(lambda: engine.decide(coder, "code.add", enc, ctx, now=now), n)
    print(f"baseline bare cedarpy.is_authorized (1 policy, no schema): min {base[0]:8.1f}, "
          f"median {base[1]:8.1f} us/call")  # fmt: skip
    print(f"PolicyEngine.decide code.add under delegation ({RUNS} x {n} calls): min {ours[0]:8.1f}, "
          f"median {ours[1]:8.1f} us/call; decide/baseline {ours[1] / base[1]:.2f}x (median)")  # fmt: skip
    ok = ours[1] < 1000
    report("policy decide(), code.add under delegation", product=ours[1], unit="us/call",
           baseline=base[1], ratio=base[1] / ours[1], target="< 1000 us/call (issue 3)", passed=ok,
           engine="no DB")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
