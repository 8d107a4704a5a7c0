"""bulk charge feeds: which code line each feed line became

Revision ID: 0008_imports
Revises: 0006_signin_backoff
Create Date: 2026-11-29 13:20:00

`import_line` maps a feed's (source, external_id, line_ref) to the code line it created, with the
digest of the row as last applied: a re-run of the same file imports nothing new, and a changed row
becomes a change event. It holds no evidence (the ledger's events name the line and the feed line).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008_imports"
down_revision: str | None = "0006_signin_backoff"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "import_line",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("line_ref", sa.String(length=128), nullable=False),
        sa.Column("line_id", sa.String(length=36), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["line_id"], ["code_line.id"], name=op.f("fk_import_line_line_id_code_line")
        ),
        sa.PrimaryKeyConstraint("source", "external_id", "line_ref", name=op.f("pk_import_line")),
    )
    with op.batch_alter_table("import_line", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_import_line_line_id"), ["line_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("import_line", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_line_line_id"))
    op.drop_table("import_line")
