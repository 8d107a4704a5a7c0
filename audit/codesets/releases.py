"""Pure release logic: the in-memory ``CodeSetIndex`` and its answer for a code on a date of service.

No session, no clock: callers pass the date of service. ``check`` answers with one of five statuses:

- ``valid``: a release in force on the date has the code, billable and within its dates;
- ``invalid``: refused (a format error, a code missing from the release in force, a header, a code
  before its first or after its last valid day, or, when no release covers the date, a header or a
  terminated code in the latest earlier release: new years add codes beneath headers, they do not
  bring terminated codes back);
- ``fallback``: no release covers the date, and the latest earlier release has the code: accepted,
  naming the release it was checked against;
- ``unverified``: no release covers the date and the reference release lacks the code (it may be
  new): accepted, naming the release to import (``compliance.yaml`` ``codesets.unverified`` decides
  whether it blocks attestation);
- ``unchecked``: nothing is loaded for the system at all (CPT before a licensed list is imported):
  format checked only.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from audit.codesets.formats import (
    CPT,
    HCPCS,
    ICD10CM,
    SYSTEMS,
    CodeFormatError,
    normalize_code,
    normalize_modifier,
    normalize_system,
)
from audit.codesets.modifiers import CPT_MODIFIERS
from audit.codesets.periods import (
    Requirement,
    calendar_year,
    fiscal_year_of,
    icd10cm_fiscal_year,
    infer_period,
    quarter_period,
    required_release,
)

if TYPE_CHECKING:
    from audit.codesets.edits import EditTables

__all__ = [
    "CPT_MODIFIERS",
    "CheckResult",
    "CodeEntry",
    "CodeSetIndex",
    "Release",
    "calendar_year",
    "fiscal_year_of",
    "icd10cm_fiscal_year",
    "infer_period",
    "quarter_period",
    "release_from_records",
]

# code -> (billable, added, terminated); ``added`` is the first valid day, ``terminated`` the last.
CodeEntry = tuple[bool, date | None, date | None]

VALID, INVALID, FALLBACK, UNVERIFIED, UNCHECKED = "valid", "invalid", "fallback", "unverified", "unchecked"


@dataclass(eq=False)
class Release:
    """One release of one code system, in force from ``effective_from`` to ``effective_until``
    (inclusive; ``None`` = open-ended). ``codes`` maps the normal form to a ``CodeEntry``.

    ``scope``: the code prefixes the release speaks for (``None`` = every code). A built-in list
    that holds one ICD-10-PCS section says nothing about codes of the other sections."""

    system: str
    label: str
    effective_from: date
    effective_until: date | None
    _codes: dict[str, CodeEntry] | None = None
    modifiers: dict[str, CodeEntry] = field(default_factory=dict)
    loader: Callable[[], dict[str, CodeEntry]] | None = None
    builtin: bool = False
    order: int = 0  # tie-break among imports: the later import wins
    scope: tuple[str, ...] | None = None
    source: str = ""
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

    def speaks_for(self, code: str) -> bool:
        return self.scope is None or code.startswith(self.scope)

    @property
    def period(self) -> str:
        until = self.effective_until.isoformat() if self.effective_until else "open-ended"
        return f"{self.effective_from.isoformat()} to {until}"

    def describe(self) -> str:
        return f"{self.system} release {self.label} ({self.period})"

    def preference(self) -> tuple[bool, date, int]:
        """Among releases covering a date: an import beats the built-in data, then the latest to
        start (a quarterly update over the annual file), then the latest import."""
        return (not self.builtin, self.effective_from, self.order)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The answer for one code (or modifier) on one date of service. See the module docstring."""

    ok: bool
    normalized: str | None
    release_label: str | None
    message: str
    status: str = VALID
    required: Requirement | None = None
    release: Release | None = None  # the release the answer comes from (in force, or the reference)

    @property
    def warnings(self) -> tuple[str, ...]:
        return (self.message,) if self.status in (FALLBACK, UNVERIFIED, UNCHECKED) else ()


_CACHE_MAX = 100_000  # distinct (system, date) keys remembered (dates are caller-controlled)
_OK_CACHE_MAX = 1_000_000  # raw inputs remembered per release (bounded for the same reason)


