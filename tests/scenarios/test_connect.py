"""Connecting a provider account through the real HTTP surface: pmbot's page, the dev
identity provider's My Account API and consent page, the callback, and the resume of the
request that waited for the account (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from yarl import URL

from bot.cli import secrets_of
from bot.identity.model import utcnow
from bot.logs import configure_logging
from bot.vault.models import ConnectRequest
from bot.vault.ports import Connection, ConnectionRequired
from tests.fakes.connect import (
    browser,
    connect_through_browser,
    consent,
    linked,
    start,
    stored_refresh_token,
    walk_to_callback,
)
from tests.support import Harness, eventually, running_bot


class Resumed:
    """The resume hook as the agent plugs it in: records what it was asked to resume."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, resume_id: str) -> None:
        self.ids.append(resume_id)


@pytest.fixture
async def bot(database_url: str) -> AsyncIterator[Harness]:
    async with running_bot(database_url) as harness:
        yield harness


async def request_row(bot: Harness, url: str) -> ConnectRequest:
    async with bot.deps.db.session() as session:
        row = await session.get(ConnectRequest, url.rsplit("/", 1)[1])
    assert row is not None
    return row


async def test_connecting_google_calendar_resumes_the_waiting_request(bot: Harness) -> None:
    """The whole flow with DEBUG logs on (the access log, urllib3 and aiohttp print
    requests at that level): nothing of the flow's secrets reaches what was logged."""
    stream = io.StringIO()
    configure_logging("text", "DEBUG", secrets_of(bot.settings), stream=stream)
    # The identity provider's access log prints the consent page's URL with its ticket.
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG)
    try:
        await connect_and_resume(bot)
    finally:
        configure_logging("text", "WARNING", [])
    logged = stream.getvalue()
    assert "/oauth/token" in logged and "connected-accounts/connect?ticket=" in logged
    for secret in SEEN:
        assert secret not in logged


SEEN: list[str] = []


async def connect_and_resume(bot: Harness) -> None:
    alice = await linked(bot, "U0ALICE", "alice@example.com")
    resumed = Resumed()
    bot.deps.connect.resume_hook = resumed
    with pytest.raises(ConnectionRequired) as needed:
        await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    url = await bot.deps.connect.connect_url(
        alice, needed.value.connection, scopes=needed.value.missing_scopes, resume_id="req-42"
    )
    assert url.startswith(f"{bot.bot_url}/connect/")
    async with browser() as b:
        walk = await walk_to_callback(bot, b, url)
        # pmbot's page names the person and the account; the provider's page asks.
        assert "Connect Google Calendar" in walk.page
        assert "Alice Anders" in walk.page
        assert "calendar.freebusy" in walk.page
        assert walk.provider_url.startswith(f"{bot.idp_url}/connected-accounts/connect?ticket=")
        assert "Allow pmbot to manage your Google Calendar?" in walk.consent
        assert "alice@example.com" in walk.consent
        assert walk.callback_url.startswith(f"{bot.bot_url}/connect/callback?")
        assert "connect_code=" in walk.callback_url
        assert resumed.ids == [], "nothing resumes before the account is connected"
        async with b.get(walk.callback_url) as final:
            html = await final.text()
            assert final.status == 200, html
            assert final.headers["X-Frame-Options"] == "DENY"
    assert "Google Calendar is connected: go back to Slack" in html
    assert await eventually(lambda: resumed.ids) == ["req-42"]
    token = await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    account = bot.idp.federation.resolve(token.access_token)
    assert account is not None and account.account == "alice@example.com"
    row = await request_row(bot, url)
    assert row.outcome == "connected" and row.auth_session_enc is None
    assert row.state is not None
    callback = URL(walk.callback_url).query
    SEEN[:] = [
        url.rsplit("/", 1)[1],
        token.access_token,
        row.state,
        callback["connect_code"],
        URL(walk.provider_url).query["ticket"],
        await stored_refresh_token(bot, "U0ALICE"),
    ]


async def test_connecting_slack_posts_as_the_person(bot: Harness) -> None:
    alice = await linked(bot, "U0ALICE", "alice@example.com")
    url = await bot.deps.connect.connect_url(alice, Connection.SLACK)
    async with browser() as b:
        walk = await walk_to_callback(bot, b, url)
        assert "Allow pmbot to post to Slack as you?" in walk.consent
        assert "@alice" in walk.consent and "U0ALICE" not in walk.consent
        async with b.get(walk.callback_url) as final:
            html = await final.text()
    assert "Slack is connected: go back to Slack" in html
    assert "You can close this page" in html  # nothing was waiting
    token = await bot.deps.vault.access_token(alice, Connection.SLACK)
    assert token.access_token.startswith("xoxp-")
    account = bot.idp.federation.resolve(token.access_token)
    assert account is not None and account.account == "U0ALICE"


