"""Sandbox mode in a real browser: a message the bot posted as a person shows on the
workspace page as that person's, and a meeting it booked has a page of its own."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.vault.ports import ProviderToken
from sandbox.federation import FEDERATION_KEY, ConnectedAccount, Federation
from tests.support import serving_sandbox_mode

pytestmark = pytest.mark.e2e
SHOTS = (
    Path(os.environ.get("PMBOT_SCREENSHOTS", "")) if os.environ.get("PMBOT_SCREENSHOTS") else None
)


def token(
    federation: Federation, connection: str, account: str, scopes: set[str], prefix: str
) -> ProviderToken:
    connected = ConnectedAccount(f"auth0|{account}", connection, account, frozenset(scopes))
    federation.connect(connected)
    return ProviderToken(
        access_token=federation.issue(connected, prefix=prefix),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        scopes=frozenset(scopes),
    )


async def shot(page: Any, tmp_path: Path, name: str) -> None:
    folder = SHOTS or tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def test_a_post_as_a_person_shows_as_theirs_and_a_booked_meeting_has_its_page(
    sqlite_url: str, chromium: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    async with serving_sandbox_mode(sqlite_url) as (app, deps, url):
        federation = app[FEDERATION_KEY]
        slack = token(federation, "sign-in-with-slack", "U0ALICE", {"chat:write"}, "xoxp-")
        google = token(
            federation,
            "google-oauth2",
            "alice@example.com",
            {"https://www.googleapis.com/auth/calendar.events"},
            "ya29.",
        )
        start = datetime(2031, 3, 4, 15, 0, tzinfo=UTC)
        event = await deps.calendar.insert_event(
            google,
            summary="Apollo review",
            start=start,
            end=start + timedelta(minutes=30),
            attendees=["bob@example.com"],
            description="Agenda: <b>scope</b>, dates, risks.",
        )
        await deps.slack.chat_postMessage(channel="C0APOLLO", text="Reminder from the bot.")
        posted = await deps.slack_as_user.post_message(
            slack, channel="C0APOLLO", text=f"Booked the Apollo review: {event.html_link}"
        )

        context = await chromium.new_context(viewport={"width": 1100, "height": 700})
        page = await context.new_page()
        await page.goto(f"{url}/sandbox/?user=U0BOB#C0APOLLO")
        mine = page.locator(f"[data-testid=message][data-ts='{posted.ts}']")
        await expect(mine).to_contain_text("Booked the Apollo review")
        await expect(mine.locator(".author")).to_have_text("alice")
        await expect(mine.locator(".app-tag")).to_have_count(0)
        assert await mine.get_attribute("data-user") == "U0ALICE"
        bots = page.locator("[data-testid=message]").filter(has_text="Reminder from the bot.")
        await expect(bots.locator(".app-tag")).to_have_text("APP")
        await shot(page, tmp_path, "post-as-person")

        assert posted.permalink is not None
        await page.goto(posted.permalink)
        await expect(page).to_have_url(f"{url}/sandbox/#C0APOLLO")

        assert event.html_link is not None
        await page.goto(event.html_link)
        await expect(page.get_by_test_id("summary")).to_have_text("Apollo review")
        await expect(page.get_by_test_id("when")).to_have_text(
            "Tuesday 04 March 2031, 15:00 – 15:30 (UTC)"
        )
        await expect(page.get_by_test_id("organizer")).to_have_text(
            "Alice Anders <alice@example.com>"
        )
        await expect(page.get_by_test_id("attendee")).to_have_text(["Bob Brown <bob@example.com>"])
        await expect(page.get_by_test_id("description")).to_have_text(
            "Agenda: <b>scope</b>, dates, risks."
        )
        await shot(page, tmp_path, "calendar-event")

        await page.get_by_text("All calendars").click()
        await expect(page.locator("h1")).to_have_text("Sandbox calendars")
        await expect(page.locator("h2")).to_have_count(4)
        # The demo week: everyone has meetings in the coming days.
        await expect(page.locator("td a")).not_to_have_count(0)
        await shot(page, tmp_path, "calendars")
        await context.close()
