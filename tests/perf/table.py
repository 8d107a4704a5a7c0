"""One row per measured figure, so `tests/perf/run_all.py` can gather every benchmark into one table.

A benchmark calls `report(...)` once per figure it measures. It prints a readable line and a machine
line, `BENCH {json}`, which the runner collects from the benchmark's output. The figure and its
baseline come from the same run; `ratio` is product / baseline unless the benchmark gives its own (for
a time, where lower is better, pass `ratio=baseline / product`)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

PREFIX = "BENCH "


@dataclass(frozen=True)
class Row:
    figure: str
    product: float
    baseline: float | None
    unit: str
    ratio: float | None
    target: str
    passed: bool
    engine: str


def engine_of(url: str | None) -> str:
    """'PostgreSQL' or 'SQLite', from a database URL (None or empty: SQLite, the default)."""
    return "PostgreSQL" if url and url.startswith("postgresql") else "SQLite"


def report(
    figure: str,
    *,
    product: float,
    unit: str,
    target: str,
    passed: bool,
    engine: str,
    baseline: float | None = None,
    ratio: float | None = None,
) -> Row:
    """Print one figure as a readable line and as a `BENCH {json}` line; return it."""
    if ratio is None and baseline:
        ratio = product / baseline
    row = Row(figure, product, baseline, unit, ratio, target, passed, engine)
    base = f", baseline {baseline:,.4g} {unit}" if baseline is not None else ""
    rat = f", ratio {ratio:.2f}x" if ratio is not None else ""
    print(f"{figure} [{engine}]: {product:,.4g} {unit}{base}{rat}; target {target}: "
          f"{'PASS' if passed else 'FAIL'}")  # fmt: skip
    print(PREFIX + json.dumps(asdict(row)), flush=True)
    if os.environ.get("AUDIT_BENCH_ROWS"):  # the runner's file, when stdout is not enough
        with open(os.environ["AUDIT_BENCH_ROWS"], "a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(row)) + "\n")
    return row
