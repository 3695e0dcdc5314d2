"""Answers in the embedded default, in a real browser (headless Chromium, Playwright): two
people ask the same question in #apollo and read different, correct sources; a streamed
message grows on the page; the assistant pane greets, suggests, thinks and answers.

The workspace is the demo `make run` seeds (``sandbox.demo``): alice alone reads the Apollo
Board's notes; bob and alice both read Apollo's status reports.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import serving_embedded_default

pytestmark = pytest.mark.e2e

QUESTION = "What is blocking the Apollo launch?"
BOARD = "Apollo board notes, November"


@pytest.fixture
async def sandbox_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    # The demo's documents are indexed within a fraction of a second of seeding.
    monkeypatch.setenv("RETRIEVAL_REFRESH_SECONDS", "0.2")
    async with serving_embedded_default(f"{tmp_path}/answers.sqlite3") as url:
        yield url


async def _page(chromium: Any, url: str, user: str) -> Any:
    context = await chromium.new_context()
    page = await context.new_page()
    await page.goto(url + "/")
    await page.select_option("#user-select", user)
    return page


async def _send(page: Any, text: str) -> None:
    await page.fill("#composer", text)
    await page.click("#send")


async def _link(page: Any, handle: str) -> None:
    """Link the page's person through the real flow: /pm link, sign in, confirm in Slack."""
    from playwright.async_api import expect

    await page.click("[data-testid=nav-channel][data-id=C0GENERAL]")
    await _send(page, "/pm link")
    link = page.locator("[data-testid=ephemeral] a[href*='/auth/link/']").first
    await expect(link).to_be_visible(timeout=10_000)
    href = await link.get_attribute("href")
    login = await page.context.new_page()
    await login.goto(href)
    await login.click("[data-testid=continue]")
    await login.click(f"[data-testid='login-as-{handle}@example.com']")
    await expect(login.locator("[data-testid=signed-in]")).to_be_visible(timeout=10_000)
    await login.close()
    await page.click("[data-testid=dm-list] >> text=pmbot")
    question = page.locator("[data-testid=message]").filter(has_text="to your Slack account?")
    await question.first.get_by_role("button", name=f"Link {handle}@example.com").click()
    done = page.locator("[data-testid=message]").filter(has_text="now linked")
    await expect(done.first).to_be_visible(timeout=10_000)


async def _ask_in_apollo(page: Any) -> Any:
    """Ask the question in #apollo and open its thread; returns the thread pane."""
    from playwright.async_api import expect

    await page.click("[data-testid=nav-channel][data-id=C0APOLLO]")
    await _send(page, f"@pmbot {QUESTION}")
    asked = page.locator("[data-testid=message]").filter(has_text=QUESTION).last
    replies = asked.locator("[data-testid=replies]")
    await expect(replies).to_be_visible(timeout=15_000)
    await replies.click()
    return page.locator("#thread")


async def test_two_people_ask_the_same_question_and_read_different_sources(
    sandbox_url: str, chromium: Any
) -> None:
    from playwright.async_api import expect

    alice = await _page(chromium, sandbox_url, "U0ALICE")
    bob = await _page(chromium, sandbox_url, "U0BOB")
    await _link(alice, "alice")
    await _link(bob, "bob")

    # Alice's best source is the board's notes, which bob may not read: only she sees it.
    thread = await _ask_in_apollo(alice)
    private = thread.locator("[data-testid=message][data-ephemeral=true]")
    await expect(private.first).to_contain_text(BOARD, timeout=15_000)
    await expect(private.first).to_contain_text("Only you can see this answer")
    await expect(private.first).to_contain_text("unsigned payment vendor contract")
    await expect(thread).to_contain_text("I answered you privately")

    # Bob reads the note, never the board's notes; his own answer cites the status reports
    # and goes to the whole channel (alice may read them too).
    thread = await _ask_in_apollo(bob)
    feedback = bob.locator("[data-action-id=answer_feedback_up]")
    answer = thread.locator("[data-testid=message][data-user=U0PMBOT]").filter(has=feedback)
    await expect(answer.first).to_contain_text("Apollo status, week", timeout=15_000)
    await expect(answer.first).not_to_contain_text(BOARD)
    assert await answer.first.get_attribute("data-ephemeral") is None
    await expect(bob.locator("body")).not_to_contain_text("vendor contract")
    await expect(answer.first.get_by_role("button", name="👍 Helpful")).to_be_visible()


async def test_a_streamed_message_grows_on_the_page(sandbox_url: str, chromium: Any) -> None:
    """The page shows a streamed message while it is written, then its final blocks."""
    from playwright.async_api import expect

    page = await _page(chromium, sandbox_url, "U0ALICE")
    api = f"{sandbox_url}/sandbox/api/"
    headers = {"Authorization": "Bearer xoxb-sandbox"}
    async with aiohttp.ClientSession(headers=headers) as slack:

        async def call(method: str, **params: object) -> dict[str, Any]:
            async with slack.post(api + method, json=params) as resp:
                body: dict[str, Any] = await resp.json()
                assert body["ok"], body
                return body

        root = await call("chat.postMessage", channel="C0GENERAL", text="Streaming below")
        started = await call(
            "chat.startStream",
            channel="C0GENERAL",
            thread_ts=root["ts"],
            markdown_text="The launch ",
            recipient_user_id="U0ALICE",
            recipient_team_id="T0SANDBOX",
        )
        await page.click("[data-testid=nav-channel][data-id=C0GENERAL]")
        parent = page.locator("[data-testid=message]").filter(has_text="Streaming below")
        await parent.locator("[data-testid=replies]").click()
        streamed = page.locator(f"#thread [data-testid=message][data-ts='{started['ts']}']")
        await expect(streamed).to_contain_text("The launch", timeout=10_000)
        await expect(streamed.locator("[data-testid=streaming]")).to_be_visible()
        await call(
            "chat.appendStream", channel="C0GENERAL", ts=started["ts"], markdown_text="is late"
        )
        await expect(streamed).to_contain_text("The launch is late", timeout=10_000)
        await call(
            "chat.stopStream",
            channel="C0GENERAL",
            ts=started["ts"],
            blocks=[{"type": "context", "elements": [{"type": "mrkdwn", "text": "Sources"}]}],
        )
        await expect(streamed.locator("[data-testid=streaming]")).to_have_count(0, timeout=10_000)
        await expect(streamed).to_contain_text("Sources")


async def test_the_assistant_pane_in_the_browser(sandbox_url: str, chromium: Any) -> None:
    from playwright.async_api import expect

    page = await _page(chromium, sandbox_url, "U0CAROL")
    await _link(page, "carol")
    started = time.perf_counter()
    await page.click("#nav-assistant")
    pane = page.locator("#thread")
    await expect(pane).to_contain_text("Ask me about your projects", timeout=10_000)
    prompt = page.locator("[data-testid=suggested-prompt]").filter(has_text="What is blocking?")
    await prompt.click()
    feedback = page.locator("[data-action-id=answer_feedback_up]")
    answer = pane.locator("[data-testid=message][data-user=U0PMBOT]").filter(has=feedback)
    await expect(answer.first).to_contain_text("Apollo status, week", timeout=15_000)
    await expect(answer.first).not_to_contain_text(BOARD)
    await expect(page.locator("[data-testid=assistant-title]")).to_have_text(
        "What is blocking our launch?"
    )
    print(f"assistant pane opened to answer: {(time.perf_counter() - started) * 1000:.0f} ms")
