from collections import Counter
from datetime import date

import pytest

from audit.codesets.parsers import CodeSetError, decode, parse_hcpcs
from audit.codesets.releases import CodeSetIndex, infer_period, release_from_records
from audit.codesets.service import records_for_release
from tests.support import HCPCS_2020

needs_file = pytest.mark.skipif(
    not HCPCS_2020.exists(), reason=f"CMS HCPCS 2020 file not found at {HCPCS_2020} (shared data not mounted)"
)


@pytest.fixture(scope="module")
def records() -> list:
    return list(parse_hcpcs(decode(HCPCS_2020.read_bytes()).splitlines()))


@needs_file
def test_real_file_counts(records: list) -> None:
    kinds = Counter(r.is_modifier for r in records)
    assert kinds[False] == 6710 and kinds[True] == 369
    assert sum(1 for r in records if r.terminated) == 615
    by = {r.code: r for r in records}
    assert by["A0021"].added and not by["A0021"].is_modifier
    assert by["LT"].is_modifier and by["GD"].terminated == date(2019, 12, 31)


@needs_file
def test_terminated_code_valid_before_and_invalid_after(records: list) -> None:
    # C9043 was added 2019-04-01 and terminated 2019-12-31 (last valid day).
    rel = release_from_records(
        "HCPCS", "HCPCS 2020 annual", date(2019, 10, 1), date(2020, 3, 31), records_for_release(records)
    )
    idx = CodeSetIndex([rel], builtin=False)
    assert idx.check("HCPCS", "C9043", date(2019, 12, 31)).ok
    after = idx.check("HCPCS", "c9043", date(2020, 1, 1))
    assert not after.ok and "terminated" in after.message and "HCPCS 2020 annual" in after.message
    # MA was added 2020-01-01: not yet valid in December 2019.
    assert not idx.check_modifier("MA", date(2019, 12, 31)).ok
    assert idx.check_modifier("MA", date(2020, 1, 2)).ok
    assert idx.check_modifier("lt", date(2020, 1, 2)).normalized == "LT"
    assert not idx.check_modifier("JZ", date(2020, 1, 2)).ok  # added 2022
    assert not idx.check("HCPCS", "A0001", date(2020, 2, 1)).ok
    # After the release's period: judged by it as the latest earlier release, terminations included.
    later = idx.check("HCPCS", "A0021", date(2020, 5, 1))
    assert later.ok and later.status == "fallback" and later.release_label == "HCPCS 2020 annual"
    assert "HCPC2020_APR_ANWEB.txt" in later.message
    for day in (date(2020, 5, 1), date(2027, 2, 1)):
        terminated = idx.check("HCPCS", "A4466", day)  # terminated 2016-12-31 in the same file
        assert not terminated.ok and terminated.status == "invalid" and "2016-12-31" in terminated.message
    assert idx.check("HCPCS", "C9999", date(2027, 2, 1)).status == "unverified"


def test_period_inferred_from_name() -> None:
    assert infer_period("HCPCS", "HCPC2020_ANWEB_w_disclaimer.txt") == (
        "HCPCS 2020",
        date(2020, 1, 1),
        date(2020, 12, 31),
    )
    # A quarterly file is in force to the end of its year, until a later quarterly file replaces it.
    assert infer_period("HCPCS", "HCPC2024_JUL_ANWEB_v2.txt") == (
        "HCPCS 2024 JUL quarterly update",
        date(2024, 7, 1),
        date(2024, 12, 31),
    )


def test_cpt_modifiers_and_hcpcs_modifier_without_release() -> None:
    idx = CodeSetIndex(builtin=False)
    assert idx.check_modifier("25", date(2024, 1, 1)).ok
    assert not idx.check_modifier("34", date(2024, 1, 1)).ok
    unk = idx.check_modifier("XS", date(2024, 1, 1))
    assert unk.ok and "existence not checked" in unk.warnings[0]


def test_bad_record_reports_line() -> None:
    good = " " * 3 + "LT" + "00100" + "7" + " " * 309
    with pytest.raises(CodeSetError, match="line 2"):
        list(parse_hcpcs([good, "A0021001003short"]))
