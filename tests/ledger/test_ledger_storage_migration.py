"""Migration 0012 (issue 12, Storage): the ledger loses the unique index on its random `event_id` and
the index the encounter-history index already serves; its rows, its other indexes and its append-only
guards stay, on a database upgraded with data as on a new one."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from audit.db import make_engine
from audit.ledger import checkpoints
from audit.ledger import service as ledger
from audit.ledger.events import Actor, EventDraft
from audit.ledger.verification import FULL, verify_ledger
from audit.migrate import downgrade, upgrade
from audit.uow import unit_of_work

PREVIOUS_HEAD = "0011_rollups"  # the revision 0012 follows

KEPT = {
    "ix_ledger_event_encounter_seq",
    "ix_ledger_event_provider_ts",
    "ix_ledger_event_type_ts",
    "ix_ledger_event_actor_ts",
    "ix_ledger_event_ts",
    "ix_ledger_event_outcome_provider",
}


def _append(engine: Engine, n: int) -> None:
    with unit_of_work(engine) as s:
        ledger.append(s, [EventDraft(type="test.tick", actor=Actor(None, "cli", "test"))] * n)


def _rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT * FROM ledger_event ORDER BY seq"))]


def _indexes(engine: Engine) -> set[str]:
    return {str(i["name"]) for i in inspect(engine).get_indexes("ledger_event")}


def _uniques(engine: Engine) -> set[str]:
    return {str(u["name"]) for u in inspect(engine).get_unique_constraints("ledger_event")}


def _verified(engine: Engine) -> bool:
    checkpoints._frontier.clear()
    with Session(engine) as session:
        return verify_ledger(session, checks=FULL).ok


def _refused(engine: Engine, statement: str) -> None:
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))


def _guards_hold(engine: Engine) -> None:
    _refused(engine, "UPDATE ledger_event SET type = 'x' WHERE seq = 0")
    _refused(engine, "DELETE FROM ledger_event WHERE seq = 0")
    if engine.dialect.name == "sqlite":
        copy = "SELECT * FROM ledger_event WHERE seq = 1"
        _refused(engine, f"INSERT OR REPLACE INTO ledger_event {copy}")
    else:
        _refused(engine, "TRUNCATE ledger_event")


def test_0012_from_previous_head_with_data_keeps_rows_and_guards_and_downgrades(fresh_db_url: str) -> None:
    upgrade(fresh_db_url, PREVIOUS_HEAD)
    engine = make_engine(fresh_db_url)
    _append(engine, 5)
    checkpoints.create_in_own_transaction(engine)
    before = _rows(engine)
    assert "ix_ledger_event_encounter_type_seq" in _indexes(engine)
    engine.dispose()

    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    assert _rows(engine) == before  # the same bytes, hashes and columns
    assert _indexes(engine) >= KEPT and "ix_ledger_event_encounter_type_seq" not in _indexes(engine)
    assert "uq_ledger_event_event_id" not in _uniques(engine)
    _guards_hold(engine)
    _append(engine, 3)
    assert _verified(engine)
    engine.dispose()

    downgrade(fresh_db_url, PREVIOUS_HEAD)
    engine = make_engine(fresh_db_url)
    assert len(_rows(engine)) == 8
    assert "uq_ledger_event_event_id" in _uniques(engine)
    assert "ix_ledger_event_encounter_type_seq" in _indexes(engine)
    _guards_hold(engine)
    engine.dispose()
    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    assert _verified(engine)
    engine.dispose()
