"""Several engines (replicas) on one database, and the database going away."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from authz.cache import DecisionCache
from authz.embedded.engine import EmbeddedEngine
from authz.embedded.model import AuthorizationModel, parse_dsl
from authz.ports import AuthzUnavailable, CheckRequest, Consistency
from bot.storage.db import Database
from tests.conftest import PG_ADMIN_URL
from tests.fakes.authz import MODEL_DSL, FakeClock, T

HIGHER = Consistency.HIGHER_CONSISTENCY


@pytest.fixture
async def second_db(database_url: str) -> AsyncIterator[AsyncEngine]:
    """Another connection pool on the same database, as another process would have."""
    db = Database(database_url)
    try:
        yield db.engine
    finally:
        await db.dispose()


async def _eventually(condition: Any, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_replica_catches_up_on_demand_and_in_background(
    db_engine: AsyncEngine, second_db: AsyncEngine, model: AuthorizationModel
) -> None:
    async with (
        EmbeddedEngine(engine=db_engine, sync_interval=60) as a,
        EmbeddedEngine(engine=second_db, sync_interval=60) as b,
        EmbeddedEngine(engine=second_db, sync_interval=0.05) as c,
    ):
        store = await a.create_store("shared")
        await a.write_model(store.id, model)
        doc = ("user:anne", "owner", "document:1")
        assert not await b.authorizer(store.id).check(*doc)
        assert not await c.authorizer(store.id).check(*doc)

        await a.authorizer(store.id).write([T(*doc)])
        assert await a.authorizer(store.id).check(*doc)  # own writes: visible at once
        # B has not caught up yet (its copy is younger than its interval)...
        assert not await b.authorizer(store.id).check(*doc)
        # ...unless asked for a consistent answer.
        assert await b.authorizer(store.id).check(*doc, consistency=HIGHER)
        # C follows the changelog in the background.
        await _eventually(lambda: c.authorizer(store.id).check(*doc))

        await a.authorizer(store.id).delete([T(*doc)])
        assert await b.authorizer(store.id).check(*doc)
        assert not await b.authorizer(store.id).check(*doc, consistency=HIGHER)

        async def c_denies() -> bool:
            return not await c.authorizer(store.id).check(*doc)

        await _eventually(c_denies)

        # A new model written by A becomes B's latest on catch-up.
        newer = parse_dsl(MODEL_DSL + "\ntype extra\n")
        newer_id = await a.write_model(store.id, newer)
        await b.authorizer(store.id).check(*doc, consistency=HIGHER)
        assert await b.read_model(store.id) == (newer_id, newer)


async def test_without_poller_every_stale_request_catches_up(
    db_engine: AsyncEngine, second_db: AsyncEngine, model: AuthorizationModel
) -> None:
    async with EmbeddedEngine(engine=db_engine) as a:
        store = await a.create_store("shared")
        await a.write_model(store.id, model)
        lazy = EmbeddedEngine(engine=second_db, sync_interval=0)  # not started: no poller
        assert not await lazy.authorizer(store.id).check("user:bob", "owner", "document:1")
        await a.authorizer(store.id).write([T("user:bob", "owner", "document:1")])
        assert await lazy.authorizer(store.id).check("user:bob", "owner", "document:1")
        await lazy.close()


async def test_concurrent_writers_on_two_replicas(
    db_engine: AsyncEngine, second_db: AsyncEngine, model: AuthorizationModel
) -> None:
    async with (
        EmbeddedEngine(engine=db_engine, sync_interval=60) as a,
        EmbeddedEngine(engine=second_db, sync_interval=60) as b,
    ):
        store = await a.create_store("shared")
        await a.write_model(store.id, model)
        # Both replicas have their copy loaded before the writes start.
        await a.authorizer(store.id).check("user:x", "owner", "document:0")
        await b.authorizer(store.id).check("user:x", "owner", "document:0")

        async def writer(eng: EmbeddedEngine, name: str) -> None:
            for i in range(10):
                await eng.authorizer(store.id).write(
                    [T(f"user:{name}{i}", "owner", f"document:{j}") for j in range(3)]
                )

        # Overlapping tuples too: both write user:both on every document.
        await asyncio.gather(
            writer(a, "a"),
            writer(b, "b"),
            a.authorizer(store.id).write([T("user:both", "owner", "document:0")]),
            b.authorizer(store.id).write([T("user:both", "owner", "document:0")]),
        )
        expected = {f"user:{n}{i}" for n in "ab" for i in range(10)} | {"user:both"}
        for eng in (a, b):
            users = await eng.authorizer(store.id).list_users(
                "document:0", "owner", ["user"], consistency=HIGHER
            )
            assert set(users) == expected
        fresh = EmbeddedEngine(engine=second_db, sync_interval=0)
        users = await fresh.authorizer(store.id).list_users("document:0", "owner", ["user"])
        assert set(users) == expected
        page = await a.read_changes(store.id, page_size=100)
        assert len(page.changes) == 61  # the second write of user:both changed nothing


async def test_concurrent_consistent_requests_share_catch_ups(
    db_engine: AsyncEngine, second_db: AsyncEngine, model: AuthorizationModel
) -> None:
    async with (
        EmbeddedEngine(engine=db_engine, sync_interval=60) as a,
        EmbeddedEngine(engine=second_db, sync_interval=60) as b,
    ):
        store = await a.create_store("shared")
        await a.write_model(store.id, model)
        await b.authorizer(store.id).check("user:x", "owner", "document:0")
        await a.authorizer(store.id).write([T("user:x", "owner", "document:0")])

        statements: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if "fga_changes" in statement:
                statements.append(statement)

        event.listen(second_db.sync_engine, "before_cursor_execute", record)
        try:
            answers = await asyncio.gather(
                *(
                    b.authorizer(store.id).check(
                        "user:x", "owner", "document:0", consistency=HIGHER
                    )
                    for _ in range(20)
                )
            )
        finally:
            event.remove(second_db.sync_engine, "before_cursor_execute", record)
        assert all(answers)
        # One catch-up for the first request, one more for all that arrived during it.
        assert len(statements) == 2


# --------------------------------------------------------------------------------------------
# The database going away: fail closed
# --------------------------------------------------------------------------------------------


async def _let_failed_connects_settle() -> None:
    """aiosqlite reports the clean-up of a failed connect from its worker thread; give it a
    moment, or it may report to an event loop that the test has already closed."""
    await asyncio.sleep(0.1)


def _dead_url(dialect: str, tmp_path: Path) -> str:
    if dialect == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'db.sqlite3'}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test"


async def _take_down(database_url: str, db: AsyncEngine) -> None:
    """Makes the database unreachable for ``db``'s next connections."""
    await db.dispose()
    if database_url.startswith("sqlite"):
        _replace_with_directory(Path(database_url.split(":///", 1)[1]))
        return
    name = database_url.rsplit("/", 1)[1]
    admin = create_async_engine(
        "postgresql+asyncpg://" + PG_ADMIN_URL.split("://", 1)[1], isolation_level="AUTOCOMMIT"
    )
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.dispose()


