"""Pure release logic: effective periods, the in-memory ``CodeSetIndex`` and existence checks.

No session, no clock: callers pass the date of service. The built-in ICD-10-CM release (the code list
shipped inside ``simple-icd-10-cm``) is read lazily from the package's data file, without importing
the package (whose import parses a 9.7 MB XML file and costs ~3 s).
"""

from __future__ import annotations

import bisect
import importlib.util
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from audit.codesets.formats import (
    CPT,
    HCPCS,
    ICD10CM,
    ICD10PCS,
    SYSTEMS,
    CodeFormatError,
    normalize_code,
    normalize_modifier,
    normalize_system,
)

if TYPE_CHECKING:
    from audit.codesets.edits import EditTables

# code -> (billable, added, terminated); ``terminated`` is the last valid day.
CodeEntry = tuple[bool, date | None, date | None]

# CPT modifiers (AMA Appendix A numbers; no descriptors shipped). 73/74 are the ASC/hospital
# outpatient discontinued-procedure modifiers, 90-92 lab (reference lab, repeat test, alternative
# platform), 93 audio-only, 95 synchronous telemedicine, 96/97 habilitative/rehabilitative,
# P1-P6 anesthesia physical status. Everything else alphanumeric is a HCPCS Level II modifier.
CPT_MODIFIERS: frozenset[str] = frozenset(
    [
        "22",
        "23",
        "24",
        "25",
        "26",
        "27",
        "32",
        "33",
        "47",
        "50",
        "51",
        "52",
        "53",
        "54",
        "55",
        "56",
        "57",
        "58",
        "59",
        "62",
        "63",
        "66",
        "73",
        "74",
        "76",
        "77",
        "78",
        "79",
        "80",
        "81",
        "82",
        "90",
        "91",
        "92",
        "93",
        "95",
        "96",
        "97",
        "99",
        "P1",
        "P2",
        "P3",
        "P4",
        "P5",
        "P6",
    ]
)


# --------------------------------------------------------------------------- periods
def icd10cm_fiscal_year(fy: int) -> tuple[date, date]:
    """ICD-10-CM/PCS fiscal year N runs 1 October N-1 to 30 September N."""
    return date(fy - 1, 10, 1), date(fy, 9, 30)


def fiscal_year_of(dos: date) -> int:
    return dos.year + 1 if dos.month >= 10 else dos.year


def quarter_period(year: int, quarter: int) -> tuple[date, date]:
    """Calendar quarter 1-4 (HCPCS quarterly updates, NCCI and MUE versions)."""
    if not 1 <= quarter <= 4:
        raise ValueError(f"quarter must be 1-4, got {quarter}")
    start = date(year, 3 * quarter - 2, 1)
    end = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return start, end - timedelta(days=1)


def calendar_year(year: int) -> tuple[date, date]:
    """CPT releases are annual, effective 1 January."""
    return date(year, 1, 1), date(year, 12, 31)


_MONTH_Q = {"JAN": 1, "APR": 2, "JUL": 3, "OCT": 4}


