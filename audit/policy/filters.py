"""The one translation of a `ReadScope` into SQL: encounters, ledger events, attestations,
delegations, engagements and users. Every clause is `authorised AND narrowing`, over indexed columns;
ledger events are tied to the scope through the `encounter` row they name (a semi-join on
`encounter_id`), never through the event's own copies of dates or providers.

See `audit.policy.scope` for what each reader is allowed and which ledger events a scoped reader sees.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, false, func, or_, select, true
from sqlalchemy.orm import Session

from audit.config import get_settings
from audit.ledger.service import LEDGER
from audit.models import Attestation, Delegation, Encounter, EncounterSupervisor, Engagement, User
from audit.policy.scope import Area, ReadScope

ENC: Table = Encounter.__table__  # type: ignore[attr-defined]
ATT: Table = Attestation.__table__  # type: ignore[attr-defined]
DLG: Table = Delegation.__table__  # type: ignore[attr-defined]
ENG: Table = Engagement.__table__  # type: ignore[attr-defined]
USR: Table = User.__table__  # type: ignore[attr-defined]
SUP: Table = EncounterSupervisor.__table__  # type: ignore[attr-defined]
LED: Table = LEDGER
DELEGATION_RECORD_EVENTS = ("delegation.grant", "delegation.revoke")
SMALL_SCOPE = 5_000  # encounters; see event_page_clause


def _all(parts: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    return and_(*parts) if parts else true()


def _any(parts: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    return or_(*parts) if parts else false()


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# --- encounters --------------------------------------------------------------------------------------


def _encounter_area(area: Area, provider: Any = None, day: Any = None) -> list[ColumnElement[bool]]:
    """The area over the encounter's columns, or over another table's (provider, date of service)."""
    provider = ENC.c.rendering_provider_id if provider is None else provider
    day = ENC.c.date_of_service if day is None else day
    where: list[ColumnElement[bool]] = []
    if area.date_from is not None:
        where.append(day >= area.date_from)
    if area.date_to is not None:
        where.append(day <= area.date_to)
    if area.provider_ids is not None:
        where.append(provider.in_(sorted(area.provider_ids)))
    return where


def _supervised_by(user_id: str) -> ColumnElement[bool]:
    """Encounters naming the user among their supervising providers, through the association table's
    primary key (provider_id, encounter_id): a probe per candidate row, or a short list to drive."""
    return ENC.c.id.in_(select(SUP.c.encounter_id).where(SUP.c.provider_id == user_id))


def encounter_clause(scope: ReadScope) -> ColumnElement[bool]:
    """Encounter rows (`ENC`) in the scope."""
    parts: list[ColumnElement[bool]] = []
    if scope.areas is not None:
        allowed = [_all(_encounter_area(a)) for a in scope.areas]
        if scope.party_id is not None:
            allowed.append(_supervised_by(scope.party_id))
        parts.append(_any(allowed))
    parts += _encounter_area(scope.narrow)
    if scope.encounter_id is not None:
        parts.append(ENC.c.id == scope.encounter_id)
    return _all(parts)


def encounter_branches(scope: ReadScope) -> list[ColumnElement[bool]] | None:
    """`encounter_clause` as the disjuncts whose union it is (one per authorised area, one for the
    party's supervised encounters), each with the narrowing applied; None for full access (a single
    branch). A page sorted by an indexed column can then walk each branch's index in order and stop,
    instead of gathering and sorting the whole scope."""
    if scope.areas is None:
        return None
    narrow = _encounter_area(scope.narrow)
    if scope.encounter_id is not None:
        narrow.append(ENC.c.id == scope.encounter_id)
    branches = [_all(_encounter_area(a) + narrow) for a in scope.areas]
    if scope.party_id is not None:
        branches.append(_all([_supervised_by(scope.party_id), *narrow]))
    return branches


def by_provider_and_day(scope: ReadScope) -> bool:
    """Whether `encounter_clause(scope)` depends only on the provider of record and the date of
    service (no single encounter, no encounters the reader supervises): then a table keyed by those
    two, like the report roll-ups, can be filtered exactly by `rollup_clause`."""
    return scope.encounter_id is None and (scope.areas is None or scope.party_id is None)


def rollup_clause(scope: ReadScope, provider: Any, day: Any) -> ColumnElement[bool]:
    """`encounter_clause` over a roll-up's (provider of record, date of service) columns."""
    if not by_provider_and_day(scope):
        raise ValueError("this scope is not a set of (provider, date of service)")
    parts: list[ColumnElement[bool]] = []
    if scope.areas is not None:
        parts.append(_any([_all(_encounter_area(a, provider, day)) for a in scope.areas]))
    parts += _encounter_area(scope.narrow, provider, day)
    return _all(parts)


def unattached_rollup_clause(scope: ReadScope, provider: Any, day: Any) -> ColumnElement[bool]:
    """Roll-up rows of events on no encounter (by provider named and UTC day) that `event_clause`
    admits: none for a scoped reader; for full access, those inside the narrowing (as `_by_time`)."""
    if not scope.everything:
        return false()
    return _all(_encounter_area(scope.narrow, provider, day))


