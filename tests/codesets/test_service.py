from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel, create_engine, func, select

from audit.codesets.edits import EditLine, evaluate_edits
from audit.codesets.models import CodeSetCode, CodeSetRelease
from audit.codesets.parsers import CodeSetError
from audit.codesets.service import edit_tables_for, import_release, list_releases, load_index
from audit.codesets.store import store_release
from audit.principal import host_operator
from tests.support import HCPCS_2020


def imp(session: Session, **kw: object) -> CodeSetRelease:
    """An audited import by the host's operator (the CLI's path); returns the stored release."""
    return import_release(session, user=host_operator(), **kw).release  # type: ignore[arg-type]


@pytest.fixture()
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
    SQLModel.metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def test_cpt_format_only_without_list_then_existence_with_list(session: Session, tmp_path: Path) -> None:
    idx = load_index(session, builtin=False)
    res = idx.check("CPT", "99213", date(2025, 6, 1))
    assert res.ok and "existence not checked" in res.warnings[0]
    assert not idx.check("CPT", "9921", date(2025, 6, 1)).ok

    f = tmp_path / "cpt_2025.csv"
    f.write_text(
        "code,effective_from,effective_until\n99213,2025-01-01,\n0042T,2025-01-01,2025-06-30\n3074F,,\n"
    )
    rel = imp(session, system="cpt", path=f)
    assert (rel.label, rel.effective_from, rel.effective_until, rel.code_count) == (
        "CPT 2025",
        date(2025, 1, 1),
        date(2025, 12, 31),
        3,
    )
    idx = load_index(session, builtin=False)
    assert idx.check("CPT", "99213", date(2025, 6, 1)).ok
    missing = idx.check("CPT", "99214", date(2025, 6, 1))
    assert not missing.ok and "CPT 2025" in missing.message
    assert idx.check("CPT", "0042T", date(2025, 6, 30)).ok
    assert not idx.check("CPT", "0042T", date(2025, 7, 1)).ok
    assert idx.check("CPT", "99214", date(2026, 1, 2)).warnings  # no list for 2026


@pytest.mark.skipif(not HCPCS_2020.exists(), reason=f"CMS HCPCS 2020 file not found at {HCPCS_2020}")
def test_import_real_hcpcs_file(session: Session) -> None:
    calls: list[tuple[str, int, int | None]] = []
    rel = imp(session, system="hcpcs", path=HCPCS_2020, progress=lambda *a: calls.append(a))
    # The annual file covers its calendar year (until a quarterly file replaces it).
    assert rel.label == "HCPCS 2020" and rel.code_count == 7079
    assert (rel.effective_from, rel.effective_until) == (date(2020, 1, 1), date(2020, 12, 31))
    assert rel.sha256 == "e7f6f58b91fa54d081be50230a1a34ae4671038539a2b42ed055002d395c1063"
    assert ("store", 7079, 7079) in calls
    n = session.exec(
        select(func.count()).select_from(CodeSetCode).where(CodeSetCode.release_id == rel.id)
    ).one()
    assert n == 7079
    idx = load_index(session, builtin=False)
    assert idx.check("HCPCS", "J1100", date(2020, 2, 1)).ok
    assert not idx.check("HCPCS", "C9043", date(2020, 2, 1)).ok  # terminated 2019-12-31
    assert idx.check_modifier("RT", date(2020, 2, 1)).ok
    assert [r.id for r in list_releases(session, "hcpcs")] == [rel.id]


def test_ncci_and_mue_import_and_per_encounter_tables(session: Session, tmp_path: Path) -> None:
    ptp = tmp_path / "ccipra-v310r0-f1.txt"
    ptp.write_text(
        "Column 1\tColumn 2\t*\tEffective Date\tDeletion Date\tModifier\tRationale\n"
        "11042\t97597\t\t20130101\t*\t1\tMisuse of column two code with column one code\n"
        "36591\t36592\t\t20100101\t*\t0\tMutually exclusive\n"
    )
    mue = tmp_path / "MCR_MUE_PractitionerServices_Eff_01-01-2025.csv"
    mue.write_text(
        '"notice"\n'
        '"HCPCS/CPT Code","Practitioner Services MUE Values","MUE Adjudication Indicator","MUE Rationale"\n'
        '"20610","2","2 Date of Service Edit: Policy","Anatomic"\n'
    )
    r1 = imp(session, system="ncci-ptp", path=ptp)
    r2 = imp(session, system="mue", path=mue)
    assert (r1.label, r1.effective_from, r1.effective_until) == (
        "NCCI PTP v31.0",
        date(2025, 1, 1),
        date(2025, 3, 31),
    )
    assert r2.label == "MUE 2025 Q1"
    dos = date(2025, 2, 1)
    lines = [EditLine(1, "11042"), EditLine(2, "97597", ("XS",)), EditLine(3, "20610", units=3)]
    tables = edit_tables_for(session, codes=[ln.code for ln in lines], date_of_service=dos)
    found = evaluate_edits(lines, dos, tables)
    assert [(f.kind, f.bypassed, f.severity) for f in found] == [
        ("ncci_ptp", True, "info"),
        ("mue", False, "error"),
    ]
    idx = load_index(session, builtin=False, include_edits=True)
    assert idx.edits is not None and len(idx.edits.ptp) == 1


def test_bad_files_raise_codeset_error(session: Session, tmp_path: Path) -> None:
    bad = tmp_path / "cpt_2025.csv"
    bad.write_text("99213,2025-01-01,\n9921X,2025-01-01,\n")
    with pytest.raises(CodeSetError, match="line 2") as info:
        store_release(session, system="cpt", path=bad)
    assert isinstance(info.value, ValueError) and info.value.field == "file"
    noname = tmp_path / "list.csv"
    noname.write_text("99213,,\n")
    with pytest.raises(CodeSetError) as info2:
        store_release(session, system="cpt", path=noname)
    assert info2.value.field == "effective_from"
    rel, _ = store_release(
        session, system="cpt", path=noname, effective_from=date(2024, 1, 1), label="org list"
    )
    assert rel.effective_until is None and rel.label == "org list"
    with pytest.raises(CodeSetError) as info3:
        store_release(session, system="snomed", path=noname)
    assert info3.value.field == "system"
    assert session.exec(select(func.count()).select_from(CodeSetRelease)).one() == 1


def test_icd10cm_order_file_import_overrides_builtin_period(session: Session, tmp_path: Path) -> None:
    f = tmp_path / "icd10cm_order_2021.txt"
    f.write_text("00001 E11     0 Type 2 diabetes\n00002 E119    1 Type 2 diabetes without complications\n")
    rel = imp(session, system="icd10cm", path=f)
    assert (rel.effective_from, rel.effective_until) == (date(2020, 10, 1), date(2021, 9, 30))
    idx = load_index(session)
    # An import wins over the built-in releases on every date it covers (January 2021 included).
    for day in (date(2020, 11, 1), date(2021, 1, 1), date(2021, 9, 30)):
        assert idx.check("ICD-10-CM", "E119", day).release_label == "ICD-10-CM FY2021"
        assert not idx.check("ICD-10-CM", "E11", day).ok
        assert not idx.check("ICD-10-CM", "J12.89", day).ok  # not in this (tiny) file
    assert "built-in" in (idx.check("ICD-10-CM", "J12.89", date(2026, 5, 1)).release_label or "")
