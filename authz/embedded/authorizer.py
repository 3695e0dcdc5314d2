"""The :class:`~authz.ports.Authorizer` port over one store of the embedded engine.

The authorizer only needs the engine's per-store operations, described by
:class:`StoreEngine`; :class:`~authz.embedded.engine.EmbeddedEngine` provides them (and
hands out authorizers with :meth:`~authz.embedded.engine.EmbeddedEngine.authorizer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from authz.ports import (
    BatchItemResult,
    CheckRequest,
    Consistency,
    ReadResult,
    TupleKey,
)
from authz.validation import validate_tuple_keys


class StoreEngine(Protocol):
    """The engine operations an :class:`EmbeddedAuthorizer` runs, for one store and model
    (``model_id`` None: the store's latest model)."""

    async def check(
        self,
        store_id: str,
        model_id: str | None,
        user: str,
        relation: str,
        object: str,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> bool: ...

    async def batch_check(
        self,
        store_id: str,
        model_id: str | None,
        requests: Sequence[CheckRequest],
        *,
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[BatchItemResult]: ...

    async def list_objects(
        self,
        store_id: str,
        model_id: str | None,
        user: str,
        relation: str,
        type: str,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[str]: ...

    async def list_users(
        self,
        store_id: str,
        model_id: str | None,
        object: str,
        relation: str,
        user_filters: Sequence[str],
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[str]: ...

    async def write_tuples(
        self,
        store_id: str,
        model_id: str | None,
        writes: Sequence[TupleKey] = (),
        deletes: Sequence[TupleKey] = (),
    ) -> None: ...

    async def read(
        self,
        store_id: str,
        model_id: str | None = None,
        *,
        user: str | None = None,
        relation: str | None = None,
        object: str | None = None,
        page_size: int = ...,
        continuation_token: str = "",
    ) -> ReadResult: ...


class EmbeddedAuthorizer:
    """Answers for one store, with one model (``model_id``) or, when ``model_id`` is None,
    the store's latest model at the time of each request.

    Follows the port's contract (:mod:`authz.ports`): ``write``/``delete`` are idempotent
    and limited to 100 tuples; a change is visible to the next query of this process, and
    to other processes within their catch-up interval (at once with
    ``HIGHER_CONSISTENCY``). Database failures raise ``AuthzUnavailable``.
    """

    __slots__ = ("_engine", "model_id", "store_id")

    def __init__(self, engine: StoreEngine, store_id: str, model_id: str | None = None) -> None:
        self._engine = engine
        self.store_id = store_id
        self.model_id = model_id

    def __repr__(self) -> str:
        return f"EmbeddedAuthorizer(store_id={self.store_id!r}, model_id={self.model_id!r})"

    async def check(
        self,
        user: str,
        relation: str,
        object: str,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> bool:
        return await self._engine.check(
            self.store_id,
            self.model_id,
            user,
            relation,
            object,
            contextual_tuples=contextual_tuples,
            consistency=consistency,
        )

    async def batch_check(
        self,
        requests: Sequence[CheckRequest],
        *,
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[BatchItemResult]:
        return await self._engine.batch_check(
            self.store_id, self.model_id, requests, consistency=consistency
        )

    async def list_objects(
        self,
        user: str,
        relation: str,
        type: str,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[str]:
        return await self._engine.list_objects(
            self.store_id,
            self.model_id,
            user,
            relation,
            type,
            contextual_tuples=contextual_tuples,
            consistency=consistency,
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
        return await self._engine.list_users(
            self.store_id,
            self.model_id,
            object,
            relation,
            user_filters,
            contextual_tuples=contextual_tuples,
            consistency=consistency,
        )

    async def write(self, tuples: Sequence[TupleKey]) -> None:
        """Writes the tuples (at most 100); an empty sequence is a no-op."""
        if tuples:
            validate_tuple_keys(tuples, "TupleKey")
            await self._engine.write_tuples(self.store_id, self.model_id, writes=tuples)

    async def delete(self, tuples: Sequence[TupleKey]) -> None:
        """Deletes the tuples (at most 100); an empty sequence is a no-op."""
        if tuples:
            validate_tuple_keys(tuples, "TupleKey")
            await self._engine.write_tuples(self.store_id, self.model_id, deletes=tuples)

    async def read(
        self,
        *,
        user: str | None = None,
        relation: str | None = None,
        object: str | None = None,
        page_size: int = 100,
        continuation_token: str = "",
    ) -> ReadResult:
        """OpenFGA's Read from the database; the result is an
        :class:`~authz.embedded.engine.TimedReadResult` (with each tuple's write time)."""
        return await self._engine.read(
            self.store_id,
            self.model_id,
            user=user,
            relation=relation,
            object=object,
            page_size=page_size,
            continuation_token=continuation_token,
        )
