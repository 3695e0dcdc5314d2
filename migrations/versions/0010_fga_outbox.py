"""the transactional outbox of authorization tuple changes

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fga_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("operation", sa.String(8), nullable=False),
        sa.Column("user", sa.String(512), nullable=False),
        sa.Column("relation", sa.String(50), nullable=False),
        sa.Column("object", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_fga_outbox"),
    )
    op.create_index("ix_fga_outbox_pending", "fga_outbox", ["done_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_fga_outbox_pending", table_name="fga_outbox")
    op.drop_table("fga_outbox")
