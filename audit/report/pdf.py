"""Tabular PDF reports with fpdf2 (pure Python).

Core PDF fonts only cover Latin-1, and fpdf2 bundles no Unicode font, so text is sanitised: common
typographic characters get ASCII stand-ins, accented letters outside Latin-1 lose their accents
(NFKD), anything else becomes ``?``. Long cells are truncated with ``...``.
"""

from __future__ import annotations

import unicodedata
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


def render_table_pdf(
    title: str,
    filters: dict[str, str],
    generated_at: datetime,
    sections: list[tuple[str, list[str], list[list[str]]]],
) -> bytes:
    """A report: title, filters, generation time, then one table per (heading, columns, rows) section.

    Landscape when any table has more than 6 columns; header rows repeat on every page.
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
    heading_style = FontFace(emphasis="BOLD", fill_color=(225, 230, 240))
    for heading, columns, rows in sections:
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 12)
        pdf.multi_cell(0, 7, latin1(heading), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=8 if len(columns) > 6 else 9)
        if not rows:
            pdf.set_font("Helvetica", "I", 9)
            pdf.cell(0, 6, "No rows.", new_x="LMARGIN", new_y="NEXT")
            continue
        sample = [columns, *rows[:100]]
        widths = tuple(
            min(max(len(str(r[i])) if i < len(r) else 0 for r in sample), 40) + 4 for i in range(len(columns))
        )
        with pdf.table(
            col_widths=widths,
            headings_style=heading_style,
            repeat_headings=1,
            line_height=pdf.font_size * 1.5,
            cell_fill_color=(246, 247, 250),
            cell_fill_mode="ROWS",
            text_align="LEFT",
        ) as table:
            header = table.row()
            for column in columns:
                header.cell(_cell(column))
            for values in rows:
                row = table.row()
                for i in range(len(columns)):
                    row.cell(_cell(str(values[i])) if i < len(values) else "")
    return bytes(pdf.output())
