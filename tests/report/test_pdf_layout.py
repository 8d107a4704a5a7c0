"""Report PDFs for people: headings whole words, names not ids, NPIs unbroken, charts drawn.

Read back with an independent PDF text extractor (pypdf)."""

from __future__ import annotations

import io
import re

import pytest
from fastapi.testclient import TestClient
from fpdf import FPDF
from pypdf import PdfReader

from audit.report.pdf import column_widths
from audit.report.queries import REPORTS
from audit.report.render import _redundant_id, heading
from tests.conftest import People
from tests.report.scenario import Org, build

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def org(client: TestClient, people: People) -> Org:
    return build(client, people)


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_every_report_pdf_has_whole_word_headings_and_no_full_ids(org: Org, name: str) -> None:
    body = org.report("C", name).json()
    columns = body["columns"] if body["rows"] else []  # an empty table prints "No rows." only
    text = pdf_text(org.report("C", name, format="pdf").content)
    tokens = set(text.split())
    for column in columns:
        if _redundant_id(column, columns):
            continue
        for word in heading(column).split():
            assert word in tokens, f"{name}: heading word {word!r} of {column!r} is broken or missing"
    assert not UUID.search(text), f"{name}: a full UUID is printed"


def test_names_and_npis_are_printed_whole(org: Org) -> None:
    text = pdf_text(org.report("C", "provider-responsibility", format="pdf").content)
    assert "Dr Ada Okafor" in text and "Dr Ben Stone" in text
    assert {"1987654328", "1234567893"} <= set(text.split())
    changes = pdf_text(org.report("C", "changes-after-attestation", format="pdf").content)
    assert "Wei Chen" in changes and "Maria Lopez" in changes and "V-E1" in changes


def test_report_pdfs_open_with_their_charts(org: Org) -> None:
    aging = pdf_text(org.report("C", "unattested-aging", format="pdf").content)
    assert "Unattested encounters by days since date of service" in aging
    assert "Days since date of service" in aging  # the chart's axis title, drawn from the SVG
    em = pdf_text(org.report("C", "em-distribution", format="pdf").content)
    assert "E/M levels (established patients): Dr Ada Okafor vs peers" in em
    denied = pdf_text(org.report("C", "denied-attempts", format="pdf").content)
    assert "Denied and failed attempts per week" in denied
    changes = org.report("C", "changes-after-attestation", format="pdf").content
    assert "Changes after attestation per week" in pdf_text(changes)


def test_column_widths_keep_heading_words_and_short_values_whole() -> None:
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.add_page()
    titles = ["Date of service", "NPI", "Provider", "Reason"]
    rows = [["2026-01-05", "1987654328", "Dr Ada Okafor", "documentation supports level 5 " * 8]] * 3
    widths = column_widths(pdf, titles, rows, 8)
    assert widths is not None and sum(widths) == pytest.approx(pdf.epw)
    pdf.set_font("Helvetica", "B", 8)
    assert widths[0] > pdf.get_string_width("service")
    pdf.set_font("Helvetica", size=8)
    assert widths[1] > pdf.get_string_width("1987654328") + 2
    assert widths[3] == max(widths)  # the long text takes the room left


def test_too_many_columns_for_the_page_gives_none() -> None:
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.add_page()
    titles = [f"Extraordinarily{i}" for i in range(20)]
    assert column_widths(pdf, titles, [["x"] * 20], 9) is None
