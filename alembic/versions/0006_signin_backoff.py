"""sign-in back-off instead of account lockout; a separate signing lock

Revision ID: 0006_signin_backoff
Revises: 0005_report_indexes
Create Date: 2026-11-29 09:43:26.929289

Until this revision only failed sign-ins set `app_user.locked_until` (for 30 minutes). From now on
failed sign-ins back off (`signin_backoff`, `signin_burst`) and only an administrator's lock sets
`locked_until`, so the automatic locks still running are lifted here. Wrong passwords at signing
lock signing only (`signing_locked_until`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006_signin_backoff"
down_revision: str | None = "0005_report_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signin_backoff",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_signin_backoff")),
    )
    op.create_table(
        "signin_burst",
        sa.Column("bucket", sa.String(length=64), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("closes_at", sa.DateTime(), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("throttled", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_signin_burst")),
    )
    with op.batch_alter_table("signin_burst", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signin_burst_closes_at"), ["closes_at"], unique=False)

    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signing_locked_until", sa.DateTime(), nullable=True))
        batch_op.drop_column("failed_signins")
    op.execute("UPDATE app_user SET locked_until = NULL")


def downgrade() -> None:
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failed_signins", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.drop_column("signing_locked_until")

    with op.batch_alter_table("signin_burst", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signin_burst_closes_at"))

    op.drop_table("signin_burst")
    op.drop_table("signin_backoff")
