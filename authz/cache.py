"""The decision cache in front of either engine: an :class:`~authz.ports.Authorizer` that
wraps another one.

* **TTL.** A decision (and a ListObjects / ListUsers answer) is reused for ``ttl`` seconds
  after it was asked for.
* **Coalescing.** Concurrent identical requests share one answer.
* **Batching.** ``check`` and ``batch_check`` misses requested within one turn of the event
  loop are gathered and sent as ``inner.batch_check`` calls of at most ``max_batch`` (50)
  items each.
* **Invalidation.** A ``write`` or ``delete`` through the cache drops every cached answer at
  once (a decision depends on the whole graph, not only on the tuple's object), and answers
  already on their way from the engine are not stored.
* **Errors are denials, never cached.** ``check`` raises (the port's contract: fail
  closed, and tell the user authorization is unavailable); ``batch_check`` reports the
  item's error with ``allowed=False``.
* ``HIGHER_CONSISTENCY`` bypasses the cache (the fresh answer refreshes it).

A hit costs one dict lookup and one clock read: no task or future is created.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeAlias, TypeVar

from authz.ports import (
    Authorizer,
    AuthzError,
    AuthzEvaluationError,
    AuthzUnavailable,
    AuthzValidationError,
    BatchItemResult,
    CheckRequest,
    Consistency,
    ReadResult,
    TupleKey,
)

log = logging.getLogger(__name__)

_HIGHER: Final = Consistency.HIGHER_CONSISTENCY

_K = TypeVar("_K")
_V = TypeVar("_V")
_CheckKey: TypeAlias = tuple[str, str, str, tuple[TupleKey, ...]]
_ListKey: TypeAlias = tuple[str, str, str, str, tuple[str, ...], tuple[TupleKey, ...]]


def _make_room(entries: dict[_K, tuple[float, _V]], now: float) -> int:
    """Drops the expired entries or, if none, the oldest tenth (insertion order); returns
    how many were dropped."""
    doomed = [k for k, v in entries.items() if v[0] <= now]
    if not doomed:
        doomed = list(itertools.islice(entries, max(1, len(entries) // 10)))
    for k in doomed:
        del entries[k]
    return len(doomed)


class _Outcome:
    """The answer to one check: a decision, or why there is none."""

    __slots__ = ("allowed", "code", "error", "kind")

    def __init__(
        self,
        allowed: bool,
        error: str | None = None,
        kind: type[AuthzError] = AuthzEvaluationError,
        code: int = 0,
    ) -> None:
        self.allowed = allowed and error is None
        self.error = error
        self.kind = kind
        self.code = code

    @classmethod
    def failure(cls, exc: BaseException) -> _Outcome:
        if isinstance(exc, AuthzValidationError):
            return cls(False, exc.message, AuthzValidationError, exc.code)
        if isinstance(exc, AuthzError):
            return cls(False, str(exc) or exc.__class__.__name__, type(exc))
        return cls(False, f"authorization failed: {exc.__class__.__name__}", AuthzUnavailable)

    def raise_error(self) -> None:
        """Raises a new exception for this failure (each waiter gets its own)."""
        message = self.error or "no decision"
        if self.kind is AuthzValidationError:
            raise AuthzValidationError(self.code, message)
        if issubclass(self.kind, AuthzUnavailable):
            raise AuthzUnavailable(message)
        raise AuthzEvaluationError(message)


class DecisionCache:
    """An :class:`~authz.ports.Authorizer` caching the decisions of ``inner`` (see the
    module docstring). ``max_entries`` bounds each of the check and list caches (the oldest
    entries are dropped first); ``clock`` is injectable for tests."""

    def __init__(
        self,
        inner: Authorizer,
        *,
        ttl: float = 10.0,
        max_batch: int = 50,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.inner = inner
        self.ttl = ttl
        self.max_batch = max_batch
        self.max_entries = max(1, max_entries)
        self._clock = clock
        self._checks: dict[_CheckKey, tuple[float, bool]] = {}
        self._lists: dict[_ListKey, tuple[float, tuple[str, ...]]] = {}
        self._pending: dict[_CheckKey, asyncio.Future[_Outcome]] = {}
        self._list_pending: dict[_ListKey, asyncio.Task[tuple[str, ...]]] = {}
        self._queue: list[tuple[_CheckKey, asyncio.Future[_Outcome]]] = []
        self._flush_scheduled = False
        self._generation = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._hits = 0
        self._misses = 0
        self._coalesced = 0
        self._remote_calls = 0
        self._errors = 0
        self._bypassed = 0
        self._invalidations = 0
        self._evictions = 0

    def __repr__(self) -> str:
        return f"DecisionCache({self.inner!r}, ttl={self.ttl})"

    # -- statistics and invalidation ------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters since creation.

        ``hits``: answered from the cache; ``misses``: not answered from the cache
        (``coalesced`` of them joined an identical request already in flight);
        ``remote_calls``: calls to the inner authorizer; ``errors``: answers that were
        errors (denials); ``bypassed``: ``HIGHER_CONSISTENCY`` requests; ``entries``:
        cached answers now; ``invalidations``, ``evictions``.
        """
        return {
            "hits": self._hits,
            "misses": self._misses,
            "coalesced": self._coalesced,
            "remote_calls": self._remote_calls,
            "errors": self._errors,
            "bypassed": self._bypassed,
            "entries": len(self._checks) + len(self._lists),
            "invalidations": self._invalidations,
            "evictions": self._evictions,
        }

    def invalidate(self) -> None:
        """Drops every cached answer; answers in flight will not be stored, and new requests
        do not join requests sent before this call."""
        self._generation += 1
        self._invalidations += 1
        self._checks.clear()
        self._lists.clear()
        self._pending = {}
        self._list_pending = {}

    def _store_check(self, key: _CheckKey, expires: float, allowed: bool) -> None:
        checks = self._checks
        if key not in checks and len(checks) >= self.max_entries:
            self._evictions += _make_room(checks, self._clock())
        checks[key] = (expires, allowed)

    # -- check ----------------------------------------------------------------------------

    async def check(
        self,
        user: str,
        relation: str,
        object: str,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> bool:
        key: _CheckKey = (user, relation, object, tuple(contextual_tuples))
        if consistency is _HIGHER:
            return await self._check_fresh(key)
        entry = self._checks.get(key)
        if entry is not None:
            if entry[0] > self._clock():
                self._hits += 1
                return entry[1]
            del self._checks[key]
        outcome = await asyncio.shield(self._lookup(key))
        if outcome.error is not None:
            outcome.raise_error()
        return outcome.allowed

    async def _check_fresh(self, key: _CheckKey) -> bool:
        self._bypassed += 1
        self._remote_calls += 1
        generation = self._generation
        expires = self._clock() + self.ttl
        try:
            allowed = await self.inner.check(
                key[0], key[1], key[2], contextual_tuples=key[3], consistency=_HIGHER
            )
        except BaseException as exc:
            if isinstance(exc, Exception):
                self._errors += 1
            raise
        if generation == self._generation and self.ttl > 0:
            self._store_check(key, expires, allowed)
        return allowed

    def _lookup(self, key: _CheckKey) -> asyncio.Future[_Outcome]:
        """The future answer for ``key``: one in flight, or a new one queued for the next
        batch."""
        self._misses += 1
        future = self._pending.get(key)
        if future is not None:
            self._coalesced += 1
            return future
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending[key] = future
        self._queue.append((key, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # Runs after every task that is ready in this turn of the loop has queued its
            # misses: they travel together.
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        queue, self._queue = self._queue, []
        generation = self._generation
        loop = asyncio.get_running_loop()
        for start in range(0, len(queue), self.max_batch):
            chunk = queue[start : start + self.max_batch]
            task = loop.create_task(self._round_trip(chunk, generation))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _round_trip(
        self, chunk: list[tuple[_CheckKey, asyncio.Future[_Outcome]]], generation: int
    ) -> None:
        requests = [
            CheckRequest(user=k[0], relation=k[1], object=k[2], contextual_tuples=k[3])
            for k, _ in chunk
        ]
        self._remote_calls += 1
        expires = self._clock() + self.ttl
        outcomes: list[_Outcome]
        try:
            results = await self.inner.batch_check(requests)
            if len(results) != len(requests):
                raise AuthzUnavailable(
                    f"batch check answered {len(results)} of {len(requests)} checks"
                )
            outcomes = [_Outcome(r.allowed, r.error) for r in results]
        except asyncio.CancelledError:
            cancelled = _Outcome(False, "the authorization request was cancelled", AuthzUnavailable)
            outcomes = [cancelled] * len(chunk)
            self._settle(chunk, outcomes, generation, expires)
            raise
        except Exception as exc:
            if not isinstance(exc, AuthzError):
                log.exception("authorization batch check failed unexpectedly")
            outcomes = [_Outcome.failure(exc)] * len(chunk)
        self._settle(chunk, outcomes, generation, expires)

    def _settle(
        self,
        chunk: list[tuple[_CheckKey, asyncio.Future[_Outcome]]],
        outcomes: list[_Outcome],
        generation: int,
        expires: float,
    ) -> None:
        store = generation == self._generation and self.ttl > 0
        for (key, future), outcome in zip(chunk, outcomes, strict=True):
            if self._pending.get(key) is future:
                del self._pending[key]
            if outcome.error is not None:
                self._errors += 1
            elif store:
                self._store_check(key, expires, outcome.allowed)
            if not future.done():
                future.set_result(outcome)

    # -- batch_check ----------------------------------------------------------------------

    async def batch_check(
        self,
        requests: Sequence[CheckRequest],
        *,
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[BatchItemResult]:
        """One result per request, in order (with the caller's requests). Never raises for
        a failure of the engine: every affected item carries the error, as a denial."""
        if consistency is _HIGHER:
            return await self._batch_fresh(requests)
        now = self._clock()
        results: list[BatchItemResult | None] = []
        waiting: list[tuple[int, Awaitable[_Outcome]]] = []
        for index, req in enumerate(requests):
            key: _CheckKey = (req.user, req.relation, req.object, tuple(req.contextual_tuples))
            entry = self._checks.get(key)
            if entry is not None and entry[0] > now:
                self._hits += 1
                results.append(BatchItemResult(request=req, allowed=entry[1]))
                continue
            results.append(None)
            waiting.append((index, asyncio.shield(self._lookup(key))))
        if waiting:
            outcomes = await asyncio.gather(*(w for _, w in waiting))
            for (index, _), outcome in zip(waiting, outcomes, strict=True):
                results[index] = BatchItemResult(
                    request=requests[index], allowed=outcome.allowed, error=outcome.error
                )
        return [r for r in results if r is not None]

    async def _batch_fresh(self, requests: Sequence[CheckRequest]) -> list[BatchItemResult]:
        self._bypassed += len(requests)
        generation = self._generation
        out: list[BatchItemResult] = []
        for start in range(0, len(requests), self.max_batch):
            chunk = list(requests[start : start + self.max_batch])
            self._remote_calls += 1
            expires = self._clock() + self.ttl
            try:
                results = await self.inner.batch_check(chunk, consistency=_HIGHER)
                if len(results) != len(chunk):
                    raise AuthzUnavailable(
                        f"batch check answered {len(results)} of {len(chunk)} checks"
                    )
            except Exception as exc:
                if not isinstance(exc, AuthzError):
                    log.exception("authorization batch check failed unexpectedly")
                error = _Outcome.failure(exc).error
                results = [BatchItemResult(request=r, allowed=False, error=error) for r in chunk]
            store = generation == self._generation and self.ttl > 0
            for req, res in zip(chunk, results, strict=True):
                if res.error is not None:
                    self._errors += 1
                    out.append(BatchItemResult(request=req, allowed=False, error=res.error))
                    continue
                if store:
                    key = (req.user, req.relation, req.object, tuple(req.contextual_tuples))
                    self._store_check(key, expires, res.allowed)
                out.append(BatchItemResult(request=req, allowed=res.allowed))
        return out

    # -- list_objects / list_users --------------------------------------------------------

    async def _cached_list(
        self,
        key: _ListKey,
        consistency: Consistency,
        call: Callable[[], Awaitable[list[str]]],
    ) -> list[str]:
        if consistency is _HIGHER:
            self._bypassed += 1
            task = asyncio.ensure_future(self._fetch_list(key, call, self._generation))
            return list(await asyncio.shield(task))
        entry = self._lists.get(key)
        if entry is not None:
            if entry[0] > self._clock():
                self._hits += 1
                return list(entry[1])
            del self._lists[key]
        self._misses += 1
        pending = self._list_pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch_list(key, call, self._generation))
            self._list_pending[key] = pending
        else:
            self._coalesced += 1
        return list(await asyncio.shield(pending))

    async def _fetch_list(
        self, key: _ListKey, call: Callable[[], Awaitable[list[str]]], generation: int
    ) -> tuple[str, ...]:
        self._remote_calls += 1
        expires = self._clock() + self.ttl
        try:
            answer = tuple(await call())
        except Exception:
            self._errors += 1
            raise
        finally:
            if self._list_pending.get(key) is asyncio.current_task():
                del self._list_pending[key]
        if generation == self._generation and self.ttl > 0:
            lists = self._lists
            if key not in lists and len(lists) >= self.max_entries:
                self._evictions += _make_room(lists, self._clock())
            lists[key] = (expires, answer)
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
        ctx = tuple(contextual_tuples)
        return await self._cached_list(
            ("objects", user, relation, type, (), ctx),
            consistency,
            lambda: self.inner.list_objects(
                user, relation, type, contextual_tuples=ctx, consistency=consistency
            ),
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
        ctx = tuple(contextual_tuples)
        filters = tuple(user_filters)
        return await self._cached_list(
            ("users", object, relation, "", filters, ctx),
            consistency,
            lambda: self.inner.list_users(
                object, relation, filters, contextual_tuples=ctx, consistency=consistency
            ),
        )

    # -- writes and reads -----------------------------------------------------------------

    async def write(self, tuples: Sequence[TupleKey]) -> None:
        """Writes through to the engine, then drops every cached answer (even if the write
        failed: it may have been applied before the failure was reported)."""
        self._remote_calls += 1
        try:
            await self.inner.write(tuples)
        finally:
            self.invalidate()

    async def delete(self, tuples: Sequence[TupleKey]) -> None:
        """Deletes through to the engine, then drops every cached answer."""
        self._remote_calls += 1
        try:
            await self.inner.delete(tuples)
        finally:
            self.invalidate()

    async def read(
        self,
        *,
        user: str | None = None,
        relation: str | None = None,
        object: str | None = None,
        page_size: int = 100,
        continuation_token: str = "",
    ) -> ReadResult:
        """Not cached: reads go to the engine."""
        self._remote_calls += 1
        return await self.inner.read(
            user=user,
            relation=relation,
            object=object,
            page_size=page_size,
            continuation_token=continuation_token,
        )

    async def aclose(self) -> None:
        """Waits for the batches in flight (their callers are waiting for them anyway)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
