"""Fixtures for the embedded engine service: a database (SQLite and PostgreSQL), engines on
it, a store with a small model, and in-process authorizers for the decision cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from authz.embedded.engine import EmbeddedEngine
from authz.embedded.evaluator import Evaluator
from authz.embedded.memory import MemoryTupleStore, validate_tuple
from authz.embedded.model import AuthorizationModel, parse_dsl
from authz.ports import (
    AuthzUnavailable,
    BatchItemResult,
    CheckRequest,
    Consistency,
    ReadResult,
    TupleKey,
)
from bot.storage.db import Database

MODEL_DSL = """
model
  schema 1.1

type user

type team
  relations
    define member: [user, team#member]

type folder
  relations
    define owner: [user]
    define viewer: [user, user:*, team#member] or owner

type document
  relations
    define parent: [folder]
    define owner: [user]
    define blocked: [user]
    define viewer: [user, team#member] or owner or viewer from parent
    define can_view: viewer but not blocked
"""


def T(user: str, relation: str, object: str) -> TupleKey:
    return TupleKey(user=user, relation=relation, object=object)


def deep_teams(depth: int, user: str = "user:deep") -> list[TupleKey]:
    """``team:0#member`` reaches ``user`` only through ``depth`` nested teams (beyond the
    resolution limit of 25 the check is an error)."""
    tuples = [T(f"team:{i + 1}#member", "member", f"team:{i}") for i in range(depth)]
    tuples.append(T(user, "member", f"team:{depth}"))
    return tuples


@pytest.fixture
def model() -> AuthorizationModel:
    return parse_dsl(MODEL_DSL)


@pytest.fixture
async def db_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The application's engine configuration (bot.storage.db) on each dialect."""
    db = Database(database_url)
    try:
        yield db.engine
    finally:
        await db.dispose()


@pytest.fixture
async def engine(db_engine: AsyncEngine) -> AsyncIterator[EmbeddedEngine]:
    """A started engine whose background catch-up is too slow to interfere with a test."""
    eng = EmbeddedEngine(engine=db_engine, sync_interval=60.0)
    await eng.start()
    try:
        yield eng
    finally:
        await eng.close()


@pytest.fixture
async def store_id(engine: EmbeddedEngine, model: AuthorizationModel) -> str:
    info = await engine.create_store("test")
    await engine.write_model(info.id, model)
    return info.id


# --------------------------------------------------------------------------------------------
# In-process authorizers for the decision cache
# --------------------------------------------------------------------------------------------


class MemoryAuthorizer:
    """The port over the real evaluator and an in-memory tuple store (no database)."""

    def __init__(self, model: AuthorizationModel, tuples: Sequence[TupleKey] = ()) -> None:
        self.model = model
        self.tuples = MemoryTupleStore(tuples)

    def _evaluator(self) -> Evaluator:
        return Evaluator(self.model, self.tuples)

    async def check(
        self,
        user: str,
        relation: str,
        object: str,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> bool:
        return self._evaluator().check(user, relation, object, contextual_tuples)

    async def batch_check(
        self,
        requests: Sequence[CheckRequest],
        *,
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[BatchItemResult]:
        out: list[BatchItemResult] = []
        for r in requests:
            try:
                allowed = self._evaluator().check(r.user, r.relation, r.object, r.contextual_tuples)
            except Exception as exc:
                out.append(BatchItemResult(r, False, str(exc)))
            else:
                out.append(BatchItemResult(r, allowed))
        return out

    async def list_objects(
        self,
        user: str,
        relation: str,
        type: str,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[str]:
        return self._evaluator().list_objects(user, relation, type, contextual_tuples)

    async def list_users(
        self,
        object: str,
        relation: str,
        user_filters: Sequence[str],
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[str]:
        return self._evaluator().list_users(object, relation, user_filters, contextual_tuples)

    async def write(self, tuples: Sequence[TupleKey]) -> None:
        for t in tuples:
            validate_tuple(self.model, t)
        self.tuples.write(tuples)

    async def delete(self, tuples: Sequence[TupleKey]) -> None:
        self.tuples.delete(tuples)

    async def read(
        self,
        *,
        user: str | None = None,
        relation: str | None = None,
        object: str | None = None,
        page_size: int = 100,
        continuation_token: str = "",
    ) -> ReadResult:
        found = self.tuples.read(user=user, relation=relation, object=object)
        return ReadResult(tuples=found[:page_size])


class CountingAuthorizer:
    """Wraps an authorizer and records every call that reaches it.

    ``down`` makes every call fail with ``AuthzUnavailable``; ``gate``, when set, holds
    the answers of ``batch_check`` (decided on arrival) until it is opened.
    """

    def __init__(self, inner: MemoryAuthorizer) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.batch_sizes: list[int] = []
        self.consistencies: list[Consistency] = []
        self.down = False
        self.gate: asyncio.Event | None = None

    def _enter(self, name: str, consistency: Consistency | None = None) -> None:
        self.calls.append(name)
        if consistency is not None:
            self.consistencies.append(consistency)
        if self.down:
            raise AuthzUnavailable("authorization engine is down")

    async def check(
        self,
        user: str,
        relation: str,
        object: str,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> bool:
        self._enter("check", consistency)
        return await self.inner.check(
            user, relation, object, contextual_tuples=contextual_tuples, consistency=consistency
        )

    async def batch_check(
        self,
        requests: Sequence[CheckRequest],
        *,
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[BatchItemResult]:
        self._enter("batch_check", consistency)
        self.batch_sizes.append(len(requests))
        answer = await self.inner.batch_check(requests, consistency=consistency)
        if self.gate is not None:
            await self.gate.wait()  # the answer is decided; its delivery is held
        return answer

    async def list_objects(
        self,
        user: str,
        relation: str,
        type: str,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[str]:
        self._enter("list_objects", consistency)
        return await self.inner.list_objects(
            user, relation, type, contextual_tuples=contextual_tuples, consistency=consistency
        )

    async def list_users(
        self,
        object: str,
        relation: str,
        user_filters: Sequence[str],
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[str]:
        self._enter("list_users", consistency)
        return await self.inner.list_users(
            object,
            relation,
            user_filters,
            contextual_tuples=contextual_tuples,
            consistency=consistency,
        )

    async def write(self, tuples: Sequence[TupleKey]) -> None:
        self._enter("write")
        await self.inner.write(tuples)

    async def delete(self, tuples: Sequence[TupleKey]) -> None:
        self._enter("delete")
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
        self._enter("read")
        return await self.inner.read(
            user=user,
            relation=relation,
            object=object,
            page_size=page_size,
            continuation_token=continuation_token,
        )


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
