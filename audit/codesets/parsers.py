"""Pure parsers: text lines of CMS/AMA-format files -> typed records.

Every parser takes an iterable of text lines (already decoded; see ``decode``) and yields records.
A malformed data line raises ``CodeSetError`` naming the 1-based line number.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from audit.codesets.formats import (
    CPT,
    HCPCS,
    ICD10CM,
    ICD10PCS,
    CodeFormatError,
    normalize_code,
    normalize_modifier,
)


class CodeSetError(ValueError):
    """A code-set file (or import request) is invalid. ``field`` names the input; ``line`` the line."""

    def __init__(self, message: str, *, field: str = "file", line: int | None = None) -> None:
        text = f"line {line}: {message}" if line is not None else message
        super().__init__(text)
        self.field = field
        self.line = line
        self.message = text

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class CodeRecord:
    """One code (or modifier) of a release. ``terminated`` is the LAST day the code is valid."""

    code: str
    billable: bool = True
    added: date | None = None
    terminated: date | None = None
    is_modifier: bool = False
    description: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class PtpRecord:
    column1: str
    column2: str
    effective: date
    deleted: date | None  # last day the edit applies; None = still active
    modifier_indicator: int  # 0 never bypassed, 1 bypassed by an NCCI-associated modifier, 9 not an edit
    rationale: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class MueRecord:
    code: str
    units: int
    mai: int  # 1 line edit, 2 date-of-service (absolute), 3 date-of-service (clinical)
    rationale: str = ""
    line: int = 0


def decode(data: bytes) -> str:
    """Decode a CMS file: UTF-8 (BOM tolerated) when valid, otherwise Windows-1252."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _ascii_digits(text: str) -> bool:
    """``str.isdigit`` accepts any Unicode digit (and ``int`` converts them): files are ASCII."""
    return text.isascii() and text.isdigit()


def parse_yyyymmdd(text: str, *, line: int | None = None, field: str = "date") -> date | None:
    """``20191231`` or ``2019-12-31`` -> date; blank or ``*`` -> None."""
    t = text.strip()
    if not t or t == "*":
        return None
    digits = t.replace("-", "").replace("/", "")
    if len(digits) != 8 or not _ascii_digits(digits):
        raise CodeSetError(f"{field} '{t}' is not a date (expected YYYYMMDD or YYYY-MM-DD)", line=line)
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise CodeSetError(f"{field} '{t}' is not a valid calendar date", line=line) from None


def _code(system: str, raw: str, line: int) -> str:
    try:
        return normalize_code(system, raw)
    except CodeFormatError as exc:
        raise CodeSetError(exc.message, line=line) from None


# --------------------------------------------------------------------------- ICD-10-CM order file
def parse_icd10cm_order(lines: Iterable[str], *, system: str = ICD10CM) -> Iterator[CodeRecord]:
    """CMS ``icd10cm_order_YYYY.txt`` (also ``icd10pcs_order_YYYY.txt`` with ``system=ICD10PCS``):
    order 1-5, code 7-13, billable flag 15, short description 17-76, long description 78+.

    Yields every row (headers ``billable=False``); blank lines are skipped.
    """
    for n, raw in enumerate(lines, start=1):
        text = raw.rstrip("\r\n")
        if not text.strip():
            continue
        if len(text) < 15 or not _ascii_digits(text[:5].strip()):
            raise CodeSetError(
                "not an order-file row (expected order number in columns 1-5, code in 7-13, "
                "billable flag in 15)",
                line=n,
            )
        flag = text[14]
        if flag not in "01":
            raise CodeSetError(f"billable flag in column 15 must be 0 or 1, got '{flag}'", line=n)
        raw_code = text[6:13].strip()
        # PCS headers are 1-6 characters: there is no 7-character format to check them against.
        header_pcs = system == ICD10PCS and flag == "0"
        code = raw_code.upper() if header_pcs else _code(system, raw_code, n)
        desc = (text[77:] if len(text) > 77 else text[16:76]).strip()
        yield CodeRecord(code=code, billable=flag == "1", description=desc, line=n)


# --------------------------------------------------------------------------- HCPCS 320-char file
_HCPCS_RICS = frozenset("3478")


