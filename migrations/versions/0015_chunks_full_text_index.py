"""a full-text index on chunks, for the PostgreSQL retrieval backend

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The expression must be the one the retriever queries (bot/knowledge/postgres.py), or
# PostgreSQL cannot use the index. SQLite has no such index: its backend is in memory.


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_chunks_fts ON chunks USING gin "
            "(to_tsvector('english'::regconfig, heading || ' ' || text))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_chunks_fts")
