"""The Google Calendar client (bot/providers/google_calendar.py) against the sandbox
calendar served on 127.0.0.1: the real client, the real service, tokens from the shared
federation of connected accounts."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bot.providers.google_calendar import GoogleCalendarClient, event_id_for
from bot.providers.ports import ProviderRateLimited, ProviderRejected, ProviderUnavailable
from bot.vault.ports import ProviderToken
from sandbox.calendar import CalendarService
from sandbox.federation import ConnectedAccount, Federation

AUTH = "https://www.googleapis.com/auth/"
EVENTS = frozenset({AUTH + "calendar.events", AUTH + "calendar.freebusy"})
ALICE, BOB, CAROL, DAVE = (f"{h}@example.com" for h in ("alice", "bob", "carol", "dave"))


@dataclass
class Env:
    federation: Federation
    service: CalendarService
    base: str
    http: aiohttp.ClientSession
    client: GoogleCalendarClient

    def token(
        self, email: str, scopes: frozenset[str] = EVENTS, connection: str = "google-oauth2"
    ) -> ProviderToken:
        account = ConnectedAccount(
            sub=f"auth0|{email.split('@')[0]}", connection=connection, account=email, scopes=scopes
        )
        self.federation.connect(account)
        issued = self.federation.issue(account)
        return ProviderToken(
            access_token=issued, expires_at=datetime.now(UTC) + timedelta(hours=1), scopes=scopes
        )

    def calls(self, method: str) -> int:
        return sum(1 for c in self.service.api.calls if c["method"] == method)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    federation = Federation()
    service = CalendarService(federation=federation)
    async with service.serve() as base, aiohttp.ClientSession() as http:
        client = GoogleCalendarClient(base_url=base + "calendar/v3/", session=http, timeout=5)
        yield Env(federation, service, base, http, client)


def week() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now, now + timedelta(days=14)


def next_weekday_at(hour: int, days_ahead: int = 21) -> datetime:
    """A time in three weeks, clear of the seeded week."""
    day = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return day + timedelta(days=days_ahead)


async def test_list_events_gives_the_seeded_week_in_start_order(env: Env) -> None:
    start, end = week()
    events = await env.client.list_events(env.token(ALICE), time_min=start, time_max=end)
    assert [e.summary for e in events] == [
        "Apollo stand-up",
        "1:1 Alice / Dave",
        "Apollo stand-up",
        "Apollo stand-up",
        "Quarterly planning prep",
    ]
    assert [e.start for e in events] == sorted(e.start for e in events)
    standup = events[0]
    assert standup.organizer == ALICE
    assert set(standup.attendees) == {BOB, CAROL}
    assert standup.description == "Daily sync on Apollo."
    assert standup.end - standup.start == timedelta(minutes=30)
    assert standup.html_link == f"{env.base}event/{standup.id}"
    one_on_one = events[1]
    assert one_on_one.organizer == DAVE  # an invitation on alice's calendar
    assert one_on_one.attendees == (ALICE,)


async def test_list_events_reads_every_page(env: Env) -> None:
    client = GoogleCalendarClient(
        base_url=env.base + "calendar/v3/", session=env.http, timeout=5, page_size=2
    )
    start, end = week()
    events = await client.list_events(env.token(BOB), time_min=start, time_max=end)
    assert len(events) == 6
    assert len({e.id for e in events}) == 6
    assert env.calls("events.list") == 3  # 2 + 2 + 2


async def test_insert_books_the_meeting_on_the_organizer_and_attendee_calendars(
    env: Env,
) -> None:
    paris = ZoneInfo("Europe/Paris")
    start = next_weekday_at(13).astimezone(paris)
    event = await env.client.insert_event(
        env.token(ALICE),
        summary="Apollo review",
        start=start,
        end=start + timedelta(minutes=30),
        attendees=[BOB, "guest@elsewhere.test"],
        description="Walk through the release.",
        request_id="req-1",
    )
    assert event.summary == "Apollo review"
    assert event.start == start and event.end == start + timedelta(minutes=30)
    assert event.organizer == ALICE
    assert set(event.attendees) == {BOB, "guest@elsewhere.test"}
    assert event.id == event_id_for("req-1")
    window = (start - timedelta(hours=1), start + timedelta(hours=1))
    for email in (ALICE, BOB):
        seen = await env.client.list_events(
            env.token(email), time_min=window[0], time_max=window[1]
        )
        assert [e.id for e in seen] == [event.id], email
    carol = await env.client.list_events(env.token(CAROL), time_min=window[0], time_max=window[1])
    assert carol == []
    busy = await env.client.free_busy(
        env.token(CAROL), emails=[BOB], time_min=window[0], time_max=window[1]
    )
    assert [(b.start, b.end) for b in busy[BOB]] == [(event.start, event.end)]
    assert event.html_link is not None
    async with env.http.get(event.html_link) as page:
        html = await page.text()
    assert page.status == 200
    assert "Apollo review" in html and "Bob Brown" in html


async def test_a_retried_insert_returns_the_first_event_instead_of_a_duplicate(env: Env) -> None:
    token = env.token(ALICE)
    start = next_weekday_at(10)
    args = {"summary": "Once", "start": start, "end": start + timedelta(hours=1)}
    first = await env.client.insert_event(token, attendees=[BOB], request_id="same", **args)
    again = await env.client.insert_event(token, attendees=[BOB], request_id="same", **args)
    assert again.id == first.id
    assert again.html_link == first.html_link
    seen = await env.client.list_events(
        token, time_min=start - timedelta(hours=1), time_max=start + timedelta(hours=2)
    )
    assert [e.summary for e in seen] == ["Once"]
    # Without a request id nothing can tell a retry from a new meeting.
    await env.client.insert_event(token, attendees=[], **args)
    seen = await env.client.list_events(
        token, time_min=start - timedelta(hours=1), time_max=start + timedelta(hours=2)
    )
    assert len(seen) == 2


async def test_free_busy_gives_the_seeded_meetings_and_leaves_unknown_people_out(
    env: Env,
) -> None:
    start, end = week()
    busy = await env.client.free_busy(
        env.token(CAROL),
        emails=[ALICE, DAVE, "nobody@example.com"],
        time_min=start,
        time_max=end,
    )
    assert set(busy) == {ALICE, DAVE}
    assert len(busy[ALICE]) == 5
    assert len(busy[DAVE]) == 4  # design review, 1:1, vendor call, dentist
    assert all(b.end > b.start for b in busy[ALICE])
    nobody = await env.client.free_busy(env.token(CAROL), emails=[], time_min=start, time_max=end)
    assert nobody == {}


@pytest.mark.parametrize(
    ("scopes", "allowed"),
    [
        ({"calendar.readonly"}, {"list", "freebusy"}),
        ({"calendar.events.readonly"}, {"list"}),
        ({"calendar.events"}, {"list", "insert"}),
        ({"calendar.freebusy"}, {"freebusy"}),
        ({"calendar"}, {"list", "insert", "freebusy"}),
        ({"userinfo.email"}, set()),
    ],
)
async def test_scopes_decide_which_methods_a_token_may_call(
    env: Env, scopes: set[str], allowed: set[str]
) -> None:
    token = env.token(ALICE, frozenset(AUTH + s for s in scopes))
    start, end = week()
    later = next_weekday_at(8)
    calls = {
        "list": lambda: env.client.list_events(token, time_min=start, time_max=end),
        "insert": lambda: env.client.insert_event(
            token, summary="x", start=later, end=later + timedelta(hours=1), attendees=[]
        ),
        "freebusy": lambda: env.client.free_busy(token, emails=[BOB], time_min=start, time_max=end),
    }
    for name, call in calls.items():
        if name in allowed:
            await call()
        else:
            with pytest.raises(ProviderRejected) as err:
                await call()
            assert (err.value.status, err.value.reason) == (403, "insufficientPermissions"), name


async def test_tokens_the_calendar_did_not_issue_are_401(env: Env) -> None:
    start, end = week()
    unknown = ProviderToken(access_token="ya29.forged", expires_at=datetime.now(UTC), scopes=EVENTS)
    slack = env.token("U0ALICE", connection="sign-in-with-slack")
    revoked = env.token(ALICE)
    env.federation.disconnect("auth0|alice", "google-oauth2")
    expired_federation = Federation(token_ttl=-1)
    account = ConnectedAccount("auth0|bob", "google-oauth2", BOB, EVENTS)
    expired = ProviderToken(
        access_token=expired_federation.issue(account), expires_at=start, scopes=EVENTS
    )
    for token in (unknown, slack, revoked, expired):
        with pytest.raises(ProviderRejected) as err:
            await env.client.list_events(token, time_min=start, time_max=end)
        assert (err.value.status, err.value.reason) == (401, "authError")


async def test_other_refusals_keep_googles_status_and_reason(env: Env) -> None:
    token = env.token(ALICE)
    start = next_weekday_at(9)
    with pytest.raises(ProviderRejected) as err:
        await env.client.insert_event(
            token, summary="backwards", start=start, end=start - timedelta(hours=1), attendees=[]
        )
    assert (err.value.status, err.value.reason) == (400, "timeRangeEmpty")
    with pytest.raises(ProviderRejected) as err:
        await env.client.insert_event(
            token, summary="x", start=start, end=start + timedelta(hours=1), attendees=["not-mail"]
        )
    assert (err.value.status, err.value.reason) == (400, "invalid")
    wrong_path = GoogleCalendarClient(base_url=env.base + "nowhere/", session=env.http, timeout=5)
    with pytest.raises(ProviderRejected) as err:
        await wrong_path.list_events(token, time_min=start, time_max=start + timedelta(days=1))
    assert (err.value.status, err.value.reason) == (404, "notFound")


async def test_rate_limits_are_raised_with_their_retry_after_and_not_retried(env: Env) -> None:
    token = env.token(ALICE)
    start, end = week()
    env.service.fail_next("rate_limited", retry_after=7, method="events.list")
    with pytest.raises(ProviderRateLimited) as limited:
        await env.client.list_events(token, time_min=start, time_max=end)
    assert limited.value.retry_after == 7.0
    assert env.calls("events.list") == 1
    env.service.fail_next("rate_limited_403")
    with pytest.raises(ProviderRateLimited) as limited:
        await env.client.free_busy(token, emails=[BOB], time_min=start, time_max=end)
    assert limited.value.retry_after is None
    assert len(await env.client.list_events(token, time_min=start, time_max=end)) == 5


@pytest.mark.parametrize("kind", ["server_error", "unavailable"])
async def test_server_errors_are_unavailable(env: Env, kind: str) -> None:
    start, end = week()
    env.service.fail_next(kind)
    with pytest.raises(ProviderUnavailable):
        await env.client.list_events(env.token(ALICE), time_min=start, time_max=end)


async def test_a_slow_calendar_is_cut_at_the_timeout(env: Env) -> None:
    impatient = GoogleCalendarClient(
        base_url=env.base + "calendar/v3/", session=env.http, timeout=0.3
    )
    start, end = week()
    env.service.fail_next("slow", delay=1.5)
    with pytest.raises(ProviderUnavailable):
        await impatient.list_events(env.token(ALICE), time_min=start, time_max=end)


async def test_an_unreachable_calendar_is_unavailable(env: Env) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gone = GoogleCalendarClient(
        base_url=f"http://127.0.0.1:{port}/calendar/v3/", session=env.http, timeout=2
    )
    start, end = week()
    with pytest.raises(ProviderUnavailable):
        await gone.list_events(env.token(ALICE), time_min=start, time_max=end)


async def test_the_token_reaches_no_log_and_no_exception(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("aiohttp", "bot", "sandbox"):
        caplog.set_level(logging.DEBUG, logger=name)
    token = env.token(ALICE, frozenset({AUTH + "calendar.readonly"}))
    start, end = week()
    raised: list[BaseException] = []
    env.service.fail_next("rate_limited", retry_after=3)
    env.service.fail_next("server_error")
    env.service.fail_next("slow", delay=1.5)
    impatient = GoogleCalendarClient(
        base_url=env.base + "calendar/v3/", session=env.http, timeout=0.3
    )
    attempts = [
        lambda: env.client.list_events(token, time_min=start, time_max=end),
        lambda: env.client.list_events(token, time_min=start, time_max=end),
        lambda: impatient.list_events(token, time_min=start, time_max=end),
        lambda: env.client.insert_event(
            token, summary="x", start=start, end=end, attendees=[], request_id="r"
        ),
    ]
    for attempt in attempts:
        try:
            await attempt()
        except (ProviderRejected, ProviderRateLimited, ProviderUnavailable) as exc:
            raised.append(exc)
    assert [type(e).__name__ for e in raised] == [
        "ProviderRateLimited",
        "ProviderUnavailable",
        "ProviderUnavailable",
        "ProviderRejected",
    ]
    secret = token.access_token
    for exc in raised:
        text = "".join(traceback.format_exception(exc))
        assert secret not in text and secret not in repr(exc)
        assert exc.__cause__ is None
    assert secret not in repr(token)
    assert secret not in caplog.text


def test_google_access_tokens_are_redacted_from_log_lines_whatever_logs_them() -> None:
    from bot.logs import REDACTED, RedactingFilter

    line = "calling with ya29.a0AfB_byC-xyz.123 and xoxp-1-2-3 for alice"
    assert RedactingFilter().redact(line) == f"calling with {REDACTED} and {REDACTED} for alice"
