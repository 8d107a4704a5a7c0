"""PDF reports: valid, paginated, readable."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from audit.report.pdf import latin1, render_table_pdf

WHEN = datetime(2026, 5, 9, 14, 30, tzinfo=UTC)
COLUMNS = ["Seq", "Time", "Actor", "On behalf of", "Type", "Encounter", "Outcome", "Reason"]


def _rows(n: int) -> list[list[str]]:
    return [
        [
            str(i),
            f"2026-05-0{1 + i % 9}T08:{i % 60:02d}:00Z",
            f"coder-{i % 7}",
            "Dr. Müller" if i % 2 else "",
            "code.line.added",
            f"enc-{i // 3:05d}",
            "allowed" if i % 5 else "denied",
            "Added per op note — laterality “left” ✓ 日本" + (" long text" * 30 if i % 50 == 0 else ""),
        ]
        for i in range(n)
    ]


def _pdf(n: int = 200) -> bytes:
    return render_table_pdf(
        "Coding activity by provider",
        {"From": "2026-05-01", "To": "2026-05-09", "Providers": "Dr. Müller, Dr. Øster"},
        WHEN,
        [
            ("Events", COLUMNS, _rows(n)),
            ("Summary", ["Outcome", "Count"], [["allowed", "160"], ["denied", "40"]]),
        ],
    )


def test_valid_multi_page_pdf() -> None:
    data = _pdf()
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    counts = [int(c) for c in re.findall(rb"/Count (\d+)", data)]
    assert counts and max(counts) > 1
    assert data.count(b"/Type /Page\n") > 1


def test_small_and_empty_sections() -> None:
    data = render_table_pdf("Empty", {}, WHEN, [("Nothing", ["A", "B"], [])])
    assert data.startswith(b"%PDF-")


def test_latin1_sanitising() -> None:
    assert latin1("Müller — “ok” … ✓") == 'Müller - "ok" ... v'
    assert latin1("日本") == "??"
    assert latin1("Dvořák") == "Dvorák"
    assert latin1("Łódź") == "?ódz"


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) not installed")
def test_first_page_renders(tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(_pdf())
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")], check=True
    )
    pngs = list(tmp_path.glob("page*.png"))
    assert pngs and pngs[0].read_bytes().startswith(b"\x89PNG")
    if shutil.which("pdftotext"):
        text = subprocess.run(
            ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "Page 1 of" in text and "Coding activity by provider" in text and "Dr. Müller" in text


def test_long_tables_are_cut_with_a_note_pointing_to_the_csv(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from audit.report import render
    from audit.report.schemas import Report, Section

    monkeypatch.setattr(render, "PDF_MAX_ROWS", 5)
    rows = [[f"p{i}", i] for i in range(12)]
    report = Report("demo", "Demo report", [Section("main", "Rows", ["provider", "lines"], rows)])
    pdf = render.to_pdf(report, {}, datetime(2026, 1, 1, tzinfo=UTC))
    assert pdf.startswith(b"%PDF")
    assert render.to_csv(report.main).count("\r\n") == 13  # header + every row