class CodeSetIndex:
    """In-memory releases by system; answers ``check(system, code, dos)`` with dict lookups."""

    def __init__(
        self,
        releases: Iterable[Release] = (),
        *,
        builtin: bool = True,
        edits: EditTables | None = None,
    ) -> None:
        self._by_system: dict[str, list[Release]] = {s: [] for s in SYSTEMS}
        self._covering: dict[tuple[str, date], tuple[Release, ...]] = {}
        # (system, date) -> answers cached by the release in force (when it speaks for every code)
        self._fast: dict[tuple[str, date], dict[str, CheckResult]] = {}
        self.edits = edits
        self._next_order = 0
        if builtin:
            from audit.codesets.builtin import builtin_releases

            for rel in builtin_releases():
                self.add(rel)
        for r in releases:
            self.add(r)

    def add(self, release: Release) -> None:
        if not release.builtin:
            self._next_order += 1
            release.order = self._next_order
        rels = self._by_system.setdefault(release.system, [])
        rels.append(release)
        rels.sort(key=lambda r: (r.effective_from, r.order))
        self._covering.clear()
        self._fast.clear()

    def with_release(self, release: Release) -> CodeSetIndex:
        """A new index holding these releases plus ``release`` (this one is left as it is)."""
        index = CodeSetIndex(builtin=False, edits=self.edits)
        for rel in self.releases():
            index._by_system.setdefault(rel.system, []).append(rel)
        index._next_order = self._next_order
        index.add(release)
        return index

    def releases(self, system: str | None = None) -> list[Release]:
        if system is not None:
            return list(self._by_system.get(normalize_system(system), []))
        return [r for rels in self._by_system.values() for r in rels]

    def covering(self, system: str, dos: date) -> tuple[Release, ...]:
        """The releases in force on ``dos``, the preferred first (see ``Release.preference``)."""
        key = (system, dos)
        found = self._covering.get(key)
        if found is None:
            rels = self._by_system.get(system, [])
            idx = bisect.bisect_right([r.effective_from for r in rels], dos)
            found = tuple(
                sorted((r for r in rels[:idx] if r.covers(dos)), key=Release.preference, reverse=True)
            )
            if len(self._covering) >= _CACHE_MAX:
                self._covering.clear()
                self._fast.clear()
            self._covering[key] = found
            if found and found[0].scope is None:
                self._fast[key] = found[0].ok_cache
        return found

    def release_for(self, system: str, dos: date, code: str | None = None) -> Release | None:
        """The release in force on ``dos`` (for ``code``, when a release holds only some codes)."""
        rels = self.covering(normalize_system(system), dos)
        return next((r for r in rels if code is None or r.speaks_for(code)), None)

    def reference_for(self, system: str, dos: date, code: str) -> Release | None:
        """When no release covers ``dos``: the release to judge ``code`` by. An ICD-10-CM April
        update of the same fiscal year covers the months before it for refusals (April updates
        only add codes); otherwise the latest release that ended before ``dos``."""
        rels = [r for r in self._by_system.get(system, []) if r.speaks_for(code)]
        if system == ICD10CM:
            fy = fiscal_year_of(dos)
            same_fy = [r for r in rels if r.effective_from > dos and fiscal_year_of(r.effective_from) == fy]
            if same_fy:
                return min(same_fy, key=lambda r: (r.effective_from, -r.order))
        earlier = [r for r in rels if r.effective_from <= dos and not r.covers(dos)]
        return max(
            earlier, key=lambda r: (r.effective_until or r.effective_from, r.preference()), default=None
        )

    # ------------------------------------------------------------------ checks
    def check(self, system: str, code: str, dos: date) -> CheckResult:
        cached = self._fast.get((system, dos))
        if cached is not None:
            hit = cached.get(code)
            if hit is not None:
                return hit  # a billable code without dates: the answer does not depend on the date
        rels = self._covering.get((system, dos))
        if rels is None:
            if system not in self._by_system:
                try:
                    system = normalize_system(system)
                except CodeFormatError as exc:
                    return CheckResult(False, None, None, exc.message, INVALID)
            rels = self.covering(system, dos)
        if rels and rels[0].scope is None:
            # Stored keys are normal forms: an input that is one (or ICD-10-CM without its dot)
            # needs no format check.
            rel, norm = rels[0], code
            entry = rel.codes.get(code)
            if entry is None and system == ICD10CM and len(code) > 3 and code[3] != ".":
                norm = f"{code[:3]}.{code[3:]}"
                entry = rel.codes.get(norm)
            if entry is not None:
                return self._judged(rel, code, norm, entry, dos)
        try:
            norm = normalize_code(system, code)
        except CodeFormatError as exc:
            first = rels[0] if rels else None
            return CheckResult(False, None, first.label if first else None, exc.message, INVALID, None, first)
        found = next((r for r in rels if r.speaks_for(norm)), None)
        if found is None:
            return self._without_release(system, norm, dos, "code")
        return self._judged(found, code, norm, found.codes.get(norm), dos)

    @staticmethod
    def _judged(rel: Release, raw: str, norm: str, entry: CodeEntry | None, dos: date) -> CheckResult:
        result = _judge(rel, norm, entry, dos, "code")
        dateless = entry is not None and entry[1] is None and entry[2] is None
        if result.ok and dateless and rel.scope is None and len(rel.ok_cache) < _OK_CACHE_MAX:
            rel.ok_cache[raw] = result
        return result

    def check_modifier(self, modifier: str, dos: date, *, system: str = CPT) -> CheckResult:
        """Numeric modifiers: the curated CPT list. Others: HCPCS Level II modifiers of the HCPCS
        release in force on ``dos`` (or, when none covers it, as for codes)."""
        try:
            mod = normalize_modifier(modifier)
        except CodeFormatError as exc:
            return CheckResult(False, None, None, exc.message, INVALID)
        if mod in CPT_MODIFIERS:
            return CheckResult(True, mod, "CPT modifiers", "ok")
        if mod.isdigit():
            return CheckResult(False, mod, "CPT modifiers", f"'{mod}' is not a CPT modifier", INVALID)
        rels = self.covering(HCPCS, dos)
        if not rels:
            return self._without_release(HCPCS, mod, dos, "modifier")
        return _judge(rels[0], mod, rels[0].modifiers.get(mod), dos, "modifier")

    def _without_release(self, system: str, norm: str, dos: date, kind: str) -> CheckResult:
        """No release in force on ``dos`` speaks for ``norm``: fall back (see the module docstring)."""
        what = "HCPCS modifier" if kind == "modifier" else system
        required = required_release(system, dos)
        ref = self.reference_for(system, dos, norm)
        if ref is None:
            if not any(r.speaks_for(norm) for r in self._by_system.get(system, [])):
                return CheckResult(
                    True, norm, None, f"no {what} release is loaded: format checked, existence not checked",
                    UNCHECKED,
                )  # fmt: skip
            return CheckResult(
                True, norm, None,
                f"{kind} '{norm}' is unverified: no {what} release loaded covers {dos.isoformat()} or an "
                f"earlier date; import {required.label} ({required.command})",
                UNVERIFIED, required,
            )  # fmt: skip
        table = ref.modifiers if kind == "modifier" else ref.codes
        entry = table.get(norm)
        where = f"{ref.describe()}, the release {_relation(ref, dos)} {dos.isoformat()}"
        if entry is None and ref.effective_from > dos:
            message = f"{kind} '{norm}' does not exist in {where}, and an April update only adds codes"
            return CheckResult(False, norm, ref.label, message, INVALID, None, ref)
        if entry is None:
            return CheckResult(
                True, norm, ref.label,
                f"{kind} '{norm}' is unverified: it is not in {where} (it may be new); "
                f"import {required.label} to check it ({required.command})",
                UNVERIFIED, required, ref,
            )  # fmt: skip
        judged = _judge(ref, norm, entry, dos, kind)
        if not judged.ok:
            message = f"{judged.message} (judged by {where})"
            return CheckResult(False, norm, ref.label, message, INVALID, None, ref)
        return CheckResult(
            True, norm, ref.label,
            f"{kind} '{norm}' was checked against {where}: no release loaded covers "
            f"{dos.isoformat()} (import {required.label}: {required.command})",
            FALLBACK, required, ref,
        )  # fmt: skip


