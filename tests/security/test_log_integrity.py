"""What reaches the logs from requests: no bearer URLs."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest

from bot.cli import secrets_of
from bot.logs import REDACTED, configure_logging
from tests.support import Harness, eventually, running_bot

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