async def test_missing_scopes_are_asked_for_and_the_cached_token_is_replaced(
    bot: Harness,
) -> None:
    alice = await linked(bot, "U0ALICE", "alice@example.com")
    events = frozenset({"https://www.googleapis.com/auth/calendar.events"})
    await connect_through_browser(
        bot, await bot.deps.connect.connect_url(alice, Connection.GOOGLE_CALENDAR)
    )
    old = await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR, scopes=events)
    extra = frozenset({"https://www.googleapis.com/auth/calendar.readonly"})
    with pytest.raises(ConnectionRequired) as needed:
        await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR, scopes=extra)
    assert needed.value.missing_scopes == extra
    url = await bot.deps.connect.connect_url(
        alice, Connection.GOOGLE_CALENDAR, scopes=needed.value.missing_scopes
    )
    html = await connect_through_browser(bot, url)
    assert "Google Calendar is connected" in html
    new = await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR, scopes=extra)
    assert new.access_token != old.access_token
    assert events | extra <= new.scopes  # what was granted before stays granted


async def test_denying_at_the_provider_connects_nothing(bot: Harness) -> None:
    alice = await linked(bot, "U0ALICE", "alice@example.com")
    resumed = Resumed()
    bot.deps.connect.resume_hook = resumed
    url = await bot.deps.connect.connect_url(alice, Connection.GOOGLE_CALENDAR, resume_id="r1")
    async with browser() as b:
        walk = await walk_to_callback(bot, b, url, decision="deny")
        assert "error=access_denied" in walk.callback_url
        async with b.get(walk.callback_url) as final:
            html = await final.text()
    assert "You did not allow access" in html
    assert (await request_row(bot, url)).outcome == "denied"
    with pytest.raises(ConnectionRequired):
        await bot.deps.vault.access_token(alice, Connection.GOOGLE_CALENDAR)
    assert resumed.ids == []


async def test_an_outage_when_starting_leaves_the_link_usable(bot: Harness) -> None:
    alice = await linked(bot, "U0ALICE", "alice@example.com")
    url = await bot.deps.connect.connect_url(alice, Connection.GOOGLE_CALENDAR)
    async with browser() as b:
        async with b.get(url) as page:
            html = await page.text()
        bot.idp.set_unavailable(True)
        from tests.fakes.connect import CSRF, same_origin

        match = CSRF.search(html)
        assert match is not None
        async with b.post(
            url, data={"csrf": match.group(1)}, headers=same_origin(bot), allow_redirects=False
        ) as answer:
            text = await answer.text()
            assert answer.status == 503, text
        assert "unreachable" in text
        bot.idp.set_unavailable(False)
    assert (await request_row(bot, url)).started_at is None
    assert "is connected" in await connect_through_browser(bot, url)


async def test_a_link_made_for_a_replaced_identity_connects_nothing(bot: Harness) -> None:
    """Linked to Alice's identity when the link was made; Dave's Slack account is now
    linked to another identity: the link is refused, nothing is connected."""
    dave = await linked(bot, "U0DAVE", "dave@example.com")
    url = await bot.deps.connect.connect_url(dave, Connection.GOOGLE_CALENDAR)
    await bot.deps.identity.unlink(dave.team_id, "U0DAVE")
    async with browser() as b:
        html, _ = await start_refused(bot, b, url)
    assert "no longer linked" in html
    assert bot.idp.federation.account(dave.sub, "google-oauth2") is None


async def start_refused(bot: Harness, b: object, url: str) -> tuple[str, int]:
    import aiohttp

    from tests.fakes.connect import CSRF, same_origin

    assert isinstance(b, aiohttp.ClientSession)
    async with b.get(url) as page:
        html = await page.text()
    match = CSRF.search(html)
    assert match is not None
    async with b.post(
        url, data={"csrf": match.group(1)}, headers=same_origin(bot), allow_redirects=False
    ) as answer:
        return await answer.text(), answer.status


async def test_expired_requests_are_swept(bot: Harness) -> None:
    alice = await linked(bot, "U0ALICE", "alice@example.com")
    old = await bot.deps.connect.connect_url(alice, Connection.GOOGLE_CALENDAR)
    fresh = await bot.deps.connect.connect_url(alice, Connection.SLACK)
    async with bot.deps.db.session() as session:
        await session.execute(
            update(ConnectRequest)
            .where(ConnectRequest.id == old.rsplit("/", 1)[1])
            .values(expires_at=utcnow() - timedelta(hours=2))
        )
    assert await bot.deps.connect.sweep() == 1
    async with bot.deps.db.session() as session:
        ids = set(await session.scalars(select(ConnectRequest.id)))
    assert ids == {fresh.rsplit("/", 1)[1]}


async def test_the_provider_page_and_callback_are_reached_in_order(bot: Harness) -> None:
    """Starting twice is refused: one request, one flow."""
    alice = await linked(bot, "U0ALICE", "alice@example.com")
    url = await bot.deps.connect.connect_url(alice, Connection.GOOGLE_CALENDAR)
    async with browser() as b:
        _page, provider_url = await start(bot, b, url)
        async with b.get(url) as again:
            assert again.status == 400
            assert "already used" in await again.text()
        _consent, callback = await consent(b, provider_url)
        async with b.get(callback) as final:
            assert final.status == 200
