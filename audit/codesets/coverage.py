"""Which fiscal (or calendar) years the loaded releases cover, per system. Pure: the caller picks
the years (the CLI: the six years auditors look back over, and this one)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from audit.codesets.formats import CPT, HCPCS, ICD10CM, ICD10PCS
from audit.codesets.periods import calendar_year, icd10cm_fiscal_year
from audit.codesets.releases import CodeSetIndex, Release

FISCAL = (ICD10CM, ICD10PCS)
CALENDAR = (HCPCS, CPT)
COVERED, PARTIAL, NOT_COVERED = "covered", "partial", "not covered"


@dataclass(frozen=True)
class YearCoverage:
    system: str
    year: int
    state: str
    releases: tuple[str, ...]
    note: str = ""

    @property
    def name(self) -> str:
        return f"FY{self.year}" if self.system in FISCAL else f"CY{self.year}"


def _period(system: str, year: int) -> tuple[date, date]:
    return icd10cm_fiscal_year(year) if system in FISCAL else calendar_year(year)


def _days_covered(releases: Iterable[Release], start: date, end: date) -> int:
    spans = sorted(
        (max(start, r.effective_from), min(end, r.effective_until or end))
        for r in releases
        if r.scope is None
    )
    covered, reach = 0, start - timedelta(days=1)
    for lo, hi in spans:
        lo = max(lo, reach + timedelta(days=1))
        if hi >= lo:
            covered += (hi - lo).days + 1
            reach = hi
    return covered


def year_coverage(index: CodeSetIndex, system: str, year: int) -> YearCoverage:
    start, end = _period(system, year)
    rels = [
        r
        for r in index.releases(system)
        if r.effective_from <= end and (r.effective_until is None or r.effective_until >= start)
    ]
    days = _days_covered(rels, start, end)
    if days == (end - start).days + 1:
        state, note = COVERED, "built-in" if all(r.builtin for r in rels) else "imported"
    elif rels:
        state, note = PARTIAL, ", ".join(_fragment(r, start, end) for r in rels)
    else:
        state, note = NOT_COVERED, ""
    return YearCoverage(system, year, state, tuple(r.label for r in rels), note)


def _fragment(r: Release, start: date, end: date) -> str:
    if r.scope is not None:
        return f"codes {'/'.join(r.scope)}… only"
    lo, hi = max(start, r.effective_from), min(end, r.effective_until or end)
    return f"{lo:%b}-{hi:%b}"


def coverage(index: CodeSetIndex, system: str, years: Iterable[int]) -> list[YearCoverage]:
    return [year_coverage(index, system, y) for y in years]
