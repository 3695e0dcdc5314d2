"""The demo workspace of `make run`: the same question has different readable sources for
different people."""

from __future__ import annotations

from pathlib import Path

from authz.factory import AuthzConfig, open_authorizer
from authz.ports import Consistency
from bot.knowledge.ingest import Ingester
from bot.storage.db import Database
from bot.storage.outbox import Outbox
from sandbox.demo import demo_projects, seed_demo


async def test_the_demo_gives_each_person_different_access(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    try:
        async with open_authorizer(AuthzConfig(), engine=db.engine) as authz:
            outbox = Outbox(db=db, authorizer=authz)
            ingester = Ingester(db=db, outbox=outbox)

            async def ingest(project: object, paths: object) -> object:
                return await ingester.ingest(project, paths)  # type: ignore[arg-type]

            assert await seed_demo(db, outbox, ingest, folder=tmp_path)
            assert not await seed_demo(db, outbox, ingest, folder=tmp_path)  # idempotent
            assert await outbox.pending() == 0
            total = sum(len(p.documents) for p in demo_projects())
            assert total >= 50
            readable = {
                who: set(
                    await authz.list_objects(
                        f"user:auth0|{who}",
                        "can_view",
                        "document",
                        consistency=Consistency.HIGHER_CONSISTENCY,
                    )
                )
                for who in ("alice", "bob", "carol", "dave")
            }
            counts = {who: len(docs) for who, docs in readable.items()}
            by_project = {p.name: len(p.documents) for p in demo_projects()}
            assert counts["alice"] == by_project["Apollo"] + by_project["Apollo Board"]
            assert counts["bob"] == by_project["Apollo"] + by_project["Borealis"]
            assert counts["carol"] == (
                by_project["Apollo"] + by_project["Borealis"] + by_project["Cassini"]
            )
            assert counts["dave"] == by_project["Borealis"] + by_project["Cassini"]
            assert not readable["dave"] & readable["alice"]  # dave reads nothing of Apollo
    finally:
        await db.dispose()
