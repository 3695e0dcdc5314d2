"""approvals and their approvers

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("requester_slack_id", sa.String(32), nullable=False),
        sa.Column("requester_sub", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("arguments", sa.Text(), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("project_ids", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("remind_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reminder", sa.SmallInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(64), nullable=True),
        sa.Column("requester_channel", sa.String(32), nullable=True),
        sa.Column("requester_ts", sa.String(32), nullable=True),
        sa.Column("approver_slack_id", sa.String(32), nullable=True),
        sa.Column("approver_sub", sa.String(255), nullable=True),
        sa.Column("auth_req_id", sa.Text(), nullable=True),
        sa.Column("binding_code", sa.String(8), nullable=True),
        sa.Column("poll_interval", sa.Integer(), nullable=True),
        sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by_slack_id", sa.String(32), nullable=True),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dirty", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("rendered_version", sa.Integer(), nullable=False),
        sa.Column("render_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
        sa.UniqueConstraint("idempotency_key", name="uq_approvals_idempotency_key"),
    )
    op.create_index("ix_approvals_status_expires_at", "approvals", ["status", "expires_at"])
    op.create_index("ix_approvals_status_next_poll_at", "approvals", ["status", "next_poll_at"])
    op.create_index("ix_approvals_status_remind_at", "approvals", ["status", "remind_at"])
    op.create_index("ix_approvals_dirty", "approvals", ["dirty"])
    op.create_index(
        "ix_approvals_requester", "approvals", ["team_id", "requester_slack_id", "status"]
    )
    op.create_table(
        "approval_approvers",
        sa.Column("approval_id", sa.String(26), nullable=False),
        sa.Column("slack_user_id", sa.String(32), nullable=False),
        sa.Column("sub", sa.String(255), nullable=False),
        sa.Column("dm_channel", sa.String(32), nullable=True),
        sa.Column("dm_ts", sa.String(32), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["approval_id"],
            ["approvals.id"],
            name="fk_approval_approvers_approval_id_approvals",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("approval_id", "slack_user_id", name="pk_approval_approvers"),
    )
    op.create_index("ix_approval_approvers_slack_user_id", "approval_approvers", ["slack_user_id"])


def downgrade() -> None:
    op.drop_index("ix_approval_approvers_slack_user_id", table_name="approval_approvers")
    op.drop_table("approval_approvers")
    op.drop_index("ix_approvals_requester", table_name="approvals")
    op.drop_index("ix_approvals_dirty", table_name="approvals")
    op.drop_index("ix_approvals_status_remind_at", table_name="approvals")
    op.drop_index("ix_approvals_status_next_poll_at", table_name="approvals")
    op.drop_index("ix_approvals_status_expires_at", table_name="approvals")
    op.drop_table("approvals")
