"""Shared pieces of the report SQL: the tables and user names. Scope clauses come from
`audit.policy.filters`, the one place a read's scope becomes SQL."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Table, case, func, select
from sqlmodel import Session

from audit.ledger.models import CODE_EVENTS
from audit.models import CodeLine
from audit.policy.filters import ATT, DLG, ENC, LED, USR, in_log

__all__ = ["ATT", "CODE_EVENTS", "DLG", "ENC", "LED", "LINE", "USR", "count_if", "in_log", "name_of", "names"]

LINE: Table = CodeLine.__table__  # type: ignore[attr-defined]


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
