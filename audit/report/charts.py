"""Bar charts as SVG strings, drawn on the server: no JavaScript, so they print, work offline and go
into the PDFs (fpdf2 renders SVG).

Pure functions: data in, markup out. Every chart is an accessible image (`role="img"` with a
`<title>` and a `<desc>` that states the figures in words); every bar carries its own `<title>` and
`data-*` attributes with the exact value, and the value is also written as text beside the bar, so a
reader never has to estimate a height.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

# Colour-blind-safe pair (Okabe-Ito blue and vermillion), both with >= 4.5:1 contrast on white.
PALETTE = ("#0b5fa5", "#b8420f", "#2e7d32", "#6a3d9a")
WIDTH = 640
HEIGHT = 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 12, 52, 46


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Chart:
    """What a chart shows, before it is drawn."""

    title: str
    categories: tuple[str, ...]
    series: tuple[Series, ...]
    unit: str = ""  # appended to values in labels, e.g. "%"
    x_label: str = ""

    def total(self) -> float:
        return sum(sum(s.values) for s in self.series)


def number(value: float) -> str:
    """`3` for whole numbers, else one decimal: how values are written on the chart."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above `value` (the axis top); 1 for nothing."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def tick_steps(top: float) -> int:
    """How many intervals the axis gets: the first of 4, 5, 2 that puts every tick on a value written
    exactly with at most one decimal."""
    for steps in (4, 5, 2):
        if (top * 10 / steps).is_integer():
            return steps
    return 1


def for_pdf(svg: str) -> str:
    """The chart without its <title>/<desc> (fpdf2 does not draw them; the PDF states the figures in
    its table) so the embedding is quiet."""
    return re.sub(r"<(title|desc)\b[^>]*>.*?</\1>", "", svg, flags=re.S)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "chart"


def describe(chart: Chart) -> str:
    """The figures in words, for screen readers and for anyone who cannot see the bars."""
    if not chart.categories or chart.total() == 0:
        return f"{chart.title}: no data."
    parts = []
    for s in chart.series:
        pairs = ", ".join(
            f"{c} {number(v)}{chart.unit}" for c, v in zip(chart.categories, s.values, strict=True)
        )
        parts.append(f"{s.name}: {pairs}")
    return f"{chart.title}. " + "; ".join(parts) + "."


def bar_chart(chart: Chart, *, width: int = WIDTH, height: int = HEIGHT) -> str:
    """Grouped vertical bars, one group per category, one bar per series."""
    for s in chart.series:
        if len(s.values) != len(chart.categories):
            raise ValueError(
                f"series {s.name!r} has {len(s.values)} values for {len(chart.categories)} categories"
            )
    ident = slug(chart.title)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-labelledby="{ident}-t {ident}-d" class="chart" '
        f'font-family="Helvetica, Arial, sans-serif" data-chart={quoteattr(ident)}>',
        f'<title id="{ident}-t">{escape(chart.title)}</title>',
        f'<desc id="{ident}-d">{escape(describe(chart))}</desc>',
        '<rect x="0" y="0" width="100%" height="100%" fill="#ffffff"/>',
        f'<text x="{_LEFT}" y="18" font-size="14" font-weight="bold" fill="#1a1a1a">'
        f"{escape(chart.title)}</text>",
    ]
    out += _legend(chart)
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    if not chart.categories or chart.total() == 0:
        out.append(
            f'<text x="{width / 2:.1f}" y="{_TOP + plot_h / 2:.1f}" font-size="13" fill="#444444" '
            f'text-anchor="middle" class="empty">No data</text>'
        )
        out.append("</svg>")
        return "\n".join(out)
    top = nice_ceiling(max(max(s.values) for s in chart.series))
    out += _axes(top, plot_w, plot_h, chart.unit)
    out += _bars(chart, top, plot_w, plot_h)
    if chart.x_label:
        out.append(
            f'<text x="{_LEFT + plot_w / 2:.1f}" y="{height - 4}" font-size="11" fill="#333333" '
            f'text-anchor="middle">{escape(chart.x_label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _legend(chart: Chart) -> list[str]:
    if len(chart.series) < 2:
        return []
    parts, x = [], float(_LEFT)
    for i, s in enumerate(chart.series):
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x:.1f}" y="28" width="12" height="12" fill="{colour}"/>')
        parts.append(
            f'<text x="{x + 16:.1f}" y="38" font-size="11" fill="#1a1a1a" class="legend">'
            f"{escape(s.name)}</text>"
        )
        x += 28 + 6.5 * len(s.name)
    return parts


def _axes(top: float, plot_w: int, plot_h: int, unit: str) -> list[str]:
    parts = []
    steps = tick_steps(top)
    for i in range(steps + 1):
        value = top * i / steps
        y = _TOP + plot_h - plot_h * i / steps
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.2f}" x2="{_LEFT + plot_w}" y2="{y:.2f}" '
            'stroke="#d0d4da" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.2f}" font-size="10" fill="#333333" text-anchor="end" '
            f'class="tick" data-value="{number(value)}">{number(value)}{escape(unit)}</text>'
        )
    parts.append(
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_LEFT + plot_w}" y2="{_TOP + plot_h}" '
        'stroke="#333333" stroke-width="1"/>'
    )
    return parts


def _bars(chart: Chart, top: float, plot_w: int, plot_h: int) -> list[str]:
    parts = []
    n_cat, n_ser = len(chart.categories), len(chart.series)
    group_w = plot_w / n_cat
    bar_w = group_w * 0.8 / n_ser
    label_every = max(1, math.ceil(n_cat / max(1, plot_w // 46)))
    base = _TOP + plot_h
    for c, category in enumerate(chart.categories):
        x0 = _LEFT + c * group_w + group_w * 0.1
        for s_i, s in enumerate(chart.series):
            value = s.values[c]
            h = plot_h * value / top
            x = x0 + s_i * bar_w
            label = f"{s.name}, {category}: {number(value)}{chart.unit}"
            parts.append(
                f'<rect class="bar" x="{x:.2f}" y="{base - h:.2f}" width="{bar_w:.2f}" height="{h:.2f}" '
                f'fill="{PALETTE[s_i % len(PALETTE)]}" data-series={quoteattr(s.name)} '
                f'data-category={quoteattr(category)} data-value="{number(value)}">'
                f"<title>{escape(label)}</title></rect>"
            )
            if value and bar_w >= 9:
                parts.append(
                    f'<text x="{x + bar_w / 2:.2f}" y="{base - h - 3:.2f}" font-size="9" fill="#1a1a1a" '
                    f'text-anchor="middle" class="value">{number(value)}</text>'
                )
        if c % label_every == 0:
            parts.append(
                f'<text x="{_LEFT + (c + 0.5) * group_w:.2f}" y="{base + 14}" font-size="10" fill="#333333" '
                f'text-anchor="middle" class="category">{escape(category)}</text>'
            )
    return parts


def render_all(charts: Sequence[Chart]) -> list[str]:
    return [bar_chart(c) for c in charts]
