"""The sandbox calendar over plain HTTP: Google's wire shapes (errors, pages, ids), token
and scope checks, the demo week and the pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from sandbox.calendar import CalendarService
from sandbox.federation import ConnectedAccount, Federation

AUTH = "https://www.googleapis.com/auth/"
NOW = datetime(2030, 6, 5, 8, 0, tzinfo=UTC)  # a Wednesday


@dataclass
class Env:
    federation: Federation
    service: CalendarService
    base: str
    http: aiohttp.ClientSession

    def headers(self, email: str = "alice@example.com", *scopes: str) -> dict[str, str]:
        account = ConnectedAccount(
            f"auth0|{email}",
            "google-oauth2",
            email,
            frozenset(AUTH + s for s in scopes or ("calendar",)),
        )
        self.federation.connect(account)
        return {"Authorization": f"Bearer {self.federation.issue(account)}"}

    async def call(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        url = self.base + "calendar/v3/" + path
        async with self.http.request(method, url, headers=headers, **kwargs) as resp:
            return resp.status, await resp.json(), dict(resp.headers)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    federation = Federation()
    service = CalendarService(federation=federation, now=NOW)
    async with service.serve() as base, aiohttp.ClientSession() as http:
        yield Env(federation, service, base, http)


def window(days: int = 10) -> dict[str, str]:
    return {"timeMin": NOW.isoformat(), "timeMax": (NOW + timedelta(days=days)).isoformat()}


def assert_google_error(body: dict[str, Any], code: int, reason: str, status: str) -> None:
    error = body["error"]
    assert error["code"] == code and error["status"] == status
    assert error["errors"][0]["reason"] == reason
    assert isinstance(error["message"], str) and error["message"]


async def test_the_demo_week_gives_everyone_meetings_on_working_days(env: Env) -> None:
    days: set[str] = set()
    for handle in ("alice", "bob", "carol", "dave"):
        status, body, _ = await env.call(
            "GET",
            "calendars/primary/events",
            env.headers(f"{handle}@example.com"),
            params={**window(), "singleEvents": "true", "orderBy": "startTime"},
        )
        assert status == 200 and body["kind"] == "calendar#events"
        assert len(body["items"]) >= 4, handle
        for item in body["items"]:
            start = datetime.fromisoformat(item["start"]["dateTime"])
            assert start > NOW and start.weekday() < 5
            days.add(start.date().isoformat())
    # Thursday 6 June 2030 to Wednesday 12 June: the weekend is skipped.
    assert sorted(days) == ["2030-06-06", "2030-06-07", "2030-06-10", "2030-06-11", "2030-06-12"]


async def test_requests_without_a_valid_token_get_googles_401(env: Env) -> None:
    status, body, headers = await env.call("GET", "calendars/primary/events")
    assert status == 401
    assert_google_error(body, 401, "required", "UNAUTHENTICATED")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, body, _ = await env.call(
        "GET", "calendars/primary/events", {"Authorization": "Bearer ya29.made-up"}
    )
    assert status == 401
    assert_google_error(body, 401, "authError", "UNAUTHENTICATED")


async def test_a_token_without_the_scope_gets_googles_403(env: Env) -> None:
    status, body, headers = await env.call(
        "POST",
        "calendars/primary/events",
        env.headers("alice@example.com", "calendar.readonly"),
        json={"start": {"dateTime": NOW.isoformat()}, "end": {"dateTime": NOW.isoformat()}},
    )
    assert status == 403
    assert_google_error(body, 403, "insufficientPermissions", "PERMISSION_DENIED")
    assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]
    assert AUTH + "calendar.events" in headers["WWW-Authenticate"]


async def test_only_the_accounts_own_calendar_is_open(env: Env) -> None:
    alice = env.headers()
    params = {**window(), "singleEvents": "true"}
    status, body, _ = await env.call(
        "GET", "calendars/bob@example.com/events", alice, params=params
    )
    assert status == 404
    assert_google_error(body, 404, "notFound", "NOT_FOUND")
    status, body, _ = await env.call(
        "GET", "calendars/alice@example.com/events", alice, params=params
    )
    assert status == 200 and body["summary"] == "alice@example.com"


async def test_bad_parameters_are_googles_400(env: Env) -> None:
    alice = env.headers()
    cases = [
        {**window(), "orderBy": "startTime"},  # without singleEvents
        {"timeMin": "2030-06-05T08:00:00", "timeMax": "2030-06-06T08:00:00Z"},  # no offset
        {"timeMin": "yesterday"},
        {**window(), "maxResults": "0"},
        {**window(), "pageToken": "bm90LWEtdG9rZW4"},
    ]
    for params in cases:
        status, body, _ = await env.call("GET", "calendars/primary/events", alice, params=params)
        assert status == 400, params
        assert body["error"]["code"] == 400


async def test_a_page_token_only_continues_its_own_query(env: Env) -> None:
    alice = env.headers()
    first = {**window(), "singleEvents": "true", "orderBy": "startTime", "maxResults": "2"}
    status, body, _ = await env.call("GET", "calendars/primary/events", alice, params=first)
    assert status == 200 and len(body["items"]) == 2
    token = body["nextPageToken"]
    status, body, _ = await env.call(
        "GET", "calendars/primary/events", alice, params={**first, "pageToken": token}
    )
    assert status == 200 and len(body["items"]) == 2
    other = {**first, **window(days=3), "pageToken": token}
    status, body, _ = await env.call("GET", "calendars/primary/events", alice, params=other)
    assert status == 400


async def test_insert_checks_the_id_and_reads_local_times_in_their_zone(env: Env) -> None:
    alice = env.headers()
    event = {
        "id": "abcdefv0123",
        "summary": "Zoned",
        "start": {"dateTime": "2030-07-01T15:00:00", "timeZone": "Europe/Paris"},
        "end": {"dateTime": "2030-07-01T15:30:00", "timeZone": "Europe/Paris"},
        "attendees": [{"email": "bob@example.com"}],
    }
    status, body, _ = await env.call(
        "POST", "calendars/primary/events", alice, params={"sendUpdates": "all"}, json=event
    )
    assert status == 200
    assert body["id"] == "abcdefv0123"
    assert body["start"] == {"dateTime": "2030-07-01T13:00:00Z", "timeZone": "Europe/Paris"}
    assert body["organizer"] == {"email": "alice@example.com", "self": True}
    assert body["attendees"][1] == {"email": "bob@example.com", "responseStatus": "needsAction"}
    status, body, _ = await env.call("POST", "calendars/primary/events", alice, json=event)
    assert status == 409
    assert_google_error(body, 409, "duplicate", "ALREADY_EXISTS")
    for bad_id in ("ABCDEF123", "abc", "wxyz12345"):
        status, body, _ = await env.call(
            "POST", "calendars/primary/events", alice, json={**event, "id": bad_id}
        )
        assert status == 400, bad_id
    status, body, _ = await env.call(
        "POST",
        "calendars/primary/events",
        alice,
        json={**event, "id": None, "start": {"dateTime": "2030-07-01T15:00:00"}},
    )
    assert status == 400  # a local time without its zone
    # Bob sees the invitation on his calendar under the same id.
    status, body, _ = await env.call(
        "GET", "calendars/primary/events/abcdefv0123", env.headers("bob@example.com")
    )
    assert status == 200 and body["attendees"][1]["self"] is True


async def test_free_busy_merges_overlaps_and_reports_unknown_calendars(env: Env) -> None:
    alice = env.headers()
    start = datetime(2030, 7, 2, 9, 0, tzinfo=UTC)
    for minutes, length in ((0, 60), (30, 60), (180, 30)):
        begin = start + timedelta(minutes=minutes)
        status, _, _ = await env.call(
            "POST",
            "calendars/primary/events",
            alice,
            json={
                "summary": "x",
                "start": {"dateTime": begin.isoformat()},
                "end": {"dateTime": (begin + timedelta(minutes=length)).isoformat()},
            },
        )
        assert status == 200
    status, body, _ = await env.call(
        "POST",
        "freeBusy",
        env.headers("bob@example.com", "calendar.freebusy"),
        json={
            "timeMin": "2030-07-02T00:00:00Z",
            "timeMax": "2030-07-03T00:00:00Z",
            "items": [{"id": "alice@example.com"}, {"id": "ghost@example.com"}],
        },
    )
    assert status == 200
    assert body["calendars"]["alice@example.com"]["busy"] == [
        {"start": "2030-07-02T09:00:00Z", "end": "2030-07-02T10:30:00Z"},
        {"start": "2030-07-02T12:00:00Z", "end": "2030-07-02T12:30:00Z"},
    ]
    assert body["calendars"]["ghost@example.com"]["errors"][0]["reason"] == "notFound"


async def test_injected_faults_answer_like_google(env: Env) -> None:
    alice = env.headers()
    env.service.fail_next("rate_limited", retry_after=9)
    status, body, headers = await env.call("GET", "calendars/primary/events", alice)
    assert status == 429 and headers["Retry-After"] == "9"
    assert_google_error(body, 429, "rateLimitExceeded", "RESOURCE_EXHAUSTED")
    assert body["error"]["errors"][0]["domain"] == "usageLimits"
    env.service.fail_next("unavailable", method="freebusy.query")
    status, _, _ = await env.call("GET", "calendars/primary/events", alice)
    assert status == 200  # the fault waits for its method
    status, body, _ = await env.call(
        "POST", "freeBusy", alice, json={**window(), "items": [{"id": "primary"}]}
    )
    assert status == 503
    with pytest.raises(ValueError):
        env.service.fail_next("rate_limited", method="events.delete")


async def test_the_event_page_shows_the_event_escaped(env: Env) -> None:
    status, body, _ = await env.call(
        "POST",
        "calendars/primary/events",
        env.headers(),
        json={
            "summary": "<script>alert(1)</script> Apollo review",
            "description": "<img src=x onerror=alert(2)>",
            "start": {"dateTime": "2030-07-02T15:00:00Z"},
            "end": {"dateTime": "2030-07-02T15:30:00Z"},
            "attendees": [{"email": "bob@example.com"}],
        },
    )
    assert status == 200
    async with env.http.get(body["htmlLink"]) as resp:
        html = await resp.text()
        assert resp.status == 200
        assert "script-src" not in resp.headers["Content-Security-Policy"]
        assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Apollo review" in html
    assert "Bob Brown &lt;bob@example.com&gt;" in html
    assert "Tuesday 02 July 2030, 15:00 – 15:30 (UTC)" in html
    for missing in ("event/abcdefghij", "event/..%2F..%2Fetc"):
        async with env.http.get(env.base + missing) as resp:
            assert resp.status == 404
    async with env.http.get(env.base) as resp:
        index = await resp.text()
    assert "Carol Chen" in index


async def test_the_week_page_names_each_day_once_and_escapes_titles(env: Env) -> None:
    day = datetime.now(UTC).date() + timedelta(days=1)  # the page shows the coming week
    for start, summary in (("15:00", "<b>Apollo</b> review"), ("16:00", "Apollo retro")):
        status, _, _ = await env.call(
            "POST",
            "calendars/primary/events",
            env.headers(),
            json={
                "summary": summary,
                "start": {"dateTime": f"{day}T{start}:00Z"},
                "end": {"dateTime": f"{day}T{start[:2]}:30:00Z"},
            },
        )
        assert status == 200
    async with env.http.get(env.base) as resp:
        html = await resp.text()
    alice = html.split("Alice Anders", 1)[1].split("</table>", 1)[0]
    assert alice.count(f"{day:%a %d %b}") == 1  # the day once, then only times
    assert "<td class='time'>15:00–15:30</td>" in alice
    assert "<td class='time'>16:00–16:30</td>" in alice
    assert "&lt;b&gt;Apollo&lt;/b&gt; review" in alice and "<b>Apollo" not in html
    assert "<span class='email'>alice@example.com</span>" in html
    assert "in UTC" in html
