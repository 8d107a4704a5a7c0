"""index the refused (denied or failed) attempts by time

Revision ID: 0014_refused_attempts_index
Revises: 0013_coding_audits
Create Date: 2026-11-29 21:00:00.000000

Issue 11. The compliance dashboard counts denied and failed attempts per day and lists the latest:
with only (ts) to search by, SQLite walked every event of the last twelve weeks to find the refused
ones (0.75 s at 1,000,000 events); (outcome, ts) reaches them directly (3 ms). One index, nothing
else changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014_refused_attempts_index"
down_revision: str | None = "0013_coding_audits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_ledger_event_outcome_ts", "ledger_event", ["outcome", "ts"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ledger_event_outcome_ts", table_name="ledger_event")
