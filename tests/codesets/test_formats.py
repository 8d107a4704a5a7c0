import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.codesets.formats import (
    CodeFormatError,
    is_valid_format,
    normalize_code,
    normalize_modifier,
    normalize_modifiers,
    normalize_system,
)


@pytest.mark.parametrize(
    ("system", "raw", "norm"),
    [
        ("ICD-10-CM", "E11.9", "E11.9"),
        ("ICD-10-CM", "e119", "E11.9"),
        ("icd10cm", " E11 ", "E11"),
        ("ICD-10-CM", "S0000XA", "S00.00XA"),
        ("ICD-10-CM", "U07.1", "U07.1"),
        ("CPT", "99213", "99213"),
        ("CPT", "3074f", "3074F"),
        ("CPT", "0042T", "0042T"),
        ("CPT", "0001U", "0001U"),
        ("CPT", "0001A", "0001A"),
        ("CPT", "0002M", "0002M"),
        ("HCPCS", "j1100", "J1100"),
        ("ICD-10-PCS", "0dtj4zz", "0DTJ4ZZ"),
    ],
)
def test_valid_codes_normalise(system: str, raw: str, norm: str) -> None:
    assert normalize_code(system, raw) == norm


@pytest.mark.parametrize(
    ("system", "raw"),
    [
        ("ICD-10-CM", "E11."),
        ("ICD-10-CM", "E1"),
        ("ICD-10-CM", "1E1.9"),
        ("ICD-10-CM", "E11.12345"),
        ("CPT", "9921"),
        ("CPT", "99213F"),
        ("CPT", "1234X"),
        ("HCPCS", "W1234"),
        ("HCPCS", "J110"),
        ("ICD-10-PCS", "0DTJ4ZI"),
        ("ICD-10-PCS", "0DTJ4Z"),
        ("ICD-10-CM", ""),
    ],
)
def test_invalid_codes_raise_with_field(system: str, raw: str) -> None:
    with pytest.raises(CodeFormatError) as info:
        normalize_code(system, raw, field="code")
    assert info.value.field == "code"
    assert system in str(info.value)
    assert not is_valid_format(system, raw)


def test_message_is_human() -> None:
    with pytest.raises(CodeFormatError) as info:
        normalize_code("ICD-10-CM", "E11.")
    assert str(info.value).startswith(
        "'E11.' is not a valid ICD-10-CM code: expected a letter, two characters"
    )


def test_unknown_system() -> None:
    with pytest.raises(CodeFormatError) as info:
        normalize_system("SNOMED")
    assert info.value.field == "system"


def test_modifiers() -> None:
    assert normalize_modifier("lt") == "LT"
    assert normalize_modifiers(["25", "xs"]) == ["25", "XS"]
    for bad in ["2", "LTR", "-5", ""]:
        with pytest.raises(CodeFormatError):
            normalize_modifier(bad)
    with pytest.raises(CodeFormatError, match="at most 4"):
        normalize_modifiers(["25", "59", "LT", "RT", "XS"])
    with pytest.raises(CodeFormatError) as info:
        normalize_modifiers(["25", "25"])
    assert info.value.field == "modifiers[1]"


alnum = st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
icd_like = st.tuples(
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    st.sampled_from("0123456789"),
    alnum,
    st.sampled_from(["", "."]),
    st.lists(alnum, min_size=1, max_size=4).map("".join),
).map(lambda t: t[0] + t[1] + t[2] + t[3] + t[4])


@given(icd_like)
def test_icd10cm_normalisation_idempotent(code: str) -> None:
    once = normalize_code("ICD-10-CM", code)
    assert normalize_code("ICD-10-CM", once) == once
    assert normalize_code("ICD-10-CM", once.replace(".", "")) == once
    assert once == once.upper() and once[3] == "."


@given(st.sampled_from(["CPT", "HCPCS", "ICD-10-CM", "ICD-10-PCS"]), st.text(max_size=9))
def test_normalisation_idempotent_or_rejected(system: str, raw: str) -> None:
    try:
        once = normalize_code(system, raw)
    except CodeFormatError:
        return
    assert normalize_code(system, once) == once


@given(st.text(max_size=3))
def test_modifier_idempotent_or_rejected(raw: str) -> None:
    try:
        once = normalize_modifier(raw)
    except CodeFormatError:
        return
    assert normalize_modifier(once) == once and len(once) == 2
