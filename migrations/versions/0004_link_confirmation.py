"""link requests keep the verified identity until the Slack user confirms it in Slack

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("link_requests") as batch:
        batch.add_column(sa.Column("sub", sa.String(255), nullable=True))
        batch.add_column(sa.Column("email", sa.String(320), nullable=True))
        batch.add_column(sa.Column("email_verified", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("name", sa.String(255), nullable=True))
        batch.add_column(sa.Column("refresh_token_enc", sa.Text(), nullable=True))
        batch.add_column(sa.Column("permissions", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("permissions_expire_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("confirm_by", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("link_requests") as batch:
        for column in (
            "outcome",
            "finished_at",
            "confirm_by",
            "verified_at",
            "permissions_expire_at",
            "permissions",
            "refresh_token_enc",
            "name",
            "email_verified",
            "email",
            "sub",
        ):
            batch.drop_column(column)
