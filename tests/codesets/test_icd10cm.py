from datetime import date
from pathlib import Path

import pytest

from audit.codesets.parsers import CodeSetError, parse_icd10cm_order
from audit.codesets.releases import (
    CodeSetIndex,
    Release,
    builtin_icd10cm_release,
    fiscal_year_of,
    icd10cm_fiscal_year,
    infer_period,
)
from audit.codesets.service import records_for_release

IN_BUILTIN = date(2026, 5, 1)


def order_line(n: int, code: str, billable: bool, desc: str) -> str:
    return f"{n:05d} {code:<7} {int(billable)} {desc[:60]:<60} {desc}"


FY2020 = [  # October 2019 release: no U07 yet
    order_line(1, "E11", False, "Type 2 diabetes mellitus"),
    order_line(2, "E119", True, "Type 2 diabetes mellitus without complications"),
    order_line(3, "J1289", True, "Other viral pneumonia"),
]
FY2021 = [  # U07.1 COVID-19, added 1 April 2020, in the FY2021 order file
    *FY2020,
    order_line(4, "U07", False, "Emergency use of U07"),
    order_line(5, "U071", True, "COVID-19"),
]


def test_fiscal_year_periods() -> None:
    assert icd10cm_fiscal_year(2021) == (date(2020, 10, 1), date(2021, 9, 30))
    assert fiscal_year_of(date(2020, 9, 30)) == 2020
    assert fiscal_year_of(date(2020, 10, 1)) == 2021
    assert infer_period("ICD-10-CM", "icd10cm_order_2021.txt") == (
        "ICD-10-CM FY2021",
        date(2020, 10, 1),
        date(2021, 9, 30),
    )


def test_builtin_release_is_fy2026_april_update() -> None:
    rel = builtin_icd10cm_release()
    assert rel is not None
    assert (rel.effective_from, rel.effective_until) == (date(2026, 4, 1), date(2026, 9, 30))
    assert "FY2026" in rel.label
    assert not rel.loaded  # lazy


def test_builtin_header_rejected_leaf_accepted() -> None:
    idx = CodeSetIndex()
    header = idx.check("ICD-10-CM", "E11", IN_BUILTIN)
    assert not header.ok and "not billable" in header.message and "FY2026" in header.message
    for form in ("E11.9", "E119", "e11.9"):
        res = idx.check("ICD-10-CM", form, IN_BUILTIN)
        assert res.ok and res.normalized == "E11.9" and res.release_label and "FY2026" in res.release_label
    assert idx.check("ICD-10-CM", "S00.00XA", IN_BUILTIN).ok
    missing = idx.check("ICD-10-CM", "Z99.99", IN_BUILTIN)
    assert not missing.ok and "does not exist" in missing.message
    bad = idx.check("ICD-10-CM", "E11.", IN_BUILTIN)
    assert not bad.ok and bad.normalized is None


def test_no_release_for_date_warns_existence_not_checked() -> None:
    res = CodeSetIndex().check("ICD-10-CM", "E11.99", date(2019, 5, 1))
    assert res.ok and res.release_label is None
    assert res.warnings and "existence not checked" in res.warnings[0]


def test_builtin_billable_count_matches_cms_fy2026() -> None:
    rel = builtin_icd10cm_release()
    assert rel is not None
    assert sum(1 for b, _, _ in rel.codes.values() if b) == 74_719  # CMS FY2026 code count


@pytest.mark.slow
def test_builtin_leaves_match_simple_icd_10_cm() -> None:
    sicd = pytest.importorskip("simple_icd_10_cm")
    rel = builtin_icd10cm_release()
    assert rel is not None
    for code in ["E11", "E11.9", "E11.65", "S00.00XA", "A00", "A00.0", "Z79.4", "U07.1", "M54.5", "M54.50"]:
        assert (code in rel.codes and rel.codes[code][0]) == (sicd.is_valid_item(code) and sicd.is_leaf(code))


def _release(lines: list[str], fy: int) -> Release:
    start, end = icd10cm_fiscal_year(fy)
    rows = records_for_release(parse_icd10cm_order(lines))
    codes = {c: (b, a, t) for c, b, a, t, _ in rows}
    return Release("ICD-10-CM", f"FY{fy}", start, end, codes, {})


def test_code_valid_in_one_fiscal_year_not_the_previous(tmp_path: Path) -> None:
    idx = CodeSetIndex([_release(FY2020, 2020), _release(FY2021, 2021)], builtin_icd10cm=False)
    before = idx.check("ICD-10-CM", "U071", date(2020, 3, 15))
    assert not before.ok and "FY2020" in before.message and before.release_label == "FY2020"
    after = idx.check("ICD-10-CM", "U07.1", date(2020, 10, 1))
    assert after.ok and after.release_label == "FY2021" and after.normalized == "U07.1"
    assert not idx.check("ICD-10-CM", "U07", date(2020, 10, 1)).ok


def test_order_file_errors_name_the_line() -> None:
    with pytest.raises(CodeSetError, match="line 2"):
        list(parse_icd10cm_order([FY2020[0], "00002 E119    X short"]))
    with pytest.raises(CodeSetError, match="line 1"):
        list(parse_icd10cm_order(["garbage"]))
