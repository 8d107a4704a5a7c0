"""Reading the ledger: `GET /api/v1/audit/events` (compliance everything, an auditor their engagement).

The reader's scope comes from `audit.policy.scope` (the engagement Cedar judged), the SQL from
`audit.policy.filters`; the query's own filters (type, outcome, actor, recorded time, a seq cursor)
are ANDed in and can only narrow. Pages are keyset pages over `seq` (no OFFSET, no count), so a page
costs the same at seq 10 and at seq 10,000,000. The read itself is recorded as `audit.read_events`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlmodel import Session, col

from audit.errors import InvalidInput
from audit.ledger import service as ledger
from audit.ledger.service import LEDGER
from audit.models import Encounter
from audit.policy.engine import EncounterRes
from audit.policy.filters import event_page_clause, midnight
from audit.policy.guard import Target
from audit.policy.scope import Area, authorize_read, encounter_area
from audit.principal import CurrentUser


@dataclass(frozen=True)
class EventQuery:
    """`from`/`to` bound when the event was recorded (a bare date covers its whole UTC day);
    `dos_from`/`dos_to`, `provider` and `encounter` narrow by the encounters the events are on."""

    types: tuple[str, ...] = ()
    outcome: str | None = None
    actor: str | None = None
    encounter: str | None = None
    provider: str | None = None
    recorded_from: datetime | date | None = None
    recorded_to: datetime | date | None = None
    dos_from: date | None = None
    dos_to: date | None = None
    after: int = -1
    limit: int = 100

    def as_dict(self) -> dict[str, Any]:
        """The query as given (for the audit event), leaving out what was not asked."""
        shown = {
            "type": list(self.types) or None, "outcome": self.outcome, "actor": self.actor,
            "encounter": self.encounter, "provider": self.provider, "from": self.recorded_from,
            "to": self.recorded_to, "dos_from": self.dos_from, "dos_to": self.dos_to,
        }  # fmt: skip
        out = {k: v.isoformat() if isinstance(v, date) else v for k, v in shown.items() if v is not None}
        return {**out, "after": self.after, "limit": self.limit}


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_moment(value: str | None, field: str) -> datetime | date | None:
    """`YYYY-MM-DD` (a whole UTC day) or an RFC 3339 date-time (no zone: UTC); anything else is 422."""
    if value is None or value == "":
        return None
    try:
        if _DAY.match(value):
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        moment + timedelta(days=1)  # refuse instants at the very edge of the calendar
        return moment
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(
            field, f"{field}: {value[:40]!r} is not YYYY-MM-DD or an RFC 3339 date-time"
        ) from exc


def _bound(value: datetime | date, *, end: bool) -> tuple[datetime, bool]:
    """(instant, inclusive) for a recorded-time bound: a date is its whole UTC day, a time without a
    zone is UTC."""
    if isinstance(value, datetime):
        return value, True
    if not end:
        return midnight(value), True
    if value == date.max:
        return datetime.max.replace(tzinfo=UTC), True
    return midnight(value + timedelta(days=1)), False


def _recorded(q: EventQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if q.recorded_from is not None:
        where.append(LEDGER.c.ts >= _bound(q.recorded_from, end=False)[0])
    if q.recorded_to is not None:
        moment, inclusive = _bound(q.recorded_to, end=True)
        where.append(LEDGER.c.ts <= moment if inclusive else LEDGER.c.ts < moment)
    return where


def _validate(q: EventQuery) -> None:
    if q.dos_from and q.dos_to and q.dos_to < q.dos_from:
        raise InvalidInput("dos_to", "dos_to must not be before dos_from")
    start, end = q.recorded_from, q.recorded_to
    if start is not None and end is not None and _bound(end, end=True)[0] < _bound(start, end=False)[0]:
        raise InvalidInput("to", "to must not be before from")


def _asked(session: Session, q: EventQuery) -> Area:
    asked = Area.of(q.dos_from, q.dos_to, [q.provider] if q.provider else ())
    if q.encounter is None:
        return asked
    row = session.execute(
        select(col(Encounter.rendering_provider_id), col(Encounter.date_of_service)).where(
            col(Encounter.id) == q.encounter
        )
    ).first()
    if row is None:
        return asked
    return asked.intersect(encounter_area(EncounterRes(q.encounter, str(row[0]), date_of_service=row[1])))


def read_events(session: Session, *, user: CurrentUser, query: EventQuery) -> dict[str, Any]:
    """One keyset page of the events in the reader's scope that match the query, oldest first."""
    _validate(query)
    asked = _asked(session, query)
    grant, scope = authorize_read(
        session, user, "audit.read_events", Target("ledger", None), asked, encounter_id=query.encounter
    )
    where = [event_page_clause(session, scope), LEDGER.c.seq > query.after, *_recorded(query)]
    if query.types:
        where.append(LEDGER.c.type.in_(query.types))
    if query.outcome:
        where.append(LEDGER.c.outcome == query.outcome)
    if query.actor:
        where.append(LEDGER.c.actor_id == query.actor)
    rows = session.execute(
        select(LEDGER.c.seq, LEDGER.c.payload, LEDGER.c.leaf_hash)
        .where(*where)
        .order_by(LEDGER.c.seq)
        .limit(query.limit + 1)
    ).all()
    page = rows[: query.limit]
    items = [
        {"seq": int(seq), "leaf_hash": bytes(leaf).hex(), "event": json.loads(bytes(payload))}
        for seq, payload, leaf in page
    ]
    next_after = items[-1]["seq"] if len(rows) > query.limit else None
    shown = scope.as_dict()
    ledger.append_one(
        session,
        grant.event(
            detail={
                "query": query.as_dict(),
                "scope": shown,
                "returned": len(items),
                "next_after": next_after,
                **scope.evidence(),
            },
        ),
    )
    return {"items": items, "limit": query.limit, "next_after": next_after, "scope": shown}
