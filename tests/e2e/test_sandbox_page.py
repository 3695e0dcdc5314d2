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


LONG_URL = (
    "https://docs.example.com/apollo/" + "a-very-long-path-segment-" * 8 + "end?q=" + "x" * 60
)
LONG_ID = "auth0|" + "a1b2c3d4" * 14


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


@pytest.mark.parametrize("width", [1100, 420])
async def test_long_urls_and_ids_wrap_inside_the_page(env: Env, width: int) -> None:
    from playwright.async_api import expect

    await env.page.set_viewport_size({"width": width, "height": 800})
    await env.sandbox.post_message("U0ALICE", "C0GENERAL", f"see {LONG_URL} and {LONG_ID}")
    await env.slack.chat_postMessage(
        channel="C0GENERAL",
        text=f"Linked as `{LONG_ID}` ```{LONG_URL}```",
    )
    await env.slack.chat_postMessage(
        channel="C0GENERAL",
        text="fields",
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": f"<{LONG_URL}> {LONG_ID}"}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*Identity*\n{LONG_ID}"},
                    {"type": "mrkdwn", "text": f"*Source*\n{LONG_URL}"},
                ],
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": LONG_ID}]},
        ],
    )
    await open_channel(env, "C0GENERAL")
    await expect(env.page.locator("[data-testid=message]")).to_have_count(3)
    overflow = await env.page.evaluate(
        """() => {
          const box = document.getElementById("messages");
          const edge = box.getBoundingClientRect().right + 1;
          const wide = [...document.querySelectorAll("[data-testid=message] *")]
            .filter((el) => el.getBoundingClientRect().right > edge)
            .map((el) => el.tagName + "." + el.className);
          return {
            page: document.documentElement.scrollWidth - window.innerWidth,
            messages: box.scrollWidth - box.clientWidth,
            wide,
          };
        }"""
    )
    assert overflow == {"page": 0, "messages": 0, "wide": []}


async def test_a_narrow_screen_gets_a_bar_for_the_lists_and_a_full_width_composer(
    env: Env,
) -> None:
    from playwright.async_api import expect

    page = env.page
    await page.set_viewport_size({"width": 420, "height": 800})
    await open_channel(env, "C0GENERAL")
    sidebar = await page.locator("#sidebar").bounding_box()
    assert sidebar is not None and sidebar["width"] == 420 and sidebar["height"] < 60
    await expect(page.locator("#channel-list")).to_be_hidden()
    composer = await page.locator("#composer").bounding_box()
    send_button = await page.locator("#send").bounding_box()
    assert composer is not None and send_button is not None
    assert composer["width"] > 280 and send_button["x"] + send_button["width"] <= 420
    await page.click("#nav-toggle")
    await expect(page.locator("#nav-toggle")).to_have_attribute("aria-expanded", "true")
    await page.click("[data-testid=nav-dm][data-id=U0PMBOT]")
    await expect(page.locator("#conv-title")).to_have_text("pmbot")
    await expect(page.locator("#channel-list")).to_be_hidden()
    await send(env, "hello from a phone")
    await expect(page.locator("[data-testid=message]")).to_contain_text("hello from a phone")
    await env.sandbox.idle()
    assert [r.json()["event"]["text"] for r in env.receiver.received] == ["hello from a phone"]
    # Wide again: the lists are a sidebar and the bar is gone.
    await page.set_viewport_size({"width": 1100, "height": 800})
    await expect(page.locator("#nav-toggle")).to_be_hidden()
    await expect(page.locator("#channel-list")).to_be_visible()
    sidebar = await page.locator("#sidebar").bounding_box()
    assert sidebar is not None and sidebar["width"] == 240


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
