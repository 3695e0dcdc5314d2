"""The Slack ingress: each delivery is claimed once and handled in a task that shutdown
waits for (a real Bolt app with its own listeners; no Slack needed)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult

from bot.dedup import Deduplicator
from bot.ingress import SlackIngress, bolt_request
from bot.metrics import Registry
from bot.storage.db import Database


def _event(event_id: str) -> dict[str, Any]:
    return {
        "type": "event_callback",
        "team_id": "T1",
        "api_app_id": "A1",
        "event_id": event_id,
        "event": {"type": "app_mention", "user": "U1", "channel": "C1", "ts": "1.0", "text": "hi"},
        "authorizations": [{"team_id": "T1", "user_id": "UBOT", "is_bot": True}],
    }


def _app(
    started: list[str], release: asyncio.Event, running: asyncio.Event | None = None
) -> AsyncApp:
    async def authorize(**_: Any) -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=None, team_id="T1", bot_token="xoxb-test", bot_user_id="UBOT"
        )

    app = AsyncApp(
        authorize=authorize, request_verification_enabled=False, process_before_response=True
    )

    @app.event("app_mention")
    async def slow(body: dict[str, Any]) -> None:
        started.append(str(body["event_id"]))
        if running is not None:
            running.set()
        await release.wait()

    return app


async def test_shutdown_waits_for_listeners_in_flight(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    started: list[str] = []
    release = asyncio.Event()
    running = asyncio.Event()
    ingress = SlackIngress(
        bolt=_app(started, release, running),
        dedup=Deduplicator(db=db, ttl=timedelta(hours=1)),
        metrics=Registry(),
    )
    try:
        ingress.submit(bolt_request(_event("Ev1")))
        await asyncio.wait_for(running.wait(), timeout=5)
        assert await ingress.drain(within=0.1) == 1  # still running: counted, not lost
        asyncio.get_running_loop().call_later(0.05, release.set)
        assert await ingress.drain(within=5) == 0
        assert ingress.in_flight == 0
    finally:
        await db.dispose()


async def test_a_delivery_is_handled_once(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    started: list[str] = []
    release = asyncio.Event()
    release.set()
    metrics = Registry()
    ingress = SlackIngress(
        bolt=_app(started, release),
        dedup=Deduplicator(db=db, ttl=timedelta(hours=1)),
        metrics=metrics,
    )
    try:
        for _ in range(3):
            ingress.submit(bolt_request(_event("Ev2")))
        ingress.submit(bolt_request(_event("Ev3")))
        assert await ingress.drain(within=5) == 0
        assert sorted(started) == ["Ev2", "Ev3"]
        # A second process (a replica, or this one after a restart) finds the claim.
        other = SlackIngress(
            bolt=_app(started, release),
            dedup=Deduplicator(db=db, ttl=timedelta(hours=1)),
            metrics=metrics,
        )
        other.submit(bolt_request(_event("Ev2")))
        assert await other.drain(within=5) == 0
        assert sorted(started) == ["Ev2", "Ev3"]
    finally:
        await db.dispose()
