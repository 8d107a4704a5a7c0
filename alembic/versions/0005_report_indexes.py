"""indexes for the reports (covering the per-encounter event scans and the denied-attempt counts)

Revision ID: 0005_report_indexes
Revises: 0004_engagements_checkpoints
Create Date: 2026-11-22 21:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005_report_indexes"
down_revision: str | None = "0004_engagements_checkpoints"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ledger_event": [
        # first allowed attestation per encounter, and the code events after it
        ("ix_ledger_event_encounter_type_seq", ["encounter_id", "type", "outcome", "log_id", "seq"]),
        # denied attempts per provider
        ("ix_ledger_event_outcome_provider", ["outcome", "provider_id"]),
    ],
    "encounter": [
        # encounters in a date range per provider with their status, index-only
        ("ix_encounter_provider_dos_status", ["rendering_provider_id", "date_of_service", "status", "id"]),
    ],
    "attestation": [
        # late valid attestations per encounter, index-only
        ("ix_attestation_encounter_status_late", ["encounter_id", "status", "late"]),
    ],
    "code_line": [
        # lines entered per author on encounters in scope (index-only)
        ("ix_code_line_encounter_entered_by", ["encounter_id", "entered_by"]),
    ],
}


def upgrade() -> None:
    for table, indexes in INDEXES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, columns in indexes:
                batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    for table, indexes in INDEXES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, _ in reversed(indexes):
                batch_op.drop_index(name)
