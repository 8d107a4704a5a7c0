"""FHIR R4 searches over the ledger (AuditEvent) and the attestations (Provenance).

Each search parses its parameters (422 naming the field), asks the policy (compliance always; an
auditor only inside an engagement covering the requested scope), runs one paged SQL query over indexed
columns plus one count, maps the page, and then records the search itself as a `fhir.search` event in
the request's transaction.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, func, select
from sqlmodel import Session, col

from audit.attestation.service import attestation_view
from audit.config import get_settings
from audit.encounter.history import event_display_names
from audit.errors import InvalidInput
from audit.fhir import mapping
from audit.ledger import service as ledger
from audit.ledger.events import EventDraft
from audit.ledger.service import LEDGER
from audit.models import Attestation, Encounter
from audit.policy.guard import Grant, Target, authorize
from audit.policy.scope import auditor_context
from audit.principal import CurrentUser

DEFAULT_COUNT = 50
MAX_COUNT = 500
SUPPORTED_PREFIXES = ("eq", "ge", "gt", "le", "lt")
_PREFIX_VALUE = re.compile(r"^(?P<prefix>[a-z]{2})?(?P<value>\d.*)$")
_YEAR = re.compile(r"^\d{4}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

Params = Sequence[tuple[str, str]]
_COMPARE: dict[str, Any] = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


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


# --- parameters ------------------------------------------------------------------------------------


def _values(params: Params, name: str) -> list[str]:
    return [v for k, v in params if k == name]


def _single(params: Params, name: str) -> str | None:
    values = _values(params, name)
    if len(values) > 1:
        raise InvalidInput(name, f"{name}: give it at most once")
    return values[0] if values else None


def _value_range(value: str) -> tuple[datetime, datetime, bool]:
    """(start, end, end_inclusive) of a FHIR date/dateTime value at its own precision."""
    try:
        if _YEAR.match(value):
            start = datetime(int(value), 1, 1, tzinfo=UTC)
            return start, start.replace(year=start.year + 1), False
        if _MONTH.match(value):
            year, month = (int(p) for p in value.split("-"))
            start = datetime(year, month, 1, tzinfo=UTC)
            end = datetime(year + 1, 1, 1, tzinfo=UTC) if month == 12 else start.replace(month=month + 1)
            return start, end, False
        if _DAY.match(value):
            start = datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
            return start, start + timedelta(days=1), False
        if "T" in value:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise ValueError("a time needs a time zone (Z or +hh:mm)")
            moment = moment.astimezone(UTC)
            return moment, moment, True
    except ValueError as exc:
        raise InvalidInput("date", f"date: {value!r} is not a valid date ({exc})") from exc
    raise InvalidInput("date", f"date: {value!r} is not YYYY, YYYY-MM, YYYY-MM-DD or a dateTime with zone")


def parse_dates(values: Sequence[str]) -> DateFilter:
    """FHIR `date` search parameters (prefixes eq, ge, gt, le, lt; all given must hold)."""
    clauses: list[tuple[str, datetime]] = []
    for raw in values:
        match = _PREFIX_VALUE.match(raw.strip())
        if not match:
            raise InvalidInput("date", f"date: {raw!r} is not [prefix]YYYY[-MM[-DD[Thh:mm:ss zone]]]")
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


def _int_param(params: Params, name: str, default: int, low: int) -> int:
    raw = _single(params, name)
    if raw is None or raw == "":
        return default
    try:
        number = int(raw)
    except ValueError as exc:
        raise InvalidInput(name, f"{name}: {raw!r} is not a whole number") from exc
    if number < low:
        raise InvalidInput(name, f"{name}: must be at least {low}")
    return number


def parse_page(params: Params) -> PageRequest:
    """`_count` (default 50, capped at 500 as FHIR servers may) and `_offset`."""
    count = min(_int_param(params, "_count", DEFAULT_COUNT, 0), MAX_COUNT)
    return PageRequest(count=count, offset=_int_param(params, "_offset", 0, 0))


def parse_encounter_reference(value: str, name: str) -> str:
    """`Encounter/<id>` (optionally as an absolute URL ending so) -> the id; anything else is 422."""
    parts = value.strip().rstrip("/").split("/")
    if len(parts) < 2 or parts[-2] != "Encounter" or not _FHIR_ID.match(parts[-1]):
        raise InvalidInput(name, f"{name}: {value!r} is not a reference to an Encounter (Encounter/<id>)")
    return parts[-1]


def _parse_subtypes(values: Sequence[str]) -> list[str]:
    codes: list[str] = []
    for raw in values:
        for token in raw.split(","):
            system, _, code = token.rpartition("|")
            if system and system != mapping.EVENT_TYPE_SYSTEM:
                raise InvalidInput("subtype", f"subtype: unknown system {system!r}")
            if not code:
                raise InvalidInput("subtype", "subtype: empty code")
            codes.append(code)
    return codes


# --- helpers ----------------------------------------------------------------------------------------


def _encounter_provider(session: Session, encounter_id: str) -> tuple[str, date] | None:
    row = session.execute(
        select(col(Encounter.rendering_provider_id), col(Encounter.date_of_service)).where(
            col(Encounter.id) == encounter_id
        )
    ).first()
    return (str(row[0]), row[1]) if row else None


def _authorize_read(session: Session, user: CurrentUser, scope: dict[str, Any]) -> Grant:
    context = auditor_context(session, user, **{k: v for k, v in scope.items() if v is not None})
    return authorize(user, "audit.read_events", Target("ledger", None), None, context)


def _links(base: str, search: Search, total: int) -> list[tuple[str, str]]:
    page = search.page
    links = [("self", f"{base}?{search.query_string()}"), ("first", f"{base}?{search.query_string(0)}")]
    if page.offset > 0 and page.count > 0:
        links.append(("previous", f"{base}?{search.query_string(max(page.offset - page.count, 0))}"))
    if page.count > 0 and page.offset + page.count < total:
        links.append(("next", f"{base}?{search.query_string(page.offset + page.count)}"))
    return links


def _record_search(
    session: Session,
    user: CurrentUser,
    grant: Grant,
    resource_type: str,
    search: Search,
    total: int,
    returned: int,
) -> None:
    ledger.append_one(
        session,
        EventDraft(
            type="fhir.search",
            actor=user.actor(grant.role),
            subject_type="fhir",
            subject_id=resource_type,
            policy=grant.policy,
            detail={
                "resource": resource_type,
                "query": {
                    **search.applied,
                    "_count": [str(search.page.count)],
                    "_offset": [str(search.page.offset)],
                },
                "total": total,
                "returned": returned,
            },
        ),
    )


# --- searches ---------------------------------------------------------------------------------------


def search_audit_events(
    session: Session, *, user: CurrentUser, params: Params, base_url: str
) -> dict[str, Any]:
    """`GET /fhir/AuditEvent`: date (ge/gt/le/lt/eq), entity=Encounter/<id>, subtype, _count, _offset."""
    search = Search(page=parse_page(params))
    dates = parse_dates(_values(params, "date"))
    if dates.clauses:
        search.applied["date"] = _values(params, "date")
    entity = _single(params, "entity")
    encounter_id = parse_encounter_reference(entity, "entity") if entity is not None else None
    if encounter_id is not None:
        search.applied["entity"] = [f"Encounter/{encounter_id}"]
    subtypes = _parse_subtypes(_values(params, "subtype"))
    if subtypes:
        search.applied["subtype"] = [",".join(subtypes)]

    scope: dict[str, Any] = {"scope_from": dates.scope_from, "scope_to": dates.scope_to}
    if encounter_id is not None:
        found = _encounter_provider(session, encounter_id)
        if found is not None:
            scope["scope_provider_ids"] = [found[0]]
    grant = _authorize_read(session, user, scope)

    conditions: list[ColumnElement[bool]] = [LEDGER.c.log_id == get_settings().log_id]
    if encounter_id is not None:
        conditions.append(LEDGER.c.encounter_id == encounter_id)
    for op, moment in dates.clauses:
        conditions.append(_COMPARE[op](LEDGER.c.ts, moment))
    if subtypes:
        conditions.append(LEDGER.c.type.in_(subtypes))
    total = int(session.execute(select(func.count()).select_from(LEDGER).where(*conditions)).scalar_one())
    rows = (
        session.execute(
            select(LEDGER.c.payload, LEDGER.c.leaf_hash)
            .where(*conditions)
            .order_by(LEDGER.c.seq)
            .offset(search.page.offset)
            .limit(search.page.count)
        ).all()
        if search.page.count
        else []
    )
    decoded = [(json.loads(bytes(payload)), bytes(payload), bytes(leaf)) for payload, leaf in rows]
    names = event_display_names(session, [event for event, _, _ in decoded])
    base = f"{base_url}/AuditEvent"
    entries = [
        (
            f"{base}/{event['event_id']}",
            mapping.audit_event(event, payload=payload, leaf_hash=leaf, names=names),
        )
        for event, payload, leaf in decoded
    ]
    result = mapping.bundle(total=total, entries=entries, links=_links(base, search, total))
    _record_search(session, user, grant, "AuditEvent", search, total, len(entries))
    return result


def search_provenance(
    session: Session, *, user: CurrentUser, params: Params, base_url: str
) -> dict[str, Any]:
    """`GET /fhir/Provenance?target=Encounter/<id>`: every attestation, valid and superseded, oldest first.

    An auditor's scope is the encounter's date of service and rendering provider, as engagements are.
    """
    search = Search(page=parse_page(params))
    target = _single(params, "target")
    if target is None:
        raise InvalidInput("target", "target: required (target=Encounter/<id>)")
    encounter_id = parse_encounter_reference(target, "target")
    search.applied["target"] = [f"Encounter/{encounter_id}"]
    found = _encounter_provider(session, encounter_id)
    scope: dict[str, Any] = {}
    if found is not None:
        scope = {"scope_from": found[1], "scope_to": found[1], "scope_provider_ids": [found[0]]}
    grant = _authorize_read(session, user, scope)

    where = col(Attestation.encounter_id) == encounter_id
    total = int(session.execute(select(func.count()).select_from(Attestation).where(where)).scalar_one())
    attestations: Sequence[Attestation] = []
    if search.page.count:
        attestations = (
            session.execute(
                select(Attestation)
                .where(where)
                .order_by(col(Attestation.signed_at), col(Attestation.id))
                .offset(search.page.offset)
                .limit(search.page.count)
            )
            .scalars()
            .all()
        )
    base = f"{base_url}/Provenance"
    entries = [
        (f"{base}/{a.id}", mapping.provenance({**attestation_view(a), "ledger_seq": a.ledger_seq}))
        for a in attestations
    ]
    result = mapping.bundle(total=total, entries=entries, links=_links(base, search, total))
    _record_search(session, user, grant, "Provenance", search, total, len(entries))
    return result
