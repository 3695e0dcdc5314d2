"""The composition root: opens every engine, session and client, and closes them in reverse.

Nothing is built at import time; ``open_deps`` is the only place that wires collaborators.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.dedup import Deduplicator
from bot.metrics import Registry
from bot.settings import Settings
from bot.storage.db import Database

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Deps:
    """Everything handlers and services need, built once per process."""

    settings: Settings
    db: Database
    slack: AsyncWebClient
    metrics: Registry
    dedup: Deduplicator
    extras: dict[str, object] = field(default_factory=dict)


def build_slack_client(settings: Settings) -> AsyncWebClient:
    """Web API client; 429s are retried honouring ``Retry-After``."""
    return AsyncWebClient(
        token=settings.bot_token,
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncConnectionErrorRetryHandler(max_retry_count=1),
        ],
    )


@asynccontextmanager
async def open_deps(settings: Settings, *, metrics: Registry | None = None) -> AsyncIterator[Deps]:
    async with AsyncExitStack() as stack:
        db = Database(settings.database_url)
        stack.push_async_callback(db.dispose)
        slack = build_slack_client(settings)
        deps = Deps(
            settings=settings,
            db=db,
            slack=slack,
            metrics=metrics or Registry(),
            dedup=Deduplicator(db=db, ttl=timedelta(seconds=settings.event_dedup_ttl_seconds)),
        )
        yield deps
