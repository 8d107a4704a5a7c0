"""Tabular PDF reports with fpdf2 (pure Python).

Core PDF fonts only cover Latin-1, and fpdf2 bundles no Unicode font, so text is sanitised: common
typographic characters get ASCII stand-ins, accented letters outside Latin-1 lose their accents
(NFKD), anything else becomes ``?``. Long cells are truncated with ``...``.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from fpdf import FPDF
from fpdf.fonts import FontFace

MAX_CELL_CHARS = 240
_REPLACEMENTS = {
    "\u2014": "-",
    "\u2013": "-",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2026": "...",
    "\u2022": "*",
    "\u2192": "->",
    "\u2264": "<=",
    "\u2265": ">=",
    "\u2713": "v",
    "\u00a0": " ",
}


def latin1(text: str) -> str:
    """Best-effort Latin-1 rendering of ``text`` for the core fonts."""
    out = []
    for ch in text:
        if ch in _REPLACEMENTS:
            out.append(_REPLACEMENTS[ch])
        elif ord(ch) < 256:
            out.append(ch if ch.isprintable() or ch in "\n" else " ")
        else:
            base = unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode("latin-1")
            out.append(base if base.strip() else "?")
    return "".join(out)


def _cell(text: str) -> str:
    text = latin1(text)
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 3] + "..."


class _Report(FPDF):
    title_text = ""
    generated = ""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.set_text_color(110)
        self.cell(0, 6, f"{self.title_text} - generated {self.generated}", align="L")
        self.set_x(self.l_margin)
        self.cell(0, 6, f"Page {self.page_no()} of {{nb}}", align="R")


@dataclass(frozen=True)
class PdfColumn:
    """A column heading; `small` columns (ids) are set in a smaller grey type."""

    title: str
    small: bool = False


Section = tuple[str, Sequence["str | PdfColumn"], list[list[str]]]
CELL_PADDING = 1.0  # mm, each side
MAX_NATURAL = 70.0  # mm: a wide text column gets at most this before it wraps
ATOMIC_CHARS = 18  # a column whose values are all this short never wraps (dates, NPIs, codes, short ids)
CHART_WIDTH = 170.0  # mm


def render_table_pdf(
    title: str,
    filters: dict[str, str],
    generated_at: datetime,
    sections: list[Section],
    *,
    charts: Sequence[str] = (),
    note: str = "",
) -> bytes:
    """A report: title, filters, an optional note, its charts (SVG), then one table per
    (heading, columns, rows) section.

    Landscape when any table has more than 6 columns; header rows repeat on every page. Column widths
    come from the measured text: a heading never breaks inside a word and short values (dates, NPIs,
    codes, ids) never wrap.
    """
    widest = max((len(columns) for _, columns, _ in sections), default=0)
    pdf = _Report(orientation="L" if widest > 6 else "P", unit="mm", format="A4")
    pdf.title_text = latin1(title)
    when = generated_at if generated_at.tzinfo else generated_at.replace(tzinfo=UTC)
    pdf.generated = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    pdf.set_title(latin1(title))
    pdf.set_creator("coding-audit")
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 8, latin1(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    pdf.set_text_color(80)
    pdf.cell(0, 5, f"Generated {pdf.generated}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0)
    if filters:
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(0, 6, "Filters", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=9)
        for key, value in filters.items():
            pdf.multi_cell(0, 5, f"{latin1(key)}: {latin1(value) or '-'}", new_x="LMARGIN", new_y="NEXT")
    if note:
        pdf.set_font("Helvetica", "I", 8)
        pdf.multi_cell(0, 4.5, latin1(note), new_x="LMARGIN", new_y="NEXT")
    for svg in charts:
        _chart(pdf, svg)
    for heading, columns, rows in sections:
        _table(pdf, heading, [c if isinstance(c, PdfColumn) else PdfColumn(c) for c in columns], rows)
    return bytes(pdf.output())


def _chart(pdf: FPDF, svg: str) -> None:
    width = min(CHART_WIDTH, pdf.epw)
    height = width * _aspect(svg)
    if pdf.get_y() + height > pdf.page_break_trigger:
        pdf.add_page()
    pdf.ln(3)
    pdf.image(io.BytesIO(svg.encode()), x=pdf.l_margin, w=width, h=height)
    pdf.set_y(pdf.get_y())


def _aspect(svg: str) -> float:
    match = re.search(r'viewBox="0 0 ([0-9.]+) ([0-9.]+)"', svg)
    return float(match.group(2)) / float(match.group(1)) if match else 0.45


def _table(pdf: FPDF, heading: str, columns: list[PdfColumn], rows: list[list[str]]) -> None:
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.multi_cell(0, 7, latin1(heading), new_x="LMARGIN", new_y="NEXT")
    if not rows:
        pdf.set_font("Helvetica", "I", 9)
        pdf.cell(0, 6, "No rows.", new_x="LMARGIN", new_y="NEXT")
        return
    cells = [[_cell(str(r[i])) if i < len(r) else "" for i in range(len(columns))] for r in rows]
    titles = [_cell(c.title) for c in columns]
    size = 9.0 if len(columns) <= 6 else 8.0
    widths = column_widths(pdf, titles, cells, size)
    while widths is None and size > 5.5:
        size -= 0.5
        widths = column_widths(pdf, titles, cells, size)
    pdf.set_font("Helvetica", size=size)
    small = FontFace(size_pt=size - 1.5, color=(90, 90, 90))
    with pdf.table(
        col_widths=tuple(widths or [pdf.epw / len(columns)] * len(columns)),
        width=pdf.epw,
        headings_style=FontFace(emphasis="BOLD", fill_color=(225, 230, 240)),
        repeat_headings=1,
        line_height=pdf.font_size * 1.5,
        padding=(0.6, CELL_PADDING),
        cell_fill_color=(246, 247, 250),
        cell_fill_mode="ROWS",
        text_align="LEFT",
    ) as table:
        header = table.row()
        for title in titles:
            header.cell(title)
        for values in cells:
            row = table.row()
            for column, value in zip(columns, values, strict=True):
                row.cell(value, style=small if column.small else None)


def column_widths(pdf: FPDF, titles: list[str], rows: list[list[str]], size: float) -> list[float] | None:
    """Widths (mm) summing to the page width, or None when the columns cannot fit at this size.

    Each column needs at least its longest heading word (bold) and, when all its values are short, its
    longest value; the space left goes to the columns whose text would otherwise wrap."""
    sample = rows[:200]
    pad = 2 * CELL_PADDING + 0.6
    minimum, natural = [], []
    for i, title in enumerate(titles):
        pdf.set_font("Helvetica", "B", size)
        head_word = max((pdf.get_string_width(w) for w in title.split()), default=0.0)
        head_full = pdf.get_string_width(title)
        pdf.set_font("Helvetica", size=size)
        values = [r[i] for r in sample]
        longest = max((pdf.get_string_width(v) for v in values), default=0.0)
        atomic = all(len(v) <= ATOMIC_CHARS for v in values)
        word = max((pdf.get_string_width(w) for v in values for w in v.split()), default=0.0)
        need = max(head_word, longest if atomic else min(word, MAX_NATURAL / 2))
        minimum.append(need + pad)
        natural.append(max(need, min(max(longest, head_full), MAX_NATURAL)) + pad)
    room = pdf.epw
    if sum(minimum) > room:
        return None
    if sum(natural) <= room:
        scale = room / sum(natural)
        return [w * scale for w in natural]
    grow = [n - m for n, m in zip(natural, minimum, strict=True)]
    share = (room - sum(minimum)) / sum(grow)
    return [m + g * share for m, g in zip(minimum, grow, strict=True)]
