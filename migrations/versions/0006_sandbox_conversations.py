"""sandbox: the local Slack workspace's conversations (its DMs), kept across restarts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sandbox_conversations",
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(80), nullable=True),
        sa.Column("is_im", sa.Boolean(), nullable=False),
        sa.Column("members", sa.Text(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "id", name="pk_sandbox_conversations"),
    )


def downgrade() -> None:
    op.drop_table("sandbox_conversations")
