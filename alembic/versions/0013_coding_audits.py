"""coding audits: audits with their frozen frame and sample, findings, responses, signatures, follow-up

Revision ID: 0013_coding_audits
Revises: 0012_ledger_storage
Create Date: 2026-11-29 17:00:00.000000

Issue 13. New tables only; nothing existing changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0013_coding_audits"
down_revision: str | None = "0012_ledger_storage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coding_audit",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("auditor_id", sa.String(length=36), nullable=False),
        sa.Column("engagement_id", sa.String(length=36), nullable=True),
        sa.Column("date_from", sa.Date(), nullable=False),
        sa.Column("date_to", sa.Date(), nullable=False),
        sa.Column("provider_ids", sa.JSON(), nullable=False),
        sa.Column("code_systems", sa.JSON(), nullable=False),
        sa.Column("em_only", sa.Boolean(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("strata", sa.String(length=16), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.Column("not_before", sa.Date(), nullable=True),
        sa.Column("frame", sa.JSON(), nullable=True),
        sa.Column("frame_sha256", sa.String(length=64), nullable=True),
        sa.Column("sample", sa.JSON(), nullable=True),
        sa.Column("sampled_at", sa.DateTime(), nullable=True),
        sa.Column("parties", sa.JSON(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["auditor_id"], ["app_user.id"], name=op.f("fk_coding_audit_auditor_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coding_audit")),
    )
    op.create_index(op.f("ix_coding_audit_auditor_id"), "coding_audit", ["auditor_id"], unique=False)
    op.create_table(
        "audit_finding",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("audit_id", sa.String(length=36), nullable=False),
        sa.Column("encounter_id", sa.String(length=36), nullable=False),
        sa.Column("provider_id", sa.String(length=36), nullable=False),
        sa.Column("line_id", sa.String(length=36), nullable=True),
        sa.Column("line_version", sa.Integer(), nullable=True),
        sa.Column("line_system", sa.String(length=16), nullable=True),
        sa.Column("line_code", sa.String(length=16), nullable=True),
        sa.Column("line_author_id", sa.String(length=36), nullable=True),
        sa.Column("attested_by", sa.String(length=36), nullable=True),
        sa.Column("attestation_id", sa.String(length=36), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("revised", sa.JSON(), nullable=True),
        sa.Column("revised_code", sa.String(length=16), nullable=True),
        sa.Column("category", sa.String(length=40), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=False),
        sa.Column("auditor_id", sa.String(length=36), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decision_comment", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(length=36), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("replaced_by", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["audit_id"], ["coding_audit.id"], name=op.f("fk_audit_finding_audit_id_coding_audit")
        ),
        sa.ForeignKeyConstraint(
            ["encounter_id"], ["encounter.id"], name=op.f("fk_audit_finding_encounter_id_encounter")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_finding")),
    )
    op.create_index(
        "ix_audit_finding_audit_current", "audit_finding", ["audit_id", "replaced_by"], unique=False
    )
    op.create_index(op.f("ix_audit_finding_encounter_id"), "audit_finding", ["encounter_id"], unique=False)
    op.create_table(
        "audit_finding_response",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("finding_id", sa.String(length=36), nullable=False),
        sa.Column("responder_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("response", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("responded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["finding_id"],
            ["audit_finding.id"],
            name=op.f("fk_audit_finding_response_finding_id_audit_finding"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_finding_response")),
    )
    op.create_index(
        op.f("ix_audit_finding_response_finding_id"), "audit_finding_response", ["finding_id"], unique=False
    )
    op.create_table(
        "audit_signature",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("audit_id", sa.String(length=36), nullable=False),
        sa.Column("signer_id", sa.String(length=36), nullable=False),
        sa.Column("printed_name", sa.String(length=200), nullable=False),
        sa.Column("credential", sa.String(length=20), nullable=False),
        sa.Column("signed_at", sa.DateTime(), nullable=False),
        sa.Column("meaning", sa.String(length=2000), nullable=False),
        sa.Column("findings_digest", sa.String(length=64), nullable=False),
        sa.Column("method_version", sa.String(length=32), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("superseded_at", sa.DateTime(), nullable=True),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["audit_id"], ["coding_audit.id"], name=op.f("fk_audit_signature_audit_id_coding_audit")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_signature")),
    )
    op.create_index(op.f("ix_audit_signature_audit_id"), "audit_signature", ["audit_id"], unique=False)
    op.create_table(
        "audit_follow_up",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("audit_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("provider_id", sa.String(length=36), nullable=False),
        sa.Column("encounter_id", sa.String(length=36), nullable=True),
        sa.Column("reaudit_id", sa.String(length=36), nullable=True),
        sa.Column("identified_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_id"], ["coding_audit.id"], name=op.f("fk_audit_follow_up_audit_id_coding_audit")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_follow_up")),
    )
    op.create_index(op.f("ix_audit_follow_up_audit_id"), "audit_follow_up", ["audit_id"], unique=False)


def downgrade() -> None:
    for table in (
        "audit_follow_up",
        "audit_signature",
        "audit_finding_response",
        "audit_finding",
        "coding_audit",
    ):
        op.drop_table(table)
