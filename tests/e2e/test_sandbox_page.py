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


async def test_emoji_codes_are_shown_as_emoji(env: Env) -> None:
    from playwright.async_api import expect

    await env.slack.chat_postMessage(
        channel="C0GENERAL",
        text=":white_check_mark: Linked :lock: :key: :no_entry: :warning: :no_such_emoji: `:lock:`",
    )
    await env.slack.chat_postMessage(
        channel="C0GENERAL",
        text="careful",
        blocks=[
            {"type": "header", "text": {"type": "plain_text", "text": ":warning: Careful"}},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "go",
                        "text": {"type": "plain_text", "text": ":key: Link"},
                    }
                ],
            },
        ],
    )
    await open_channel(env, "C0GENERAL")
    first = env.page.locator("[data-testid=message]").first
    await expect(first).to_contain_text("✅ Linked 🔒 🔑 ⛔ ⚠️ :no_such_emoji:")
    await expect(first.locator("code")).to_have_text(":lock:")  # code is shown as typed
    await expect(env.page.locator(".b-header")).to_have_text("⚠️ Careful")
    await expect(env.page.locator("button[data-action-id=go]")).to_have_text("🔑 Link")


async def test_a_click_is_reported_by_the_buttons_label_not_its_action_id(env: Env) -> None:
    from playwright.async_api import expect

    buttons = [
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "link_confirm",
                    "style": "primary",
                    "text": {"type": "plain_text", "text": "Link alice@example.com"},
                },
                {
                    "type": "button",
                    "action_id": "link_cancel",
                    "text": {"type": "plain_text", "text": "Cancel"},
                },
            ],
        }
    ]
    await env.slack.chat_postMessage(channel="C0GENERAL", text="Link?", blocks=buttons)
    await open_channel(env, "C0GENERAL")
    status = env.page.locator("#status")
    await env.page.click("button[data-action-id=link_confirm]")
    await expect(status).to_have_text('Button "Link alice@example.com" clicked')
    env.receiver.statuses = [500]
    await env.page.click("button[data-action-id=link_cancel]")
    await expect(status).to_have_text('Button "Cancel": the app answered with an error (HTTP 500)')
    received = [r.payload()["actions"][0]["action_id"] for r in env.receiver.received]
    assert received == ["link_confirm", "link_cancel"]
