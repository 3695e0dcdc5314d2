"""Exactly-once handling of Slack deliveries: one in-process memory in front of a claim
persisted in the database.

A redelivery this process has seen is answered from memory; any other is claimed in the
``processed_events`` table, which catches the ones seen before a restart or by another
replica. Claims are batched: every claim made while a flush is pending joins one
``INSERT ... ON CONFLICT DO NOTHING RETURNING`` statement, so a burst of events costs one
transaction instead of one per event, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from bot.storage.db import Database
from bot.storage.models import ProcessedEvent

log = logging.getLogger(__name__)

_RETRIES = 3


class DedupUnavailable(Exception):
    """The database could not record the delivery."""


def delivery_key(body: dict[str, Any]) -> tuple[str, str] | None:
    """(kind, key) identifying one logical Slack delivery, or None if it has none.

    Events carry ``event_id`` (the same across Slack's retries). Commands and interactions
    are never retried by Slack, but a ``trigger_id`` is unique per user action, so a
    replayed request is still recognised.
    """
    if body.get("type") == "event_callback" and body.get("event_id"):
        return "event", f"ev:{body['event_id']}"
    if body.get("command") and body.get("trigger_id"):
        return "command", f"cmd:{body['trigger_id']}"
    if body.get("type") in {"block_actions", "view_submission", "shortcut", "message_action"}:
        trigger = body.get("trigger_id")
        if trigger:
            return "interaction", f"int:{trigger}"
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:40]
        return "interaction", f"int:{digest}"
    return None


class Deduplicator:
    def __init__(
        self, *, db: Database, ttl: timedelta, max_batch: int = 500, memory: int = 50_000
    ) -> None:
        self._db = db
        self._ttl = ttl
        self._max_batch = max_batch
        # key -> when it was claimed (Unix seconds), oldest first.
        self._recent: OrderedDict[str, float] = OrderedDict()
        self._memory = memory
        self._pending: list[tuple[str, str, asyncio.Future[bool]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def claim(self, kind: str, key: str) -> bool:
        """Record the delivery; False when it was already recorded (a redelivery).

        Raises :class:`DedupUnavailable` when the database cannot record it (the key is
        still remembered in memory, so this process handles it once)."""
        now = time.time()
        seen_at = self._recent.get(key)
        if seen_at is not None and now - seen_at < self._ttl.total_seconds():
            return False
        self._recent[key] = now
        self._recent.move_to_end(key)
        if len(self._recent) > self._memory:
            self._recent.popitem(last=False)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((kind, key, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush_all())
        return await future

    async def _flush_all(self) -> None:
        # Let every claim made in this loop iteration join the first batch.
        await asyncio.sleep(0)
        while self._pending:
            batch, self._pending = (
                self._pending[: self._max_batch],
                self._pending[self._max_batch :],
            )
            try:
                await self._flush(batch)
            except BaseException as exc:
                # Never leave a caller waiting: whatever went wrong is its answer.
                for _kind, _key, future in batch:
                    if not future.done():
                        future.set_exception(DedupUnavailable(str(exc)))
                if not isinstance(exc, Exception):
                    raise

    async def _flush(self, batch: list[tuple[str, str, asyncio.Future[bool]]]) -> None:
        first: dict[str, str] = {}
        for kind, key, _ in batch:
            first.setdefault(key, kind)
        rows = [{"event_key": key, "kind": kind} for key, kind in first.items()]
        inserted: set[str] | None = None
        for attempt in range(_RETRIES):
            try:
                inserted = await self._insert(rows)
                break
            except DBAPIError as exc:
                log.warning(
                    "recording Slack deliveries failed (try %d): %s",
                    attempt + 1,
                    type(exc.orig).__name__,
                )
                await asyncio.sleep(0.05 * (2**attempt))
        claimed: set[str] = set()
        for _kind, key, future in batch:
            if future.done():
                continue
            if inserted is None:
                future.set_exception(DedupUnavailable())
            elif key in inserted and key not in claimed:
                claimed.add(key)
                future.set_result(True)
            else:
                future.set_result(False)

    async def _insert(self, rows: list[dict[str, str]]) -> set[str]:
        dialect = self._db.dialect
        stmt: Any
        if dialect == "postgresql":
            stmt = postgresql.insert(ProcessedEvent).values(rows).on_conflict_do_nothing()
        else:
            stmt = sqlite.insert(ProcessedEvent).values(rows).on_conflict_do_nothing()
        stmt = stmt.returning(ProcessedEvent.event_key)
        async with self._db.engine.begin() as conn:
            result = await conn.execute(stmt)
            return {str(row[0]) for row in result}

    async def sweep(self, now: datetime | None = None) -> int:
        """Forget deliveries older than the TTL (Slack stops retrying after ~1 hour)."""
        cutoff = (now or datetime.now(UTC)) - self._ttl
        while self._recent and next(iter(self._recent.values())) < cutoff.timestamp():
            self._recent.popitem(last=False)
        async with self._db.session() as session:
            result = await session.execute(
                delete(ProcessedEvent).where(ProcessedEvent.received_at < cutoff)
            )
        return int(getattr(result, "rowcount", 0) or 0)
