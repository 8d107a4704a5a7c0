"""Shared pieces of the report SQL: the tables, the encounter scope, user names."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, case, func, or_, select
from sqlmodel import Session

from audit.config import get_settings
from audit.ledger.service import LEDGER
from audit.models import Attestation, CodeLine, Delegation, Encounter, User
from audit.report.schemas import Filters

ENC: Table = Encounter.__table__  # type: ignore[attr-defined]
LINE: Table = CodeLine.__table__  # type: ignore[attr-defined]
ATT: Table = Attestation.__table__  # type: ignore[attr-defined]
DLG: Table = Delegation.__table__  # type: ignore[attr-defined]
USR: Table = User.__table__  # type: ignore[attr-defined]
LED: Table = LEDGER
CODE_EVENTS = ("code.add", "code.change", "code.void")


def encounter_scope(f: Filters) -> list[ColumnElement[bool]]:
    """Encounters whose date of service and provider of record are in the filters."""
    where: list[ColumnElement[bool]] = []
    if f.date_from is not None:
        where.append(ENC.c.date_of_service >= f.date_from)
    if f.date_to is not None:
        where.append(ENC.c.date_of_service <= f.date_to)
    if f.provider_ids:
        where.append(ENC.c.rendering_provider_id.in_(sorted(f.provider_ids)))
    return where


def in_log() -> ColumnElement[bool]:
    return LED.c.log_id == get_settings().log_id


def event_scope(f: Filters) -> list[ColumnElement[bool]]:
    """Ledger events (outer-joined to ENC) on encounters in scope; events on no encounter by time."""
    where: list[ColumnElement[bool]] = [in_log()]
    if f.provider_ids:
        where.append(LED.c.provider_id.in_(sorted(f.provider_ids)))
    dated = encounter_scope(Filters(f.date_from, f.date_to))
    if not dated:
        return where
    by_time: list[ColumnElement[bool]] = [LED.c.encounter_id.is_(None)]
    if f.date_from is not None:
        by_time.append(LED.c.ts >= midnight(f.date_from))
    if f.date_to is not None:
        by_time.append(LED.c.ts < midnight(f.date_to + timedelta(days=1)))
    where.append(or_(and_(ENC.c.id.is_not(None), *dated), and_(*by_time)))
    return where


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def count_if(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def names(session: Session, ids: Iterable[str | None]) -> dict[str, tuple[str, str]]:
    """user id -> (display name, NPI) for the few users a report names."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = session.execute(select(USR.c.id, USR.c.display_name, USR.c.npi).where(USR.c.id.in_(wanted)))
    return {uid: (name, npi or "") for uid, name, npi in rows}


def name_of(table: dict[str, tuple[str, str]], user_id: str | None) -> str:
    return table.get(user_id or "", (user_id or "", ""))[0]
