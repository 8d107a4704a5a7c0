"""Code-set checks on the write path: existence by date of service, and NCCI/MUE edit findings.

The in-memory index is cached per process and rebuilt when the set of imported releases changes
(an import in another process is seen on the next request), so checks cost dict lookups.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from audit.codesets.edits import Finding, evaluate_edits
from audit.codesets.models import CodeSetRelease
from audit.codesets.releases import CodeSetIndex
from audit.codesets.service import edit_tables_for, load_index
from audit.errors import InvalidInput
from audit.models import CodeLine

_lock = threading.Lock()
_cached: tuple[tuple[Any, ...], CodeSetIndex] | None = None


def code_index(session: Session) -> CodeSetIndex:
    """The index for the releases in the database now (rebuilt only when they change)."""
    global _cached
    table = CodeSetRelease.__table__  # type: ignore[attr-defined]
    key = tuple(session.execute(select(table.c.id, table.c.sha256, table.c.imported_at).order_by(table.c.id)))
    with _lock:
        if _cached is None or _cached[0] != key:
            _cached = (key, load_index(session))
        return _cached[1]


def check_line(session: Session, *, system: str, code: str, modifiers: Sequence[str], dos: date) -> list[str]:
    """422 naming the field and the release when a code or modifier is not valid on the date of
    service; otherwise the warnings (e.g. no release loaded, so existence was not checked)."""
    index = code_index(session)
    result = index.check(system, code, dos)
    if not result.ok:
        raise InvalidInput("code", result.message, release=result.release_label)
    warnings = list(result.warnings)
    if not result.existence_checked and result.normalized:
        warnings += _check_against_latest(index, system, result.normalized, dos)
    for i, modifier in enumerate(modifiers):
        mod = index.check_modifier(modifier, dos)
        if not mod.ok:
            raise InvalidInput(f"modifiers[{i}]", mod.message, release=mod.release_label)
        warnings.extend(w for w in mod.warnings if w not in warnings)
    return warnings


def _check_against_latest(index: CodeSetIndex, system: str, code: str, dos: date) -> list[str]:
    """No release covers the date (e.g. the fiscal year after the built-in ICD-10-CM one): a header
    in the latest earlier release is still refused, since new years only add detail beneath headers;
    a code that release lacks may be new, so it passes with a warning."""
    earlier = [r for r in index.releases(system) if r.effective_from <= dos]
    if not earlier:
        return []
    latest = earlier[-1]
    entry = latest.codes.get(code)
    if entry is not None and not entry[0]:
        raise InvalidInput(
            "code",
            f"'{code}' is a header in {latest.describe()} (the latest release loaded before "
            f"{dos.isoformat()}) and is not billable: use a more specific code beneath it",
            release=latest.label,
        )
    status = "is billable" if entry is not None else "is not in it (it may be new)"
    return [f"'{code}' {status} in {latest.describe()}, the latest release loaded before {dos.isoformat()}"]


def encounter_findings(session: Session, *, lines: Sequence[CodeLine], dos: date) -> list[Finding]:
    """NCCI PTP and MUE findings over an encounter's active procedure lines on its date of service."""
    procedures = [line for line in lines if line.status == "active" and line.system in ("CPT", "HCPCS")]
    if not procedures:
        return []
    tables = edit_tables_for(session, codes=[line.code for line in procedures], date_of_service=dos)
    return evaluate_edits(procedures, dos, tables)


def finding_view(finding: Finding) -> dict[str, Any]:
    view = asdict(finding)
    view["codes"] = list(finding.codes)
    view["line_ids"] = [str(i) for i in finding.line_ids]
    # Drop empty fields, but keep 0 (PTP modifier indicator 0 is the most important one).
    return {k: v for k, v in view.items() if v is not None and v is not False and v != []}


def blocking(findings: Sequence[Finding], *, ncci_mode: str, mue_mode: str) -> list[Finding]:
    """The findings that stop an attestation under compliance.yaml's block/warn modes."""
    mode = {"ncci_ptp": ncci_mode, "mue": mue_mode}
    return [f for f in findings if f.severity == "error" and not f.bypassed and mode.get(f.kind) == "block"]
