"""Test doubles and helpers for the authorization tests, shared by several test modules.

* models and tuple helpers: :data:`MODEL_DSL` (the engine suites' small model),
  :data:`HTTP_MODEL` (the HTTP API suites' model), :func:`T`, :func:`tk`, :func:`deep_teams`;
* in-process authorizers for the decision cache: :class:`MemoryAuthorizer` (the port over
  the real evaluator, no database) and :class:`CountingAuthorizer` (records every call,
  can be taken down or held); :class:`FakeClock`;
* serving: :func:`serve_app` (an aiohttp application on 127.0.0.1) and
  :func:`embedded_engine` (an embedded engine on the application's database).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from authz.embedded.engine import EmbeddedEngine
from authz.embedded.evaluator import Evaluator
from authz.embedded.memory import MemoryTupleStore, validate_tuple
from authz.embedded.model import AuthorizationModel
from authz.ports import (
    AuthzUnavailable,
    BatchItemResult,
    CheckRequest,
    Consistency,
    ReadResult,
    TupleKey,
)
from bot.storage.db import Database

# --------------------------------------------------------------------------------------------
# Models and tuples
# --------------------------------------------------------------------------------------------

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


HTTP_MODEL = """
model
  schema 1.1

type user

type team
  relations
    define member: [user, team#member]

type document
  relations
    define owner: [user]
    define blocked: [user]
    define viewer: [user, user:*, team#member] or owner
    define can_view: viewer but not blocked
"""


# --------------------------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Serves ``app`` on 127.0.0.1 on a free port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def embedded_engine(database_url: str) -> AsyncIterator[EmbeddedEngine]:
    """An embedded engine on the application's database configuration."""
    db = Database(database_url)
    engine = EmbeddedEngine(engine=db.engine, sync_interval=60.0)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.close()
        await db.dispose()


def tk(user: str, relation: str, object: str) -> dict[str, str]:
    return {"user": user, "relation": relation, "object": object}


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
