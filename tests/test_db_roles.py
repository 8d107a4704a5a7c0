"""`audit db grant-app-role`: every table has a privilege entry; SQLite says plainly it has no roles.
(Connecting as the role on PostgreSQL is tests/ledger/test_app_role.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.db import metadata
from audit.db_roles import APPEND_ONLY, READ_ONLY, UPDATABLE, covered_tables
from tests.support import IS_POSTGRES, run_cli


def test_every_table_has_a_privilege_entry_for_the_app_role() -> None:
    """A migration that adds a table must say what the service may do with it (audit/db_roles.py)."""
    assert covered_tables() == {*metadata.tables, "alembic_version"}
    for table, columns in UPDATABLE.items():
        assert set(columns) <= set(metadata.tables[table].c.keys()), table
        assert "id" not in columns
    assert not set(APPEND_ONLY) & set(UPDATABLE) and not set(READ_ONLY) & set(UPDATABLE)


@pytest.mark.skipif(IS_POSTGRES, reason="the SQLite answer")
def test_grant_app_role_on_sqlite_explains_instead_of_pretending(tmp_path: Path) -> None:
    result = run_cli(["db", "grant-app-role", "audit_app"], f"sqlite:///{tmp_path / 'a.db'}", tmp_path)
    assert result.returncode == 2 and "SQLite has no database roles" in result.stdout
