"""Connecting Google Calendar in a real browser (headless Chromium): pmbot's page, the
provider's consent page, the page that says it is connected; the waiting request resumes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.vault.ports import Connection
from tests.fakes.connect import linked
from tests.support import Harness, eventually, running_bot

pytestmark = pytest.mark.e2e


@pytest.fixture
async def bot(sqlite_url: str) -> AsyncIterator[Harness]:
    async with running_bot(sqlite_url) as harness:
        yield harness


async def test_connect_google_calendar_in_chromium(
    bot: Harness, chromium: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    shots = tmp_path  # kept by pytest (--basetemp) to be looked at
    resumed: list[str] = []

    async def hook(resume_id: str) -> None:
        resumed.append(resume_id)

    bot.deps.connect.resume_hook = hook
    alice = await linked(bot, "U0ALICE", "alice@example.com")
    url = await bot.deps.connect.connect_url(
        alice, Connection.GOOGLE_CALENDAR, resume_id="schedule-apollo-review"
    )
    context = await chromium.new_context(viewport={"width": 900, "height": 700})
    page = await context.new_page()
    try:
        await page.goto(url)
        await expect(page.get_by_test_id("connect-heading")).to_have_text("Connect Google Calendar")
        await expect(page.get_by_test_id("slack-user")).to_have_text("Alice Anders")
        await page.screenshot(path=str(shots / "connect-page.png"), full_page=True)
        await page.get_by_test_id("continue").click()
        await expect(page.get_by_test_id("consent-question")).to_have_text(
            "Allow pmbot to manage your Google Calendar?"
        )
        await expect(page.get_by_test_id("consent-account")).to_have_text("alice@example.com")
        await page.screenshot(path=str(shots / "consent-page.png"), full_page=True)
        await page.get_by_test_id("consent-allow").click()
        await expect(page.get_by_test_id("connected")).to_have_text(
            "Google Calendar is connected: go back to Slack"
        )
        await page.screenshot(path=str(shots / "connected-page.png"), full_page=True)
    finally:
        await context.close()
    assert await eventually(lambda: resumed) == ["schedule-apollo-review"]
    token = await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    assert token.access_token.startswith("ya29.")
