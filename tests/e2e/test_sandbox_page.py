"""The sandbox page in a real browser, against a standalone sandbox and a fake bot endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.slack import SlackSandbox
from tests.fakes.slack import BOT_TOKEN, Receiver, running_sandbox

pytestmark = pytest.mark.e2e


@dataclass
class Env:
    sandbox: SlackSandbox
    base: str
    receiver: Receiver
    slack: AsyncWebClient  # the bot's Web API client
    page: Any  # playwright.async_api.Page


@pytest.fixture
async def env(chromium: Any) -> AsyncIterator[Env]:
    receiver = Receiver()
    async with running_sandbox(receiver, retry_timeout=2.0) as (sandbox, base):
        context = await chromium.new_context(viewport={"width": 1100, "height": 760})
        page = await context.new_page()
        yield Env(
            sandbox, base, receiver, AsyncWebClient(token=BOT_TOKEN, base_url=base + "api/"), page
        )
        await context.close()


async def open_channel(env: Env, channel_id: str, user: str = "U0ALICE") -> None:
    from playwright.async_api import expect

    await env.page.goto(f"{env.base}?user={user}#{channel_id}")
    await expect(
        env.page.locator(f"[data-testid=nav-channel][data-id={channel_id}]")
    ).to_have_class("nav-item active")


async def send(env: Env, text: str) -> None:
    await env.page.fill("#composer", text)
    await env.page.click("#send")


async def test_an_unknown_command_gets_slacks_notice_and_reaches_no_app(env: Env) -> None:
    from playwright.async_api import expect

    await open_channel(env, "C0GENERAL")
    await send(env, "/deploy apollo")
    notice = env.page.locator("[data-testid=ephemeral]").filter(has_text="is not a valid command")
    await expect(notice).to_contain_text("/deploy is not a valid command.")
    await expect(env.page.locator("#status")).to_have_text("")
    # A leading space sends the same words as an ordinary message.
    await send(env, " /deploy apollo")
    posted = env.page.locator("[data-testid=message]:not([data-ephemeral])")
    await expect(posted.filter(has_text="/deploy apollo")).to_have_count(1)
    assert env.receiver.received == []
    assert [m["text"] for m in env.sandbox.messages("C0GENERAL", viewer="U0BOB")] == [
        " /deploy apollo"
    ]
