from datetime import date

import pytest

from audit.codesets.edits import EditLine, EditTables, MueTable, PtpTable, evaluate_edits
from audit.codesets.parsers import CodeSetError, parse_mue, parse_ncci_ptp

DOS = date(2025, 3, 3)

PTP_TEXT = """CPT codes and descriptions only are copyright 2024 American Medical Association.
Column 1\tColumn 2\t* = In existence prior to 1996\tEffective Date\t
\tDeletion Date *=no data\tModifier\tPTP Edit Rationale
\t\t\t\t\t0=not allowed 1=allowed 9=not applicable\t
\t\t\t\t\t\t
11042\t97597\t\t20130101\t*\t1\tMisuse of column two code with column one code
36591\t36592\t\t20100101\t*\t0\tMutually exclusive procedures
99213\t36415\t\t20100101\t20191231\t1\tStandard preparation
20610\t20611\t\t20150101\t*\t9\tNot an edit
G0463\tJ1100\t\t20240101\t*\t1\tCMS policy
"""

MUE_TEXT = """"CPT codes and descriptions only are copyright 2024 American Medical Association."
"HCPCS/CPT Code","Practitioner Services MUE Values","MUE Adjudication Indicator","MUE Rationale"
"20610","2","2 Date of Service Edit: Policy","Anatomic Consideration"
"J1100","30","3 Date of Service Edit: Clinical","Clinical: Data"
"97110","6","1 Line Edit","Clinical: Data"
"""


@pytest.fixture()
def tables() -> EditTables:
    ptp = PtpTable.build(
        "NCCI PTP v31.0", date(2025, 1, 1), date(2025, 3, 31), parse_ncci_ptp(PTP_TEXT.splitlines())
    )
    mue = MueTable.build("MUE 2025 Q1", date(2025, 1, 1), date(2025, 3, 31), parse_mue(MUE_TEXT.splitlines()))
    return EditTables([ptp], [mue])


def ptp(findings: list) -> list:
    return [f for f in findings if f.kind == "ncci_ptp"]


def mue(findings: list) -> list:
    return [f for f in findings if f.kind == "mue"]


def test_parsers_skip_headers() -> None:
    rows = list(parse_ncci_ptp(PTP_TEXT.splitlines()))
    assert [r.modifier_indicator for r in rows] == [1, 0, 1, 9, 1]
    assert rows[0].deleted is None and rows[2].deleted == date(2019, 12, 31)
    limits = list(parse_mue(MUE_TEXT.splitlines()))
    assert [(m.code, m.units, m.mai) for m in limits] == [("20610", 2, 2), ("J1100", 30, 3), ("97110", 6, 1)]


def test_parser_errors_name_the_line() -> None:
    with pytest.raises(CodeSetError, match="line 2"):
        list(parse_ncci_ptp(["header", "11042\t97597\t\t2013\t*\t1\tx"]))
    with pytest.raises(CodeSetError, match="line 1"):
        list(parse_mue(['"20610","two","2 Date of Service Edit: Policy",""']))


def test_indicator_0_never_bypassed(tables: EditTables) -> None:
    lines = [EditLine(1, "36591"), EditLine(2, "36592", ("59",))]
    [f] = ptp(evaluate_edits(lines, DOS, tables))
    assert f.severity == "error" and not f.bypassed and f.codes == ("36591", "36592") and f.indicator == 0


def test_indicator_1_without_modifier(tables: EditTables) -> None:
    [f] = ptp(evaluate_edits([EditLine(1, "11042"), EditLine(2, "97597")], DOS, tables))
    assert f.severity == "error" and not f.bypassed and "v31.0" in f.message


@pytest.mark.parametrize("mod", ["59", "XS", "LT", "25", "F1", "91"])
def test_indicator_1_bypassed_by_ncci_modifier_on_column_two(tables: EditTables, mod: str) -> None:
    [f] = ptp(evaluate_edits([EditLine(1, "11042"), EditLine(2, "97597", (mod,))], DOS, tables))
    assert f.bypassed and f.modifier == mod and f.line_id == 2 and f.severity == "info"


