"""FHIR search parameters: parsed and checked before any SQL (an invalid one is InvalidInput naming it).

`date` accepts every FHIR date and dateTime (`2026`, `2026-03`, `2026-03-02`, `2026-03-02T10:00Z`,
`...T10:00:00.123456789+14:00`, leap second `:60`), with the prefixes eq, ge, gt, le, lt. A value
stands for the whole period of its precision (FHIR's implicit range): `2026-03` is March, `...T10:00:05Z`
is that second. Valid dates outside 1900..2100 are clamped to just outside that range, where nothing
the service stores lies, so every comparison keeps its meaning and nothing overflows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from urllib.parse import urlencode

from audit.errors import InvalidInput
from audit.fhir.mapping import EVENT_TYPE_SYSTEM
from audit.inputs import MAX_OFFSET, is_ascii_digits

DEFAULT_COUNT = 50
MAX_COUNT = 500
SUPPORTED_PREFIXES = ("eq", "ge", "gt", "le", "lt")
_PREFIX_VALUE = re.compile(r"^(?P<prefix>[a-z]{2})?(?P<value>[0-9].*)$")
_DATE_TIME = re.compile(
    r"^(?P<year>[0-9]{4})(?:-(?P<month>[0-9]{2})(?:-(?P<day>[0-9]{2})"
    r"(?:T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]{1,9}))?)?"
    r"(?P<zone>Z|[+-][0-9]{2}:[0-9]{2}))?)?)?$"
)
# Where out-of-range FHIR dates are clamped: just outside the 1900..2100 every stored date lies in.
FLOOR = datetime(1899, 12, 31, tzinfo=UTC)
CEILING = datetime(2101, 1, 2, tzinfo=UTC)
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

Params = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class DateFilter:
    """The `date` parameters as SQL comparisons on a timestamp, and the date scope they cover."""

    clauses: tuple[tuple[str, datetime], ...] = ()
    scope_from: date | None = None
    scope_to: date | None = None


@dataclass(frozen=True)
class PageRequest:
    count: int = DEFAULT_COUNT
    offset: int = 0


@dataclass
class Search:
    """A parsed search: the parameters it applied (for the self link and the audit event)."""

    applied: dict[str, list[str]] = field(default_factory=dict)
    page: PageRequest = PageRequest()

    def query_string(self, offset: int | None = None) -> str:
        pairs = [(k, v) for k, values in self.applied.items() for v in values]
        pairs += [
            ("_count", str(self.page.count)),
            ("_offset", str(self.page.offset if offset is None else offset)),
        ]
        return urlencode(pairs)


def values(params: Params, name: str) -> list[str]:
    return [v for k, v in params if k == name]


def single(params: Params, name: str) -> str | None:
    found = values(params, name)
    if len(found) > 1:
        raise InvalidInput(name, f"{name}: give it at most once")
    return found[0] if found else None


# --- dates --------------------------------------------------------------------------------------------


def _bad_date(value: str, why: str) -> InvalidInput:
    return InvalidInput("date", f"date: {value[:40]!r} is not a valid FHIR date or dateTime ({why})")


def _zone(text: str, value: str) -> timezone:
    if text == "Z":
        return UTC
    hours, minutes = int(text[1:3]), int(text[4:6])
    if minutes > 59 or hours * 60 + minutes > 14 * 60:
        raise _bad_date(value, "time zone beyond ±14:00")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if text[0] == "-" else offset)


def _value_range(value: str) -> tuple[datetime, datetime, bool]:
    """(start, end, end_inclusive) of a FHIR date/dateTime at its own precision, clamped."""
    match = _DATE_TIME.match(value)
    if not match:
        raise _bad_date(value, "expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.fff]] and a zone")
    year = int(match["year"])
    if year == 0:
        raise _bad_date(value, "there is no year 0000")
    if year < 1900:
        return FLOOR, FLOOR, False
    if year > 2100:
        return CEILING, CEILING, False
    try:
        return _period(match, value)
    except ValueError as exc:  # month 13, February 30, hour 24 ...
        raise _bad_date(value, str(exc)) from exc


def _period(match: re.Match[str], value: str) -> tuple[datetime, datetime, bool]:
    year = int(match["year"])
    if match["month"] is None:
        return _utc(datetime(year, 1, 1)), _utc(datetime(year + 1, 1, 1)), False
    month = int(match["month"])
    if match["day"] is None:
        start = datetime(year, month, 1)
        end = datetime(year + 1, 1, 1) if month == 12 else datetime(year, month + 1, 1)
        return _utc(start), _utc(end), False
    day = int(match["day"])
    if match["hour"] is None:
        start = datetime(year, month, day)
        return _utc(start), _utc(start + timedelta(days=1)), False
    zone = _zone(match["zone"], value)
    second = int(match["second"] or 0)
    leap = second == 60  # a leap second: the last instant of its minute
    start = datetime(year, month, day, int(match["hour"]), int(match["minute"]), min(second, 59), tzinfo=zone)
    if leap:
        start += timedelta(microseconds=999_999)
        return start.astimezone(UTC), start.astimezone(UTC), True
    if match["fraction"] is not None:
        start += timedelta(microseconds=int(match["fraction"][:6].ljust(6, "0")))
        return start.astimezone(UTC), start.astimezone(UTC), True
    step = timedelta(seconds=1) if match["second"] is not None else timedelta(minutes=1)
    return start.astimezone(UTC), (start + step).astimezone(UTC), False


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


def parse_dates(raw_values: Sequence[str]) -> DateFilter:
    """FHIR `date` search parameters (prefixes eq, ge, gt, le, lt; all given must hold)."""
    clauses: list[tuple[str, datetime]] = []
    for raw in raw_values:
        match = _PREFIX_VALUE.match(raw.strip())
        if not match:
            raise InvalidInput("date", f"date: {raw[:40]!r} is not [prefix]YYYY[-MM[-DD[Thh:mm[:ss] zone]]]")
        prefix, value = match["prefix"] or "eq", match["value"]
        if prefix not in SUPPORTED_PREFIXES:
            raise InvalidInput(
                "date",
                f"date: prefix {prefix!r} is not supported; use one of {', '.join(SUPPORTED_PREFIXES)}",
            )
        start, end, end_inclusive = _value_range(value)
        upper = ("<=" if end_inclusive else "<", end)
        if prefix in ("ge", "eq"):
            clauses.append((">=", start))
        if prefix in ("le", "eq"):
            clauses.append(upper)
        if prefix == "gt":
            clauses.append((">" if end_inclusive else ">=", end))
        if prefix == "lt":
            clauses.append(("<", start))
    lows = [moment.date() for op, moment in clauses if op in (">=", ">")]
    highs = [
        (moment - timedelta(microseconds=1)).date() if op == "<" else moment.date()
        for op, moment in clauses
        if op in ("<", "<=")
    ]
    return DateFilter(tuple(clauses), max(lows) if lows else None, min(highs) if highs else None)


# --- paging, references, tokens -----------------------------------------------------------------------


def _int_param(params: Params, name: str, default: int, low: int) -> int:
    raw = single(params, name)
    if raw is None or raw == "":
        return default
    if not is_ascii_digits(raw.removeprefix("-")) or len(raw) > 12:
        raise InvalidInput(name, f"{name}: {raw[:40]!r} is not a whole number up to {MAX_OFFSET}")
    number = int(raw)
    if not low <= number <= MAX_OFFSET:
        raise InvalidInput(name, f"{name}: must be between {low} and {MAX_OFFSET}")
    return number


def parse_page(params: Params) -> PageRequest:
    """`_count` (default 50, capped at 500 as FHIR servers may) and `_offset`."""
    count = min(_int_param(params, "_count", DEFAULT_COUNT, 0), MAX_COUNT)
    return PageRequest(count=count, offset=_int_param(params, "_offset", 0, 0))


def parse_encounter_reference(value: str, name: str) -> str:
    """`Encounter/<id>` (optionally as an absolute URL ending so) -> the id; anything else is invalid."""
    parts = value.strip().rstrip("/").split("/")
    if len(parts) < 2 or parts[-2] != "Encounter" or not FHIR_ID.match(parts[-1]):
        why = "is not a reference to an Encounter (Encounter/<id>)"
        raise InvalidInput(name, f"{name}: {value[:80]!r} {why}")
    return parts[-1]


def parse_subtypes(raw_values: Sequence[str]) -> list[str]:
    codes: list[str] = []
    for raw in raw_values:
        for token in raw.split(","):
            system, _, code = token.rpartition("|")
            if system and system != EVENT_TYPE_SYSTEM:
                raise InvalidInput("subtype", f"subtype: unknown system {system[:80]!r}")
            if not code:
                raise InvalidInput("subtype", "subtype: empty code")
            codes.append(code)
    return codes