def encounter_ids(scope: ReadScope) -> Select[Any]:
    return select(ENC.c.id).where(encounter_clause(scope))


def attestation_clause(scope: ReadScope) -> ColumnElement[bool]:
    """Attestation rows (`ATT`) on encounters in the scope."""
    return ATT.c.encounter_id.in_(encounter_ids(scope))


# --- delegations -------------------------------------------------------------------------------------


def _delegation_area(area: Area) -> list[ColumnElement[bool]]:
    """Delegations from the area's providers whose date-of-service window overlaps its dates."""
    where: list[ColumnElement[bool]] = []
    if area.provider_ids is not None:
        where.append(DLG.c.provider_id.in_(sorted(area.provider_ids)))
    if area.date_from is not None:
        where.append(or_(DLG.c.dos_until.is_(None), DLG.c.dos_until >= area.date_from))
    if area.date_to is not None:
        where.append(or_(DLG.c.dos_from.is_(None), DLG.c.dos_from <= area.date_to))
    return where


def delegation_clause(scope: ReadScope) -> ColumnElement[bool]:
    """Delegation rows (`DLG`) in the scope."""
    parts: list[ColumnElement[bool]] = []
    if scope.areas is not None:
        allowed = [_all(_delegation_area(a)) for a in scope.areas]
        if scope.party_id is not None:
            allowed += [DLG.c.provider_id == scope.party_id, DLG.c.coder_id == scope.party_id]
        parts.append(_any(allowed))
    parts += _delegation_area(scope.narrow)
    return _all(parts)


# --- ledger events -----------------------------------------------------------------------------------


def in_log() -> ColumnElement[bool]:
    return LED.c.log_id == get_settings().log_id


def _delegation_record() -> ColumnElement[bool]:
    """An allowed grant or revoke: the record of a delegation (all three columns are NOT NULL)."""
    return and_(
        LED.c.encounter_id.is_(None), LED.c.type.in_(DELEGATION_RECORD_EVENTS), LED.c.outcome == "allowed"
    )


def _by_time(area: Area) -> list[ColumnElement[bool]]:
    """Events on no encounter, for a full-access reader narrowing by dates and providers."""
    where: list[ColumnElement[bool]] = [LED.c.encounter_id.is_(None), ~_delegation_record()]
    if area.date_from is not None:
        where.append(LED.c.ts >= midnight(area.date_from))
    if area.date_to is not None and area.date_to < date.max:
        where.append(LED.c.ts < midnight(area.date_to + timedelta(days=1)))
    if area.provider_ids is not None:
        where.append(LED.c.provider_id.in_(sorted(area.provider_ids)))
    return where


def event_clause(scope: ReadScope, *, walk: bool = False) -> ColumnElement[bool]:
    """Ledger events (`LED`) in the scope: events on encounters in scope; allowed grants and revokes of
    delegations in scope; and, for a full-access reader only, every other event (by time when narrowed).

    Two equivalent shapes: by default the encounters in scope drive (a semi-join: cheap when they are
    few, and for counts); `walk=True` tests each event's encounter by primary key instead, so a page in
    `seq` order stops after its rows however large the scope is (see `event_page_clause`)."""
    if scope.unlimited:
        return in_log()
    on_encounter: ColumnElement[bool]
    if walk:
        on_encounter = (
            select(ENC.c.id).where(ENC.c.id == LED.c.encounter_id, encounter_clause(scope)).exists()
        )
    else:
        on_encounter = LED.c.encounter_id.in_(encounter_ids(scope))
    kinds: list[ColumnElement[bool]] = [on_encounter]
    if scope.encounter_id is None:
        delegations = select(DLG.c.id).where(delegation_clause(scope))
        kinds.append(and_(_delegation_record(), LED.c.subject_id.in_(delegations)))
        if scope.everything:
            kinds.append(_all(_by_time(scope.narrow)))
    return and_(in_log(), or_(*kinds))


def event_page_clause(session: Session, scope: ReadScope) -> ColumnElement[bool]:
    """`event_clause` in the shape that pages fastest: driven by the encounters when the scope holds
    at most `SMALL_SCOPE` of them (a page costs the scope's events), else walking the ledger in `seq`
    order (a page costs the events skipped to fill it)."""
    if scope.unlimited or scope.encounter_id is not None:
        return event_clause(scope)
    first = select(ENC.c.id).where(encounter_clause(scope)).limit(SMALL_SCOPE + 1).subquery()
    count = session.execute(select(func.count()).select_from(first)).scalar_one()
    return event_clause(scope, walk=count > SMALL_SCOPE)


# --- engagements and users ---------------------------------------------------------------------------


def engagement_clause(scope: ReadScope) -> ColumnElement[bool]:
    """Engagement rows (`ENG`): all for full access, else those opened for the party."""
    if scope.everything:
        return true()
    return ENG.c.auditor_id == scope.party_id if scope.party_id is not None else false()


def user_clause(scope: ReadScope) -> ColumnElement[bool]:
    """User rows (`USR`): all for full access, else the party's own."""
    if scope.everything:
        return true()
    return USR.c.id == scope.party_id if scope.party_id is not None else false()
