"""links record whether the email was verified and the person's kind of membership

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("slack_links") as batch:
        batch.add_column(
            sa.Column("email_verified", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("membership", sa.String(16), nullable=False, server_default="member")
        )


def downgrade() -> None:
    with op.batch_alter_table("slack_links") as batch:
        batch.drop_column("membership")
        batch.drop_column("email_verified")
