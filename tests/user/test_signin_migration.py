"""Migration 0006 (sign-in back-off) from the previous head with data, and back, on the test database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect, text

from audit.db import make_engine
from audit.migrate import downgrade, upgrade

LOCKED = datetime.now(UTC).replace(tzinfo=None, microsecond=0) + timedelta(minutes=20)


def test_0006_lifts_old_sign_in_locks_and_keeps_users(fresh_db_url: str) -> None:
    upgrade(fresh_db_url, "0005_report_indexes")
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO app_user (id, username, display_name, password_hash, roles, npi, "
                "credential, credential_active, is_active, failed_signins, failed_signings, locked_until, "
                "created_at) VALUES ('u1', 'dr.locked', 'Dr Locked', 'x', '[\"provider\"]', NULL, NULL, "
                "true, true, 5, 2, :locked, :now)"
            ),
            {"locked": LOCKED, "now": LOCKED},
        )
    engine.dispose()

    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT username, failed_signings, locked_until, signing_locked_until FROM app_user")
        ).one()
    columns = {c["name"] for c in inspect(engine).get_columns("app_user")}
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert tuple(row) == ("dr.locked", 2, None, None)
    assert "failed_signins" not in columns and {"signin_backoff", "signin_burst"} <= tables

    downgrade(fresh_db_url, "0005_report_indexes")
    engine = make_engine(fresh_db_url)
    with engine.connect() as conn:
        assert tuple(conn.execute(text("SELECT username, failed_signins FROM app_user")).one()) == (
            "dr.locked",
            0,
        )
    assert "signin_backoff" not in set(inspect(engine).get_table_names())
    engine.dispose()
    upgrade(fresh_db_url)
