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
        ("ICD-10-CM", "qa00142", "QA0.0142"),  # FY2026: a letter in second place
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
        "'E11.' is not a valid ICD-10-CM code: expected a letter, two letters or digits"
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


# Unicode look-alikes that Python's `\d`, `isdigit` or `upper` would let through.
FULL_WIDTH = "\uff19\uff19\uff12\uff11\uff13"  # full-width 99213
ARABIC_INDIC = "\u0669\u0669\u0662\u0661\u0663"  # Arabic-Indic 99213
DEVANAGARI = "\u096f\u096f\u0968\u0967\u0969"  # Devanagari 99213


@pytest.mark.parametrize(
    ("system", "raw"),
    [
        ("CPT", FULL_WIDTH),
        ("CPT", ARABIC_INDIC),
        ("CPT", DEVANAGARI),
        ("CPT", "9921\uff13"),  # one full-width digit among ASCII ones
        ("CPT", "\uff10\uff10\uff14\uff12T"),  # 0042T, digits full-width
        ("HCPCS", "J\uff11\uff11\uff10\uff10"),
        ("HCPCS", "\uff2a1100"),  # full-width J
        ("ICD-10-CM", "E\uff11\uff11.9"),
        ("ICD-10-CM", "\u0131\u0031\u0030"),  # dotless i upper-cases to ASCII I
        ("ICD-10-CM", "E11\uff0e9"),  # full-width full stop
        ("ICD-10-CM", "\u017f00.00XA"),  # long s upper-cases to ASCII S
        ("ICD-10-PCS", "0DTJ4Z\uff3a"),
        ("ICD-10-CM", "E11.9\u00a0"),  # no-break space
        ("ICD-10-CM", "\u3000E11.9"),  # ideographic space
    ],
)
def test_codes_accept_ascii_only(system: str, raw: str) -> None:
    with pytest.raises(CodeFormatError) as info:
        normalize_code(system, raw, field="code")
    assert info.value.field == "code" and "ASCII" in info.value.message
    assert not is_valid_format(system, raw)


@pytest.mark.parametrize("raw", ["\uff12\uff15", "\u0662\u0665", "L\uff34", "\u0131\u0131", "\u017f\u017f"])
def test_modifiers_accept_ascii_only(raw: str) -> None:
    with pytest.raises(CodeFormatError) as info:
        normalize_modifiers(["25", raw])
    assert info.value.field == "modifiers[1]" and "ASCII" in info.value.message


@pytest.mark.parametrize("raw", ["\uff23\uff30\uff34", "\u0131cd10cm", "HCPCS\u00a0"])
def test_system_names_accept_ascii_only(raw: str) -> None:
    with pytest.raises(CodeFormatError) as info:
        normalize_system(raw)
    assert info.value.field == "system"


@pytest.mark.parametrize("raw", ["K3YF2QN", "A0DTJ4Z", "EDTJ4ZZ", "Z0DTJ4Z", "J3YF2QN"])
def test_icd10pcs_first_character_is_one_of_the_17_sections(raw: str) -> None:
    with pytest.raises(CodeFormatError, match="section"):
        normalize_code("ICD-10-PCS", raw)


@given(st.sampled_from(["CPT", "HCPCS", "ICD-10-CM", "ICD-10-PCS"]), st.text(max_size=9))
def test_whatever_is_accepted_is_ascii(system: str, raw: str) -> None:
    try:
        normalize_code(system, raw)
    except CodeFormatError:
        return
    assert raw.isascii()
