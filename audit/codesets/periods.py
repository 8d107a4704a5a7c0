"""When a release is in force, and which release a date of service needs. Pure: no clock, no I/O.

ICD-10-CM and ICD-10-PCS change on 1 October (fiscal year N runs 1 October N-1 to 30 September N),
with April (and, in 2021, January) updates. HCPCS Level II is published annually with quarterly
updates; CPT is annual. NCCI PTP and MUE tables are quarterly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from audit.codesets.formats import CPT, HCPCS, ICD10CM, ICD10PCS

NCCI_PTP = "NCCI-PTP"
MUE = "MUE"

# Where CMS (or the AMA) publishes each importable file; also shown in findings and the README.
SOURCES: dict[str, str] = {
    ICD10CM: "https://www.cms.gov/medicare/coding-billing/icd-10-codes",
    ICD10PCS: "https://www.cms.gov/medicare/coding-billing/icd-10-codes",
    HCPCS: "https://www.cms.gov/medicare/coding-billing/healthcare-common-procedure-system/quarterly-update",
    CPT: "https://www.ama-assn.org/practice-management/cpt (licensed: your organisation's CPT data file)",
    NCCI_PTP: "https://www.cms.gov/medicare/coding-billing/national-correct-coding-initiative-ncci-edits/"
    "medicare-ncci-procedure-procedure-ptp-edits",
    MUE: "https://www.cms.gov/medicare/coding-billing/national-correct-coding-initiative-ncci-edits/"
    "medicare-ncci-medically-unlikely-edits",
}


def icd10cm_fiscal_year(fy: int) -> tuple[date, date]:
    """ICD-10-CM/PCS fiscal year N runs 1 October N-1 to 30 September N."""
    return date(fy - 1, 10, 1), date(fy, 9, 30)


def fiscal_year_of(dos: date) -> int:
    return dos.year + 1 if dos.month >= 10 else dos.year


def quarter_period(year: int, quarter: int) -> tuple[date, date]:
    """Calendar quarter 1-4 (NCCI and MUE versions)."""
    if not 1 <= quarter <= 4:
        raise ValueError(f"quarter must be 1-4, got {quarter}")
    start = date(year, 3 * quarter - 2, 1)
    end = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return start, end - timedelta(days=1)


def calendar_year(year: int) -> tuple[date, date]:
    """CPT releases are annual, effective 1 January."""
    return date(year, 1, 1), date(year, 12, 31)


def hcpcs_period(year: int, quarter: int) -> tuple[date, date]:
    """A HCPCS file is in force from its quarter to the end of its calendar year: the annual
    (January) file covers the year until a quarterly file replaces it, and each quarterly file
    holds the whole year's codes so far (the index prefers the release that starts latest)."""
    start, _ = quarter_period(year, quarter)
    return start, date(year, 12, 31)


_MONTH_Q = {"JAN": 1, "APR": 2, "JUL": 3, "OCT": 4}
_Q_MONTH = {q: m for m, q in _MONTH_Q.items()}


def infer_period(system: str, filename: str) -> tuple[str, date, date] | None:
    """Guess ``(label, from, until)`` from a CMS file name; ``None`` when the name says nothing.

    ``icd10cm_order_2026.txt`` -> FY2026; ``HCPC2020_ANWEB.txt`` -> CY2020 (annual file, whole year);
    ``HCPC2020_APR_ANWEB.txt`` -> 2020-04-01 to 2020-12-31; ``ccipra-v310r0-f1.txt`` -> NCCI 31.0 =
    2025 Q1; ``MCR_MUE_PractitionerServices_Eff_04-01-2025.csv`` -> 2025 Q2; ``cpt_2025.csv`` -> CY2025.
    """
    name = Path(filename).name
    up = name.upper()
    if system in (ICD10CM, ICD10PCS):
        m = re.search(r"(20\d\d)", name)
        if not m:
            return None
        fy = int(m.group(1))
        start, end = icd10cm_fiscal_year(fy)
        if "APR" in up:
            return f"{system} FY{fy} April update", date(fy, 4, 1), end
        return f"{system} FY{fy}", start, end
    if system == HCPCS:
        m = re.search(r"HCPC(20\d\d)(?:_(JAN|APR|JUL|OCT))?", up)
        if not m:
            return None
        year, month = int(m.group(1)), m.group(2)
        start, end = hcpcs_period(year, _MONTH_Q.get(month or "JAN", 1))
        return (f"HCPCS {year} {month} quarterly update" if month else f"HCPCS {year}"), start, end
    if system == NCCI_PTP:
        m = re.search(r"V(\d\d)(\d)R\d", up)
        if not m:
            return None
        major, minor = int(m.group(1)), int(m.group(2))
        start, end = quarter_period(1994 + major, minor + 1)
        return f"NCCI PTP v{major}.{minor}", start, end
    if system == MUE:
        m = re.search(r"(\d\d)-(\d\d)-(20\d\d)", name)
        if not m:
            return None
        month, year = int(m.group(1)), int(m.group(3))
        q = (month - 1) // 3 + 1
        start, end = quarter_period(year, q)
        return f"MUE {year} Q{q}", start, end
    if system == CPT:
        m = re.search(r"(20\d\d)", name)
        if not m:
            return None
        year = int(m.group(1))
        start, end = calendar_year(year)
        return f"CPT {year}", start, end
    return None


@dataclass(frozen=True)
class Requirement:
    """The release a date of service needs, and how to load it."""

    label: str
    command: str
    source: str


_CLI_NAMES = {ICD10CM: "icd10cm", ICD10PCS: "icd10pcs", HCPCS: "hcpcs", CPT: "cpt"}


def required_release(system: str, dos: date) -> Requirement:
    """Which file to import so that ``dos`` is covered (the names CMS gives its files)."""
    if system in (ICD10CM, ICD10PCS):
        fy = fiscal_year_of(dos)
        stem = "icd10cm_order" if system == ICD10CM else "icd10pcs_order"
        label, file = f"{system} FY{fy}", f"{stem}_{fy}.txt"
    elif system == HCPCS:
        quarter = (dos.month - 1) // 3 + 1
        month = _Q_MONTH[quarter]
        label, file = f"HCPCS {dos.year} {month} quarterly update", f"HCPC{dos.year}_{month}_ANWEB.txt"
    else:
        label, file = f"CPT {dos.year}", f"cpt_{dos.year}.csv"
    return Requirement(label, f"audit codesets import {_CLI_NAMES[system]} {file}", SOURCES[system])
