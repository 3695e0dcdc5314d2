"""Test harness: the real pmbot server and the Slack sandbox, both on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from bot.ingress import SlackIngress
from bot.settings import Settings, load_settings
from bot.slack_app import build_bolt_app
from bot.web import create_web_app
from bot.wiring import Deps, open_deps
from sandbox.calendar import CalendarService
from sandbox.federation import Federation
from sandbox.idp import DevIdentityProvider, IdpClient, IdpUser, default_users
from sandbox.idp import serve as serve_idp
from sandbox.slack import SandboxSeed, SlackSandbox, default_seed

SIGNING_SECRET = "test-signing-secret-5f1d2c"
BOT_TOKEN = "xoxb-test-bot-token-9a8b7c"
CLIENT_ID = "pmbot-test"
CLIENT_SECRET = "test-client-secret-77e1"
AUDIENCE = "https://pmbot.test/api"
ENCRYPTION_KEYS = "k1:" + base64.b64encode(b"k" * 32).decode()
TEAM = "T0SANDBOX"
_TX = re.compile(r"name='tx' value='([^']+)'")
_CSRF = re.compile(r"name=csrf value='([^']+)'")


def sign(
    body: bytes, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + digest.hexdigest()}


async def start_site(
    app: web.Application, sock: socket.socket | None = None
) -> tuple[web.AppRunner, str]:
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
    idp: DevIdentityProvider
    idp_url: str
    ingress: SlackIngress
    # The sandbox's one federation of connected accounts, and the calendar that accepts its
    # Google tokens (the bot's GOOGLE_CALENDAR_API_URL); the Slack sandbox accepts its
    # Slack user tokens.
    federation: Federation | None = None
    calendar: CalendarService | None = None

    @property
    def events_url(self) -> str:
        return f"{self.bot_url}/slack/events"

    async def post_signed(
        self, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        all_headers = {"Content-Type": content_type, **sign(body), **(headers or {})}
        data = io.BytesIO(body) if len(body) > 64_000 else body
        async with self.http.post(self.events_url, data=data, headers=all_headers) as resp:
            await resp.read()
            return resp

    async def open_link_in_browser(self, link_url: str, browser: aiohttp.ClientSession) -> str:
        """Open a link URL, press *Continue* as a browser would (the page's anti-forgery
        token and cookie, a same-origin ``Origin``), return the identity provider's URL."""
        async with browser.get(link_url) as page:
            html = await page.text()
            assert page.status == 200, html
        match = _CSRF.search(html)
        assert match is not None, html
        async with browser.post(
            link_url,
            data={"csrf": match.group(1)},
            headers={"Origin": self.bot_url, "Sec-Fetch-Site": "same-origin"},
            allow_redirects=False,
        ) as started:
            assert started.status == 303, await started.text()
            return started.headers["Location"]

    async def dm_channel(self, user_id: str) -> str:
        return str((await self.deps.slack.conversations_open(users=user_id))["channel"]["id"])

    async def confirmation_in_slack(self, user_id: str) -> dict[str, Any]:
        """The DM asking ``user_id`` to confirm a verified login (waits for it)."""
        dm = await self.dm_channel(user_id)

        def pending() -> dict[str, Any] | None:
            for message in reversed(self.sandbox.messages(dm, viewer=user_id)):
                if "link_confirm" in json.dumps(message.get("blocks") or []):
                    return message
            return None

        found: dict[str, Any] = await eventually(pending)
        return found

    async def press_in_slack(self, user_id: str, action_id: str, *, by: str | None = None) -> str:
        """Press Link/Cancel in the confirmation DM (as ``by``, default the owner); returns
        the DM's text once the bot has answered."""
        message = await self.confirmation_in_slack(user_id)
        dm = await self.dm_channel(user_id)
        await self.sandbox.click_button(by or user_id, dm, str(message["ts"]), action_id)
        if by is not None and by != user_id:
            return ""

        def answered() -> str | None:
            for m in self.sandbox.messages(dm, viewer=user_id):
                if m.get("ts") == message["ts"] and "link_confirm" not in json.dumps(
                    m.get("blocks") or []
                ):
                    return str(m.get("text", ""))
            return None

        text: str = await eventually(answered)
        return text

    async def log_in(self, authorize_url: str, browser: aiohttp.ClientSession, email: str) -> str:
        """Sign in on the identity provider's page; return the callback URL (not followed)."""
        async with browser.get(authorize_url) as page:
            html = await page.text()
            assert page.status == 200, html
        match = _TX.search(html)
        assert match is not None
        handle = email.split("@", 1)[0]
        form = {"tx": match.group(1), "email": email, "password": f"{handle}-password"}
        async with browser.post(
            f"{self.idp_url}/authorize/login", data=form, allow_redirects=False
        ) as resp:
            assert resp.status == 302, await resp.text()
            return resp.headers["Location"]

    async def sign_in(self, user_id: str, email: str) -> str:
        """Run the browser half of linking; returns the final page's HTML."""
        link_url = await self.deps.identity.start_link(TEAM, user_id)
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as browser:
            authorize = await self.open_link_in_browser(link_url, browser)
            callback = await self.log_in(authorize, browser, email)
            async with browser.get(callback) as final:
                html = await final.text()
                assert final.status == 200, html
                return html

    async def link(self, user_id: str, email: str) -> str:
        """Link a Slack user through the real flow (browser, then the confirmation in
        Slack); returns the confirmation DM's final text."""
        await self.sign_in(user_id, email)
        text = await self.press_in_slack(user_id, "link_confirm")
        assert "now linked" in text, text
        return text

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
                "authorizations": [{"team_id": "T0SANDBOX", "user_id": "U0PMBOT", "is_bot": True}],
            }
        ).encode()


