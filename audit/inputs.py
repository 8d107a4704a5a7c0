"""What every value a caller sends must be, whatever the endpoint: one set of rules, applied everywhere.

- No control characters: C0/C1 controls (NUL included), DEL, lone surrogates and the bidirectional
  overrides that can make text read differently from what is stored ("Trojan Source"). Fields marked
  `Multiline` (free-text reasons and notes) may hold tabs and line breaks.
- Whole numbers stay within what the databases store (signed 64-bit); fields set tighter bounds.
- Dates and times lie between 1900-01-01 and 2100-12-31 (no date of service, delegation or engagement
  is meaningful outside that, and date arithmetic near year 1 or 9999 overflows).

Request bodies get these rules by deriving from `RequestModel` (a validator on every field, so a new
field cannot forget them); query and path strings get them from `check_params`, a dependency of the
whole application.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import Annotated, Any, get_args

from annotated_types import MaxLen
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo

from audit.errors import InvalidInput

DATE_MIN = date(1900, 1, 1)
DATE_MAX = date(2100, 12, 31)
INT_MAX = 2**63 - 1
MAX_OFFSET = 10**9
"""Largest page offset a list accepts (beyond it a database refuses or overflows)."""
MAX_PATH_PARAM = 128
MAX_QUERY_VALUE = 1000

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_ASCII_DIGITS = re.compile(r"[0-9]+")
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?")


class _MultilineMarker:
    def __repr__(self) -> str:
        return "Multiline"


MULTILINE = _MultilineMarker()
Multiline = Annotated[str, MULTILINE]
"""Free text that may hold tabs and line breaks (still no other control characters)."""


def unsafe_character(value: str, *, multiline: bool = False) -> str | None:
    """Why `value` is refused, or None: names the first offending character and its position."""
    found = (_UNSAFE_MULTILINE if multiline else _UNSAFE).search(value)
    if found is None:
        return None
    return f"control character U+{ord(found.group()):04X} at position {found.start()} is not allowed"


def is_ascii_digits(value: str) -> bool:
    """True for '0'-'9' only (str.isdigit() also accepts full-width and Arabic-Indic digits)."""
    return _ASCII_DIGITS.fullmatch(value) is not None


def date_problem(value: date) -> str | None:
    day = value.date() if isinstance(value, datetime) else value
    if DATE_MIN <= day <= DATE_MAX:
        return None
    return f"must be between {DATE_MIN.isoformat()} and {DATE_MAX.isoformat()}"


def iso_only(value: Any) -> Any:
    """Dates and times come as ISO 8601 text: a bare number would otherwise be read as Unix time."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value.strip())):
        raise ValueError("expected a date as YYYY-MM-DD (or a time as YYYY-MM-DDThh:mm:ssZ), not a number")
    return value


def in_range(value: date) -> date:
    """For `Annotated[date, AfterValidator(in_range)]` query parameters."""
    problem = date_problem(value)
    if problem:
        raise ValueError(problem)
    return value


BoundedDate = Annotated[date, BeforeValidator(iso_only), AfterValidator(in_range)]
IsoDate = Annotated[date, BeforeValidator(iso_only)]
"""A date as ISO text in any year: for read filters, where the widest bounds (0001-01-01 to
9999-12-31) simply mean "no bound" and so are accepted."""


