"""This process's in-memory copies of the stores it serves, kept current from the changelog.

Each copy (:class:`StoreState`) is loaded from a snapshot at first use and then follows the
store's changelog in SQL (:mod:`authz.embedded.sqlstore`, the source of truth):

* every ``sync_interval`` seconds in the background (after :meth:`StoreCopies.start`);
* before answering when the request asks for ``HIGHER_CONSISTENCY``;
* right after this process's own writes (:meth:`StoreCopies.after_write`);
* before answering when the last successful catch-up is older than ``max_staleness``
  (without the background poller: ``sync_interval``). If the database is still unreachable
  the request fails with :class:`~authz.ports.AuthzUnavailable`.

Concurrent catch-ups of one store are coalesced: a request waits for one that started after
it arrived rather than starting its own, and shares its outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Sequence

from authz.embedded.memory import MemoryTupleStore
from authz.embedded.sqlstore import WRITE, SqlStore, StoreNotFoundError, TupleChange
from authz.ports import AuthzError, AuthzValidationError, Consistency

# The engine's logger: records keep the name they have always had.
log = logging.getLogger("authz.embedded.engine")


class StoreState:
    """The in-memory copy of one store and the bookkeeping of its catch-ups.

    Catch-ups get increasing sequence numbers when they start; a request that arrives when
    the next one to start is ``n`` is satisfied by any catch-up numbered ``n`` or later.
    """

    __slots__ = (
        "cursor",
        "done_seq",
        "failed_seq",
        "failure",
        "latest_model_id",
        "loaded",
        "lock",
        "next_seq",
        "store_id",
        "synced_at",
        "tuples",
    )

    def __init__(self, store_id: str) -> None:
        self.store_id = store_id
        self.tuples = MemoryTupleStore()
        self.cursor = 0
        self.loaded = False
        self.latest_model_id: str | None = None
        self.lock = asyncio.Lock()
        self.next_seq = 0
        self.done_seq = -1
        self.failed_seq = -1
        self.failure: AuthzError | None = None
        self.synced_at = -math.inf

    def apply(self, changes: Sequence[TupleChange]) -> None:
        """Applies changes in order (no await: evaluations never see half a catch-up)."""
        store = self.tuples
        for change in changes:
            if change.operation == WRITE:
                store.write((change.tuple_key,))
            else:
                store.delete((change.tuple_key,))
        if changes:
            self.cursor = changes[-1].id


def _fresh_copy(exc: AuthzError) -> AuthzError:
    """A new exception like ``exc``, for each request that waited on the failed catch-up."""
    if isinstance(exc, StoreNotFoundError):
        return StoreNotFoundError(exc.store_id)
    if isinstance(exc, AuthzValidationError):
        return AuthzValidationError(exc.code, exc.message)
    return type(exc)(str(exc))


class StoreCopies:
    """The in-memory copies (one :class:`StoreState` per store served) and their catch-ups."""

    def __init__(
        self,
        sql: SqlStore,
        *,
        sync_interval: float,
        max_staleness: float,
        clock: Callable[[], float],
    ) -> None:
        self.sql = sql
        self.sync_interval = sync_interval
        self.max_staleness = max_staleness
        self._clock = clock
        self._states: dict[str, StoreState] = {}
        self._poller: asyncio.Task[None] | None = None
        self._poll_failing = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts the background catch-up (every ``sync_interval`` seconds, if > 0)."""
        if self._poller is None and self.sync_interval > 0:
            self._poller = asyncio.create_task(self._poll(), name="fga-changelog-poller")

    async def close(self) -> None:
        """Stops the background catch-up and forgets the in-memory copies."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        self._states.clear()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.sync_interval)
            failed = False
            for state in list(self._states.values()):
                if not state.loaded:
                    continue
                try:
                    await self.sync(state, state.next_seq)
                except StoreNotFoundError:
                    self.forget(state)
                except AuthzError as exc:
                    failed = True
                    if not self._poll_failing:
                        log.warning("authorization changelog catch-up failed: %s", exc)
                except Exception:
                    # Keep polling: requests would otherwise catch up themselves, slowly.
                    failed = True
                    log.exception("authorization changelog catch-up failed unexpectedly")
            if self._poll_failing and not failed:
                log.info("authorization changelog catch-up recovered")
            self._poll_failing = failed

    # -- copies ---------------------------------------------------------------------------

    def get(self, store_id: str) -> StoreState | None:
        """The store's copy, if this process has one (loaded or not)."""
        return self._states.get(store_id)

    def forget(self, state: StoreState) -> None:
        if self._states.get(state.store_id) is state:
            del self._states[state.store_id]

    def forget_store(self, store_id: str) -> None:
        """Drops the store's copy (the store was deleted)."""
        state = self._states.get(store_id)
        if state is not None:
            self.forget(state)

    def note_model(self, store_id: str, model_id: str) -> None:
        """Records a model this process stored, so the copy's latest model is current."""
        state = self._states.get(store_id)
        if state is not None and (state.latest_model_id or "") < model_id:
            state.latest_model_id = model_id

    def is_stale(self, state: StoreState) -> bool:
        limit = self.max_staleness if self._poller is not None else self.sync_interval
        return self._clock() - state.synced_at > limit

    # -- catching up with the database ----------------------------------------------------

    async def ready(self, store_id: str, consistency: Consistency) -> StoreState:
        """The store's in-memory copy, caught up as the request requires."""
        state = self._states.get(store_id)
        if state is None:
            state = self._states[store_id] = StoreState(store_id)
        if (
            not state.loaded
            or consistency is Consistency.HIGHER_CONSISTENCY
            or self.is_stale(state)
        ):
            try:
                await self.sync(state, state.next_seq)
            except StoreNotFoundError:
                self.forget(state)
                raise
        return state

    async def after_write(self, store_id: str) -> None:
        """Catches the store's copy up after this process's own write, so its next query sees
        the write. A failure is logged and makes the next query catch up before answering."""
        state = self._states.get(store_id)
        if state is not None and state.loaded:
            try:
                await self.sync(state, state.next_seq)
            except AuthzError as exc:
                # The write is committed; make the next query catch up before answering.
                log.warning("catch-up after a write failed: %s", exc)
                state.synced_at = -math.inf

    async def sync(self, state: StoreState, ticket: int) -> None:
        """Catches ``state`` up, unless a catch-up numbered ``ticket`` or later already ran
        (then its outcome is reused)."""
        async with state.lock:
            if state.done_seq >= ticket:
                return
            if state.failed_seq >= ticket and state.failure is not None:
                raise _fresh_copy(state.failure)
            seq = state.next_seq
            state.next_seq += 1
            started = self._clock()
            try:
                await self._catch_up(state)
            except AuthzError as exc:
                state.failed_seq, state.failure = seq, exc
                raise
            state.done_seq, state.synced_at = seq, started

    async def _catch_up(self, state: StoreState) -> None:
        exists, latest = await self.sql.store_status(state.store_id)
        if not exists:
            raise StoreNotFoundError(state.store_id)
        if state.loaded:
            changes = await self.sql.all_changes_after(state.store_id, state.cursor)
            state.apply(changes)
        else:
            position, tuples = await self.sql.snapshot(state.store_id)
            changes = await self.sql.all_changes_after(state.store_id, position)
            state.tuples = MemoryTupleStore(tuples)
            state.cursor = position
            state.apply(changes)
            state.loaded = True
        if latest is not None and (state.latest_model_id or "") < latest:
            state.latest_model_id = latest
