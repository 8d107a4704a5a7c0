from datetime import date
from pathlib import Path

import pytest

from audit.codesets import builtin
from audit.codesets.parsers import CodeSetError, parse_icd10cm_order
from audit.codesets.releases import (
    CodeSetIndex,
    Release,
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


def test_builtin_fy2026_release_is_lazy_and_covers_the_fiscal_year() -> None:
    (rel,) = [r for r in CodeSetIndex().releases("ICD-10-CM") if "FY2026" in r.label]
    assert (rel.effective_from, rel.effective_until) == (date(2025, 10, 1), date(2026, 9, 30))
    assert rel.builtin and "simple-icd-10-cm==1.5.0" in rel.source
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


def test_a_date_before_every_loaded_release_is_unverified_naming_the_release_to_import() -> None:
    res = CodeSetIndex().check("ICD-10-CM", "E11.99", date(2019, 5, 1))
    assert res.ok and res.status == "unverified" and res.release_label is None
    assert res.required is not None and res.required.label == "ICD-10-CM FY2019"
    assert res.required.command == "audit codesets import icd10cm icd10cm_order_2019.txt"


def test_a_system_with_nothing_loaded_is_format_checked_with_a_warning() -> None:
    res = CodeSetIndex(builtin=False).check("ICD-10-CM", "E11.99", date(2019, 5, 1))
    assert res.ok and res.status == "unchecked" and res.release_label is None
    assert res.warnings and "existence not checked" in res.warnings[0]


def test_builtin_billable_counts_match_cms_totals() -> None:
    billable = {
        r.id: sum(1 for b, _, _ in builtin.codes(r.id).values() if b)
        for r in builtin.manifest()
        if r.system == "ICD-10-CM"
    }
    # CMS totals: FY2021 72,616 (+6 on 1 January 2021, M35.8 became a header), FY2025 74,260,
    # FY2026 74,719.
    assert billable == {
        "icd10cm-fy2021-oct": 72_616,
        "icd10cm-fy2021-jan": 72_621,
        "icd10cm-fy2025": 74_260,
        "icd10cm-fy2026": 74_719,
    }


def _release(lines: list[str], fy: int) -> Release:
    start, end = icd10cm_fiscal_year(fy)
    rows = records_for_release(parse_icd10cm_order(lines))
    codes = {c: (b, a, t) for c, b, a, t, _ in rows}
    return Release("ICD-10-CM", f"FY{fy}", start, end, codes, {})


def test_code_valid_in_one_fiscal_year_not_the_previous(tmp_path: Path) -> None:
    idx = CodeSetIndex([_release(FY2020, 2020), _release(FY2021, 2021)], builtin=False)
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


def test_an_april_update_judges_the_months_before_it_in_its_fiscal_year() -> None:
    """April updates only add codes: a code missing from the April list, or a header in it, is
    refused from the first day of its fiscal year; a code it has may be new in April, so it is
    accepted naming the April list."""
    start, end = date(2027, 4, 1), date(2027, 9, 30)
    april = Release(
        "ICD-10-CM",
        "FY2027 April update",
        start,
        end,
        {"E11": (False, None, None), "E11.9": (True, None, None), "E11.B": (True, None, None)},
        {},
    )
    idx = CodeSetIndex([april], builtin=False)
    october = date(2026, 10, 1)
    assert idx.check("ICD-10-CM", "E11.9", date(2027, 4, 1)).status == "valid"
    header = idx.check("ICD-10-CM", "E11", october)
    assert not header.ok and "FY2027 April update" in header.message
    missing = idx.check("ICD-10-CM", "E11.C", october)
    assert not missing.ok and "only adds codes" in missing.message
    known = idx.check("ICD-10-CM", "E11.B", date(2027, 3, 31))
    assert known.ok and known.status == "fallback" and known.release_label == "FY2027 April update"
    # The fiscal year before is not the April update's to judge.
    assert idx.check("ICD-10-CM", "E11.C", date(2026, 9, 30)).status == "unverified"
