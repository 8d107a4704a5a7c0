"""Shared pieces of the report SQL: the tables and user names. Scope clauses come from
`audit.policy.filters`, the one place a read's scope becomes SQL."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, case, func, select
from sqlmodel import Session

from audit.config import get_settings
from audit.ledger.models import CODE_EVENTS
from audit.models import ChangeAfterAttestation, CodeLine
from audit.policy.filters import ATT, DLG, ENC, LED, USR, in_log

__all__ = [
    "ATT", "CAA", "CODE_EVENTS", "DLG", "ENC", "LED", "LINE", "USR", "count_if", "in_log", "kept_changes",
    "name_of", "names",
]  # fmt: skip

LINE: Table = CodeLine.__table__  # type: ignore[attr-defined]
CAA: Table = ChangeAfterAttestation.__table__  # type: ignore[attr-defined]


def kept_changes() -> tuple[Any, ColumnElement[bool]]:
    """The changes after attestation this log keeps (audit.ledger.changes), each joined to its ledger
    event (LED) and its encounter (ENC): (FROM clause, the log's WHERE clause). Scope them with
    `encounter_clause`."""
    joined = CAA.join(LED, and_(LED.c.log_id == CAA.c.log_id, LED.c.seq == CAA.c.seq)).join(
        ENC, ENC.c.id == CAA.c.encounter_id
    )
    return joined, CAA.c.log_id == get_settings().log_id


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