def parse_hcpcs(lines: Iterable[str]) -> Iterator[CodeRecord]:
    """CMS alpha-numeric HCPCS file (320-char records). Yields RIC 3 (procedure) and RIC 7 (modifier).

    Leading disclaimer lines (before the first record) are skipped; continuation records (RIC 4/8)
    are ignored; dates: ADD_DT 269-276, TERM_DT 285-292 (last valid day).
    """
    started = False
    for n, raw in enumerate(lines, start=1):
        text = raw.rstrip("\r\n")
        is_record = len(text) >= 11 and text[10] in _HCPCS_RICS and _ascii_digits(text[5:10].strip())
        if not is_record:
            if not started or not text.strip():
                continue
            raise CodeSetError("not a HCPCS record (expected a record id 3, 4, 7 or 8 in column 11)", line=n)
        started = True
        ric = text[10]
        if ric in "48":
            continue
        if len(text) < 293:
            raise CodeSetError(f"HCPCS first-line record is {len(text)} characters, expected 320", line=n)
        short = text[91:119].strip()
        added = parse_yyyymmdd(text[268:276], line=n, field="ADD_DT")
        terminated = parse_yyyymmdd(text[284:292], line=n, field="TERM_DT")
        if ric == "7":
            if text[:3].strip():
                raise CodeSetError("modifier record with text in columns 1-3", line=n)
            try:
                mod = normalize_modifier(text[3:5])
            except CodeFormatError as exc:
                raise CodeSetError(exc.message, line=n) from None
            yield CodeRecord(mod, True, added, terminated, True, short, n)
        else:
            yield CodeRecord(_code(HCPCS, text[:5], n), True, added, terminated, False, short, n)


# --------------------------------------------------------------------------- CPT licensed list
def parse_cpt_csv(lines: Iterable[str]) -> Iterator[CodeRecord]:
    """Organisation's licensed CPT list: CSV ``code,effective_from,effective_until`` (header optional).

    Only code numbers and dates are read; any further column is ignored.
    """
    for n, row in enumerate(csv.reader(lines), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        first = row[0].strip()
        if n == 1 and first.lower() in {"code", "cpt", "cpt code", "hcpcs/cpt code"}:
            continue
        code = _code(CPT, first, n)
        start = parse_yyyymmdd(row[1], line=n, field="effective_from") if len(row) > 1 else None
        end = parse_yyyymmdd(row[2], line=n, field="effective_until") if len(row) > 2 else None
        if start and end and end < start:
            raise CodeSetError(f"effective_until {end} is before effective_from {start}", line=n)
        yield CodeRecord(code=code, added=start, terminated=end, line=n)


# --------------------------------------------------------------------------- NCCI PTP
_CODEISH = re.compile(r"[0-9A-Z]{4}[0-9A-Z]")


def _ptp_code(raw: str, line: int) -> str:
    t = raw.strip().upper()
    if not _CODEISH.fullmatch(t):
        raise CodeSetError(f"'{raw.strip()}' is not a CPT/HCPCS code", line=line)
    return t


def parse_ncci_ptp(lines: Iterable[str]) -> Iterator[PtpRecord]:
    """CMS practitioner PTP table, tab-delimited (``ccipra-v*``): Column 1, Column 2, prior-1996 flag,
    Effective Date, Deletion Date (``*`` = none), Modifier indicator, rationale.

    Header, copyright and blank lines (any line whose first cell is not a code) are skipped.
    """
    for n, raw in enumerate(lines, start=1):
        cells = raw.rstrip("\r\n").split("\t")
        first = cells[0].strip().strip('"').upper()
        if not _CODEISH.fullmatch(first):
            continue
        if len(cells) < 6:
            raise CodeSetError(f"PTP row has {len(cells)} tab-separated fields, expected at least 6", line=n)
        cells = [c.strip().strip('"') for c in cells]
        effective = parse_yyyymmdd(cells[3], line=n, field="Effective Date")
        if effective is None:
            raise CodeSetError("PTP row has no effective date", line=n)
        deleted = parse_yyyymmdd(cells[4], line=n, field="Deletion Date")
        if cells[5] not in {"0", "1", "9"}:
            raise CodeSetError(f"modifier indicator must be 0, 1 or 9, got '{cells[5]}'", line=n)
        yield PtpRecord(
            column1=_ptp_code(cells[0], n),
            column2=_ptp_code(cells[1], n),
            effective=effective,
            deleted=deleted,
            modifier_indicator=int(cells[5]),
            rationale=cells[6] if len(cells) > 6 else "",
            line=n,
        )


# --------------------------------------------------------------------------- MUE
def parse_mue(lines: Iterable[str]) -> Iterator[MueRecord]:
    """CMS MUE table CSV: HCPCS/CPT Code, MUE Values, MUE Adjudication Indicator ("2 Date of Service
    Edit: Policy"), MUE Rationale. Header and notice lines (first cell not a code) are skipped."""
    for n, row in enumerate(csv.reader(lines), start=1):
        if not row:
            continue
        first = row[0].strip().upper()
        if not _CODEISH.fullmatch(first):
            continue
        if len(row) < 3:
            raise CodeSetError(f"MUE row has {len(row)} fields, expected at least 3", line=n)
        units_text = row[1].strip()
        if not _ascii_digits(units_text):
            raise CodeSetError(f"MUE value '{units_text}' is not a whole number", line=n)
        mai_text = row[2].strip()[:1]
        if mai_text not in {"1", "2", "3"}:
            raise CodeSetError(
                f"MUE adjudication indicator '{row[2].strip()}' must start with 1, 2 or 3", line=n
            )
        yield MueRecord(
            code=first,
            units=int(units_text),
            mai=int(mai_text),
            rationale=row[3].strip() if len(row) > 3 else "",
            line=n,
        )
