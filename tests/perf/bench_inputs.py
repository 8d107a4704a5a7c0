"""What the hardening costs, against baselines measured in the same run (min and median of 7 runs).

1. Request validation: `CodeLineCreate` (a RequestModel: every field checked for control characters,
   ranges and lax conversions) against the same fields on a plain pydantic model.
2. Sign-in: `audit.user.entry.sign_in` (back-off rows, burst sweep, token, event: two short
   transactions on a SQLite file) against the bare Argon2 check it wraps, at production cost.

Run: python tests/perf/bench_inputs.py

Validation is timed in CPU time of this process (on a shared machine the wall clock mostly measures the
neighbours); sign-in in wall time (its commits wait on the disk). No issue set a target for either; the
budgets reported here keep the hardening cheap beside what it wraps: validation under 100 us per body,
sign-in under 1.5x the bare Argon2 check.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
_TMP = Path(tempfile.mkdtemp(prefix="audit-bench-inputs-"))
os.environ.update(
    AUDIT_ENV="development",
    AUDIT_DATABASE_URL=f"sqlite:///{_TMP / 'bench.db'}",
    AUDIT_SIGNING_KEY_FILE=str(_TMP / "signing.key"),
    AUDIT_CHECKPOINT_TIMER="false",
)

from pydantic import BaseModel, create_model  # noqa: E402

from audit.encounter.schemas import CodeLineCreate  # noqa: E402
from tests.perf.table import report  # noqa: E402

RUNS = 7
VALIDATION_BUDGET_US = 100.0
SIGN_IN_BUDGET_RATIO = 1.5


def timed(
    fn: Callable[[], object], n: int, clock: Callable[[], float] = time.process_time
) -> tuple[float, float]:
    """(min, median) microseconds per call over RUNS runs of n calls."""
    samples = []
    for _ in range(RUNS):
        t0 = clock()
        for _ in range(n):
            fn()
        samples.append((clock() - t0) / n * 1e6)
    return min(samples), statistics.median(samples)


def show(name: str, ours: tuple[float, float], base: tuple[float, float], unit: str = "us") -> None:
    baseline = f"baseline min {base[0]:9.1f}, median {base[1]:9.1f}"
    ratio = ours[1] / base[1]
    print(f"{name}: min {ours[0]:9.1f} {unit}, median {ours[1]:9.1f} {unit} ({baseline}; x{ratio:.2f})")


def bench_validation(n: int = 20000) -> None:
    plain = create_model(
        "PlainCodeLine",
        __base__=BaseModel,
        **{name: (f.annotation, f) for name, f in CodeLineCreate.model_fields.items()},  # type: ignore[call-overload]
    )
    body = {"system": "CPT", "code": "99214", "modifiers": ["25", "59"], "units": 2,
            "diagnosis_pointers": [1, 2], "reason": "documentation supports a higher level"}  # fmt: skip
    base = timed(lambda: plain.model_validate(body), n)
    ours = timed(lambda: CodeLineCreate.model_validate(body), n)
    show("CodeLineCreate validation (RequestModel)", ours, base)
    report("request validation, CodeLineCreate (RequestModel)", product=ours[1], unit="us/body",
           baseline=base[1], ratio=base[1] / ours[1],
           target=f"< {VALIDATION_BUDGET_US:.0f} us/body (budget, no issue target)",
           passed=ours[1] < VALIDATION_BUDGET_US, engine="no DB")  # fmt: skip


def bench_sign_in(n: int = 3) -> None:
    from audit.ledger.events import Actor
    from audit.migrate import upgrade
    from audit.security import hash_password, verify_password
    from audit.uow import unit_of_work
    from audit.user.entry import sign_in
    from audit.user.schemas import UserCreate
    from audit.user.service import bootstrap_user

    upgrade()
    password = "a long enough password"
    with unit_of_work() as session:
        data = UserCreate(username="bench.user", password=password, display_name="Bench", roles=["coder"])
        bootstrap_user(session, data=data, actor=Actor(None, "bench", "bench"))
    stored = hash_password(password)
    wall = time.perf_counter
    base = timed(lambda: verify_password(password, stored), n, wall)
    ours = timed(
        lambda: sign_in(None, username="bench.user", password=password, address="192.0.2.1"), n, wall
    )
    show("sign-in with back-off and evidence (ms)", (ours[0] / 1000, ours[1] / 1000),
         (base[0] / 1000, base[1] / 1000), unit="ms")  # fmt: skip
    target = f"<= {SIGN_IN_BUDGET_RATIO}x bare Argon2 (budget, no issue target)"
    report("sign-in with back-off and evidence", product=ours[1] / 1000, unit="ms", baseline=base[1] / 1000,
           ratio=base[1] / ours[1], target=target,
           passed=ours[1] <= SIGN_IN_BUDGET_RATIO * base[1], engine="SQLite")  # fmt: skip


if __name__ == "__main__":
    bench_validation()
    bench_sign_in()
