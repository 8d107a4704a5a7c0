"""The database itself refuses to alter the ledger (ONC 170.315(d)(2)), whatever the application does."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from audit.ledger import service as ledger
from audit.ledger.events import Actor, EventDraft
from tests.support import IS_POSTGRES

COLUMNS = "log_id, seq, event_id, ts, type, outcome, payload, leaf_hash, chain_hash"


@pytest.fixture
def seeded(connection: Connection, uow) -> Connection:  # type: ignore[no-untyped-def]
    with uow() as s:
        ledger.append(s, [EventDraft(type="test.event", actor=Actor("u1", "coder")) for _ in range(3)])
    return connection


def _refused(connection: Connection, sql: str) -> str:
    savepoint = connection.begin_nested()
    with pytest.raises(DBAPIError) as info:
        connection.execute(text(sql))
    savepoint.rollback()
    return str(info.value)


def test_update_is_refused(seeded: Connection) -> None:
    assert "append-only" in _refused(seeded, "UPDATE ledger_event SET type = 'x'")


def test_delete_is_refused(seeded: Connection) -> None:
    assert "append-only" in _refused(seeded, "DELETE FROM ledger_event")


@pytest.mark.skipif(IS_POSTGRES, reason="INSERT OR REPLACE is SQLite syntax")
def test_insert_or_replace_is_refused_on_sqlite(seeded: Connection) -> None:
    message = _refused(
        seeded,
        f"INSERT OR REPLACE INTO ledger_event ({COLUMNS})"
        " SELECT log_id, seq, 'other-id', ts, 'forged', outcome, payload, leaf_hash, chain_hash"
        " FROM ledger_event ORDER BY seq DESC LIMIT 1",
    )
    assert "append-only" in message


@pytest.mark.skipif(not IS_POSTGRES, reason="TRUNCATE and ON CONFLICT UPDATE are PostgreSQL")
def test_truncate_and_upsert_are_refused_on_postgres(seeded: Connection) -> None:
    assert "append-only" in _refused(seeded, "TRUNCATE ledger_event")
    upsert = (
        f"INSERT INTO ledger_event ({COLUMNS})"
        " SELECT log_id, seq, event_id, ts, 'forged', outcome, payload, leaf_hash, chain_hash"
        " FROM ledger_event ORDER BY seq DESC LIMIT 1 ON CONFLICT (log_id, seq) DO UPDATE SET type = 'forged'"
    )
    assert "append-only" in _refused(seeded, upsert)


@pytest.mark.skipif(not IS_POSTGRES, reason="PostgreSQL triggers")
def test_postgres_guards_fire_even_in_replica_mode(seeded: Connection) -> None:
    savepoint = seeded.begin_nested()
    seeded.execute(text("SET LOCAL session_replication_role = replica"))
    with pytest.raises(DBAPIError):
        seeded.execute(text("DELETE FROM ledger_event"))
    savepoint.rollback()


def test_chain_stays_verifiable_after_refusals(seeded: Connection, uow) -> None:  # type: ignore[no-untyped-def]
    _refused(seeded, "DELETE FROM ledger_event")
    with uow() as s:
        assert ledger.verify(s).ok
