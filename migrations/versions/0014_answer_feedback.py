"""answers given and the feedback on them

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "answers",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("asker_slack_user_id", sa.String(32), nullable=False),
        sa.Column("asker_sub", sa.String(255), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("document_ids", sa.Text(), nullable=False),
        sa.Column("visibility", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_answers"),
    )
    op.create_index("ix_answers_asker", "answers", ["team_id", "asker_slack_user_id"])
    op.create_table(
        "answer_feedback",
        sa.Column("answer_id", sa.String(26), nullable=False),
        sa.Column("voter_slack_user_id", sa.String(32), nullable=False),
        sa.Column("voter_sub", sa.String(255), nullable=False),
        sa.Column("vote", sa.String(4), nullable=False),
        sa.Column("voted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["answer_id"],
            ["answers.id"],
            name="fk_answer_feedback_answer_id_answers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("answer_id", "voter_slack_user_id", name="pk_answer_feedback"),
    )


def downgrade() -> None:
    op.drop_table("answer_feedback")
    op.drop_index("ix_answers_asker", table_name="answers")
    op.drop_table("answers")
