"""JSON, CSV (RFC 4180) and PDF renderings of a report."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

from audit.report.pdf import render_table_pdf
from audit.report.schemas import Report, Section

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


def _records(section: Section) -> list[dict[str, Any]]:
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


def to_csv(section: Section) -> str:
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
    """A document for people: headings in words, and raw ids left out where a name column already
    identifies the row (CSV and JSON keep every column)."""
    shown = {heading(k): text(", ".join(v) if isinstance(v, list) else v) for k, v in filters.items()}
    sections = []
    for s in report.sections:
        keep = [i for i, c in enumerate(s.columns) if not _redundant_id(c, s.columns)]
        rows = [[text(row[i]) for i in keep] for row in s.rows[:PDF_MAX_ROWS]]
        title = s.heading or report.title
        if len(s.rows) > PDF_MAX_ROWS:
            title += f" (first {PDF_MAX_ROWS:,} of {len(s.rows):,} rows; the CSV has every row)"
        sections.append((title, [heading(s.columns[i]) for i in keep], rows))
    return render_table_pdf(report.title, shown, generated_at, sections)


def heading(column: str) -> str:
    """`attested_late` -> `Attested late`; `npi` -> `NPI`."""
    words = column.replace("_", " ").strip()
    return words.upper() if words in {"npi", "seq", "id"} else words[:1].upper() + words[1:]


def _redundant_id(column: str, columns: list[str]) -> bool:
    """`provider_id` beside `provider`, or `entered_by_id` beside `entered_by`."""
    return column.endswith("_id") and column.removesuffix("_id") in columns
