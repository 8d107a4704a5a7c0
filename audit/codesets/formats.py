r"""Pure format validation and normalisation of medical codes and modifiers.

No I/O, no clock, no session: ``normalize_code`` and ``normalize_modifier`` only look at the text.
Whether a code *exists* (in the release in force on the date of service) is answered by
``audit.codesets.releases.CodeSetIndex``.

Codes, modifiers and system names are ASCII only. Python's ``\d`` and ``str.upper`` are Unicode-aware
(full-width digits ``\uff19\uff19\uff12\uff11\uff13`` match ``\d{5}``; ``"\u0131".upper()`` is ``"I"``), so
every input is checked with ``str.isascii`` before it is touched, and every pattern uses explicit ASCII
classes under ``re.ASCII``.
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
_CPT_RE: Final = re.compile(r"[0-9]{5}|[0-9]{4}[FTUAM]", re.ASCII)
# HCPCS Level II: a letter A-V and four digits (D codes are CDT and are accepted by format).
_HCPCS_RE: Final = re.compile(r"[A-V][0-9]{4}", re.ASCII)
# ICD-10-CM: a letter, two alphanumerics, then optionally a dot and 1-4 alphanumerics.
# U is accepted: CDC uses it for emergency codes (U07.1 COVID-19 since 1 April 2020, U09.9).
# The second character is a digit up to FY2025; FY2026 added categories such as QA0 (QA0.0142).
_ICD10CM_RE: Final = re.compile(r"([A-Z][0-9A-Z][0-9A-Z])(?:\.?([0-9A-Z]{1,4}))?", re.ASCII)
# ICD-10-PCS: seven characters, digits and letters except I and O. The first names one of the 17
# sections (0-9 medical and surgical to chiropractic, B-D imaging to radiation therapy, F-H
# rehabilitation to substance abuse, X new technology): no code starts with A, E, J-W, Y or Z.
_ICD10PCS_RE: Final = re.compile(r"[0-9BCDFGHX][0-9A-HJ-NP-Z]{6}", re.ASCII)
_MODIFIER_RE: Final = re.compile(r"[0-9A-Z]{2}", re.ASCII)

_EXPECT: Final[dict[str, str]] = {
    CPT: (
        "expected five digits (Category I, e.g. 99213) or four digits followed by F, T, U, A or M "
        "(e.g. 3074F, 0042T, 0001U)"
    ),
    HCPCS: "expected a letter A-V followed by four digits (e.g. J1100)",
    ICD10CM: (
        "expected a letter, two letters or digits, then optionally a dot and 1-4 letters or digits "
        "(e.g. E11.9)"
    ),
    ICD10PCS: (
        "expected exactly seven letters or digits, without I or O, starting with a section "
        "0-9, B, C, D, F, G, H or X (e.g. 0DTJ4ZZ)"
    ),
}


def _ascii_text(value: str, field: str, what: str) -> str:
    """``value`` upper-cased without surrounding spaces, refusing anything outside ASCII first."""
    if not value.isascii():
        raise CodeFormatError(
            field, f"{what} {value!r} holds characters outside ASCII: use the letters A-Z and digits 0-9"
        )
    return value.strip().upper()


def normalize_system(system: str, *, field: str = "system") -> str:
    """Return the canonical system name (``CPT``, ``HCPCS``, ``ICD-10-CM``, ``ICD-10-PCS``)."""
    if not isinstance(system, str):
        raise CodeFormatError(field, f"a code system must be text, not {type(system).__name__}")
    key = re.sub(r"[ _\-.]", "", _ascii_text(system, field, "code system"))
    try:
        return _SYSTEM_ALIASES[key]
    except KeyError:
        raise CodeFormatError(
            field, f"'{system}' is not a known code system: expected one of {', '.join(SYSTEMS)}"
        ) from None


def normalize_code(system: str, code: str, *, field: str = "code") -> str:
    """Validate ``code`` against the format of ``system`` and return its normal form.

    Normal form: upper case, surrounding whitespace removed; ICD-10-CM dotted after the third
    character (``e119`` -> ``E11.9``). Raises ``CodeFormatError(field, message)``.
    """
    canonical = normalize_system(system)
    if not isinstance(code, str):
        raise CodeFormatError(field, f"{canonical} code must be text, not {type(code).__name__}")
    text = _ascii_text(code, field, f"{canonical} code")
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
    text = _ascii_text(modifier, field, "modifier")
    if _MODIFIER_RE.fullmatch(text) is None:
        raise CodeFormatError(
            field, f"'{modifier}' is not a valid modifier: expected two letters or digits (e.g. 25, LT)"
        )
    return text


def modifiers_allowed(system: str, modifiers: list[str] | tuple[str, ...]) -> None:
    """Modifiers qualify CPT and HCPCS procedure codes; an ICD-10-CM diagnosis (or an ICD-10-PCS code,
    whose seven characters already say everything) takes none, so a line that carries one is refused
    rather than stored with a modifier no claim would accept."""
    if modifiers and system in (ICD10CM, ICD10PCS):
        kind = "diagnosis" if system == ICD10CM else "procedure"
        raise CodeFormatError(
            "modifiers",
            f"{system} {kind} codes take no modifiers; modifiers belong on {CPT} and {HCPCS} lines",
        )


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
