"""the Merkle frontier at each checkpoint, so incremental verification does not rebuild the root

Revision ID: 0009_merkle_frontier
Revises: 0006_signin_backoff
Create Date: 2026-11-29 13:30:00.000000

A cache, not evidence: each row holds the right-edge subtree roots of the tree at a checkpoint's
size. It is trusted only when it folds to the signed root, and full verification recomputes every
row. Databases upgraded from earlier revisions have no rows: the next checkpoint writes the first.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009_merkle_frontier"
down_revision: str | None = "0008_imports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "merkle_frontier",
        sa.Column("log_id", sa.String(length=64), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("nodes", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("log_id", "tree_size", name=op.f("pk_merkle_frontier")),
    )


def downgrade() -> None:
    op.drop_table("merkle_frontier")
