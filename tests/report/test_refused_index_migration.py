"""Migration 0014 (the refused attempts' index): from the previous head with data, up and down again,
on the backend under test; on SQLite the dashboard's per-day count of refused attempts searches it."""

from __future__ import annotations

from sqlalchemy import inspect, text

from audit.db import make_engine
from audit.migrate import downgrade, upgrade
from tests.support import IS_POSTGRES

PREVIOUS = "0013_coding_audits"
INDEX = "ix_ledger_event_refused_ts"
USER = (
    "INSERT INTO app_user (id, username, display_name, password_hash, roles, credential_active, "
    "is_active, failed_signings, created_at) "
    "VALUES ('u1', 'kept', 'Kept', 'x', '[]', true, true, 0, '2026-01-01 00:00:00')"
)
REFUSED_PER_DAY = (
    "SELECT date(ts), outcome, count(*) FROM ledger_event WHERE log_id = :log AND outcome <> 'allowed' "
    "AND outcome IN ('denied', 'failed') AND ts >= :since GROUP BY date(ts), outcome"
)


def _indexes(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {ix["name"] or "" for ix in inspect(engine).get_indexes("ledger_event")}
    finally:
        engine.dispose()


def test_upgrade_from_the_previous_head_with_data_and_back(fresh_db_url: str) -> None:
    upgrade(fresh_db_url, PREVIOUS)
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        conn.execute(text(USER))
    engine.dispose()
    assert INDEX not in _indexes(fresh_db_url)
    upgrade(fresh_db_url)
    assert INDEX in _indexes(fresh_db_url)
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT username FROM app_user WHERE id = 'u1'")).scalar_one() == "kept"
        if not IS_POSTGRES:
            params = {"log": "x", "since": "2026"}
            plan = conn.execute(text("EXPLAIN QUERY PLAN " + REFUSED_PER_DAY), params).all()
            assert any(INDEX in str(row) for row in plan), plan
    engine.dispose()
    downgrade(fresh_db_url, PREVIOUS)
    assert INDEX not in _indexes(fresh_db_url)
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT username FROM app_user WHERE id = 'u1'")).scalar_one() == "kept"
    engine.dispose()
