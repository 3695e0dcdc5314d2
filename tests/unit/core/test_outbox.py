"""The transactional outbox: tuple changes committed with the rows they mirror reach the
engine in order, also after the engine was down, and never get lost."""

from __future__ import annotations

from authz.factory import AuthzConfig, open_authorizer
from authz.ports import Consistency, TupleKey
from bot.storage.db import Database
from bot.storage.outbox import Outbox, stage

ALICE = TupleKey(user="user:alice", relation="member", object="workspace:T1")
BOB = TupleKey(user="user:bob", relation="member", object="workspace:T1")
DOWN = AuthzConfig(
    engine="openfga",
    fga_api_url="http://127.0.0.1:1",
    fga_store_id="01ARZ3NDEKTSV4RRFFQ69G5FAV",
    timeout_ms=200,
)


async def test_changes_reach_the_engine_in_order(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with open_authorizer(AuthzConfig(), engine=db.engine) as authz:
            outbox = Outbox(db=db, authorizer=authz)
            async with db.session() as session:
                stage(session, writes=[ALICE, BOB])
            async with db.session() as session:
                stage(session, deletes=[BOB])
            assert await outbox.pending() == 3
            assert await outbox.drain() == 3
            assert await outbox.pending() == 0
            high = Consistency.HIGHER_CONSISTENCY
            assert await authz.check(ALICE.user, "member", "workspace:T1", consistency=high)
            assert not await authz.check(BOB.user, "member", "workspace:T1", consistency=high)
    finally:
        await db.dispose()


async def test_nothing_is_lost_while_the_engine_is_down(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.session() as session:
            stage(session, writes=[ALICE])
        async with open_authorizer(DOWN, engine=db.engine) as down:
            assert await Outbox(db=db, authorizer=down).drain() == 0
        async with open_authorizer(AuthzConfig(), engine=db.engine) as authz:
            outbox = Outbox(db=db, authorizer=authz)
            assert await outbox.pending() == 1  # still there, with its error
            assert await outbox.drain() == 1
            assert await authz.check(
                ALICE.user, "member", "workspace:T1", consistency=Consistency.HIGHER_CONSISTENCY
            )
    finally:
        await db.dispose()


async def test_a_change_the_engine_refuses_is_set_aside(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with open_authorizer(AuthzConfig(), engine=db.engine) as authz:
            outbox = Outbox(db=db, authorizer=authz)
            async with db.session() as session:
                stage(
                    session,
                    writes=[
                        TupleKey(user="user:a b", relation="member", object="workspace:T1"),
                        ALICE,
                    ],
                )
            assert await outbox.drain() == 1
            assert await outbox.pending() == 0
    finally:
        await db.dispose()
