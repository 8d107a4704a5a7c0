"""ledger storage: no unique index on the random event_id, no index the history index already serves

Revision ID: 0012_ledger_storage
Revises: 0011_rollups
Create Date: 2026-11-29 17:00:00.000000

Issue 12 (Storage): every event paid for two index entries nothing reads.
- `uq_ledger_event_event_id`: a unique index on a random UUID (about 45 B per event on SQLite, and a
  random-order B-tree probe on every insert, plus a second probe in the SQLite INSERT OR REPLACE
  guard). No query looks an event up by its `event_id` (events are addressed by seq); the id is
  inside the hashed payload, so it cannot change without breaking the chain. The guard keeps
  refusing INSERT OR REPLACE on the primary key, the only key left a REPLACE could clash on.
- `ix_ledger_event_encounter_type_seq` (about 80 B per event): the report and FHIR look-ups of one
  encounter's events by type and outcome are served by `ix_ledger_event_encounter_seq` (an
  encounter has tens of events), which the encounter history needs anyway.
The ledger's format (DESIGN 5), its columns and its append-only triggers are unchanged. On SQLite a
UNIQUE constraint can only go with a rebuild of the table: the rows are copied as they are (same
bytes), then its indexes and append-only triggers are recreated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from alembic import op

revision: str = "0012_ledger_storage"
down_revision: str | None = "0011_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "ledger_event"
UNIQUE = "uq_ledger_event_event_id"
DROPPED_INDEX = ("ix_ledger_event_encounter_type_seq", "encounter_id, type, outcome, log_id, seq")
REFUSE = f"SELECT RAISE(ABORT, '{TABLE} is append-only')"


def upgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {DROPPED_INDEX[0]}")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(unique_event_id=False)
    else:
        op.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {UNIQUE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(unique_event_id=True)
    else:
        op.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {UNIQUE} UNIQUE (event_id)")
    op.execute(f"CREATE INDEX {DROPPED_INDEX[0]} ON {TABLE} ({DROPPED_INDEX[1]})")


def _rebuild_sqlite(*, unique_event_id: bool) -> None:
    """Copy the table into one with (or without) the UNIQUE constraint, then put back its indexes and
    its append-only triggers (DROP TABLE removes them and fires none)."""
    bind = op.get_bind()
    create = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,))
    table_sql = create.scalar_one()
    indexes = [
        sql
        for (sql,) in bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
            (TABLE,),
        )
    ]
    without = re.sub(rf",\s*CONSTRAINT {UNIQUE} UNIQUE \(event_id\)", "", table_sql)
    new_sql = without
    if unique_event_id:
        new_sql = re.sub(r"\)\s*$", f", CONSTRAINT {UNIQUE} UNIQUE (event_id)\n)", without)
    new_sql = new_sql.replace(f"CREATE TABLE {TABLE}", f"CREATE TABLE {TABLE}__rebuilt", 1)
    new_sql = new_sql.replace(f'CREATE TABLE "{TABLE}"', f"CREATE TABLE {TABLE}__rebuilt", 1)
    op.execute(new_sql)
    op.execute(f"INSERT INTO {TABLE}__rebuilt SELECT * FROM {TABLE}")
    op.execute(f"DROP TABLE {TABLE}")
    op.execute(f"ALTER TABLE {TABLE}__rebuilt RENAME TO {TABLE}")
    for sql in indexes:
        op.execute(sql)
    clashes = "log_id = NEW.log_id AND seq = NEW.seq" + (
        " OR event_id = NEW.event_id" if unique_event_id else ""
    )
    op.execute(f"CREATE TRIGGER {TABLE}_no_update BEFORE UPDATE ON {TABLE} BEGIN {REFUSE}; END")
    op.execute(f"CREATE TRIGGER {TABLE}_no_delete BEFORE DELETE ON {TABLE} BEGIN {REFUSE}; END")
    op.execute(
        f"CREATE TRIGGER {TABLE}_no_replace BEFORE INSERT ON {TABLE} "
        f"WHEN EXISTS (SELECT 1 FROM {TABLE} WHERE {clashes}) BEGIN {REFUSE}; END"
    )
