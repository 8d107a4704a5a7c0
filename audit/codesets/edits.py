"""Pure NCCI procedure-to-procedure (PTP) and Medically Unlikely Edit (MUE) evaluation.

``evaluate_edits(lines, date_of_service, tables)`` looks at one encounter's active CPT/HCPCS lines on
one date of service and returns findings; it reads no clock and no database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, TypeVar

from audit.codesets.parsers import MueRecord, PtpRecord

Severity = Literal["error", "warning", "info"]
Kind = Literal["ncci_ptp", "mue"]

# NCCI-associated modifiers that may bypass a modifier-indicator-1 PTP edit (NCCI Policy Manual ch. I).
NCCI_BYPASS_MODIFIERS: frozenset[str] = frozenset(
    [
        "E1",
        "E2",
        "E3",
        "E4",
        "FA",
        "F1",
        "F2",
        "F3",
        "F4",
        "F5",
        "F6",
        "F7",
        "F8",
        "F9",
        "TA",
        "T1",
        "T2",
        "T3",
        "T4",
        "T5",
        "T6",
        "T7",
        "T8",
        "T9",
        "LT",
        "RT",
        "LC",
        "LD",
        "RC",
        "LM",
        "RI",
        "24",
        "25",
        "57",
        "58",
        "78",
        "79",
        "27",
        "59",
        "91",
        "XE",
        "XS",
        "XP",
        "XU",
    ]
)
# Explicitly never bypass a PTP edit (listed for the message only).
NEVER_BYPASS_MODIFIERS: frozenset[str] = frozenset({"26", "TC", "76", "77", "GC", "GE"})


@dataclass(frozen=True, slots=True)
class EditLine:
    """Minimal line shape; any object with ``id``, ``code``, ``modifiers`` and ``units`` works."""

    id: Any
    code: str
    modifiers: Sequence[str] = ()
    units: int = 1
    system: str = "CPT"
    status: str = "active"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: Kind
    severity: Severity
    codes: tuple[str, ...]
    message: str
    line_ids: tuple[Any, ...] = ()
    bypassed: bool = False
    modifier: str | None = None  # the bypass modifier
    line_id: Any = None  # the line carrying the bypass modifier (PTP) or the offending line (MUE MAI 1)
    release_label: str | None = None
    indicator: int | None = None  # PTP modifier indicator or MUE adjudication indicator
    limit: int | None = None
    units: int | None = None


@dataclass(eq=False)
class PtpTable:
    label: str
    effective_from: date
    effective_until: date | None
    pairs: dict[tuple[str, str], list[PtpRecord]] = field(default_factory=dict)

    @classmethod
    def build(cls, label: str, start: date, until: date | None, rows: Iterable[PtpRecord]) -> PtpTable:
        pairs: dict[tuple[str, str], list[PtpRecord]] = defaultdict(list)
        for r in rows:
            pairs[(r.column1, r.column2)].append(r)
        return cls(label, start, until, dict(pairs))


@dataclass(eq=False)
class MueTable:
    label: str
    effective_from: date
    effective_until: date | None
    limits: dict[str, MueRecord] = field(default_factory=dict)

    @classmethod
    def build(cls, label: str, start: date, until: date | None, rows: Iterable[MueRecord]) -> MueTable:
        return cls(label, start, until, {r.code: r for r in rows})


def _covers(t: PtpTable | MueTable, dos: date) -> bool:
    return t.effective_from <= dos and (t.effective_until is None or dos <= t.effective_until)


@dataclass
class EditTables:
    """Loaded PTP and MUE versions. Files of one version (PTP ``f1``..``f4``) share a start date and
    are used together; otherwise the covering version that starts last wins."""

    ptp: list[PtpTable] = field(default_factory=list)
    mue: list[MueTable] = field(default_factory=list)

    def ptp_for(self, dos: date) -> list[PtpTable]:
        return _in_force(self.ptp, dos)

    def mue_for(self, dos: date) -> list[MueTable]:
        return _in_force(self.mue, dos)


_T = TypeVar("_T", PtpTable, MueTable)


def _in_force(tables: list[_T], dos: date) -> list[_T]:
    covering = [t for t in tables if _covers(t, dos)]
    if not covering:
        return []
    start = max(t.effective_from for t in covering)
    return [t for t in covering if t.effective_from == start]


def _applies(r: PtpRecord, dos: date) -> bool:
    return r.effective <= dos and (r.deleted is None or dos <= r.deleted)


def _mods(line: Any) -> list[str]:
    return [str(m).strip().upper() for m in (getattr(line, "modifiers", None) or ())]


def _units(line: Any) -> int:
    u = getattr(line, "units", 1)
    return 1 if u is None else int(u)


def evaluate_edits(lines: Iterable[Any], date_of_service: date, tables: EditTables | None) -> list[Finding]:
    """NCCI PTP and MUE findings for one encounter's active CPT/HCPCS lines on ``date_of_service``."""
    procs = [
        ln
        for ln in lines
        if getattr(ln, "status", "active") == "active"
        and str(getattr(ln, "system", "CPT")).upper() in {"CPT", "HCPCS"}
    ]
    if not procs:
        return []
    tables = tables or EditTables()
    dos_text = date_of_service.isoformat()
    return _ptp(procs, date_of_service, dos_text, tables) + _mue(procs, date_of_service, dos_text, tables)


