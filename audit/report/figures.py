"""The key figures of the reports as charts: what each chart shows, computed from a report's rows or
from per-day counts (the dashboard's SQL aggregates). Pure: no session, no clock."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from audit.report.charts import Chart, Series
from audit.report.schemas import Report

MAX_WEEKS = 52
MAX_EM_CHARTS = 12
AGING_LABELS = ("0-7", "8-14", "15-30", "31-60", "61+")


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def week_range(first: date, last: date) -> list[date]:
    """Mondays from the week of `first` to the week of `last`, at most the last MAX_WEEKS."""
    start, end = monday(first), monday(last)
    weeks = max(0, (end - start).days // 7) + 1
    start = max(start, end - timedelta(weeks=MAX_WEEKS - 1))
    return [start + timedelta(weeks=i) for i in range(min(weeks, MAX_WEEKS))]


def by_week(per_day: Mapping[date, float], weeks: list[date]) -> tuple[float, ...]:
    totals: dict[date, float] = defaultdict(float)
    for day, n in per_day.items():
        totals[monday(day)] += n
    return tuple(totals.get(w, 0) for w in weeks)


def week_label(week: date) -> str:
    return week.strftime("%b %d")


def _span(days: Iterable[date], until: date | None) -> tuple[date, date] | None:
    days = list(days)
    if not days and until is None:
        return None
    last = until or max(days)
    first = min([*days, last])
    return first, last


def changes_per_week(per_day: Mapping[date, float], until: date | None = None) -> Chart:
    span = _span(per_day, until)
    weeks = week_range(*span) if span else []
    return Chart(
        "Changes after attestation per week",
        tuple(week_label(w) for w in weeks),
        (Series("Changes", by_week(per_day, weeks)),),
        x_label="Week starting",
    )


def attempts_per_week(
    denied: Mapping[date, float], failed: Mapping[date, float], until: date | None = None
) -> Chart:
    span = _span([*denied, *failed], until)
    weeks = week_range(*span) if span else []
    return Chart(
        "Denied and failed attempts per week",
        tuple(week_label(w) for w in weeks),
        (Series("Denied", by_week(denied, weeks)), Series("Failed", by_week(failed, weeks))),
        x_label="Week starting",
    )


def aging_chart(buckets: Mapping[str, float]) -> Chart:
    return Chart(
        "Unattested encounters by days since date of service",
        AGING_LABELS,
        (Series("Encounters", tuple(buckets.get(b, 0) for b in AGING_LABELS)),),
        x_label="Days since date of service",
    )


def em_chart(provider: str, family: str, shares: list[tuple[str, float, float]]) -> Chart:
    """One provider's share of each E/M level of a family beside the group's (percent)."""
    return Chart(
        f"E/M levels ({family} patients): {provider} vs peers",
        tuple(code for code, _, _ in shares),
        (Series(provider, tuple(p for _, p, _ in shares)), Series("Peers", tuple(g for _, _, g in shares))),
        unit="%",
        x_label="CPT code",
    )


# --- from a report's rows (the PDFs) -------------------------------------------------------------------


def _col(report: Report, name: str) -> int:
    return report.main.columns.index(name)


def _day(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


def charts_for(report: Report) -> list[Chart]:
    """The charts a report's PDF opens with; none for reports without a key figure."""
    make = _FROM_REPORT.get(report.name)
    return make(report) if make else []


def _changes(report: Report) -> list[Chart]:
    at = _col(report, "at")
    per_day: dict[date, float] = defaultdict(float)
    for row in report.main.rows:
        per_day[_day(row[at])] += 1
    return [changes_per_week(per_day)]


def _aging(report: Report) -> list[Chart]:
    cols = {label: _col(report, label) for label in AGING_LABELS}
    buckets = {label: float(sum(row[i] for row in report.main.rows)) for label, i in cols.items()}
    return [aging_chart(buckets)]


def _attempts(report: Report) -> list[Chart]:
    at, outcome, attempts = _col(report, "at"), _col(report, "outcome"), _col(report, "attempts")
    denied: dict[date, float] = defaultdict(float)
    failed: dict[date, float] = defaultdict(float)
    for row in report.main.rows:
        (failed if row[outcome] == "failed" else denied)[_day(row[at])] += row[attempts]
    return [attempts_per_week(denied, failed)]


def _em(report: Report) -> list[Chart]:
    pid, name, fam, code = (_col(report, c) for c in ("provider_id", "provider", "family", "code"))
    mine, group = _col(report, "provider_share_pct"), _col(report, "group_share_pct")
    grouped: dict[tuple[str, str, str], list[tuple[str, float, float]]] = {}
    for row in report.main.rows:
        grouped.setdefault((row[pid], row[name], row[fam]), []).append(
            (row[code], float(row[mine]), float(row[group]))
        )
    return [em_chart(n, f, shares) for (_, n, f), shares in list(grouped.items())[:MAX_EM_CHARTS]]


_FROM_REPORT = {
    "changes-after-attestation": _changes,
    "unattested-aging": _aging,
    "denied-attempts": _attempts,
    "em-distribution": _em,
}
