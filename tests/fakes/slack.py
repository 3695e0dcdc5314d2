"""Shared helpers for the Slack sandbox tests: loopback servers and a signed-request receiver.

The receiver stands in for the bot's HTTP endpoint: it verifies every request with
slack_sdk's SignatureVerifier and answers as scripted (status, delay, body).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from slack_sdk.signature import SignatureVerifier
from sqlalchemy.ext.asyncio import AsyncEngine

from sandbox.federation import Federation
from sandbox.slack import SlackSandbox, default_seed

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-bot-token"


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run an aiohttp app on 127.0.0.1:<free port>; yields its base URL (ending in /)."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@dataclass
class Received:
    """One request the bot endpoint got."""

    headers: dict[str, str]
    body: bytes
    content_type: str
    signature_valid: bool

    def json(self) -> dict[str, Any]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    def payload(self) -> dict[str, Any]:
        data = json.loads(self.form()["payload"])
        assert isinstance(data, dict)
        return data


Reply = Callable[[Received], web.Response]


class Receiver:
    """A stand-in bot endpoint at ``/slack/events``.

    ``statuses`` are answered in order (then 200); ``delays`` likewise (then 0 seconds);
    ``reply`` builds the 2xx answer (default: empty body).
    """

    def __init__(self, signing_secret: str = SIGNING_SECRET) -> None:
        self.verifier = SignatureVerifier(signing_secret)
        self.received: list[Received] = []
        self.statuses: list[int] = []
        self.delays: list[float] = []
        self.reply: Reply | None = None
        self.arrived = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/slack/events", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        got = Received(
            headers=headers,
            body=body,
            content_type=request.content_type,
            signature_valid=self.verifier.is_valid_request(body, headers),
        )
        self.received.append(got)
        self.arrived.set()
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        status = self.statuses.pop(0) if self.statuses else 200
        if status >= 300:
            return web.Response(status=status, text="failed")
        if self.reply is not None:
            return self.reply(got)
        return web.Response(status=status)


@asynccontextmanager
async def running_sandbox(
    receiver: Receiver | None = None,
    *,
    retry_timeout: float = 0.3,
    engine: AsyncEngine | None = None,
    federation: Federation | None = None,
) -> AsyncIterator[tuple[SlackSandbox, str]]:
    """A default-seeded sandbox on a free port delivering to ``receiver``, kept in memory
    or, with ``engine``, in that (migrated) database; with ``federation`` it accepts the
    user tokens issued there.

    Yields ``(sandbox, base_url)``; the Web API is at ``base_url + "api/"``.
    """
    receiver = receiver or Receiver()
    async with serve(receiver.app()) as bot_base:
        sandbox = SlackSandbox(
            seed=default_seed(),
            signing_secret=SIGNING_SECRET,
            bot_token=BOT_TOKEN,
            events_url=bot_base + "slack/events",
            retry_timeout=retry_timeout,
            engine=engine,
            federation=federation,
        )
        async with sandbox.serve() as base:
            assert sandbox.public_url == base
            yield sandbox, base