def _ptp(procs: list[Any], dos: date, dos_text: str, tables: EditTables) -> list[Finding]:
    ptps = tables.ptp_for(dos)
    if not ptps:
        if len(procs) < 2:
            return []
        return [
            Finding(
                "ncci_ptp",
                "info",
                (),
                f"no NCCI PTP table is loaded for date of service {dos_text}: PTP edits not checked",
            )
        ]
    label = ptps[0].label
    out: list[Finding] = []
    for a in procs:
        for b in procs:
            if a is b:
                continue
            c1, c2 = str(a.code).upper(), str(b.code).upper()
            rows = [r for t in ptps for r in t.pairs.get((c1, c2), ()) if _applies(r, dos)]
            for r in rows:
                if r.modifier_indicator == 9:
                    continue
                out.append(_ptp_finding(a, b, c1, c2, r, label))
    return out


def _ptp_finding(a: Any, b: Any, c1: str, c2: str, r: PtpRecord, label: str) -> Finding:
    codes, ids = (c1, c2), (a.id, b.id)
    why = f" ({r.rationale})" if r.rationale else ""
    base = f"NCCI PTP edit {c1}/{c2} ({label}): column-two code {c2} is not separately payable with {c1}{why}"
    if r.modifier_indicator == 0:
        return Finding(
            "ncci_ptp",
            "error",
            codes,
            base + "; modifier indicator 0: no modifier bypasses it",
            ids,
            release_label=label,
            indicator=0,
        )
    mods = _mods(b)
    bypass = next((m for m in mods if m in NCCI_BYPASS_MODIFIERS), None)
    if bypass is not None:
        return Finding(
            "ncci_ptp",
            "info",
            codes,
            f"NCCI PTP edit {c1}/{c2} ({label}) bypassed by modifier {bypass} on line {b.id}; "
            "documentation must support a distinct service",
            ids,
            bypassed=True,
            modifier=bypass,
            line_id=b.id,
            release_label=label,
            indicator=1,
        )
    ignored = [m for m in mods if m in NEVER_BYPASS_MODIFIERS]
    note = f"; modifier {', '.join(ignored)} does not bypass NCCI edits" if ignored else ""
    return Finding(
        "ncci_ptp",
        "error",
        codes,
        base + "; modifier indicator 1: an NCCI-associated modifier (e.g. 59, XS, LT/RT) on the "
        f"column-two line may bypass it when clinically appropriate{note}",
        ids,
        release_label=label,
        indicator=1,
    )


def _mue(procs: list[Any], dos: date, dos_text: str, tables: EditTables) -> list[Finding]:
    mues = tables.mue_for(dos)
    if not mues:
        return [
            Finding(
                "mue", "info", (), f"no MUE table is loaded for date of service {dos_text}: MUE not checked"
            )
        ]
    by_code: dict[str, list[Any]] = defaultdict(list)
    for ln in procs:
        by_code[str(ln.code).upper()].append(ln)
    out: list[Finding] = []
    for code, lns in by_code.items():
        rec, label = next(((t.limits[code], t.label) for t in mues if code in t.limits), (None, ""))
        if rec is None:
            continue
        if rec.mai == 1:
            for ln in lns:
                u = _units(ln)
                if u > rec.units:
                    out.append(
                        Finding(
                            "mue",
                            "error",
                            (code,),
                            f"MUE {code} ({label}): {u} units on line {ln.id} exceed the "
                            f"line limit of {rec.units} (MAI 1 line edit)",
                            (ln.id,),
                            line_id=ln.id,
                            release_label=label,
                            indicator=1,
                            limit=rec.units,
                            units=u,
                        )
                    )
            continue
        total = sum(_units(ln) for ln in lns)
        if total <= rec.units:
            continue
        ids = tuple(ln.id for ln in lns)
        if rec.mai == 2:
            msg = (
                f"MUE {code} ({label}): {total} units on date of service {dos_text} exceed the limit of "
                f"{rec.units} (MAI 2 date-of-service edit, absolute: cannot be bypassed or overridden)"
            )
            out.append(
                Finding(
                    "mue",
                    "error",
                    (code,),
                    msg,
                    ids,
                    release_label=label,
                    indicator=2,
                    limit=rec.units,
                    units=total,
                )
            )
        else:
            msg = (
                f"MUE {code} ({label}): {total} units on date of service {dos_text} exceed the limit of "
                f"{rec.units} (MAI 3 date-of-service edit, clinical: may be overridden on appeal with "
                "documentation of medical necessity)"
            )
            out.append(
                Finding(
                    "mue",
                    "warning",
                    (code,),
                    msg,
                    ids,
                    release_label=label,
                    indicator=3,
                    limit=rec.units,
                    units=total,
                )
            )
    return out
