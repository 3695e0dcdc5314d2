"""embedded authorization engine: stores, models, tuples, changelog

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "fga_stores",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        _now(),
        sa.PrimaryKeyConstraint("id", name="pk_fga_stores"),
    )
    op.create_table(
        "fga_models",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("store_id", sa.String(26), nullable=False),
        sa.Column("model_json", sa.Text(), nullable=False),
        _now(),
        sa.PrimaryKeyConstraint("id", name="pk_fga_models"),
    )
    op.create_index("ix_fga_models_store_id", "fga_models", ["store_id"])
    op.create_table(
        "fga_tuples",
        sa.Column("store_id", sa.String(26), nullable=False),
        sa.Column("object", sa.String(512), nullable=False),
        sa.Column("relation", sa.String(128), nullable=False),
        sa.Column("user", sa.String(512), nullable=False),
        _now(),
        sa.PrimaryKeyConstraint("store_id", "object", "relation", "user", name="pk_fga_tuples"),
    )
    op.create_index("ix_fga_tuples_store_user", "fga_tuples", ["store_id", "user"])
    op.create_table(
        "fga_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("store_id", sa.String(26), nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("object", sa.String(512), nullable=False),
        sa.Column("relation", sa.String(128), nullable=False),
        sa.Column("user", sa.String(512), nullable=False),
        _now(),
        sa.PrimaryKeyConstraint("id", name="pk_fga_changes"),
    )
    op.create_index("ix_fga_changes_store_id_id", "fga_changes", ["store_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_fga_changes_store_id_id", table_name="fga_changes")
    op.drop_table("fga_changes")
    op.drop_index("ix_fga_tuples_store_user", table_name="fga_tuples")
    op.drop_table("fga_tuples")
    op.drop_index("ix_fga_models_store_id", table_name="fga_models")
    op.drop_table("fga_models")
    op.drop_table("fga_stores")