@asynccontextmanager
async def running_bot(
    database_url: str,
    *,
    seed: SandboxSeed | None = None,
    users: list[IdpUser] | None = None,
    **overrides: object,
) -> AsyncIterator[Harness]:
    """The real pmbot web app and Bolt app against a fresh Slack sandbox."""
    async with AsyncExitStack() as stack:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        stack.callback(sock.close)
        bot_port = sock.getsockname()[1]
        bot_url = f"http://127.0.0.1:{bot_port}"
        federation = Federation()
        calendar = CalendarService(federation=federation)
        calendar_url = await stack.enter_async_context(calendar.serve())
        sandbox = SlackSandbox(
            seed=seed or default_seed(),
            signing_secret=SIGNING_SECRET,
            bot_token=BOT_TOKEN,
            events_url=f"{bot_url}/slack/events",
            retry_timeout=3.0,
            federation=federation,
        )
        sandbox_runner, sandbox_url = await start_site(sandbox.app())
        stack.push_async_callback(sandbox_runner.cleanup)
        sandbox.public_url = sandbox_url
        idp = DevIdentityProvider(
            issuer=None,
            users=users or default_users(),
            clients=[
                IdpClient(
                    client_id=CLIENT_ID,
                    client_secret=CLIENT_SECRET,
                    callback_urls=[f"{bot_url}/auth/callback", f"{bot_url}/connect/callback"],
                )
            ],
            audience=AUDIENCE,
            federation=federation,
        )
        idp_url = await stack.enter_async_context(serve_idp(idp))
        values: dict[str, object] = {
            "PMBOT_MODE": "production",
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": f"{sandbox_url}/api/",
            "DATABASE_URL": database_url,
            "PMBOT_PORT": bot_port,
            "AUTH0_DOMAIN": idp_url.removeprefix("http://"),
            "AUTH0_PROTOCOL": "http",
            "AUTH0_CLIENT_ID": CLIENT_ID,
            "AUTH0_CLIENT_SECRET": CLIENT_SECRET,
            "AUTH0_AUDIENCE": AUDIENCE,
            "TOKEN_ENCRYPTION_KEYS": ENCRYPTION_KEYS,
            "GOOGLE_CALENDAR_API_URL": f"{calendar_url}calendar/v3/",
        }
        values.update(overrides)
        settings = load_settings(**values)
        deps = await stack.enter_async_context(open_deps(settings))
        ingress = SlackIngress(bolt=build_bolt_app(deps), dedup=deps.dedup, metrics=deps.metrics)
        stack.push_async_callback(ingress.drain)
        runner, _ = await start_site(create_web_app(deps, ingress), sock)
        stack.push_async_callback(runner.cleanup)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        yield Harness(
            settings=settings,
            deps=deps,
            sandbox=sandbox,
            bot_url=bot_url,
            sandbox_url=sandbox_url,
            http=http,
            idp=idp,
            idp_url=idp_url,
            ingress=ingress,
            federation=federation,
            calendar=calendar,
        )


async def eventually(predicate: Callable[[], Any], within: float = 5.0) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {within} s")


def from_bot(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages the bot posted (as the bot user)."""
    return [m for m in messages if m.get("bot_id") or m.get("user") == "U0PMBOT"]


@asynccontextmanager
async def serving_embedded_default(database_path: str) -> AsyncIterator[str]:
    """``pmbot serve`` in sandbox mode (what ``make run`` starts) on a free loopback port;
    yields its URL."""
    from bot.server import serve

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    settings = load_settings(
        PMBOT_MODE="sandbox", PMBOT_PORT=port, DATABASE_URL=f"sqlite:///{database_path}"
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop=stop))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            if task.done():
                task.result()
            await asyncio.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


@asynccontextmanager
async def serving_sandbox_mode(
    database_url: str,
) -> AsyncIterator[tuple[web.Application, Deps, str]]:
    """pmbot in sandbox mode as ``pmbot serve`` assembles it (the Slack sandbox, the
    sandbox calendar and the dev identity provider mounted by ``mount_sandbox``) on a free
    loopback port, with its app (``app[FEDERATION_KEY]`` is the sandbox's one federation),
    its ``Deps`` and its URL."""
    from bot.server import mount_sandbox

    async with AsyncExitStack() as stack:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        stack.callback(sock.close)
        settings = load_settings(
            PMBOT_MODE="sandbox", PMBOT_PORT=sock.getsockname()[1], DATABASE_URL=database_url
        )
        deps = await stack.enter_async_context(open_deps(settings))
        ingress = SlackIngress(bolt=build_bolt_app(deps), dedup=deps.dedup, metrics=deps.metrics)
        stack.push_async_callback(ingress.drain)
        app = create_web_app(deps, ingress)
        mount_sandbox(app, deps)
        runner, url = await start_site(app, sock)
        stack.push_async_callback(runner.cleanup)
        yield app, deps, url
