"""Migration 0013: from the previous head with data, up and down again, on the backend under test."""

from __future__ import annotations

from sqlalchemy import inspect, text

from audit.db import make_engine
from audit.migrate import downgrade, upgrade

TABLES = {"coding_audit", "audit_finding", "audit_finding_response", "audit_signature", "audit_follow_up"}
PREVIOUS = "0012_ledger_storage"


def test_upgrade_from_the_previous_head_with_data_and_back(fresh_db_url: str) -> None:
    upgrade(fresh_db_url, PREVIOUS)
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO app_user (id, username, display_name, password_hash, roles, "
                "credential_active, is_active, failed_signings, created_at) "
                "VALUES ('u1', 'kept', 'Kept', 'x', '[]', true, true, 0, '2026-01-01 00:00:00')"
            )
        )
    engine.dispose()
    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.begin() as conn:
        assert conn.execute(text("SELECT username FROM app_user WHERE id = 'u1'")).scalar_one() == "kept"
        conn.execute(
            text(
                "INSERT INTO coding_audit (id, name, auditor_id, date_from, date_to, provider_ids, "
                "code_systems, em_only, method, n, seed, status, parties, opened_at) "
                "VALUES ('a1', 'x', 'u1', '2026-01-01', '2026-01-31', '[]', '[]', false, 'random', 5, 1, "
                "'open', '[]', '2026-02-01 00:00:00')"
            )
        )
    engine.dispose()
    downgrade(fresh_db_url, PREVIOUS)
    engine = make_engine(fresh_db_url)
    assert not TABLES & set(inspect(engine).get_table_names())
    with engine.begin() as conn:
        assert conn.execute(text("SELECT username FROM app_user WHERE id = 'u1'")).scalar_one() == "kept"
    engine.dispose()
