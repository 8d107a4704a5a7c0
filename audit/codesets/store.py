"""Code-set storage: parse and store release files, list releases, load the in-memory index.

Functions take a session and never commit: the caller's unit of work does. ``store_release`` writes
no audit event: it is called only by ``audit.codesets.service.import_release``, which authorises
the import, records it in the ledger and re-checks the lines it affects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, insert, select
from sqlmodel import Session, SQLModel

from audit.codesets.edits import EditTables, MueTable, PtpTable
from audit.codesets.formats import CPT, HCPCS, ICD10CM, ICD10PCS
from audit.codesets.models import CodeSetRelease
from audit.codesets.parsers import (
    CodeRecord,
    CodeSetError,
    MueRecord,
    PtpRecord,
    decode,
    parse_cpt_csv,
    parse_hcpcs,
    parse_icd10cm_order,
    parse_mue,
    parse_ncci_ptp,
)
from audit.codesets.periods import MUE, NCCI_PTP, infer_period
from audit.codesets.releases import CodeEntry, CodeSetIndex, Release

CHUNK = 5000

# CLI / API names -> stored system names
IMPORT_SYSTEMS: dict[str, str] = {
    "icd10cm": ICD10CM,
    "icd10pcs": ICD10PCS,
    "hcpcs": HCPCS,
    "cpt": CPT,
    "ncci-ptp": NCCI_PTP,
    "mue": MUE,
}

Progress = Callable[[int, int], None]  # (records written, records total)


def _table(name: str) -> Table:
    return SQLModel.metadata.tables[name]


def _system(name: str) -> str:
    key = name.strip().lower()
    if key in IMPORT_SYSTEMS:
        return IMPORT_SYSTEMS[key]
    if name in IMPORT_SYSTEMS.values():
        return name
    raise CodeSetError(
        f"unknown code system '{name}': expected one of {', '.join(IMPORT_SYSTEMS)}", field="system"
    )


def _parse(system: str, lines: list[str]) -> list[Any]:
    if system == ICD10CM:
        return list(parse_icd10cm_order(lines))
    if system == ICD10PCS:
        return list(parse_icd10cm_order(lines, system=ICD10PCS))
    if system == HCPCS:
        return list(parse_hcpcs(lines))
    if system == CPT:
        return list(parse_cpt_csv(lines))
    if system == NCCI_PTP:
        return list(parse_ncci_ptp(lines))
    return list(parse_mue(lines))


def _rows(system: str, release_id: int, records: list[Any]) -> tuple[Any, list[dict[str, Any]]]:
    if system == NCCI_PTP:
        return _table("ncci_ptp_edit"), [
            {
                "release_id": release_id,
                "column1": r.column1,
                "column2": r.column2,
                "effective": r.effective,
                "deleted": r.deleted,
                "modifier_indicator": r.modifier_indicator,
            }
            for r in records
        ]
    if system == MUE:
        return _table("mue_limit"), [
            {"release_id": release_id, "code": r.code, "units": r.units, "mai": r.mai} for r in records
        ]
    return _table("code_set_code"), [
        {
            "release_id": release_id,
            "code": r.code,
            "billable": r.billable,
            "is_modifier": r.is_modifier,
            "added": r.added,
            "terminated": r.terminated,
        }
        for r in records
    ]


def system_name(name: str) -> str:
    """CLI/API name (``icd10cm``) or stored name (``ICD-10-CM``) -> stored name."""
    return _system(name)


def read_file(path: str | Path) -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise CodeSetError(f"cannot read {p}: {exc.strerror or exc}", field="file") from None


def store_release(
    session: Session,
    *,
    system: str,
    path: str | Path,
    data: bytes | None = None,
    label: str | None = None,
    effective_from: date | None = None,
    effective_until: date | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> tuple[CodeSetRelease, list[Any]]:
    """Parse ``path`` (or ``data``, read from it) and store it as a new release (bulk Core inserts
    in chunks); returns the row and the parsed records. Never commits.

    The effective period comes from the arguments, else from the CMS file name (``icd10cm_order_2026``
    -> FY2026, ``HCPC2020_ANWEB`` -> CY2020, ``HCPC2020_APR`` -> April to December 2020,
    ``ccipra-v310r0`` -> 2025 Q1, ``..._Eff_04-01-2025`` -> 2025 Q2, ``cpt_2025.csv`` -> CY2025).
    Raises ``CodeSetError`` (a ``ValueError`` with ``.field``).
    """
    sys_name = _system(system)
    p = Path(path)
    if data is None:
        data = read_file(p)
    inferred = infer_period(sys_name, p.name)
    start = effective_from or (inferred[1] if inferred else None)
    if start is None:
        raise CodeSetError(
            f"cannot tell the effective period of {p.name} from its name: give --from (and --until)",
            field="effective_from",
        )
    until = (
        effective_until
        if effective_until is not None or effective_from is not None
        else (inferred[2] if inferred else None)
    )
    if until is not None and until < start:
        raise CodeSetError(
            f"effective_until {until} is before effective_from {start}", field="effective_until"
        )
    name = label or (inferred[0] if inferred and effective_from is None else f"{sys_name} {p.name}")
    records = _parse(sys_name, decode(data).splitlines())
    if not records:
        raise CodeSetError(f"{p.name} holds no {sys_name} records", field="file")
    release = CodeSetRelease(
        system=sys_name,
        label=name[:100],
        effective_from=start,
        effective_until=until,
        source_file=p.name[:255],
        sha256=hashlib.sha256(data).hexdigest(),
        imported_at=now or datetime.now(UTC),
        code_count=len(records),
    )
    session.add(release)
    session.flush()
    assert release.id is not None
    table, rows = _rows(sys_name, release.id, records)
    for i in range(0, len(rows), CHUNK):
        session.execute(insert(table), rows[i : i + CHUNK])
        if progress is not None:
            progress(min(i + CHUNK, len(rows)), len(rows))
    return release, records


def list_releases(session: Session, system: str | None = None) -> list[CodeSetRelease]:
    from audit.batchreads import remembered

    return remembered(("codeset_releases", system), lambda: _list_releases(session, system))


def _list_releases(session: Session, system: str | None) -> list[CodeSetRelease]:
    c = _table("code_set_release").c
    stmt = select(CodeSetRelease).order_by(c.system, c.effective_from, c.id)
    if system is not None:
        stmt = stmt.where(c.system == _system(system))
    return list(session.execute(stmt).scalars())


def load_index(session: Session, *, builtin: bool = True, include_edits: bool = False) -> CodeSetIndex:
    """All imported code-set releases (plus the lazy built-in ones) in memory.

    PTP tables run to millions of rows, so by default they stay in the database: use
    ``edit_tables_for`` per encounter, or ``include_edits=True`` to load them all.
    """
    index = CodeSetIndex(builtin=builtin)
    rels = list_releases(session)
    code_rels = [r for r in rels if r.system not in (NCCI_PTP, MUE)]
    by_id: dict[int, Release] = {}
    for r in code_rels:
        assert r.id is not None
        by_id[r.id] = Release(
            r.system, r.label, r.effective_from, r.effective_until, {}, {}, source=r.source_file
        )
    if by_id:
        t = _table("code_set_code").c
        stmt = select(t.release_id, t.code, t.billable, t.is_modifier, t.added, t.terminated).where(
            t.release_id.in_(list(by_id))
        )
        for rid, code, billable, is_mod, added, term in session.execute(stmt):
            entry: CodeEntry = (bool(billable), added, term)
            rel = by_id[rid]
            (rel.modifiers if is_mod else rel.codes)[code] = entry
    for rel in by_id.values():
        index.add(rel)
    if include_edits:
        index.edits = _edit_tables(session, rels, None, None)
    return index


def _in_force(rels: Sequence[CodeSetRelease], dos: date) -> list[CodeSetRelease]:
    covering = [
        r for r in rels if r.effective_from <= dos and (r.effective_until is None or dos <= r.effective_until)
    ]
    if not covering:
        return []
    start = max(r.effective_from for r in covering)
    return [r for r in covering if r.effective_from == start]


def edit_tables_for(session: Session, *, codes: Iterable[str], date_of_service: date) -> EditTables:
    """The PTP and MUE rows in force on ``date_of_service`` that involve ``codes`` only: a small
    ``EditTables`` for ``evaluate_edits`` on one encounter (two indexed queries)."""
    rels = list_releases(session)
    chosen = _in_force([r for r in rels if r.system == NCCI_PTP], date_of_service) + _in_force(
        [r for r in rels if r.system == MUE], date_of_service
    )
    wanted = sorted({c.strip().upper() for c in codes})
    return _edit_tables(session, chosen, wanted, date_of_service)


def _edit_tables(
    session: Session, rels: Sequence[CodeSetRelease], codes: list[str] | None, dos: date | None
) -> EditTables:
    tables = EditTables()
    ptp_rels = {r.id: r for r in rels if r.system == NCCI_PTP and r.id is not None}
    mue_rels = {r.id: r for r in rels if r.system == MUE and r.id is not None}
    if ptp_rels:
        p = _table("ncci_ptp_edit").c
        stmt = select(p.release_id, p.column1, p.column2, p.effective, p.deleted, p.modifier_indicator).where(
            p.release_id.in_(list(ptp_rels))
        )
        if codes is not None:
            stmt = stmt.where(p.column1.in_(codes), p.column2.in_(codes))
        grouped: dict[int, list[PtpRecord]] = {rid: [] for rid in ptp_rels}
        result: Iterable[Any] = session.execute(stmt) if codes is None or len(codes) >= 2 else []
        for rid, c1, c2, eff, dele, ind in result:
            grouped[rid].append(PtpRecord(c1, c2, eff, dele, int(ind)))
        for rid, rows in grouped.items():
            r = ptp_rels[rid]
            tables.ptp.append(PtpTable.build(r.label, r.effective_from, r.effective_until, rows))
    if mue_rels:
        m = _table("mue_limit").c
        mstmt = select(m.release_id, m.code, m.units, m.mai).where(m.release_id.in_(list(mue_rels)))
        if codes is not None:
            mstmt = mstmt.where(m.code.in_(codes))
        mgrouped: dict[int, list[MueRecord]] = {rid: [] for rid in mue_rels}
        mresult: Iterable[Any] = session.execute(mstmt) if codes is None or codes else []
        for rid, code, units, mai in mresult:
            mgrouped[rid].append(MueRecord(code, int(units), int(mai)))
        for rid, mrows in mgrouped.items():
            r = mue_rels[rid]
            tables.mue.append(MueTable.build(r.label, r.effective_from, r.effective_until, mrows))
    return tables


def records_for_release(
    records: Iterable[CodeRecord],
) -> list[tuple[str, bool, date | None, date | None, bool]]:
    """``CodeRecord``s -> rows for ``releases.release_from_records`` (tests and tools)."""
    return [(r.code, r.billable, r.added, r.terminated, r.is_modifier) for r in records]
