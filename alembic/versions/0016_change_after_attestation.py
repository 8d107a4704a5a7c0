"""Changes after attestation, kept with the events; late signatures by time

Revision ID: 0016_change_after_attestation
Revises: 0015_rollup_em
Create Date: 2026-11-29 23:00:00.000000

Issue 11. The compliance dashboard listed, counted and charted the changes after attestation by
testing every code event of its window against the encounter's earlier attestations: 0.78 s of a
1.03 s view at 1,000,000 events. This table holds those events' keys (log, seq) with their time and
encounter, kept by the ledger writer in the appending transaction (audit.ledger.changes) and compared
with the ledger by `audit verify`. The upgrade fills it with the same SELECT, in SQL. The ledger
writer's roll-up refresh counts a key's changes from it (by encounter) instead of from every event of
the key's encounters.

The dashboard's late signatures of the last days scanned every attestation (0.09-0.15 s at 160,000);
an index on (late, signed_at) makes them a range.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0016_change_after_attestation"
down_revision: str | None = "0015_rollup_em"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_after_attestation",
        sa.Column("log_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("ts", sa.DateTime(), nullable=False),
        sa.Column("encounter_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("log_id", "seq", name=op.f("pk_change_after_attestation")),
    )
    op.create_index("ix_change_after_attestation_ts", "change_after_attestation", ["log_id", "ts"])
    op.create_index(
        "ix_change_after_attestation_encounter", "change_after_attestation", ["encounter_id"]
    )
    op.create_index("ix_attestation_late_signed_at", "attestation", ["late", "signed_at"])
    op.execute(
        "INSERT INTO change_after_attestation (log_id, seq, ts, encounter_id) "
        "SELECT e.log_id, e.seq, e.ts, e.encounter_id FROM ledger_event e "
        "WHERE e.type IN ('code.add', 'code.change', 'code.void') AND e.outcome = 'allowed' "
        "AND e.encounter_id IS NOT NULL AND EXISTS (SELECT 1 FROM ledger_event a "
        "WHERE a.encounter_id = e.encounter_id AND a.type = 'encounter.attest' AND a.outcome = 'allowed' "
        "AND a.log_id = e.log_id AND a.seq < e.seq)"
    )


def downgrade() -> None:
    op.drop_index("ix_attestation_late_signed_at", table_name="attestation")
    op.drop_table("change_after_attestation")
