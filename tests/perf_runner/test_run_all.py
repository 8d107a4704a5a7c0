"""tests/perf/run_all.py against fake benchmarks: real subprocesses that report, fail, hang or say nothing.

The benchmarks themselves are timed and stay out of the default run (tests/perf is ignored); the runner's
collection, its FAIL rows, its table and its exit status are checked here, fast."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.perf import run_all

ROOT = Path(__file__).resolve().parents[2]


HEAD = f"import sys, time\nsys.path.insert(0, {str(ROOT)!r})\nfrom tests.perf.table import report\n"
FAKES = {
    # through the table's report(): the row reaches the runner's AUDIT_BENCH_ROWS file
    "bench_good.py": HEAD
    + """
report("good figure", product=250.0, unit="events/s", baseline=100.0, target=">= 200 events/s (issue 0)",
       passed=True, engine="SQLite")
""",
    "bench_bad.py": HEAD
    + """
report("bad figure", product=2.0, unit="s", baseline=1.0, ratio=0.5, target="< 1 s (issue 0)",
       passed=False, engine="SQLite")
raise SystemExit(1)
""",
    # BENCH lines on stdout only (no rows file): the runner reads them from the output
    "bench_stdout.py": """
import json
print("some readable line")
print("BENCH " + json.dumps({"figure": "stdout figure", "product": 3.0, "baseline": None, "unit": "MB",
      "ratio": None, "target": "< 5 MB", "passed": True, "engine": "no DB"}))
""",
    "bench_slow.py": HEAD
    + """
report("before the hang", product=1.0, unit="s", target="< 2 s", passed=True, engine="SQLite")
time.sleep(120)
""",
    "bench_silent.py": "pass\n",
    "bench_crash.py": "raise SystemExit(3)\n",
    "not_a_bench.py": "raise SystemExit('the runner must not run this')\n",
}


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    for name, body in FAKES.items():
        (tmp_path / name).write_text(textwrap.dedent(body), encoding="utf-8")
    return tmp_path


def by_figure(markdown: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split(" | ") for line in markdown.splitlines()[2:]]
    return {cells[1].strip(): [c.strip() for c in cells] for cells in rows}


def test_one_table_with_a_fail_row_for_each_broken_run(
    bench_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "table.md"
    code = run_all.main(
        [
            "--bench-dir",
            str(bench_dir),
            "--timeout",
            "6",
            "--markdown",
            str(out),
            "--logs",
            str(tmp_path / "logs"),
        ]
    )
    assert code == 1
    rows = by_figure(out.read_text(encoding="utf-8"))
    header = out.read_text(encoding="utf-8").splitlines()[0]
    for column in ("figure", "product", "baseline", "ratio", "target", "pass/fail", "engine"):
        assert f" {column} " in header
    assert rows["good figure"][2:8] == [
        "250 events/s",
        "100 events/s",
        "2.50x",
        ">= 200 events/s (issue 0)",
        "PASS",
        "SQLite",
    ]
    assert rows["bad figure"][2:7] == ["2.00 s", "1.00 s", "0.50x", "< 1 s (issue 0)", "FAIL"]
    assert rows["stdout figure"][2:8] == ["3.00 MB", "-", "-", "< 5 MB", "PASS", "no DB"]
    assert rows["before the hang"][6] == "PASS"
    assert rows["timed out after 6 s after 1 figures"][0] == "slow"
    assert rows["did not report a figure"][0] == "silent"
    assert rows["failed: exit 3, no figure reported"][0] == "crash"
    assert all(
        rows[f][6] == "FAIL"
        for f in (
            "timed out after 6 s after 1 figures",
            "did not report a figure",
            "failed: exit 3, no figure reported",
        )
    )
    assert len(rows) == 7  # bad's exit 1 is explained by its failing figure; not_a_bench.py never ran
    printed = capsys.readouterr().out
    assert "good figure" in printed and "timed out after 6 s" in printed and "7 rows, 4 FAIL" in printed


def test_exit_status_zero_when_every_figure_passes_or_with_no_fail(bench_dir: Path, tmp_path: Path) -> None:
    assert (
        run_all.main(
            ["--bench-dir", str(bench_dir), "--only", "good", "bench_stdout.py", "--logs", str(tmp_path)]
        )
        == 0
    )
    assert run_all.main(["--bench-dir", str(bench_dir), "--only", "bad", "--logs", str(tmp_path)]) == 1
    assert (
        run_all.main(["--bench-dir", str(bench_dir), "--only", "bad", "--no-fail", "--logs", str(tmp_path)])
        == 0
    )


def test_only_and_skip_name_benchmarks_that_exist(bench_dir: Path) -> None:
    names = [p.name for p in run_all.discover(bench_dir, [], ["slow", "bench_crash.py"])]
    assert names == ["bench_bad.py", "bench_good.py", "bench_silent.py", "bench_stdout.py"]
    with pytest.raises(SystemExit, match="no such benchmark"):
        run_all.discover(bench_dir, ["nope"], [])


def test_each_benchmark_gets_its_own_postgresql_database() -> None:
    how = run_all.HOW["verify"]
    values = run_all.pg_urls("postgresql://postgres@127.0.0.1:5432/", "benchtable_", "verify", how)
    assert values["url"] == "postgresql://postgres@127.0.0.1:5432/benchtable_verify"
    assert values["url_large"] == "postgresql://postgres@127.0.0.1:5432/benchtable_verify_large"
    assert values["admin"] == "postgresql://postgres@127.0.0.1:5432/postgres"
    argv, env = run_all.command(Path("bench_new.py"), run_all.How(), "PostgreSQL", False, values)
    assert argv[-2:] == ["--pg", values["url"]] and env["AUDIT_BENCH_DATABASE_URL"] == values["url"]
    argv, env = run_all.command(
        Path("bench_new.py"), run_all.How(quick=("--events", "9")), "SQLite", True, values
    )
    assert argv[-2:] == ["--events", "9"] and "AUDIT_BENCH_DATABASE_URL" not in env
    assert sys.executable == argv[0]
