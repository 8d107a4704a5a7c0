"""Pure format validation and normalisation of medical codes and modifiers.

No I/O, no clock, no session: ``normalize_code`` and ``normalize_modifier`` only look at the text.
Whether a code *exists* (in the release in force on the date of service) is answered by
``audit.codesets.releases.CodeSetIndex``.
"""

from __future__ import annotations

import re
from typing import Final

CPT: Final = "CPT"
HCPCS: Final = "HCPCS"
ICD10CM: Final = "ICD-10-CM"
ICD10PCS: Final = "ICD-10-PCS"
SYSTEMS: Final[tuple[str, ...]] = (CPT, HCPCS, ICD10CM, ICD10PCS)

_SYSTEM_ALIASES: Final[dict[str, str]] = {
    "CPT": CPT,
    "HCPCS": HCPCS,
    "HCPCSII": HCPCS,
    "HCPCSLEVELII": HCPCS,
    "ICD10CM": ICD10CM,
    "ICD10PCS": ICD10PCS,
}


class CodeFormatError(ValueError):
    """A code, modifier or system name is malformed. ``field`` names the offending input field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return self.message


# CPT: Category I (5 digits), Category II (####F), Category III (####T), PLA (####U),
# vaccine product codes pending FDA approval (####A) and multianalyte assays (####M).
_CPT_RE: Final = re.compile(r"\d{5}|\d{4}[FTUAM]")
# HCPCS Level II: a letter A-V and four digits (D codes are CDT and are accepted by format).
_HCPCS_RE: Final = re.compile(r"[A-V]\d{4}")
# ICD-10-CM: letter, digit, alphanumeric, then optionally a dot and 1-4 alphanumerics.
# U is accepted: CDC uses it for emergency codes (U07.1 COVID-19 since 1 April 2020, U09.9).
_ICD10CM_RE: Final = re.compile(r"([A-Z][0-9][0-9A-Z])(?:\.?([0-9A-Z]{1,4}))?")
# ICD-10-PCS: exactly seven characters, digits and letters except I and O.
_ICD10PCS_RE: Final = re.compile(r"[0-9A-HJ-NP-Z]{7}")
_MODIFIER_RE: Final = re.compile(r"[0-9A-Z]{2}")

_EXPECT: Final[dict[str, str]] = {
    CPT: (
        "expected five digits (Category I, e.g. 99213) or four digits followed by F, T, U, A or M "
        "(e.g. 3074F, 0042T, 0001U)"
    ),
    HCPCS: "expected a letter A-V followed by four digits (e.g. J1100)",
    ICD10CM: "expected a letter, two characters, then optionally a dot and 1-4 characters (e.g. E11.9)",
    ICD10PCS: "expected exactly seven letters or digits, without I or O (e.g. 0DTJ4ZZ)",
}


def normalize_system(system: str, *, field: str = "system") -> str:
    """Return the canonical system name (``CPT``, ``HCPCS``, ``ICD-10-CM``, ``ICD-10-PCS``)."""
    key = re.sub(r"[\s_\-.]", "", str(system)).upper()
    try:
        return _SYSTEM_ALIASES[key]
    except KeyError:
        raise CodeFormatError(
            field, f"'{system}' is not a known code system: expected one of {', '.join(SYSTEMS)}"
        ) from None


def _clean(value: object) -> str:
    return str(value).strip().upper()


def normalize_code(system: str, code: str, *, field: str = "code") -> str:
    """Validate ``code`` against the format of ``system`` and return its normal form.

    Normal form: upper case, surrounding whitespace removed; ICD-10-CM dotted after the third
    character (``e119`` -> ``E11.9``). Raises ``CodeFormatError(field, message)``.
    """
    canonical = normalize_system(system)
    if not isinstance(code, str):
        raise CodeFormatError(field, f"{canonical} code must be text, not {type(code).__name__}")
    text = _clean(code)
    if not text:
        raise CodeFormatError(field, f"an empty value is not a valid {canonical} code")
    if canonical == ICD10CM:
        m = _ICD10CM_RE.fullmatch(text)
        if m is None:
            raise CodeFormatError(field, f"'{code}' is not a valid {canonical} code: {_EXPECT[canonical]}")
        head, tail = m.group(1), m.group(2)
        return f"{head}.{tail}" if tail else head
    pattern = {CPT: _CPT_RE, HCPCS: _HCPCS_RE, ICD10PCS: _ICD10PCS_RE}[canonical]
    if pattern.fullmatch(text) is None:
        raise CodeFormatError(field, f"'{code}' is not a valid {canonical} code: {_EXPECT[canonical]}")
    return text


def is_valid_format(system: str, code: str) -> bool:
    """True when ``code`` has the format of ``system`` (never raises for a bad code)."""
    try:
        normalize_code(system, code)
    except CodeFormatError:
        return False
    return True


def normalize_modifier(modifier: str, *, field: str = "modifiers") -> str:
    """Validate a two-character modifier (CPT ``25``, HCPCS ``LT``) and return it upper case."""
    if not isinstance(modifier, str):
        raise CodeFormatError(field, f"a modifier must be text, not {type(modifier).__name__}")
    text = _clean(modifier)
    if _MODIFIER_RE.fullmatch(text) is None:
        raise CodeFormatError(
            field, f"'{modifier}' is not a valid modifier: expected two letters or digits (e.g. 25, LT)"
        )
    return text


def normalize_modifiers(modifiers: list[str] | tuple[str, ...], *, field: str = "modifiers") -> list[str]:
    """Normalise an ordered list of at most four modifiers, rejecting duplicates."""
    if len(modifiers) > 4:
        raise CodeFormatError(field, f"at most 4 modifiers are allowed on a line, got {len(modifiers)}")
    out: list[str] = []
    for i, m in enumerate(modifiers):
        norm = normalize_modifier(m, field=f"{field}[{i}]")
        if norm in out:
            raise CodeFormatError(f"{field}[{i}]", f"modifier '{norm}' is repeated on the line")
        out.append(norm)
    return out
