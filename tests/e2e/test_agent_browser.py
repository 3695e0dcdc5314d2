"""The agent in the embedded default (what ``make run`` starts), in a real browser: a
request in words shows the Connect button the first time, books the meeting in the sandbox
calendar once connected and answers with its link; someone without ``manage:calendar`` is
refused in plain words; the plain ``/pm`` commands book, list and post as the person.

The seeded permissions: alice has them all; bob reads, writes, manages calendars and projects;
carol only reads; dave has none (``sandbox.idp.models.default_users``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.sandbox_ui import (
    NARROW,
    TIMEOUT,
    WIDE,
    Shots,
    follow,
    link,
    messages,
    no_raw_markup,
    open_channel,
    open_workspace,
    send,
)
from tests.support import serving_embedded_default

pytestmark = pytest.mark.e2e

REQUEST = "@pmbot schedule a review of Apollo next Tuesday at 15:00 with bob"


@pytest.fixture
async def sandbox_url(tmp_path: Path) -> AsyncIterator[str]:
    async with serving_embedded_default(f"{tmp_path}/agent.sqlite3") as url:
        yield url


def next_tuesday() -> datetime:
    """'next Tuesday' for the sandbox people (UTC): the first Tuesday after today."""
    today = datetime.now(UTC).date()
    ahead = (1 - today.weekday()) % 7 or 7
    day = today + timedelta(days=ahead)
    return datetime(day.year, day.month, day.day, 15, tzinfo=UTC)


async def test_schedule_in_words_connects_once_then_books_and_links_the_meeting(
    sandbox_url: str, chromium: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    shots = Shots(tmp_path)
    page = await open_workspace(chromium, sandbox_url, "U0ALICE")
    await link(page, "alice")
    await open_channel(page, "C0APOLLO")
    await send(page, REQUEST)

    # The first time: why, and the Connect button, for alice alone, beside her mention
    # (not in a thread nobody opens).
    asked = messages(page, "schedule a review of Apollo")
    offer = messages(page, "I need your Google Calendar account connected")
    await expect(offer).to_have_count(1, timeout=TIMEOUT)
    assert await offer.get_attribute("data-ephemeral") == "true"
    await expect(asked.locator("[data-testid=replies]")).to_have_count(0)
    connect = offer.get_by_role("button", name="Connect Google Calendar")
    offered = page.locator(f"#messages [data-ts='{await offer.get_attribute('data-ts')}']")
    await shots.take(page, "connect-offered")

    # The Connect button: pmbot's page, then the provider's consent, then back.
    tab = await follow(page, connect)
    await expect(tab.get_by_test_id("connect-heading")).to_have_text("Connect Google Calendar")
    await expect(tab.get_by_test_id("slack-user")).to_have_text("Alice Anders")
    await tab.set_viewport_size(NARROW)
    await shots.take(tab, "connect-page-420")
    await tab.get_by_test_id("continue").click()
    await expect(tab.get_by_test_id("consent-account")).to_have_text("alice@example.com")
    await shots.take(tab, "consent-420")
    await tab.set_viewport_size(WIDE)
    await shots.take(tab, "consent-1100")
    await tab.get_by_test_id("consent-allow").click()
    await expect(tab.get_by_test_id("connected")).to_have_text(
        "Google Calendar is connected: go back to Slack"
    )
    await tab.close()

    # The request finishes on its own; the old offer no longer offers a used link.
    booked = messages(page, "Booked")
    await expect(booked).to_have_count(1, timeout=TIMEOUT)
    await expect(booked).to_contain_text("Google Calendar is connected; here is your request.")
    await expect(booked).to_contain_text("in your calendar, with @bob invited.")
    assert await booked.get_attribute("data-ephemeral") == "true"
    await expect(offered).to_contain_text(
        "Finish connecting Google Calendar in the page that opened"
    )
    await expect(page.get_by_role("button", name="Connect Google Calendar")).to_have_count(0)
    await expect(asked.locator("[data-testid=replies]")).to_have_count(0)
    await no_raw_markup(page.locator("#messages"))
    await shots.both_widths(page, "booked")

    # Its link is the meeting in the sandbox calendar: next Tuesday 15:00, bob invited.
    meeting = await follow(page, booked.get_by_role("link", name="Review of Apollo"))
    start = next_tuesday()
    await expect(meeting.get_by_test_id("summary")).to_have_text("Review of Apollo")
    await expect(meeting.get_by_test_id("when")).to_have_text(
        f"{start:%A %d %B %Y}, 15:00 – 15:30 (UTC)"
    )
    await expect(meeting.get_by_test_id("attendee")).to_have_text(["Bob Brown <bob@example.com>"])
    await shots.take(meeting, "meeting")
    await meeting.close()

    # The top bar's Calendar opens everyone's week: the new meeting is in alice's calendar
    # and in bob's, the guest's.
    week = await follow(page, page.get_by_test_id("open-calendar"))
    await expect(week.locator("h1")).to_have_text("Sandbox calendars")
    await expect(week.get_by_role("link", name="Review of Apollo")).to_have_count(2)
    await shots.take(week, "calendars-1100")
    await week.set_viewport_size(NARROW)
    await shots.take(week, "calendars-420")
    await week.close()
    await page.set_viewport_size(NARROW)
    await expect(page.get_by_test_id("open-calendar")).to_be_in_viewport()
    await shots.take(page, "top-bar-420")


async def test_someone_without_the_calendar_permission_is_refused_plainly(
    sandbox_url: str, chromium: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    shots = Shots(tmp_path)
    page = await open_workspace(chromium, sandbox_url, "U0CAROL")
    await link(page, "carol")
    await open_channel(page, "C0GENERAL")  # carol is not in #apollo
    await send(page, REQUEST)
    refused = messages(page, "You aren't allowed to read calendars or book meetings")
    await expect(refused).to_have_count(1, timeout=TIMEOUT)
    await expect(refused).to_contain_text("Your pmbot admin can give you access")
    assert await refused.get_attribute("data-ephemeral") == "true"
    await expect(page.get_by_role("button", name="Connect Google Calendar")).to_have_count(0)
    await no_raw_markup(page.locator("#messages"))
    await shots.both_widths(page, "refused")


async def test_the_plain_commands_book_list_and_post_as_the_person(
    sandbox_url: str, chromium: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    shots = Shots(tmp_path)
    page = await open_workspace(chromium, sandbox_url, "U0BOB")
    await link(page, "bob")
    await open_channel(page, "C0APOLLO")

    await send(page, '/pm schedule "Apollo review" next tue 15:00 30m with @alice')
    offer = messages(page, "I need your Google Calendar account connected")
    tab = await follow(page, offer.get_by_role("button", name="Connect Google Calendar"))
    await tab.get_by_test_id("continue").click()
    await tab.get_by_test_id("consent-allow").click()
    await expect(tab.get_by_test_id("connected")).to_be_visible()
    await tab.close()
    booked = messages(page, "Booked")
    await expect(booked).to_contain_text("with @alice invited", timeout=TIMEOUT)

    await send(page, "/pm events week")
    events = messages(page, "Your events in the next 7 days")
    await expect(events).to_contain_text("Apollo review", timeout=TIMEOUT)

    await send(page, '/pm post #apollo "The Apollo review is booked for Tuesday."')
    offer = messages(page, "I need your Slack account connected")
    tab = await follow(page, offer.get_by_role("button", name="Connect Slack"))
    await tab.get_by_test_id("continue").click()
    # Slack's consent names the person as Slack shows them.
    await expect(tab.get_by_test_id("consent-account")).to_have_text("@bob")
    await tab.set_viewport_size(NARROW)
    await shots.take(tab, "slack-consent-420")
    await tab.get_by_test_id("consent-allow").click()
    await expect(tab.get_by_test_id("connected")).to_be_visible()
    await tab.close()
    posted = page.locator("#messages [data-testid=message][data-user=U0BOB]").filter(
        has_text="The Apollo review is booked for Tuesday."
    )
    await expect(posted).to_have_count(1, timeout=TIMEOUT)
    await expect(messages(page, "Posted in")).to_contain_text("#apollo as you")
    await no_raw_markup(page.locator("#messages"))
    await shots.both_widths(page, "commands")
