"""encounter reads: the supervising-provider association table and the list pages' indexes

Revision ID: 0010_encounter_reads
Revises: 0009_merkle_frontier
Create Date: 2026-11-29 17:00:00.000000

`encounter_supervisor` holds one row per (supervising provider, encounter), backfilled here from
`encounter.supervising_provider_ids` (which stays the record); the list scope joins it instead of a
LIKE over the JSON text. The indexes let a page of the encounter list (newest first, keyset) and the
web tables' sorts within one provider walk an index and stop after the page, instead of sorting the
whole scope. `ix_encounter_dos_id` replaces `ix_encounter_dos` (its prefix).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010_encounter_reads"
down_revision: str | None = "0009_merkle_frontier"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_encounter_dos_id": ["date_of_service", "id"],
    "ix_encounter_provider_external_id": ["rendering_provider_id", "external_id", "id"],
    "ix_encounter_provider_patient_ref": ["rendering_provider_id", "patient_ref", "id"],
    "ix_encounter_provider_status": ["rendering_provider_id", "status", "date_of_service", "id"],
    "ix_encounter_provider_created": ["rendering_provider_id", "created_at", "id"],
}
PREFIX_SEARCH = ("external_id", "patient_ref")  # LIKE 'x%' on PostgreSQL whatever the collation

# The association table follows `encounter.supervising_provider_ids` through triggers, whatever
# writes the encounter; each provider once (the column is written sorted and unique, but a hand-made
# row must not break the primary key).
SQLITE_ROWS = "SELECT DISTINCT j.value, {id} FROM json_each({ids}) j WHERE j.type = 'text'"
SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER encounter_supervisor_on_insert AFTER INSERT ON encounter
    BEGIN
        INSERT OR IGNORE INTO encounter_supervisor (provider_id, encounter_id)
        {SQLITE_ROWS.format(id="NEW.id", ids="NEW.supervising_provider_ids")};
    END""",
    f"""CREATE TRIGGER encounter_supervisor_on_update AFTER UPDATE OF supervising_provider_ids ON encounter
    BEGIN
        DELETE FROM encounter_supervisor WHERE encounter_id = NEW.id;
        INSERT OR IGNORE INTO encounter_supervisor (provider_id, encounter_id)
        {SQLITE_ROWS.format(id="NEW.id", ids="NEW.supervising_provider_ids")};
    END""",
]
PG_ROWS = "SELECT DISTINCT j.value, {id} FROM json_array_elements_text(({ids})::json) AS j(value)"
PG_TRIGGERS = [
    f"""CREATE FUNCTION encounter_supervisor_sync() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            DELETE FROM encounter_supervisor WHERE encounter_id = NEW.id;
        END IF;
        INSERT INTO encounter_supervisor (provider_id, encounter_id)
        {PG_ROWS.format(id="NEW.id", ids="NEW.supervising_provider_ids")}
        ON CONFLICT DO NOTHING;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER encounter_supervisor_sync AFTER INSERT OR UPDATE OF supervising_provider_ids
    ON encounter FOR EACH ROW EXECUTE FUNCTION encounter_supervisor_sync()""",
]
BACKFILL = {
    "sqlite": "INSERT OR IGNORE INTO encounter_supervisor (provider_id, encounter_id) "
    + SQLITE_ROWS.format(id="e.id", ids="e.supervising_provider_ids").replace(
        " FROM ", " FROM encounter e, ", 1
    ),
    "postgresql": "INSERT INTO encounter_supervisor (provider_id, encounter_id) "
    + PG_ROWS.format(id="e.id", ids="e.supervising_provider_ids").replace(" FROM ", " FROM encounter e, ", 1)
    + " ON CONFLICT DO NOTHING",
}


def upgrade() -> None:
    op.create_table(
        "encounter_supervisor",
        sa.Column("provider_id", sa.String(length=36), nullable=False),
        sa.Column("encounter_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["encounter_id"],
            ["encounter.id"],
            name=op.f("fk_encounter_supervisor_encounter_id_encounter"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("provider_id", "encounter_id", name=op.f("pk_encounter_supervisor")),
    )
    dialect = op.get_bind().dialect.name
    op.execute(BACKFILL[dialect])
    for statement in SQLITE_TRIGGERS if dialect == "sqlite" else PG_TRIGGERS:
        op.execute(statement)
    with op.batch_alter_table("encounter", schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns, unique=False)
        batch_op.drop_index("ix_encounter_dos")
        for column in PREFIX_SEARCH:
            batch_op.create_index(
                f"ix_encounter_{column}", [column], unique=False, postgresql_ops={column: "text_pattern_ops"}
            )


def downgrade() -> None:
    with op.batch_alter_table("encounter", schema=None) as batch_op:
        for column in PREFIX_SEARCH:
            batch_op.drop_index(f"ix_encounter_{column}")
        batch_op.create_index("ix_encounter_dos", ["date_of_service"], unique=False)
        for name in INDEXES:
            batch_op.drop_index(name)
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS encounter_supervisor_on_insert")
        op.execute("DROP TRIGGER IF EXISTS encounter_supervisor_on_update")
    else:
        op.execute("DROP TRIGGER IF EXISTS encounter_supervisor_sync ON encounter")
        op.execute("DROP FUNCTION IF EXISTS encounter_supervisor_sync()")
    op.drop_table("encounter_supervisor")
