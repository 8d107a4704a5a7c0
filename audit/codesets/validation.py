"""Code-set checks on the write path and at attestation: existence by date of service, and NCCI/MUE
edit findings.

The in-memory index is cached per process and rebuilt when the set of imported releases changes
(an import in another process is seen on the next request), so checks cost dict lookups.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import fields
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from audit.batchreads import remembered
from audit.codesets.decision import LineDecision, decide_line
from audit.codesets.edits import Finding, evaluate_edits
from audit.codesets.models import CodeSetRelease
from audit.codesets.releases import INVALID, UNVERIFIED, CodeSetIndex
from audit.codesets.store import edit_tables_for, load_index
from audit.errors import InvalidInput
from audit.models import CodeLine

_lock = threading.Lock()
_cached: tuple[tuple[Any, ...], CodeSetIndex] | None = None


def code_index(session: Session) -> CodeSetIndex:
    """The index for the releases in the database now (rebuilt only when they change)."""
    global _cached
    table = CodeSetRelease.__table__  # type: ignore[attr-defined]
    key = remembered(
        "codeset_release_key",
        lambda: tuple(
            session.execute(select(table.c.id, table.c.sha256, table.c.imported_at).order_by(table.c.id))
        ),
    )
    with _lock:
        if _cached is None or _cached[0] != key:
            _cached = (key, load_index(session))
        return _cached[1]


def decide(session: Session, *, system: str, code: str, modifiers: Sequence[str], dos: date) -> LineDecision:
    return decide_line(code_index(session), system=system, code=code, modifiers=modifiers, dos=dos)


def check_line(
    session: Session, *, system: str, code: str, modifiers: Sequence[str], dos: date, unverified_mode: str
) -> list[dict[str, Any]]:
    """422 naming the field and the release when the code or a modifier is not valid on the date of
    service; otherwise the line's code-set findings (fallback, unverified, not loaded)."""
    decision = decide(session, system=system, code=code, modifiers=modifiers, dos=dos)
    refused = decision.refusal
    if refused is not None:
        raise InvalidInput(refused.field, refused.result.message, release=refused.result.release_label)
    return mark_blocking(decision.findings(), unverified_mode)


def mark_blocking(findings: list[dict[str, Any]], unverified_mode: str) -> list[dict[str, Any]]:
    """Say on each unverified finding whether it stops attestation (``codesets.unverified``)."""
    for f in findings:
        if f["kind"] == "codeset_unverified":
            f["blocks_attestation"] = unverified_mode == "block"
    return findings


def line_blockers(
    session: Session, *, lines: Sequence[CodeLine], dos: date, unverified_mode: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Re-decide an encounter's active lines now (a release imported since a line was written
    counts): ``(blocking, findings)``. A line that is now invalid always blocks attestation; an
    unverified one blocks when ``codesets.unverified`` is ``block``."""
    blocking: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    index = code_index(session)
    for line in lines:
        if line.status != "active":
            continue
        decision = decide_line(index, system=line.system, code=line.code, modifiers=line.modifiers, dos=dos)
        line_findings = [
            {**f, "line_id": line.id} for f in mark_blocking(decision.findings(), unverified_mode)
        ]
        findings += line_findings
        status = decision.status
        if status == INVALID or (status == UNVERIFIED and unverified_mode == "block"):
            blocking.append(_blocking_line(line, decision))
    return blocking, findings


def _blocking_line(line: CodeLine, decision: LineDecision) -> dict[str, Any]:
    part = decision.refusal or next(p for p in decision.parts if p.result.status == UNVERIFIED)
    out: dict[str, Any] = {
        "line_id": line.id,
        "system": line.system,
        "code": line.code,
        "status": decision.status,
        "field": part.field,
        "message": part.result.message,
    }
    if part.result.required is not None and decision.status == UNVERIFIED:
        out["required_release"] = part.result.required.label
        out["import_command"] = part.result.required.command
    return out


def encounter_findings(session: Session, *, lines: Sequence[CodeLine], dos: date) -> list[Finding]:
    """NCCI PTP and MUE findings over an encounter's active procedure lines on its date of service."""
    procedures = [line for line in lines if line.status == "active" and line.system in ("CPT", "HCPCS")]
    if not procedures:
        return []
    tables = edit_tables_for(session, codes=[line.code for line in procedures], date_of_service=dos)
    return evaluate_edits(procedures, dos, tables)


_FINDING_FIELDS = tuple(f.name for f in fields(Finding))


def finding_view(finding: Finding) -> dict[str, Any]:
    """A finding as events and answers show it. A shallow copy is what `asdict` made of it (its
    fields are scalars, and the two tuples are replaced by lists here), at a tenth of the cost,
    which a bulk import pays on every line."""
    view = {name: getattr(finding, name) for name in _FINDING_FIELDS}
    view["codes"] = list(finding.codes)
    view["line_ids"] = [str(i) for i in finding.line_ids]
    # Drop empty fields, but keep 0 (PTP modifier indicator 0 is the most important one).
    return {k: v for k, v in view.items() if v is not None and v is not False and v != []}


def blocking(findings: Sequence[Finding], *, ncci_mode: str, mue_mode: str) -> list[Finding]:
    """The findings that stop an attestation under compliance.yaml's block/warn modes."""
    mode = {"ncci_ptp": ncci_mode, "mue": mue_mode}
    return [f for f in findings if f.severity == "error" and not f.bypassed and mode.get(f.kind) == "block"]