@pytest.mark.parametrize("mod", ["26", "TC", "76", "77", "GC", "GE"])
def test_non_ncci_modifier_does_not_bypass(tables: EditTables, mod: str) -> None:
    [f] = ptp(evaluate_edits([EditLine(1, "11042"), EditLine(2, "97597", (mod,))], DOS, tables))
    assert not f.bypassed and f.severity == "error" and f"modifier {mod} does not bypass" in f.message


def test_modifier_on_column_one_does_not_bypass(tables: EditTables) -> None:
    [f] = ptp(evaluate_edits([EditLine(1, "11042", ("59",)), EditLine(2, "97597")], DOS, tables))
    assert not f.bypassed


def test_indicator_9_and_deleted_and_not_yet_effective(tables: EditTables) -> None:
    lines = [EditLine(1, "20610"), EditLine(2, "20611"), EditLine(3, "99213"), EditLine(4, "36415")]
    assert ptp(evaluate_edits(lines, DOS, tables)) == []
    assert (
        ptp(
            evaluate_edits(
                [EditLine(1, "99213"), EditLine(2, "36415")],
                date(2019, 12, 31),
                EditTables(tables.ptp[:0], []),
            )
        )
        != []
    )  # no table for 2019: info finding
    early = PtpTable.build("old", date(2019, 1, 1), date(2019, 12, 31), parse_ncci_ptp(PTP_TEXT.splitlines()))
    lines2 = [EditLine(1, "99213"), EditLine(2, "36415"), EditLine(3, "G0463"), EditLine(4, "J1100")]
    found = ptp(evaluate_edits(lines2, date(2019, 12, 31), EditTables([early], [])))
    assert [f.codes for f in found] == [("99213", "36415")]  # deleted 2019-12-31 still applies that day


def test_voided_and_diagnosis_lines_ignored(tables: EditTables) -> None:
    lines = [
        EditLine(1, "36591"),
        EditLine(2, "36592", status="voided"),
        EditLine(3, "E11.9", system="ICD-10-CM"),
    ]
    assert ptp(evaluate_edits(lines, DOS, tables)) == []


def test_no_tables_for_date_is_reported(tables: EditTables) -> None:
    out = evaluate_edits([EditLine(1, "36591"), EditLine(2, "36592")], date(2026, 1, 5), tables)
    assert {f.kind for f in out} == {"ncci_ptp", "mue"} and all(f.severity == "info" for f in out)


def test_mue_mai_1_line_edit(tables: EditTables) -> None:
    assert (
        mue(evaluate_edits([EditLine(1, "97110", units=4), EditLine(2, "97110", units=4)], DOS, tables)) == []
    )
    [f] = mue(evaluate_edits([EditLine(1, "97110", units=7)], DOS, tables))
    assert f.severity == "error" and f.indicator == 1 and f.line_id == 1 and f.limit == 6


def test_mue_mai_2_absolute(tables: EditTables) -> None:
    assert mue(evaluate_edits([EditLine(1, "20610", units=2)], DOS, tables)) == []
    [f] = mue(
        evaluate_edits([EditLine(1, "20610", ("RT",), 1), EditLine(2, "20610", ("LT", "59"), 2)], DOS, tables)
    )
    assert f.severity == "error" and f.units == 3 and "absolute" in f.message and f.line_ids == (1, 2)


def test_mue_mai_3_clinical(tables: EditTables) -> None:
    [f] = mue(evaluate_edits([EditLine(1, "J1100", units=20), EditLine(2, "J1100", units=11)], DOS, tables))
    assert f.severity == "warning" and f.indicator == 3 and "appeal" in f.message


def test_file_numbers_are_ascii_digits() -> None:
    """int() converts full-width digits: a file's dates and counts must be ASCII."""
    from audit.codesets.parsers import parse_yyyymmdd

    with pytest.raises(CodeSetError):
        parse_yyyymmdd("\uff12\uff10\uff12\uff15\uff10\uff11\uff10\uff11")
    with pytest.raises(CodeSetError, match="whole number"):
        list(parse_mue(['"20610","\uff12","2 Date of Service Edit: Policy","Anatomic"']))
