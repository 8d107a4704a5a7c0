"""report roll-ups per provider and day of service, kept with the events they count

Revision ID: 0011_rollups
Revises: 0010_encounter_reads
Create Date: 2026-11-29 16:50:00.000000

Derived data that `audit verify` recomputes and compares (audit.ledger.rollups). The upgrade fills
them from the existing encounters, lines, attestations and ledger events.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011_rollups"
down_revision: str | None = "0010_encounter_reads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "rollup_provider_day",
        sa.Column("provider_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *(_count(n) for n in ("encounters", "attested", "unattested", "amended", "attested_late",
                              "changes_after_attestation")),
        sa.PrimaryKeyConstraint("provider_id", "day", name=op.f("pk_rollup_provider_day")),
    )  # fmt: skip
    op.create_table(
        "rollup_provider_day_author",
        sa.Column("provider_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("entered_by", sa.String(length=36), nullable=False),
        _count("lines"),
        sa.PrimaryKeyConstraint(
            "provider_id", "day", "entered_by", name=op.f("pk_rollup_provider_day_author")
        ),
    )
    op.create_table(
        "rollup_denied",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("provider_id", sa.String(length=36), nullable=False),
        sa.Column("encounter_provider_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        _count("attempts"),
        sa.PrimaryKeyConstraint(
            "kind", "provider_id", "encounter_provider_id", "day", name=op.f("pk_rollup_denied")
        ),
    )
    from audit.config import get_settings
    from audit.ledger import rollups

    rollups.rebuild(op.get_bind(), get_settings().log_id)


def downgrade() -> None:
    for table in ("rollup_denied", "rollup_provider_day_author", "rollup_provider_day"):
        op.drop_table(table)
