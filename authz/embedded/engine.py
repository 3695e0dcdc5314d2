"""The embedded OpenFGA engine as a service: many stores over the application's SQL database.

Tuples live in SQL (:mod:`authz.embedded.sqlstore`, the source of truth). Each process keeps,
per store it serves, an in-memory :class:`~authz.embedded.memory.MemoryTupleStore`, loaded
at first use and kept current by following the store's changelog
(:mod:`authz.embedded.replication`):

* every ``sync_interval`` seconds in the background (after :meth:`EmbeddedEngine.start`);
* before answering when the request asks for ``HIGHER_CONSISTENCY``;
* right after this process's own writes, so they are visible to its next check;
* before answering when the last successful catch-up is older than ``max_staleness``
  (the background poller could not reach the database): if the database is still
  unreachable the request fails with :class:`~authz.ports.AuthzUnavailable`, so a replica
  cut off from the database stops answering from an old copy instead of granting access
  that was revoked meanwhile.

Checks, ListObjects and ListUsers then run on the in-memory indexes (microseconds), and
several replicas can share one database. Concurrent catch-ups of one store are coalesced:
a request waits for one that started after it arrived rather than starting its own.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final, Literal, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from authz.embedded.authorizer import EmbeddedAuthorizer
from authz.embedded.check import DEFAULT_MAX_DEPTH
from authz.embedded.evaluator import Evaluator
from authz.embedded.memory import (
    is_valid_object,
    is_valid_relation,
    is_valid_user,
    validate_tuple,
)
from authz.embedded.model import AuthorizationModel
from authz.embedded.model_store import ModelStore
from authz.embedded.paging import (
    MAX_PAGE_SIZE,
    ChangesPage,
    TimedReadResult,
    changes_position,
    changes_token,
    read_after,
    read_fingerprint,
    read_token,
)
from authz.embedded.replication import StoreCopies
from authz.embedded.sqlstore import (
    SqlStore,
    StoreInfo,
    StoreNotFoundError,
    TupleChange,
)
from authz.embedded.ulid import new_ulid
from authz.ports import (
    AuthzError,
    AuthzEvaluationError,
    AuthzValidationError,
    BatchItemResult,
    CheckRequest,
    Consistency,
    ErrorCode,
    TupleKey,
)

__all__ = [
    "MAX_TUPLES_PER_WRITE",
    "ChangesPage",
    "EmbeddedEngine",
    "StoreInfo",
    "StoreNotFoundError",
    "TimedReadResult",
    "TupleChange",
    "new_ulid",
]

log = logging.getLogger(__name__)

MAX_TUPLES_PER_WRITE: Final = 100

OnConflict = Literal["ignore", "error"]
_T = TypeVar("_T")


def _invalid(message: str, code: ErrorCode = ErrorCode.validation_error) -> AuthzValidationError:
    return AuthzValidationError(code, message)


def _evaluate(call: Callable[[], _T]) -> _T:
    """Runs an evaluator call; a failure other than the documented errors (a bug) is a
    decision that cannot be made, never an answer."""
    try:
        return call()
    except AuthzError:
        raise
    except Exception as exc:
        log.exception("authorization evaluation failed unexpectedly")
        raise AuthzEvaluationError(f"evaluation failed: {exc.__class__.__name__}") from exc


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


class EmbeddedEngine:
    """Multi-store embedded OpenFGA engine over the SQL database (SQLite or PostgreSQL).

    ``max_staleness`` (default ``max(3 * sync_interval, 1)`` seconds) bounds how old the
    in-memory copy may be before a request must catch up with the database itself. Without
    :meth:`start` (no background poller), requests catch up whenever the copy is older than
    ``sync_interval``; ``sync_interval=0`` catches up before every request. ``db_timeout``
    bounds each database operation.

    The engine does not own ``engine`` (the caller disposes it).
    """

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        max_depth: int = DEFAULT_MAX_DEPTH,
        sync_interval: float = 1.0,
        max_staleness: float | None = None,
        db_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if sync_interval < 0:
            raise ValueError("sync_interval must be >= 0")
        self.sql = SqlStore(engine, timeout=db_timeout)
        self.max_depth = max_depth
        if max_staleness is None:
            max_staleness = max(3 * sync_interval, 1.0)
        self._copies = StoreCopies(
            self.sql, sync_interval=sync_interval, max_staleness=max_staleness, clock=clock
        )
        self._models = ModelStore(self.sql, self._copies)

    @property
    def sync_interval(self) -> float:
        return self._copies.sync_interval

    @sync_interval.setter
    def sync_interval(self, value: float) -> None:
        self._copies.sync_interval = value

    @property
    def max_staleness(self) -> float:
        return self._copies.max_staleness

    @max_staleness.setter
    def max_staleness(self, value: float) -> None:
        self._copies.max_staleness = value

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts the background catch-up (every ``sync_interval`` seconds, if > 0)."""
        await self._copies.start()

    async def close(self) -> None:
        """Stops the background catch-up and forgets the in-memory copies."""
        await self._copies.close()

    async def __aenter__(self) -> EmbeddedEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- stores ---------------------------------------------------------------------------

    async def create_store(self, name: str) -> StoreInfo:
        return await self.sql.create_store(new_ulid(), name)

    async def find_or_create_store(self, name: str) -> tuple[StoreInfo, bool]:
        """The oldest store called ``name``, created if there is none; ``(store, created)``.
        Replicas starting at the same time agree on one store."""
        return await self.sql.find_or_create_store(name, new_ulid())

    async def get_store(self, store_id: str) -> StoreInfo | None:
        return await self.sql.get_store(store_id)

    async def list_stores(self) -> list[StoreInfo]:
        """Every store, oldest first."""
        return await self.sql.list_stores()

    async def delete_store(self, store_id: str) -> None:
        """Deletes the store, its models, tuples and changelog (a no-op if it is absent)."""
        await self.sql.delete_store(store_id)
        self._copies.forget_store(store_id)
        self._models.forget_store(store_id)

    # -- models ---------------------------------------------------------------------------

    async def write_model(self, store_id: str, model: AuthorizationModel) -> str:
        """Stores ``model`` as the store's newest model; returns its new id."""
        return await self._models.write_model(store_id, model)

    async def ensure_model(self, store_id: str, model: AuthorizationModel) -> tuple[str, bool]:
        """Stores ``model`` unless the store's latest model is the same definition;
        ``(model_id, written)``. Pushing one model twice yields one model id."""
        return await self._models.ensure_model(store_id, model)

    async def read_model(
        self, store_id: str, model_id: str | None = None
    ) -> tuple[str, AuthorizationModel]:
        """``(id, model)``: the given model, or the store's latest when ``model_id`` is None.

        Raises :class:`AuthzValidationError` with ``authorization_model_not_found`` (2001)
        for an unknown id, ``latest_authorization_model_not_found`` (2020) when the store has
        no model, and :class:`StoreNotFoundError` for an unknown store.
        """
        return await self._models.read_model(store_id, model_id)

    async def list_models(self, store_id: str) -> list[tuple[str, AuthorizationModel]]:
        """Every model of the store, newest first."""
        return await self._models.list_models(store_id)

    # -- queries --------------------------------------------------------------------------

    def authorizer(self, store_id: str, model_id: str | None = None) -> EmbeddedAuthorizer:
        """The :class:`~authz.ports.Authorizer` of one store, pinned to ``model_id`` (or
        following the store's latest model when None)."""
        return EmbeddedAuthorizer(self, store_id, model_id)

    async def _evaluator(
        self, store_id: str, model_id: str | None, consistency: Consistency
    ) -> Evaluator:
        state = await self._copies.ready(store_id, consistency)
        _, model = await self._models.model_for(state, model_id)
        return Evaluator(model, state.tuples, max_depth=self.max_depth)

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
    ) -> bool:
        ev = await self._evaluator(store_id, model_id, consistency)
        return _evaluate(lambda: ev.check(user, relation, object, contextual_tuples))

    async def batch_check(
        self,
        store_id: str,
        model_id: str | None,
        requests: Sequence[CheckRequest],
        *,
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[BatchItemResult]:
        """One result per request, in order. An item that cannot be decided (invalid, depth
        limit...) carries the error's message and ``allowed=False``; problems of the whole
        request (unknown store or model, database unavailable) raise."""
        if not requests:
            return []
        ev = await self._evaluator(store_id, model_id, consistency)
        results: list[BatchItemResult] = []
        for req in requests:
            try:
                allowed = _evaluate(
                    functools.partial(
                        ev.check, req.user, req.relation, req.object, req.contextual_tuples
                    )
                )
            except AuthzError as exc:
                results.append(BatchItemResult(request=req, allowed=False, error=str(exc)))
            else:
                results.append(BatchItemResult(request=req, allowed=allowed))
        return results

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
    ) -> list[str]:
        ev = await self._evaluator(store_id, model_id, consistency)
        return _evaluate(lambda: ev.list_objects(user, relation, type, contextual_tuples))

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
    ) -> list[str]:
        ev = await self._evaluator(store_id, model_id, consistency)
        return _evaluate(lambda: ev.list_users(object, relation, user_filters, contextual_tuples))

    # -- tuples ---------------------------------------------------------------------------

    async def write_tuples(
        self,
        store_id: str,
        model_id: str | None,
        writes: Sequence[TupleKey] = (),
        deletes: Sequence[TupleKey] = (),
        *,
        on_duplicate: OnConflict = "ignore",
        on_missing: OnConflict = "ignore",
    ) -> None:
        """OpenFGA's Write: writes and deletes in one transaction.

        At most 100 tuples in all (``exceeded_entity_limit``), at least one
        (``invalid_write_input``), no tuple twice (``cannot_allow_duplicate_tuples_in_one_
        request``); every written tuple must fit the model (``validation_error``). With the
        default ``ignore`` modes, writing an existing tuple or deleting a missing one is not
        an error; ``error`` refuses the whole request (``write_failed_due_to_invalid_input``),
        as OpenFGA does by default. The change is visible to this process's next query.
        """
        total = len(writes) + len(deletes)
        if total == 0:
            raise _invalid(
                "Invalid input. Make sure you provide at least one write or delete",
                ErrorCode.invalid_write_input,
            )
        if total > MAX_TUPLES_PER_WRITE:
            raise _invalid(
                "The number of write operations exceeds the allowed limit of "
                f"{MAX_TUPLES_PER_WRITE}",
                ErrorCode.exceeded_entity_limit,
            )
        seen: set[TupleKey] = set()
        for t in (*writes, *deletes):
            if t in seen:
                raise _invalid(
                    f"duplicate tuple in write: user: '{t.user}', relation: '{t.relation}', "
                    f"object: '{t.object}'",
                    ErrorCode.cannot_allow_duplicate_tuples_in_one_request,
                )
            seen.add(t)
        if writes:
            if model_id is None:
                model_id = await self._models.latest_model_id(store_id)
            model = await self._models.load_model(store_id, model_id)
            for t in writes:
                validate_tuple(model, t)
        for t in deletes:
            # A delete needs no model: tuples written under an older model can be removed.
            if not (
                is_valid_object(t.object)
                and is_valid_relation(t.relation)
                and is_valid_user(t.user)
            ):
                raise _invalid(f"Invalid tuple '{t}'. Reason: malformed tuple to delete")
        await self.sql.apply(
            store_id, writes, deletes, on_duplicate=on_duplicate, on_missing=on_missing
        )
        await self._copies.after_write(store_id)

    async def read(
        self,
        store_id: str,
        model_id: str | None = None,
        *,
        user: str | None = None,
        relation: str | None = None,
        object: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        continuation_token: str = "",
    ) -> TimedReadResult:
        """OpenFGA's Read, from the database (always current).

        With no filter, every tuple. Otherwise ``object`` is required, as ``type:id`` or
        ``type:`` (every object of the type, then ``user`` is required too). Results are
        ordered by object, relation and user; a non-empty ``continuation_token`` means
        there may be more.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise _invalid(
                f"invalid ReadRequest.PageSize: value must be inside range [1, {MAX_PAGE_SIZE}]"
            )
        object_type: str | None = None
        object_id: str | None = None
        if object is not None:
            object_type, _, object_id = object.partition(":")
            if not object_type:
                raise _invalid(
                    "the 'tuple_key' field was provided but the object type field is required"
                )
            if not object_id and user is None:
                raise _invalid(
                    "the 'tuple_key' field was provided but the object type field is required "
                    "and both the object id and user fields were empty"
                )
        elif user is not None or relation is not None:
            raise _invalid(
                "the 'tuple_key' field was provided but the object type field is required"
            )
        if object_type is not None:
            await self._validate_read_filter(store_id, model_id, object_type, relation)
        fingerprint = read_fingerprint(user, relation, object)
        after: tuple[str, str, str] | None = None
        if continuation_token:
            after = read_after(continuation_token, fingerprint)
        elif await self.sql.get_store(store_id) is None:
            raise StoreNotFoundError(store_id)
        rows = await self.sql.read_tuples(
            store_id,
            user=user,
            relation=relation,
            object_type=object_type,
            object_id=object_id or None,
            after=after,
            limit=page_size + 1,
        )
        page = rows[:page_size]
        token = ""
        if len(rows) > page_size:
            token = read_token(fingerprint, page[-1].tuple_key)
        return TimedReadResult(
            tuples=[r.tuple_key for r in page],
            continuation_token=token,
            timestamps={r.tuple_key: r.timestamp for r in page},
        )

    async def _validate_read_filter(
        self, store_id: str, model_id: str | None, object_type: str, relation: str | None
    ) -> None:
        """Unknown types and relations are refused, like OpenFGA's Read, when the store has a
        model to judge them by."""
        try:
            _, model = await self.read_model(store_id, model_id)
        except StoreNotFoundError:
            raise
        except AuthzValidationError:
            return
        if not model.has_type(object_type):
            raise _invalid(f"type '{object_type}' not found", ErrorCode.type_not_found)
        if relation is not None and model.relation(object_type, relation) is None:
            raise _invalid(
                f"relation '{object_type}#{relation}' not found", ErrorCode.relation_not_found
            )

    async def read_changes(
        self,
        store_id: str,
        *,
        type: str | None = None,
        page_size: int = 50,
        continuation_token: str = "",
    ) -> ChangesPage:
        """OpenFGA's ReadChanges: the store's tuple writes and deletes, oldest first."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise _invalid(
                "invalid ReadChangesRequest.PageSize: value must be inside range "
                f"[1, {MAX_PAGE_SIZE}]"
            )
        position = 0
        if continuation_token:
            position = changes_position(continuation_token, type)
        elif await self.sql.get_store(store_id) is None:
            raise StoreNotFoundError(store_id)
        changes = await self.sql.changes_after(store_id, position, type=type, limit=page_size)
        if changes:
            position = changes[-1].id
        return ChangesPage(changes=changes, continuation_token=changes_token(position, type))
