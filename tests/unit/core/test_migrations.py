"""The migrations and the models describe the same database, and every revision goes down
and up again, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from bot.storage.db import Database
from bot.storage.migrate import alembic_config, downgrade_async, target_metadata, upgrade_async

# Expression indexes Alembic's comparison cannot describe; each exists for a backend query
# that names it (migration 0015: the PostgreSQL retrieval backend's full-text index).
EXPRESSION_INDEXES = {"ix_chunks_fts"}


def _of_another_metadata(difference: Any, metadata: Any) -> bool:
    kind, item = difference[0], difference[1]
    if kind == "remove_index" and item.name in EXPRESSION_INDEXES:
        return True
    if kind == "remove_table":
        return item.name not in metadata.tables
    if kind == "remove_index":
        return item.table.name not in metadata.tables
    return False


def _model_tables() -> set[str]:
    return {name for metadata in target_metadata() for name in metadata.tables}


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        names: set[str] = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    return names - {"alembic_version"}


async def test_the_migrated_database_matches_the_models(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:

            def diff(sync: Any) -> list[Any]:
                context = MigrationContext.configure(
                    sync, opts={"compare_type": True, "compare_server_default": False}
                )
                found: list[Any] = []
                for metadata in target_metadata():
                    found += [
                        d
                        for d in compare_metadata(context, metadata)
                        # Compared alone, each metadata sees the other's tables as extra.
                        if not _of_another_metadata(d, metadata)
                    ]
                return found

            differences = await conn.run_sync(diff)
        assert differences == []
        assert await _tables(db) == _model_tables()
    finally:
        await db.dispose()


async def test_every_revision_goes_down_and_up_again(database_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(database_url))
    revisions = list(script.walk_revisions())  # head first
    db = Database(database_url)
    try:
        assert await _tables(db) == _model_tables()
        for revision in revisions:
            below = str(revision.down_revision or "base")
            # Down past this revision, up through it again, and down for the next one.
            await db.dispose()
            await downgrade_async(database_url, below)
            await db.dispose()
            await upgrade_async(database_url, revision.revision)
            await db.dispose()
            await downgrade_async(database_url, below)
        assert await _tables(db) == set()  # base: every table of every revision is gone
        await db.dispose()
        await upgrade_async(database_url)
        assert await _tables(db) == _model_tables()
        assert len(revisions) >= 5
    finally:
        await db.dispose()
