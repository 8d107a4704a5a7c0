"""Benchmark PolicyEngine.decide() against a bare cedarpy call measured in the same run.

Run: python tests/perf/bench_policy.py   (exits non-zero if decide() averages 1 ms or more)
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cedarpy

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from audit.policy.engine import DelegationRes, EncounterRes, PolicyEngine, Principal  # noqa: E402


def mean_us(fn: Callable[[], object], n: int) -> float:
    for _ in range(max(50, n // 20)):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def main(n: int = 5000) -> int:
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

    base = mean_us(lambda: cedarpy.is_authorized(bare_req, trivial, []), n)
    ours = mean_us(lambda: engine.decide(coder, "code.add", enc, ctx, now=now), n)
    print(f"baseline bare cedarpy.is_authorized (1 policy, no schema): {base:8.1f} us/call")
    print(f"PolicyEngine.decide code.add under delegation ({n} calls):  {ours:8.1f} us/call")
    print(f"ratio decide/baseline: {ours / base:.2f}x")
    ok = ours < 1000
    print("PASS: < 1 ms per decision" if ok else "FAIL: >= 1 ms per decision")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
