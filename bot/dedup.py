"""Exactly-once handling of Slack deliveries, persisted in the database."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from bot.storage.db import Database
from bot.storage.models import ProcessedEvent


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
    def __init__(self, *, db: Database, ttl: timedelta) -> None:
        self._db = db
        self._ttl = ttl

    async def claim(self, kind: str, key: str) -> bool:
        """Record the delivery; False when it was already recorded (a redelivery)."""
        try:
            async with self._db.session() as session:
                session.add(ProcessedEvent(event_key=key, kind=kind))
        except IntegrityError:
            return False
        return True

    async def sweep(self, now: datetime | None = None) -> int:
        """Forget deliveries older than the TTL (Slack stops retrying after ~1 hour)."""
        cutoff = (now or datetime.now(UTC)) - self._ttl
        async with self._db.session() as session:
            result = await session.execute(
                delete(ProcessedEvent).where(ProcessedEvent.received_at < cutoff)
            )
        return int(getattr(result, "rowcount", 0) or 0)
