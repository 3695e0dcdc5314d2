"""Test harness: the real pmbot server and the Slack sandbox, both on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from bot.sandbox.slack import SlackSandbox, default_seed
from bot.settings import Settings, load_settings
from bot.slack_app import build_bolt_app
from bot.web import create_web_app
from bot.wiring import Deps, open_deps

SIGNING_SECRET = "test-signing-secret-5f1d2c"
BOT_TOKEN = "xoxb-test-bot-token-9a8b7c"


def sign(body: bytes, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + digest.hexdigest()}


async def start_site(app: web.Application, sock: socket.socket | None = None) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    if sock is None:
        site: web.BaseSite = web.TCPSite(runner, "127.0.0.1", 0)
    else:
        site = web.SockSite(runner, sock)
    await site.start()
    server = site._server  # the bound port is only known after start
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@dataclass
class Harness:
    settings: Settings
    deps: Deps
    sandbox: SlackSandbox
    bot_url: str
    sandbox_url: str
    http: aiohttp.ClientSession

    @property
    def events_url(self) -> str:
        return f"{self.bot_url}/slack/events"

    async def post_signed(
        self, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        all_headers = {"Content-Type": content_type, **sign(body), **(headers or {})}
        async with self.http.post(self.events_url, data=body, headers=all_headers) as resp:
            await resp.read()
            return resp

    def event_envelope(self, event: dict[str, Any], event_id: str) -> bytes:
        return json.dumps(
            {
                "token": "legacy",
                "team_id": "T0SANDBOX",
                "api_app_id": "A0PMBOT",
                "event": event,
                "type": "event_callback",
                "event_id": event_id,
                "event_time": int(time.time()),
                "authorizations": [
                    {"team_id": "T0SANDBOX", "user_id": "U0PMBOT", "is_bot": True}
                ],
            }
        ).encode()


@asynccontextmanager
async def running_bot(database_url: str, **overrides: object) -> AsyncIterator[Harness]:
    """The real pmbot web app and Bolt app against a fresh Slack sandbox."""
    async with AsyncExitStack() as stack:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        stack.callback(sock.close)
        bot_port = sock.getsockname()[1]
        bot_url = f"http://127.0.0.1:{bot_port}"
        sandbox = SlackSandbox(
            seed=default_seed(),
            signing_secret=SIGNING_SECRET,
            bot_token=BOT_TOKEN,
            events_url=f"{bot_url}/slack/events",
            retry_timeout=3.0,
        )
        sandbox_runner, sandbox_url = await start_site(sandbox.app())
        stack.push_async_callback(sandbox_runner.cleanup)
        values: dict[str, object] = {
            "PMBOT_MODE": "production",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": f"{sandbox_url}/api/",
            "DATABASE_URL": database_url,
            "PMBOT_PORT": bot_port,
        }
        values.update(overrides)
        settings = load_settings(**values)
        deps = await stack.enter_async_context(open_deps(settings))
        bolt = build_bolt_app(deps)
        runner, _ = await start_site(create_web_app(deps, bolt), sock)
        stack.push_async_callback(runner.cleanup)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        yield Harness(
            settings=settings,
            deps=deps,
            sandbox=sandbox,
            bot_url=bot_url,
            sandbox_url=sandbox_url,
            http=http,
        )
