"""What reaches the logs from requests: no bearer URLs, and no record an attacker can forge."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from bot.cli import secrets_of
from bot.logs import REDACTED, configure_logging
from bot.web import create_web_app
from tests.security.test_slack_endpoint_input import JSON, raw_post, signature
from tests.support import Harness, eventually, running_bot, start_site

# The text format's record prefix: "2026-05-01 12:00:00,123 LEVEL logger.name: ".
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")
FORGED_RECORD = "2026-01-01 00:00:00,000 ERROR pmbot: FORGED"
LINK_ID = re.compile(r"/auth/link/([A-Za-z0-9_-]+)")


@pytest.fixture
async def bot(sqlite_url: str) -> AsyncIterator[Harness]:
    async with running_bot(sqlite_url) as harness:
        yield harness


@contextmanager
def captured(fmt: str, level: str, secrets: list[str] | None = None) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    try:
        configure_logging(fmt, level, secrets or [], stream=stream)
        yield stream
    finally:
        configure_logging("text", "WARNING", [])


def assert_no_forged_record(logged: str) -> None:
    """Every line (by any of Python's line breaks) starts with a real record's prefix, and
    no forged prefix is directly followed by the forged message."""
    lines = logged.splitlines()
    assert lines, "nothing was logged"
    for line in lines:
        head = RECORD.match(line)
        assert head is not None, f"a line that is not a record: {line!r}"
        assert not line[head.end() :].upper().startswith("FORGED"), line


async def test_link_urls_and_response_urls_never_reach_debug_logs(bot: Harness) -> None:
    browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    with captured("text", "DEBUG", secrets_of(bot.settings)) as stream:
        async with browser:
            command = await bot.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "link")
            prompt = await eventually(
                lambda: LINK_ID.search(
                    json.dumps(bot.sandbox.messages("C0GENERAL", viewer="U0ALICE"))
                )
            )
            link_url = f"{bot.bot_url}/auth/link/{prompt.group(1)}"
            authorize = await bot.open_link_in_browser(link_url, browser)
            callback = await bot.log_in(authorize, browser, "alice@example.com")
            # A message event from a user who is not linked yet: answered with a link prompt.
            dm = (await bot.deps.slack.conversations_open(users="U0BOB"))["channel"]["id"]
            await bot.sandbox.post_message("U0BOB", dm, "hello")
            await eventually(
                lambda: LINK_ID.search(json.dumps(bot.sandbox.messages(dm, viewer="U0BOB")))
            )
            await bot.sandbox.idle()
    logged = stream.getvalue()
    assert " DEBUG " in logged and "chat.postEphemeral" in logged  # DEBUG was on
    shown = json.dumps(bot.sandbox.messages("C0GENERAL", viewer="U0ALICE"))
    shown += json.dumps(bot.sandbox.messages(dm, viewer="U0BOB"))
    link_ids = set(LINK_ID.findall(shown))
    assert len(link_ids) >= 2
    code = parse_qs(urlsplit(callback).query)["code"][0]
    response_url = command["response_url"]
    response_token = response_url.rsplit("/", 1)[1]
    for value in (
        *link_ids,
        code,
        response_url,
        quote(response_url, safe=""),
        response_token,
    ):
        assert value not in logged, value
    assert REDACTED in logged


async def test_a_forged_record_in_a_request_path_stays_inside_its_record(bot: Harness) -> None:
    """The error middleware logs the method and path of a request whose handler failed; the
    path is the sender's. pmbot's real web app is served with one extra route that fails."""

    async def failing(request: web.Request) -> web.Response:
        raise RuntimeError(f"cannot serve {request.path}")

    app = create_web_app(bot.deps, bot.ingress)
    app.router.add_get(r"/fail/{tail:[\s\S]*}", failing)
    runner, base = await start_site(app)
    forged = quote(FORGED_RECORD)
    paths = [
        f"/fail/a%0A{forged}",
        f"/fail/b%0D%0A{forged}",
        f"/fail/c%0D{forged}",
        f"/fail/d%E2%80%A8{forged}",
        f"/fail/e%C2%85{forged}",
        f"/fail/f%1B[2K%1B[1G{forged}",
    ]
    try:
        with captured("text", "INFO") as stream:
            for path in paths:
                async with bot.http.get(URL(base + path, encoded=True)) as resp:
                    assert resp.status == 500
                    assert await resp.json() == {"error": "internal error"}
    finally:
        await runner.cleanup()
    logged = stream.getvalue()
    assert logged.count("unhandled error on GET /fail/") == len(paths)
    assert "GET /fail/a\\n" + FORGED_RECORD in logged  # shown, escaped, inside its record
    assert "\x1b" not in logged
    assert_no_forged_record(logged)


async def test_a_forged_record_in_a_content_type_stays_inside_its_record(bot: Harness) -> None:
    """A real request-logging path of the Slack endpoint: a body of an unsupported content
    type is refused and the type is logged. Header values can carry U+2028 or NEL."""
    body = b"{}"
    with captured("text", "INFO") as stream:
        for brk in ("\u2028", "\x85", "\u2029"):
            ts = str(int(time.time())).encode()
            content_type = f"text/x{brk}{FORGED_RECORD}".encode()
            reply = await raw_post(
                bot.events_url,
                body,
                [
                    (b"Content-Type", content_type),
                    (b"X-Slack-Request-Timestamp", ts),
                    (b"X-Slack-Signature", signature(ts, body)),
                ],
            )
            assert reply.status == 400
    logged = stream.getvalue()
    assert logged.count("rejected a malformed Slack body: unsupported content type") == 3
    assert "\\u2028" in logged and "\\x85" in logged
    assert_no_forged_record(logged)


async def test_malformed_http_from_anyone_is_logged_without_a_forged_record(bot: Harness) -> None:
    """No signature needed: aiohttp logs a request it cannot parse, with a traceback whose
    text quotes the request."""
    with captured("text", "INFO") as stream:
        reply = await raw_post(
            bot.events_url,
            b"{}",
            [(b"Content-Type", JSON), (b"X-Note", b"\x00\x1b[2K" + FORGED_RECORD.encode())],
        )
        assert reply.status == 400
    logged = stream.getvalue()
    assert "Traceback" in logged
    assert_no_forged_record(logged)