def infer_period(system: str, filename: str) -> tuple[str, date, date] | None:
    """Guess ``(label, from, until)`` from a CMS file name; ``None`` when the name says nothing.

    ``icd10cm_order_2026.txt`` -> FY2026; ``HCPC2020_APR_ANWEB.txt`` -> 2020 Q2 (an annual file
    without a month is the January quarter); ``ccipra-v310r0-f1.txt`` -> NCCI 31.0 = 2025 Q1;
    ``MCR_MUE_PractitionerServices_Eff_04-01-2025.csv`` -> 2025 Q2; ``cpt_2025.csv`` -> CY2025.
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
        year, q = int(m.group(1)), _MONTH_Q.get(m.group(2) or "JAN", 1)
        start, end = quarter_period(year, q)
        return f"HCPCS {year} Q{q}", start, end
    if system == "NCCI-PTP":
        m = re.search(r"V(\d\d)(\d)R\d", up)
        if not m:
            return None
        major, minor = int(m.group(1)), int(m.group(2))
        start, end = quarter_period(1994 + major, minor + 1)
        return f"NCCI PTP v{major}.{minor}", start, end
    if system == "MUE":
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


# --------------------------------------------------------------------------- releases
@dataclass(eq=False)
class Release:
    """One release of one code system, in force from ``effective_from`` to ``effective_until``
    (inclusive; ``None`` = open-ended). ``codes`` maps the normal form to a ``CodeEntry``."""

    system: str
    label: str
    effective_from: date
    effective_until: date | None
    _codes: dict[str, CodeEntry] | None = None
    modifiers: dict[str, CodeEntry] = field(default_factory=dict)
    loader: Callable[[], dict[str, CodeEntry]] | None = None
    builtin: bool = False
    order: int = 0  # tie-break: later imports win over earlier ones and over the built-in
    ok_cache: dict[str, CheckResult] = field(default_factory=dict, repr=False)

    @property
    def codes(self) -> dict[str, CodeEntry]:
        if self._codes is None:
            self._codes = self.loader() if self.loader is not None else {}
        return self._codes

    @property
    def loaded(self) -> bool:
        return self._codes is not None

    def covers(self, dos: date) -> bool:
        return self.effective_from <= dos and (self.effective_until is None or dos <= self.effective_until)

    @property
    def period(self) -> str:
        until = self.effective_until.isoformat() if self.effective_until else "open-ended"
        return f"{self.effective_from.isoformat()} to {until}"

    def describe(self) -> str:
        return f"{self.system} release {self.label} ({self.period})"


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    normalized: str | None
    release_label: str | None
    message: str
    warnings: tuple[str, ...] = ()

    @property
    def existence_checked(self) -> bool:
        return self.release_label is not None


# --------------------------------------------------------------------------- built-in ICD-10-CM
def _builtin_code_list() -> Path | None:
    spec = importlib.util.find_spec("simple_icd_10_cm")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    found = sorted(data.glob("code-list-*.txt"))
    return found[-1] if found else None


def leaf_entries(codes_undotted: Iterable[str]) -> dict[str, CodeEntry]:
    """ICD-10-CM codes (undotted, as listed) -> entries; billable = no other listed code extends it."""
    codes = {c for c in codes_undotted if 3 <= len(c) <= 7 and "-" not in c}
    prefixes = {c[:k] for c in codes for k in range(3, len(c))}
    out: dict[str, CodeEntry] = {}
    for c in codes:
        dotted = f"{c[:3]}.{c[3:]}" if len(c) > 3 else c
        out[dotted] = (c not in prefixes, None, None)
    return out


def load_builtin_icd10cm_codes(path: Path | None = None) -> dict[str, CodeEntry]:
    path = path or _builtin_code_list()
    if path is None:
        return {}
    text = path.read_text(encoding="utf-8")
    return leaf_entries(line.split(" ")[0].strip().replace(".", "") for line in text.splitlines())


_MONTHS = {
    m: i
    for i, m in enumerate(
        [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ],
        1,
    )
}


def builtin_icd10cm_release() -> Release | None:
    """The release shipped in ``simple-icd-10-cm`` (1.5.0: FY2026 April 1, 2026 update,
    in force for encounters from 2026-04-01 to 2026-09-30). Codes load on first use."""
    path = _builtin_code_list()
    if path is None:
        return None
    m = re.search(r"code-list-([A-Za-z]+)-(\d{4})", path.name)
    if not m or m.group(1).capitalize() not in _MONTHS:
        return None
    month, year = _MONTHS[m.group(1).capitalize()], int(m.group(2))
    fy = year + 1 if month >= 10 else year
    start = date(year, month, 1)
    label = f"FY{fy}" if month == 10 else f"FY{fy} {m.group(1).capitalize()} {year} update"
    return Release(
        ICD10CM,
        f"{label} (built-in)",
        start,
        date(fy, 9, 30),
        loader=lambda: load_builtin_icd10cm_codes(path),
        builtin=True,
        order=-1,
    )


# --------------------------------------------------------------------------- the index
_MISSING: object = object()
_OK_CACHE_MAX = 1_000_000  # raw inputs remembered per release (bounded: inputs are caller-controlled)


class CodeSetIndex:
    """In-memory releases by system; answers ``check(system, code, dos)`` with dict lookups."""

    def __init__(
        self,
        releases: Iterable[Release] = (),
        *,
        builtin_icd10cm: bool = True,
        edits: EditTables | None = None,
    ) -> None:
        self._by_system: dict[str, list[Release]] = {s: [] for s in SYSTEMS}
        self._cache: dict[tuple[str, date], Release | None] = {}
        self.edits = edits
        self._next_order = 0
        if builtin_icd10cm:
            builtin = builtin_icd10cm_release()
            if builtin is not None:
                self.add(builtin)
        for r in releases:
            self.add(r)

    def add(self, release: Release) -> None:
        if not release.builtin:
            self._next_order += 1
            release.order = self._next_order
        rels = self._by_system.setdefault(release.system, [])
        rels.append(release)
        rels.sort(key=lambda r: (r.effective_from, r.order))
        self._cache.clear()

    def releases(self, system: str | None = None) -> list[Release]:
        if system is not None:
            return list(self._by_system.get(normalize_system(system), []))
        return [r for rels in self._by_system.values() for r in rels]

    def release_for(self, system: str, dos: date) -> Release | None:
        """The release in force on ``dos``: among those covering it, the latest to start
        (a later import wins a tie, and any import wins over the built-in)."""
        key = (system, dos)
        try:
            return self._cache[key]
        except KeyError:
            pass
        rels = self._by_system.get(system, [])
        idx = bisect.bisect_right([r.effective_from for r in rels], dos)
        found = next((r for r in reversed(rels[:idx]) if r.covers(dos)), None)
        self._cache[key] = found
        return found

    # ------------------------------------------------------------------ checks
    def check(self, system: str, code: str, dos: date) -> CheckResult:
        if system not in self._by_system:
            try:
                system = normalize_system(system)
            except CodeFormatError as exc:
                return CheckResult(False, None, None, exc.message)
        rel = self._cache.get((system, dos), _MISSING)
        if rel is _MISSING:
            rel = self.release_for(system, dos)
        if rel is None:
            try:
                norm = normalize_code(system, code)
            except CodeFormatError as exc:
                return CheckResult(False, None, None, exc.message)
            return CheckResult(True, norm, None, "format ok", (self._not_checked(system, dos),))
        assert isinstance(rel, Release)
        hit = rel.ok_cache.get(code)
        if hit is not None:
            return hit  # a billable code without dates: the answer does not depend on the date
        codes = rel.codes
        entry = codes.get(code)  # stored keys are normal forms: a hit needs no regex
        norm = code
        if entry is None and system == ICD10CM and len(code) > 3 and code[3] != ".":
            norm = f"{code[:3]}.{code[3:]}"
            entry = codes.get(norm)
        if entry is None:
            try:
                norm = normalize_code(system, code)
            except CodeFormatError as exc:
                return CheckResult(False, None, rel.label, exc.message)
            entry = codes.get(norm)
        result = _judge(rel, norm, entry, dos, "code")
        dateless = entry is not None and entry[1] is None and entry[2] is None
        if result.ok and dateless and len(rel.ok_cache) < _OK_CACHE_MAX:
            rel.ok_cache[code] = result
        return result

    def check_modifier(self, modifier: str, dos: date, *, system: str = CPT) -> CheckResult:
        """Numeric modifiers: the curated CPT list. Others: HCPCS Level II modifiers of the HCPCS
        release in force on ``dos`` (format only, with a warning, when none is loaded)."""
        try:
            mod = normalize_modifier(modifier)
        except CodeFormatError as exc:
            return CheckResult(False, None, None, exc.message)
        if mod in CPT_MODIFIERS:
            return CheckResult(True, mod, "CPT modifiers", "ok")
        if mod.isdigit():
            return CheckResult(False, mod, "CPT modifiers", f"'{mod}' is not a CPT modifier")
        rel = self.release_for(HCPCS, dos)
        if rel is None:
            return CheckResult(True, mod, None, "format ok", (self._not_checked("HCPCS modifier", dos),))
        return _judge(rel, mod, rel.modifiers.get(mod), dos, "modifier")

    @staticmethod
    def _not_checked(what: str, dos: date) -> str:
        return (
            f"no {what} release is loaded for date of service {dos.isoformat()}: "
            "format checked, existence not checked"
        )


def _judge(rel: Release, norm: str, entry: CodeEntry | None, dos: date, kind: str) -> CheckResult:
    where = rel.describe()
    if entry is None:
        return CheckResult(False, norm, rel.label, f"{kind} '{norm}' does not exist in {where}")
    billable, added, terminated = entry
    if not billable:
        return CheckResult(
            False,
            norm,
            rel.label,
            f"'{norm}' is a header in {where} and is not billable: use a more specific code beneath it",
        )
    if added is not None and dos < added:
        return CheckResult(
            False,
            norm,
            rel.label,
            f"{kind} '{norm}' is effective from {added.isoformat()} in {where}; "
            f"not valid on date of service {dos.isoformat()}",
        )
    if terminated is not None and dos > terminated:
        return CheckResult(
            False,
            norm,
            rel.label,
            f"{kind} '{norm}' was terminated (last valid day {terminated.isoformat()}) in {where}; "
            f"not valid on date of service {dos.isoformat()}",
        )
    return CheckResult(True, norm, rel.label, "ok")


def release_from_records(
    system: str,
    label: str,
    effective_from: date,
    effective_until: date | None,
    records: Iterable[tuple[str, bool, date | None, date | None, bool]],
) -> Release:
    """Build a ``Release`` from ``(code, billable, added, terminated, is_modifier)`` rows."""
    codes: dict[str, CodeEntry] = {}
    mods: dict[str, CodeEntry] = {}
    for code, billable, added, terminated, is_mod in records:
        (mods if is_mod else codes)[code] = (billable, added, terminated)
    return Release(system, label, effective_from, effective_until, codes, mods)


def summary(index: CodeSetIndex) -> Mapping[str, list[str]]:
    return {s: [r.describe() for r in index.releases(s)] for s in SYSTEMS}
