from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from bot.dedup import Deduplicator, delivery_key
from bot.storage.db import Database
from bot.storage.migrate import downgrade_async, upgrade_async

TABLES = {"processed_events", "fga_stores", "fga_models", "fga_tuples", "fga_changes"}


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    return names


async def test_migrations_go_up_down_and_up_again(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert await _tables(db) >= TABLES
        await db.dispose()
        await downgrade_async(database_url, "base")
        assert not (TABLES & await _tables(db))
        await db.dispose()
        await upgrade_async(database_url)
        assert await _tables(db) >= TABLES
    finally:
        await db.dispose()


async def test_dedup_claims_once_and_sweeps(database_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    db = Database(database_url)
    try:
        dedup = Deduplicator(db=db, ttl=timedelta(hours=1))
        assert await dedup.claim("event", "ev:1")
        assert not await dedup.claim("event", "ev:1")
        assert await dedup.claim("event", "ev:2")
        assert await dedup.sweep(datetime.now(UTC)) == 0
        assert await dedup.sweep(datetime.now(UTC) + timedelta(hours=2)) == 2
        assert await dedup.claim("event", "ev:1")
    finally:
        await db.dispose()


async def test_ping_reports_a_down_database() -> None:
    db = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        assert not await db.ping()
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"type": "event_callback", "event_id": "Ev1"}, ("event", "ev:Ev1")),
        ({"command": "/pm", "trigger_id": "t1"}, ("command", "cmd:t1")),
        ({"type": "block_actions", "trigger_id": "t2"}, ("interaction", "int:t2")),
        ({"type": "url_verification"}, None),
    ],
)
def test_delivery_keys(body: dict[str, object], expected: tuple[str, str] | None) -> None:
    assert delivery_key(body) == expected


async def test_concurrent_claims_are_batched_and_exactly_once(database_url: str) -> None:
    import asyncio
    from datetime import timedelta

    db = Database(database_url)
    try:
        dedup = Deduplicator(db=db, ttl=timedelta(hours=1))
        keys = [f"ev:{i % 50}" for i in range(300)]  # every key claimed 6 times at once
        results = await asyncio.gather(*(dedup.claim("event", k) for k in keys))
        winners = [k for k, won in zip(keys, results, strict=True) if won]
        assert sorted(winners) == sorted(set(keys))
        assert not any(await asyncio.gather(*(dedup.claim("event", k) for k in set(keys))))
    finally:
        await db.dispose()


async def test_claims_fail_loudly_when_the_database_is_down() -> None:
    from datetime import timedelta

    from bot.dedup import DedupUnavailable

    db = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        with pytest.raises(DedupUnavailable):
            await Deduplicator(db=db, ttl=timedelta(hours=1)).claim("event", "ev:x")
    finally:
        await db.dispose()


def test_migrating_a_fresh_checkout_creates_the_database_folder(tmp_path: Path) -> None:
    from bot.storage.migrate import upgrade

    target = tmp_path / "var" / "nested" / "pmbot.sqlite3"
    upgrade(f"sqlite+aiosqlite:///{target}")
    assert target.exists()
