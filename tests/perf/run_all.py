"""Run every benchmark in tests/perf/ and print one table of every figure (issue 12, item 5).

    .venv/bin/python tests/perf/run_all.py [--pg postgresql://postgres@127.0.0.1:5432/] [--pg-prefix bench_]
        [--only NAME ...] [--skip NAME ...] [--quick] [--timeout SECONDS] [--markdown FILE]
        [--logs DIR] [--no-fail]

Each `tests/perf/bench_*.py` (found by glob, so a new benchmark is picked up) runs as its own process,
once on SQLite and, with --pg, once on PostgreSQL, with a timeout each. The runner gathers the rows the
benchmark reported and prints one table: figure, product, baseline, ratio, target, pass/fail, engine.
A benchmark that reported nothing, failed or timed out gets a FAIL row saying so. The exit status is 1
when any row fails (0 with --no-fail). --markdown FILE writes the same table as Markdown, for a closing
note. NAME is a benchmark's file name with or without `bench_` and `.py` (`policy`, `bench_policy`).
Each run's output is kept in --logs (default: a temporary directory, printed at the end).

--quick passes smaller sizes to the benchmarks that take them (the `quick` arguments in HOW); their rows
are marked "smaller (--quick)" in the dataset column, since a target set for 1,000,000 events is not
met or missed by 20,000.

The convention for a benchmark (a new one needs nothing here when it follows it):
- it reports every figure through `tests.perf.table.report(...)`: the product and a baseline measured in
  the same run (min or median of several runs, said in its docstring), the ratio (> 1 is better for the
  product: for a time, baseline / product), the target with the issue that set it, pass/fail, engine.
  `report` appends each row to the file named by AUDIT_BENCH_ROWS, which the runner sets; rows printed as
  `BENCH {json}` lines on stdout are read when that file stays empty.
- run with no arguments, it measures SQLite (or no database at all: engine "no DB");
- on PostgreSQL the runner passes `--pg URL` and sets AUDIT_BENCH_DATABASE_URL=URL, where URL names a
  database of its own, `<prefix><name>` (e.g. bench_reports for bench_reports.py), which the runner
  creates when missing and the benchmark may empty. Only rows with engine "PostgreSQL" are kept from
  that run, so a benchmark that measures SQLite first on every run is not counted twice.
- any other way of being run (other arguments, other variables, PostgreSQL only, smaller sizes) is an
  entry in HOW below.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PREFIX = "BENCH "
ENGINE_VARIABLES = ("AUDIT_BENCH_DATABASE_URL", "AUDIT_BENCH_LARGE_DATABASE_URL", "BENCH_DATABASE_URL")


@dataclass(frozen=True)
class How:
    """How to run one benchmark on each engine. None: not on that engine.

    Arguments and variable values are templates: {url} is the benchmark's own PostgreSQL database,
    {admin} the server's maintenance database, {db} the own database's name, and {url_SUFFIX} another
    own database named `<db>_SUFFIX` (listed in extra_dbs). create_db: the runner creates them when
    missing (else the benchmark makes its scratch database itself, from {admin} and {db})."""

    sqlite: tuple[str, ...] | None = ()
    pg: tuple[str, ...] | None = ("--pg", "{url}")
    pg_env: Mapping[str, str] = field(default_factory=lambda: {"AUDIT_BENCH_DATABASE_URL": "{url}"})
    quick: tuple[str, ...] = ()
    create_db: bool = True
    extra_dbs: tuple[str, ...] = ()


NO_DB = How(pg=None)
SCRATCH_PG = ("--pg", "{admin}", "--pg-name", "{db}", "--skip-sqlite")
# bench_reports.py and the benchmarks built on its data make their own `bench_reports` database from
# the maintenance URL (and measure SQLite again first: the runner keeps only their PostgreSQL rows).
REPORTS_DATA = How(
    pg=("--pg", "{admin}"), pg_env={}, create_db=False, quick=("--encounters", "4000", "--events", "20000")
)

HOW: dict[str, How] = {
    "codesets": How(pg=None, quick=("--checks", "100000", "--runs", "3")),
    "consistency": How(pg=SCRATCH_PG, pg_env={}, create_db=False, quick=("--events", "20000")),
    "explain": NO_DB,
    "export": How(
        pg=SCRATCH_PG, pg_env={}, create_db=False, quick=("--events", "20000", "--encounters", "4000")
    ),
    "import": How(pg=(), quick=("10000",)),
    "inputs": NO_DB,
    "observe": NO_DB,
    "pages": REPORTS_DATA,
    "policy": NO_DB,
    "reports": REPORTS_DATA,
    "scope": How(
        pg=SCRATCH_PG, pg_env={}, create_db=False, quick=("--encounters", "4000", "--events", "20000")
    ),
    "sqlite_sync": NO_DB,
    # measures a kept ledger (bench_verify.py's SQLite file by default); on PostgreSQL, run it by hand
    # with that database's URL as its argument
    "storage": How(pg=None),
    "verify": How(
        pg=(),
        pg_env={"AUDIT_BENCH_DATABASE_URL": "{url}", "AUDIT_BENCH_LARGE_DATABASE_URL": "{url_large}"},
        quick=("20000", "--large", "100000"),
        extra_dbs=("large",),
    ),
    "verify_bundle": How(pg=None, quick=("30000",)),
    "web_lists": REPORTS_DATA,
    "workers": How(sqlite=None, pg=(), pg_env={"BENCH_DATABASE_URL": "{url}"}),
    "writes": How(pg=(), pg_env={"BENCH_DATABASE_URL": "{url}"}),
}


@dataclass
class Result:
    """One benchmark run on one engine: the rows it reported, and what went wrong if anything."""

    bench: str
    engine: str
    rows: list[dict[str, object]]
    problem: str | None = None
    quick: bool = False
    seconds: float = 0.0


def short_name(path: Path) -> str:
    return path.stem.removeprefix("bench_")


def discover(directory: Path, only: Sequence[str], skip: Sequence[str]) -> list[Path]:
    def norm(name: str) -> str:
        return name.removesuffix(".py").removeprefix("bench_")

    wanted, unwanted = {norm(n) for n in only}, {norm(n) for n in skip}
    found = sorted(directory.glob("bench_*.py"))
    unknown = wanted - {short_name(p) for p in found}
    if unknown:
        raise SystemExit(f"no such benchmark in {directory}: {', '.join(sorted(unknown))}")
    return [p for p in found if (not wanted or short_name(p) in wanted) and short_name(p) not in unwanted]


def pg_urls(base: str, prefix: str, name: str, how: How) -> dict[str, str]:
    """The template values for one benchmark on PostgreSQL."""
    from sqlalchemy.engine import make_url

    url = make_url(base)
    db = f"{prefix}{name}"
    values = {
        "admin": url.set(database=url.database or "postgres").render_as_string(hide_password=False),
        "db": db,
        "url": url.set(database=db).render_as_string(hide_password=False),
    }
    for suffix in how.extra_dbs:
        values[f"url_{suffix}"] = url.set(database=f"{db}_{suffix}").render_as_string(hide_password=False)
    return values


def create_databases(values: Mapping[str, str]) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(values["admin"], isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for key, url in values.items():
                if key == "url" or key.startswith("url_"):
                    name = make_url(url).database
                    exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
                    if exists.first() is None:
                        conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def command(
    path: Path, how: How, engine: str, quick: bool, values: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The argv and the environment of one run."""
    args = how.sqlite if engine == "SQLite" else how.pg
    assert args is not None
    env = {k: v for k, v in os.environ.items() if k not in ENGINE_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    if engine == "PostgreSQL":
        env.update({k: v.format(**values) for k, v in how.pg_env.items()})
    argv = [sys.executable, str(path), *(a.format(**values) for a in args)]
    if quick:
        argv += list(how.quick)
    return argv, env


def read_rows(rows_file: Path, stdout: str) -> list[dict[str, object]]:
    """The rows from the runner's file, or from the BENCH lines of stdout when the file stayed empty."""
    text = rows_file.read_text(encoding="utf-8") if rows_file.exists() else ""
    lines = text.splitlines() or [ln[len(PREFIX) :] for ln in stdout.splitlines() if ln.startswith(PREFIX)]
    rows = []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "figure" in row:
            rows.append(row)
    return rows


def descendants(pid: int) -> list[int]:
    """Every process under `pid`, from /proc (Linux), whatever session it runs in."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        parent = int(text.rsplit(")", 1)[1].split()[1])  # the field after the state
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def kill_tree(pid: int) -> None:
    """Kill a timed-out benchmark's process group and every process under it. The servers a benchmark
    starts (tests/crash/servers.py) run in sessions of their own, so killing the group alone left
    them serving under load through the next benchmarks."""
    groups = {pid}
    for child in descendants(pid):
        try:
            groups.add(os.getpgid(child))
        except ProcessLookupError:
            continue
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            continue


def run_one(
    path: Path, engine: str, argv: list[str], env: dict[str, str], timeout: float, logs: Path
) -> Result:
    """Run one benchmark in its own process group (its children die with it on a timeout)."""
    name = short_name(path)
    log = logs / f"{name}-{engine.lower()}.log"
    rows_file = logs / f"{name}-{engine.lower()}.rows"
    rows_file.unlink(missing_ok=True)
    env = {**env, "AUDIT_BENCH_ROWS": str(rows_file)}
    start = time.monotonic()
    problem = None
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.wait()
            code, problem = None, f"timed out after {timeout:.0f} s"
    seconds = time.monotonic() - start
    rows = read_rows(rows_file, log.read_text(encoding="utf-8", errors="replace"))
    keep = [r for r in rows if (r.get("engine") == "PostgreSQL") == (engine == "PostgreSQL")]
    if problem is None and code != 0:
        if not keep:
            problem = f"failed: exit {code}, no figure reported"
        elif all(r.get("passed") for r in keep):
            problem = f"failed: exit {code} after {len(keep)} figures"
    if problem is None and not keep:
        problem = "did not report a figure"
    elif problem and keep and problem.startswith("timed out"):
        problem += f" after {len(keep)} figures"
    return Result(name, engine, keep, problem, seconds=seconds)


def run_all(paths: Sequence[Path], args: argparse.Namespace, logs: Path) -> list[Result]:
    plan: list[tuple[Path, str]] = []
    for engine in ("SQLite", "PostgreSQL") if args.pg else ("SQLite",):
        for path in paths:
            how = HOW.get(short_name(path), How())
            if (how.sqlite if engine == "SQLite" else how.pg) is not None:
                plan.append((path, engine))
    results = []
    for i, (path, engine) in enumerate(plan, 1):
        how = HOW.get(short_name(path), How())
        quick = args.quick and bool(how.quick)
        values: dict[str, str] = {}
        print(
            f"[{i}/{len(plan)}] {path.name} on {engine}{' (quick)' if quick else ''} ...",
            file=sys.stderr,
            flush=True,
        )
        try:
            if engine == "PostgreSQL":
                values = pg_urls(args.pg, args.pg_prefix, short_name(path), how)
                if how.create_db:
                    create_databases(values)
            argv, env = command(path, how, engine, quick, values)
            result = run_one(path, engine, argv, env, args.timeout, logs)
        except Exception as exc:  # a database that cannot be made is this benchmark's failure, not the run's
            result = Result(short_name(path), engine, [], f"failed to start: {exc}")
        result.quick = quick
        done = result.problem or f"{len(result.rows)} figures"
        print(f"      {done} in {result.seconds:.0f} s", file=sys.stderr, flush=True)
        results.append(result)
    return results


def fmt(value: object, unit: str = "") -> str:
    if not isinstance(value, int | float):
        return "-"
    v = float(value)
    text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}"
    return f"{text} {unit}".strip()


HEADER = ("benchmark", "figure", "product", "baseline", "ratio", "target", "pass/fail", "engine", "dataset")


def table_rows(results: Sequence[Result]) -> list[tuple[str, ...]]:
    """Every figure, then a FAIL row for each run that went wrong, in the order they ran."""
    out: list[tuple[str, ...]] = []
    for res in results:
        dataset = "smaller (--quick)" if res.quick else "full"
        for row in res.rows:
            unit = str(row.get("unit") or "")
            ratio = row.get("ratio")
            out.append(
                (
                    res.bench,
                    str(row.get("figure")),
                    fmt(row.get("product"), unit),
                    fmt(row.get("baseline"), unit),
                    f"{ratio:.2f}x" if isinstance(ratio, int | float) else "-",
                    str(row.get("target") or "-"),
                    "PASS" if row.get("passed") else "FAIL",
                    str(row.get("engine") or res.engine),
                    dataset,
                )
            )
        if res.problem:
            out.append((res.bench, res.problem, "-", "-", "-", "-", "FAIL", res.engine, dataset))
    return out


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Benchmarks (tests/perf/run_all.py)", show_lines=False)
    for name in HEADER:
        table.add_column(name, justify="right" if name in ("product", "baseline", "ratio") else "left")
    for row in rows:
        style = "red" if row[6] == "FAIL" else None
        table.add_row(*row, style=style)
    Console(width=None if sys.stdout.isatty() else 220).print(table)


def markdown(rows: Sequence[tuple[str, ...]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--pg", help="PostgreSQL server URL (a maintenance database, or none) to run each on too"
    )
    parser.add_argument("--pg-prefix", default="bench_", help="own databases are named <prefix><name>")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NAME", help="do not run these benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller datasets where a benchmark takes them")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per benchmark and engine")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--logs", type=Path, metavar="DIR", help="keep each run's output here")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even when a figure fails")
    parser.add_argument(
        "--bench-dir", type=Path, default=HERE, help=argparse.SUPPRESS
    )  # for the runner's test
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    paths = discover(args.bench_dir, args.only, args.skip)
    logs = args.logs or Path(tempfile.mkdtemp(prefix="audit-bench-logs-"))
    logs.mkdir(parents=True, exist_ok=True)
    rows = table_rows(run_all(paths, args, logs))
    print_table(rows)
    if args.markdown:
        args.markdown.write_text(markdown(rows), encoding="utf-8")
    failed = sum(1 for r in rows if r[6] == "FAIL")
    print(f"{len(rows)} rows, {failed} FAIL; each run's output is in {logs}")
    return 1 if failed and not args.no_fail else 0


if __name__ == "__main__":
    raise SystemExit(main())