def utc_instant(value: datetime) -> datetime:
    """The one place a caller's time becomes UTC. A time without an offset is refused: whether
    "2026-12-31T23:59" is UTC or the caller's clock cannot be known, and guessing would move a
    delegation's or engagement's end by hours."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a time zone, e.g. 2026-12-31T23:59:59Z or 2026-12-31T18:59:59-05:00")
    return value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(utc_instant)]
"""A request time with an explicit offset, converted to UTC (422 naming the field without one)."""


def value_problem(value: Any, *, multiline: bool = False) -> str | None:
    """The first rule `value` breaks (looking inside lists and mappings), or None."""
    if isinstance(value, str):
        return unsafe_character(value, multiline=multiline)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if -INT_MAX <= value <= INT_MAX else f"must be between {-INT_MAX} and {INT_MAX}"
    if isinstance(value, date):
        return date_problem(value)
    if isinstance(value, dict):
        return _first_problem([*value.keys(), *value.values()], multiline)
    if isinstance(value, list | tuple | set | frozenset):
        return _first_problem(value, multiline)
    return None


def _first_problem(values: Iterable[Any], multiline: bool) -> str | None:
    for item in values:
        problem = value_problem(item, multiline=multiline)
        if problem:
            return problem
    return None


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are refused, and every field's value is checked
    by `value_problem` (so the 422 names the field and the reason)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_lax_conversions(cls, value: Any, info: ValidationInfo) -> Any:
        """Dates only as ISO text (not Unix numbers), whole numbers not as true/false."""
        rules = _rules(cls, info.field_name or "")
        if isinstance(value, str) and rules.max_length is not None and len(value) > rules.max_length:
            # as the schema states it: whitespace a model strips still counts (schemathesis sent 501
            # characters, a leading space and 500 more, and the stripped 500 were accepted)
            raise ValueError(f"String should have at most {rules.max_length} characters")
        if rules.date:
            return iso_only(value)
        if rules.whole_number and (
            isinstance(value, bool) or (isinstance(value, list) and any(isinstance(v, bool) for v in value))
        ):
            raise ValueError("expected a whole number, not true/false")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _safe_value(cls, value: Any, info: ValidationInfo) -> Any:
        problem = value_problem(value, multiline=_rules(cls, info.field_name or "").multiline)
        if problem:
            raise ValueError(problem)
        return value


class RevokeIn(RequestModel):
    """Why a delegation or an engagement is revoked (the body of both revoke endpoints)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: Multiline = Field(min_length=3, max_length=500, examples=["left the team"])


@dataclass(frozen=True)
class _FieldRules:
    date: bool = False  # a date or time: ISO text only
    whole_number: bool = False  # an integer (not a boolean) or a list of them
    multiline: bool = False  # free text that may hold line breaks
    max_length: int | None = None  # of a text field, before any whitespace is stripped


@cache
def _rules(model: type[BaseModel], name: str) -> _FieldRules:
    """What a field's type asks of its raw value, worked out once per model and field."""
    field = model.model_fields.get(name)
    if field is None:
        return _FieldRules()
    kind = field.annotation
    return _FieldRules(
        date=_mentions(kind, date),
        whole_number=_mentions(kind, int) and not _mentions(kind, bool),
        multiline=MULTILINE in field.metadata,
        max_length=_max_length([*field.metadata, kind]),
    )


def _max_length(found: list[Any]) -> int | None:
    """A text field's MaxLen, on the field or inside its type (an Optional of an Annotated alias)."""
    for item in found:
        if isinstance(item, MaxLen):
            return int(item.max_length)
        if isinstance(item, FieldInfo):
            inner = _max_length(list(item.metadata))
        else:
            inner = _max_length(list(get_args(item))) if get_args(item) else None
        if inner is not None:
            return inner
    return None


def _mentions(annotation: Any, kind: type) -> bool:
    """Whether a field's type is `kind` or holds it (Optional, unions)."""
    if isinstance(annotation, type):
        return annotation is kind or (kind is date and issubclass(annotation, date))
    return any(_mentions(arg, kind) for arg in get_args(annotation))


def check_params(params: Iterable[tuple[str, str]], *, where: str, max_length: int) -> None:
    """Refuse a query or path value with control characters or of unreasonable length (422)."""
    for name, value in params:
        problem = unsafe_character(name) or unsafe_character(value)
        if problem is None and len(value) > max_length:
            problem = f"is longer than {max_length} characters"
        if problem:
            raise InvalidInput(name if not unsafe_character(name) else where, f"{where} {name!r}: {problem}")
