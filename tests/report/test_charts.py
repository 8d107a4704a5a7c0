"""The charts draw the data: every bar's value, label and height are read back from the SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.report import figures
from audit.report.charts import Chart, Series, bar_chart, nice_ceiling
from audit.report.schemas import Report, Section

NS = {"s": "http://www.w3.org/2000/svg"}


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def bars(root: ET.Element) -> list[ET.Element]:
    return root.findall(".//s:rect[@class='bar']", NS)


def drawn(root: ET.Element) -> dict[tuple[str, str], float]:
    """(series, category) -> the value the bar's height stands for, measured on the axis."""
    ticks = [float(t.get("data-value", "0")) for t in root.findall(".//s:text[@class='tick']", NS)]
    baseline = max(float(line.get("y1", "0")) for line in root.findall(".//s:line", NS))
    top_line = min(float(line.get("y1", "0")) for line in root.findall(".//s:line", NS))
    per_unit = (baseline - top_line) / max(ticks)
    out = {}
    for rect in bars(root):
        assert float(rect.get("y", "0")) + float(rect.get("height", "0")) == pytest.approx(baseline, abs=0.02)
        out[(rect.get("data-series", ""), rect.get("data-category", ""))] = (
            float(rect.get("height", "0")) / per_unit
        )
    return out


def test_every_bar_is_as_tall_as_its_value_and_says_it() -> None:
    chart = Chart(
        "Attempts", ("Jan 05", "Jan 12", "Jan 19"), (Series("Denied", (3, 0, 7)), Series("Failed", (1, 4, 2)))
    )
    root = parse(bar_chart(chart))
    heights = drawn(root)
    for s in chart.series:
        for cat, value in zip(chart.categories, s.values, strict=True):
            assert heights[(s.name, cat)] == pytest.approx(value, abs=0.01)
    titles = [r.find("s:title", NS).text for r in bars(root)]  # type: ignore[union-attr]
    assert "Denied, Jan 19: 7" in titles and "Failed, Jan 12: 4" in titles
    values = [t.text for t in root.findall(".//s:text[@class='value']", NS)]
    assert sorted(values, key=int) == ["1", "2", "3", "4", "7"]  # the zero bar has no label
    legend = [t.text for t in root.findall(".//s:text[@class='legend']", NS)]
    assert legend == ["Denied", "Failed"]


def test_accessible_name_and_description_state_the_figures() -> None:
    chart = Chart("Aging", ("0-7", "8-14"), (Series("Encounters", (5, 2)),))
    root = parse(bar_chart(chart))
    assert root.get("role") == "img"
    title, desc = root.find("s:title", NS), root.find("s:desc", NS)
    assert title is not None and title.text == "Aging"
    assert desc is not None and desc.text == "Aging. Encounters: 0-7 5, 8-14 2."
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"


def test_empty_chart_says_no_data_and_draws_no_bars() -> None:
    root = parse(bar_chart(Chart("Nothing", ("a", "b"), (Series("x", (0, 0)),))))
    assert bars(root) == []
    assert root.find(".//s:text[@class='empty']", NS).text == "No data"  # type: ignore[union-attr]


def test_hostile_labels_are_escaped() -> None:
    chart = Chart("<script>", ('"><b>', "&"), (Series("a<b", (1, 2)),))
    root = parse(bar_chart(chart))  # well-formed XML, so nothing broke out
    assert {r.get("data-category") for r in bars(root)} == {'"><b>', "&"}


def test_mismatched_series_is_refused() -> None:
    with pytest.raises(ValueError):
        bar_chart(Chart("x", ("a", "b"), (Series("s", (1,)),)))


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=30))
def test_heights_match_any_data(values: list[int]) -> None:
    cats = tuple(f"c{i}" for i in range(len(values)))
    root = parse(bar_chart(Chart("Any", cats, (Series("v", tuple(values)),))))
    heights = drawn(root) if any(values) else {}
    for cat, value in zip(cats, values, strict=True):
        assert heights.get(("v", cat), 0) == pytest.approx(value, rel=1e-3, abs=max(values) * 1e-4)


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (24, 25), (26, 50), (0.3, 0.5)]
)
def test_nice_ceiling(value: float, top: float) -> None:
    assert nice_ceiling(value) == top


def test_weeks_start_on_monday_and_sum_the_days() -> None:
    per_day = {date(2026, 1, 5): 2, date(2026, 1, 11): 1, date(2026, 1, 12): 4, date(2026, 1, 26): 1}
    chart = figures.changes_per_week(per_day)
    assert chart.categories == ("Jan 05", "Jan 12", "Jan 19", "Jan 26")
    assert chart.series[0].values == (3, 4, 0, 1)


def test_charts_from_report_rows() -> None:
    at = datetime(2026, 3, 4, 10)
    denied = Report(
        "denied-attempts",
        "Denied attempts",
        [
            Section(
                "denied",
                "",
                ["at", "outcome", "attempts"],
                [[at, "denied", 1], [at, "failed", 5], [at, "denied", 1]],
            )
        ],
    )
    (chart,) = figures.charts_for(denied)
    assert [s.values for s in chart.series] == [(2,), (5,)]
    em = Report(
        "em-distribution",
        "E/M",
        [
            Section(
                "em",
                "",
                ["provider_id", "provider", "family", "code", "provider_share_pct", "group_share_pct"],
                [
                    ["p1", "Dr A", "new", "99204", "75.0", "40.0"],
                    ["p1", "Dr A", "new", "99205", "25.0", "60.0"],
                ],
            )
        ],
    )
    (chart,) = figures.charts_for(em)
    assert chart.categories == ("99204", "99205")
    assert [s.values for s in chart.series] == [(75.0, 25.0), (40.0, 60.0)]
    heights = drawn(parse(bar_chart(chart)))
    assert heights[("Peers", "99205")] == pytest.approx(60.0, abs=0.01)
