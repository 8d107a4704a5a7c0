"""index the refused (denied or failed) attempts by time

Revision ID: 0014_refused_attempts_index
Revises: 0013_coding_audits
Create Date: 2026-11-29 21:00:00.000000

Issue 11. The compliance dashboard counts denied and failed attempts per day and lists the latest:
with only (ts) to search by, SQLite walked every event of the last twelve weeks to find the refused
ones (0.75 s at 1,000,000 events). A partial index of the refused events by time reaches them
directly; it holds only those (2,032 of 1,000,000 in the benchmark), so it costs almost nothing to
keep, and the planner never takes it for queries on allowed events (a full (outcome, ts) index drew
the changes-after-attestation count onto every allowed event: 0.36 s became 1.9 s). One index,
nothing else changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014_refused_attempts_index"
down_revision: str | None = "0013_coding_audits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    refused = sa.text("outcome <> 'allowed'")
    op.create_index(
        "ix_ledger_event_refused_ts", "ledger_event", ["log_id", "ts"], sqlite_where=refused, postgresql_where=refused
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_event_refused_ts", table_name="ledger_event")