def _relation(ref: Release, dos: date) -> str:
    return "that updates the fiscal year of" if ref.effective_from > dos else "loaded latest before"


def _judge(rel: Release, norm: str, entry: CodeEntry | None, dos: date, kind: str) -> CheckResult:
    if entry is not None and entry[0] and entry[1] is None and entry[2] is None:
        return CheckResult(True, norm, rel.label, "ok", VALID, None, rel)  # the common case, first
    where = rel.describe()
    if entry is None:
        return CheckResult(
            False, norm, rel.label, f"{kind} '{norm}' does not exist in {where}", INVALID, None, rel
        )
    billable, added, terminated = entry
    if not billable:
        return CheckResult(
            False, norm, rel.label,
            f"'{norm}' is a header in {where} and is not billable: use a more specific code beneath it",
            INVALID, None, rel,
        )  # fmt: skip
    if added is not None and dos < added:
        return CheckResult(
            False, norm, rel.label,
            f"{kind} '{norm}' is effective from {added.isoformat()} in {where}; "
            f"not valid on date of service {dos.isoformat()}",
            INVALID, None, rel,
        )  # fmt: skip
    if terminated is not None and dos > terminated:
        return CheckResult(
            False, norm, rel.label,
            f"{kind} '{norm}' was terminated (last valid day {terminated.isoformat()}) in {where}; "
            f"not valid on date of service {dos.isoformat()}",
            INVALID, None, rel,
        )  # fmt: skip
    return CheckResult(True, norm, rel.label, "ok", VALID, None, rel)


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
