"""The projects service fails closed: a decision that cannot be made is never read as a yes,
nor passed off as "no such project"; list items that cannot be decided are left out and
the list says so."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from authz.factory import AuthzConfig, open_authorizer
from authz.ports import (
    Authorizer,
    AuthzUnavailable,
    BatchItemResult,
    CheckRequest,
    Consistency,
    ReadResult,
    TupleKey,
)
from bot.identity.model import Identity
from bot.projects.models import Project, Task
from bot.projects.people import PersonRef
from bot.projects.service import ProjectsService
from bot.projects.values import Person
from bot.storage.db import Database
from bot.storage.outbox import Outbox

TEAM = "T1"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def identity(sub: str, slack_user_id: str = "U1") -> Identity:
    return Identity(
        team_id=TEAM,
        slack_user_id=slack_user_id,
        sub=sub,
        email=None,
        email_verified=False,
        name=None,
        permissions=frozenset({"read:projects", "write:projects"}),
        linked_at=NOW,
    )


class NobodyElse:
    """People: everyone named resolves to one Slack user; every day is 2 December."""

    async def resolve(self, ref: PersonRef) -> Person:
        return Person("U2", "bob")

    async def today(self, slack_user_id: str, now: datetime) -> date:
        return NOW.date()


@dataclass
class PartlyDown:
    """An authorizer that answers through ``inner`` except for the objects in ``broken``
    (an error for those items) and, when ``down``, for everything (unreachable)."""

    inner: Authorizer
    broken: frozenset[str] = frozenset()
    down: bool = False

    def _fail(self) -> None:
        if self.down:
            raise AuthzUnavailable("engine unreachable")

    async def check(
        self,
        user: str,
        relation: str,
        object: str,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> bool:
        self._fail()
        if object in self.broken:
            raise AuthzUnavailable("engine unreachable")
        return await self.inner.check(user, relation, object, consistency=consistency)

    async def batch_check(
        self,
        requests: Sequence[CheckRequest],
        *,
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[BatchItemResult]:
        if self.down:
            return [BatchItemResult(r, False, error="unreachable") for r in requests]
        answers = await self.inner.batch_check(requests, consistency=consistency)
        return [
            BatchItemResult(a.request, False, error="unreachable")
            if a.request.object in self.broken
            else a
            for a in answers
        ]

    async def list_objects(
        self,
        user: str,
        relation: str,
        type: str,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[str]:
        self._fail()
        return await self.inner.list_objects(user, relation, type, consistency=consistency)

    async def list_users(
        self,
        object: str,
        relation: str,
        user_filters: Sequence[str],
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[str]:
        self._fail()
        return await self.inner.list_users(object, relation, user_filters)

    async def write(self, tuples: Sequence[TupleKey]) -> None:
        self._fail()
        await self.inner.write(tuples)

    async def delete(self, tuples: Sequence[TupleKey]) -> None:
        self._fail()
        await self.inner.delete(tuples)

    async def read(
        self,
        *,
        user: str | None = None,
        relation: str | None = None,
        object: str | None = None,
        page_size: int = 100,
        continuation_token: str = "",
    ) -> ReadResult:
        self._fail()
        return await self.inner.read(user=user, relation=relation, object=object)


@dataclass
class World:
    db: Database
    authz: PartlyDown
    service: ProjectsService


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    db = Database(database_url)
    try:
        async with open_authorizer(AuthzConfig(), engine=db.engine) as engine:
            await engine.write(
                [TupleKey(user="user:auth0|alice", relation="member", object=f"workspace:{TEAM}")]
            )
            authz = PartlyDown(engine)
            service = ProjectsService(
                db=db,
                authorizer=authz,
                outbox=Outbox(db=db, authorizer=authz),
                people=NobodyElse(),
                clock=lambda: NOW,
            )
            yield World(db, authz, service)
    finally:
        await db.dispose()


async def test_nothing_is_shown_or_written_when_authorization_is_down(world: World) -> None:
    alice = identity("auth0|alice")
    await world.service.create_project(alice, "Apollo")
    world.authz.down = True
    with pytest.raises(AuthzUnavailable):
        await world.service.list_projects(alice)
    # Not "no such project": the person is told authorization is unavailable.
    with pytest.raises(AuthzUnavailable):
        await world.service.status(alice, "Apollo")
    with pytest.raises(AuthzUnavailable):
        await world.service.create_project(alice, "Hermes")
    with pytest.raises(AuthzUnavailable):
        await world.service.share(alice, "Apollo", PersonRef("@bob", name="bob"), "viewer")
    async with world.db.session() as session:
        assert list(await session.scalars(select(Project.name))) == ["Apollo"]


async def test_tasks_that_cannot_be_decided_are_left_out_and_announced(world: World) -> None:
    alice = identity("auth0|alice")
    await world.service.create_project(alice, "Apollo")
    for title in ["one", "two", "three"]:
        await world.service.add_task(alice, "Apollo", title)
    found = await world.service.tasks(alice, None, mine=False)
    assert [t.title for t in found.tasks] == ["one", "two", "three"] and not found.incomplete
    second = found.tasks[1].id
    world.authz.broken = frozenset({f"task:{second}"})
    found = await world.service.tasks(alice, "Apollo", mine=False)
    assert [t.title for t in found.tasks] == ["one", "three"] and found.incomplete


async def test_long_task_lists_stop_at_the_limit(world: World) -> None:
    from bot.projects.service import MAX_TASKS_SHOWN

    alice = identity("auth0|alice")
    await world.service.create_project(alice, "Apollo")
    async with world.db.session() as session:
        pid = await session.scalar(select(Project.id))
        assert pid is not None
    # Tasks written straight to the database: only the first has its tuple.
    await world.service.add_task(alice, "Apollo", "visible")
    async with world.db.session() as session:
        for i in range(MAX_TASKS_SHOWN + 260):
            session.add(
                Task(
                    project_id=pid,
                    title=f"t{i}",
                    assignee_sub=None,
                    status="open",
                    due=None,
                    created_by="auth0|alice",
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    found = await world.service.tasks(alice, "Apollo", mine=False)
    # Tasks without their project tuple are not visible; so only one, past a full page.
    assert [t.title for t in found.tasks] == ["visible"] and not found.truncated
    for i in range(MAX_TASKS_SHOWN + 1):
        await world.service.add_task(alice, "Apollo", f"v{i}")
    found = await world.service.tasks(alice, "Apollo", mine=False)
    assert len(found.tasks) == MAX_TASKS_SHOWN and found.truncated
    assert all(t.title == "visible" or t.title.startswith("v") for t in found.tasks)