def _replace_with_directory(path: Path) -> None:
    path.rename(path.with_suffix(".gone"))
    path.mkdir()  # a directory where the database file was: it cannot be opened


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_unreachable_database_is_unavailable(dialect: str, tmp_path: Path) -> None:
    dead = create_async_engine(_dead_url(dialect, tmp_path))
    eng = EmbeddedEngine(engine=dead, db_timeout=5)
    try:
        with pytest.raises(AuthzUnavailable):
            await eng.create_store("x")
        with pytest.raises(AuthzUnavailable):
            await eng.list_stores()
        authz = eng.authorizer("01JD000000000000000000000")
        with pytest.raises(AuthzUnavailable):
            await authz.check("user:a", "owner", "document:1")
        with pytest.raises(AuthzUnavailable):
            await authz.batch_check([CheckRequest("user:a", "owner", "document:1")])
        with pytest.raises(AuthzUnavailable):
            await authz.list_objects("user:a", "owner", "document")
        with pytest.raises(AuthzUnavailable):
            await authz.read()
    finally:
        await eng.close()
        await dead.dispose()
        await _let_failed_connects_settle()


async def test_database_going_down_fails_closed(database_url: str) -> None:
    db = Database(database_url)
    clock = FakeClock()
    eng = EmbeddedEngine(engine=db.engine, sync_interval=1.0, max_staleness=5.0, clock=clock)
    await eng.start()
    try:
        store = await eng.create_store("s")
        await eng.write_model(store.id, parse_dsl(MODEL_DSL))
        authz = eng.authorizer(store.id)
        await authz.write([T("user:anne", "owner", "document:1")])
        cache = DecisionCache(authz, clock=clock)
        assert await authz.check("user:anne", "owner", "document:1")  # loads the copy
        await _take_down(database_url, db.engine)

        # A recent copy still answers...
        assert await authz.check("user:anne", "owner", "document:1")
        # ...but not a request that must see the latest state,
        with pytest.raises(AuthzUnavailable):
            await authz.check("user:anne", "owner", "document:1", consistency=HIGHER)
        # nor any request once the copy is older than max_staleness.
        clock.advance(6)
        with pytest.raises(AuthzUnavailable):
            await authz.check("user:anne", "owner", "document:1")
        with pytest.raises(AuthzUnavailable):
            await authz.write([T("user:bob", "owner", "document:1")])
        with pytest.raises(AuthzUnavailable):
            await cache.check("user:anne", "owner", "document:1")
        [item] = await cache.batch_check([CheckRequest("user:anne", "owner", "document:1")])
        assert not item.allowed and item.denied_by_error
    finally:
        await eng.close()
        await db.dispose()
        await _let_failed_connects_settle()
