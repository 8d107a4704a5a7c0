"""JSON, CSV (RFC 4180) and PDF renderings of a report."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from audit.report.charts import bar_chart, for_pdf
from audit.report.figures import charts_for
from audit.report.schemas import Report
from audit.report.schemas import Section as ReportSection

if TYPE_CHECKING:
    from audit.report.pdf import Section

MEDIA_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}


def cell(value: Any) -> Any:
    """A JSON-ready value: instants as UTC RFC 3339 with Z, dates ISO, the rest as is."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def text(value: Any) -> str:
    value = cell(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _records(section: ReportSection) -> list[dict[str, Any]]:
    return [{c: cell(v) for c, v in zip(section.columns, row, strict=True)} for row in section.rows]


def to_json(report: Report, filters: dict[str, Any], generated_at: datetime) -> dict[str, Any]:
    body: dict[str, Any] = {
        "report": report.name,
        "filters": filters,
        "generated_at": cell(generated_at),
        "columns": report.main.columns,
        "rows": _records(report.main),
    }
    if len(report.sections) > 1:
        body["sections"] = {
            s.key: {"heading": s.heading, "columns": s.columns, "rows": _records(s)} for s in report.sections
        }
    return body


def to_csv(section: ReportSection) -> str:
    """Header row, then one row per line; CRLF line ends and minimal quoting (RFC 4180)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(section.columns)
    writer.writerows([text(v) for v in row] for row in section.rows)
    return out.getvalue()


# Laying out a PDF table costs about a millisecond a cell; past this many rows a document is neither
# readable nor quick to make, and the CSV (same report, same filters) carries every row.
PDF_MAX_ROWS = 2000


def to_pdf(report: Report, filters: dict[str, Any], generated_at: datetime) -> bytes:
    """A document for people: its key figures as charts, headings in words, names first, raw ids left
    out where a name column already identifies the row and otherwise shortened into small columns at
    the end (CSV and JSON keep every column in full).

    fpdf2 (and the fonttools it loads) is imported here, at the first PDF, not at start-up: it is a
    quarter of the service's import time and most processes never render a PDF."""
    from audit.report.pdf import PdfColumn, render_table_pdf

    shown = {heading(k): text(", ".join(v) if isinstance(v, list) else v) for k, v in filters.items()}
    sections: list[Section] = []
    shortened = False
    for s in report.sections:
        kept = [i for i, c in enumerate(s.columns) if not _redundant_id(c, s.columns)]
        kept = [i for i in kept if not is_id(s.columns[i])] + [i for i in kept if is_id(s.columns[i])]
        rows = [[pdf_text(s.columns[i], row[i]) for i in kept] for row in s.rows[:PDF_MAX_ROWS]]
        shortened = shortened or any(
            isinstance(row[i], str) and UUID.search(row[i]) for row in s.rows[:PDF_MAX_ROWS] for i in kept
        )
        title = s.heading or report.title
        if len(s.rows) > PDF_MAX_ROWS:
            title += f" (first {PDF_MAX_ROWS:,} of {len(s.rows):,} rows; the CSV has every row)"
        columns = [PdfColumn(heading(s.columns[i]), small=is_id(s.columns[i])) for i in kept]
        sections.append((title, columns, rows))
    note = (
        f"Ids are shortened to their first {SHORT_ID} characters; the CSV carries them in full."
        if shortened
        else ""
    )
    charts = [for_pdf(bar_chart(c)) for c in charts_for(report)]
    return render_table_pdf(report.title, shown, generated_at, sections, charts=charts, note=note)


SHORT_ID = 8
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_WORDS = {"npi": "NPI", "id": "id", "pct": "%", "seq": "Seq", "dos": "DOS", "em": "E/M"}


def heading(column: str) -> str:
    """`attested_late` -> `Attested late`; `npi` -> `NPI`; `provider_share_pct` -> `Provider share %`."""
    words = [_WORDS.get(w, w) for w in column.replace("_", " ").split()]
    if not words:
        return ""
    first = words[0]
    return " ".join([first if first.isupper() else first[:1].upper() + first[1:], *words[1:]])


def is_id(column: str) -> bool:
    return column == "id" or (column.endswith("_id") and column != "external_id")


def pdf_text(column: str, value: Any) -> str:
    """Instants to the minute (UTC); ids shortened; everything else as in the CSV."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return UUID.sub(lambda m: m.group(0)[:SHORT_ID], text(value))


def _redundant_id(column: str, columns: list[str]) -> bool:
    """`provider_id` beside `provider`, or `entered_by_id` beside `entered_by`."""
    return column.endswith("_id") and column.removesuffix("_id") in columns
