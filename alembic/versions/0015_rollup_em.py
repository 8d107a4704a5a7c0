"""E/M lines per provider, day of service and code, kept with the events

Revision ID: 0015_rollup_em
Revises: 0014_refused_attempts_index
Create Date: 2026-11-29 20:40:00.000000

Issue 11. The compliance dashboard's E/M level distribution grouped every active E/M line with its
encounter on each view (0.47 s at 480,000 lines). This roll-up holds that GROUP BY per (provider of
record, date of service, code), like the roll-ups of 0011: kept by the ledger writer, recomputed and
compared by `audit verify`. Its index answers the per-(provider, code) sum as a covering scan in
order (32 ms instead of 0.29 s for 118,511 rows, while the GROUP BY over the lines took 0.96 s on the
same loaded machine). The upgrade fills it from the existing lines with the same GROUP BY, in
SQL (the E/M codes are those of audit.ledger.models.EM_CODES when this revision was written).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0015_rollup_em"
down_revision: str | None = "0014_refused_attempts_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EM_CODES = ("99211", "99212", "99213", "99214", "99215", "99202", "99203", "99204", "99205")


def upgrade() -> None:
    op.create_table(
        "rollup_provider_day_code",
        sa.Column("provider_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("provider_id", "day", "code", name=op.f("pk_rollup_provider_day_code")),
    )
    op.create_index(
        "ix_rollup_provider_day_code_sum", "rollup_provider_day_code", ["provider_id", "code", "day", "lines"]
    )
    codes = ", ".join(f"'{c}'" for c in EM_CODES)
    op.execute(
        "INSERT INTO rollup_provider_day_code (provider_id, day, code, lines) "
        "SELECT e.rendering_provider_id, e.date_of_service, l.code, count(*) "
        "FROM code_line l JOIN encounter e ON e.id = l.encounter_id "
        f"WHERE l.status = 'active' AND l.system = 'CPT' AND l.code IN ({codes}) "
        "GROUP BY e.rendering_provider_id, e.date_of_service, l.code"
    )


def downgrade() -> None:
    op.drop_table("rollup_provider_day_code")
