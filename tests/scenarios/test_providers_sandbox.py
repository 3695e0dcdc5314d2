"""Sandbox mode end to end for the provider APIs: the bot's own ``Deps.calendar`` and
``Deps.slack_as_user`` (built by the composition root from the settings' sandbox defaults)
book a meeting in the sandbox calendar and post as the person in the Slack sandbox, with
tokens from the one federation ``mount_sandbox`` created."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp

from bot.providers.google_calendar import WRITE_EVENTS_SCOPES
from bot.vault.ports import ProviderToken
from sandbox.federation import FEDERATION_KEY, ConnectedAccount, Federation
from tests.support import running_bot, serving_sandbox_mode

GOOGLE = frozenset(
    {
        "https://www.googleapis.com/auth/calendar.events",
        "https://www.googleapis.com/auth/calendar.freebusy",
    }
)


def connect(
    federation: Federation, connection: str, account: str, scopes: frozenset[str], prefix: str
) -> ProviderToken:
    connected = ConnectedAccount("auth0|alice", connection, account, scopes)
    federation.connect(connected)
    return ProviderToken(
        access_token=federation.issue(connected, prefix=prefix),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        scopes=scopes,
    )


async def test_sandbox_mode_books_meetings_and_posts_as_the_person(database_url: str) -> None:
    async with (
        serving_sandbox_mode(database_url) as (app, deps, url),
        aiohttp.ClientSession() as http,
    ):
        assert deps.settings.google_calendar_api_url == f"{url}/sandbox/calendar/calendar/v3/"
        federation = app[FEDERATION_KEY]
        assert GOOGLE & WRITE_EVENTS_SCOPES
        google = connect(federation, "google-oauth2", "alice@example.com", GOOGLE, "ya29.")
        slack = connect(
            federation, "sign-in-with-slack", "U0ALICE", frozenset({"chat:write"}), "xoxp-"
        )

        start = (datetime.now(UTC) + timedelta(days=30)).replace(minute=0, second=0, microsecond=0)
        event = await deps.calendar.insert_event(
            google,
            summary="Apollo review",
            start=start,
            end=start + timedelta(minutes=30),
            attendees=["bob@example.com"],
            request_id="scenario-1",
        )
        assert event.html_link == f"{url}/sandbox/calendar/event/{event.id}"
        async with http.get(event.html_link) as page:
            assert page.status == 200
            assert "Apollo review" in await page.text()
        busy = await deps.calendar.free_busy(
            google,
            emails=["bob@example.com"],
            time_min=start - timedelta(hours=1),
            time_max=start + timedelta(hours=1),
        )
        assert [(b.start, b.end) for b in busy["bob@example.com"]] == [(event.start, event.end)]

        posted = await deps.slack_as_user.post_message(
            slack, channel="C0APOLLO", text="Booked the Apollo review."
        )
        assert posted.permalink is not None
        assert posted.permalink.startswith(f"{url}/sandbox/archives/C0APOLLO/p")
        async with http.get(f"{url}/sandbox/ui/messages", params={"channel": "C0APOLLO"}) as r:
            messages = (await r.json())["messages"]
        [mine] = [m for m in messages if m["ts"] == posted.ts]
        assert mine["user"] == "U0ALICE" and "bot_id" not in mine
        # The workspace page and the calendar page are both still where they were.
        async with http.get(f"{url}/sandbox/") as page:
            assert page.status == 200 and "text/html" in page.headers["Content-Type"]
        async with http.get(f"{url}/sandbox/calendar/") as page:
            assert page.status == 200 and "Sandbox calendars" in await page.text()


async def test_the_test_harness_gives_the_bot_the_provider_sandboxes(database_url: str) -> None:
    async with running_bot(database_url) as h:
        assert h.federation is not None and h.calendar is not None
        google = connect(h.federation, "google-oauth2", "alice@example.com", GOOGLE, "ya29.")
        slack = connect(
            h.federation, "sign-in-with-slack", "U0ALICE", frozenset({"chat:write"}), "xoxp-"
        )
        start = datetime.now(UTC)
        events = await h.deps.calendar.list_events(
            google, time_min=start, time_max=start + timedelta(days=8)
        )
        assert len(events) == 5  # alice's demo week
        posted = await h.deps.slack_as_user.post_message(slack, channel="C0GENERAL", text="hi")
        [message] = h.sandbox.messages("C0GENERAL")
        assert (message["ts"], message["user"]) == (posted.ts, "U0ALICE")
        assert "bot_id" not in message
