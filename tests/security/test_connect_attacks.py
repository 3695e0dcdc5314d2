"""Attacks on the connect flow, each through the real HTTP surface (SQLite and PostgreSQL).

Each test says what the attacker tries and checks that nothing is connected and nothing
resumes: cross-site starts, forged anti-forgery tokens, forged or replayed states, a
callback finished in someone else's browser, expired links, hostile ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import update
from yarl import URL

from bot.identity.model import utcnow
from bot.vault.models import ConnectRequest
from bot.vault.ports import Connection
from tests.fakes.connect import CSRF, browser, consent, linked, same_origin, start
from tests.support import Harness, running_bot


class Resumed:
    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, resume_id: str) -> None:
        self.ids.append(resume_id)


@pytest.fixture
async def bot(database_url: str) -> AsyncIterator[Harness]:
    async with running_bot(database_url) as harness:
        harness.deps.connect.resume_hook = Resumed()
        yield harness


def resumed(bot: Harness) -> list[str]:
    hook = bot.deps.connect.resume_hook
    assert isinstance(hook, Resumed)
    return hook.ids


def connected(bot: Harness, sub: str) -> bool:
    return bot.idp.federation.account(sub, "google-oauth2") is not None


async def row(bot: Harness, url: str) -> ConnectRequest:
    async with bot.deps.db.session() as session:
        found = await session.get(ConnectRequest, url.rsplit("/", 1)[1])
    assert found is not None
    return found


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
    ],
    ids=["cross-site", "origin-null", "same-site", "foreign-origin"],
)
async def test_a_cross_site_post_cannot_start_connecting(
    bot: Harness, headers: dict[str, str]
) -> None:
    """Another site auto-submits the victim's connect form: 403 before anything starts,
    even with the page's own anti-forgery token."""
    alice = await linked(bot, "U0ALICE", "alice@example.com")
    url = await bot.deps.connect.connect_url(alice, Connection.GOOGLE_CALENDAR, resume_id="r")
    async with browser() as victim:
        async with victim.get(url) as page:
            match = CSRF.search(await page.text())
        assert match is not None
        async with victim.post(
            url, data={"csrf": match.group(1)}, headers=headers, allow_redirects=False
        ) as answer:
            assert answer.status == 403
            assert "Location" not in answer.headers
    assert (await row(bot, url)).started_at is None


@pytest.mark.parametrize("forgery", ["no-token", "wrong-token", "no-cookie", "json-body"])
async def test_a_forged_start_is_refused(bot: Harness, forgery: str) -> None:
    alice = await linked(bot, "U0ALICE", "alice@example.com")
    url = await bot.deps.connect.connect_url(alice, Connection.GOOGLE_CALENDAR)
    other = await bot.deps.connect.connect_url(alice, Connection.GOOGLE_CALENDAR)
    async with browser() as b:
        async with b.get(other) as page:  # a valid token, for another request
            match = CSRF.search(await page.text())
        assert match is not None
        token = match.group(1)
        async with b.get(url) as page:
            assert page.status == 200
        kwargs: dict[str, object] = {"data": {"csrf": token}}
        if forgery == "no-token":
            kwargs = {"data": {"x": "1"}}
        elif forgery == "no-cookie":
            b.cookie_jar.clear()
            async with b.get(other) as page:
                kwargs = {"data": {"csrf": CSRF.search(await page.text()).group(1)}}  # type: ignore[union-attr]
            b.cookie_jar.clear()
        elif forgery == "json-body":
            kwargs = {"json": {"csrf": token}}
        async with b.post(url, headers=same_origin(bot), allow_redirects=False, **kwargs) as answer:  # type: ignore[arg-type]
            text = await answer.text()
            assert answer.status == 403, text
    assert "did not come from pmbot" in text
    assert (await row(bot, url)).started_at is None


async def test_a_forged_state_is_refused(bot: Harness) -> None:
    alice = await linked(bot, "U0ALICE", "alice@example.com")
    url = await bot.deps.connect.connect_url(alice, Connection.GOOGLE_CALENDAR, resume_id="r")
    async with browser() as b:
        _page, provider_url = await start(bot, b, url)
        _consent, callback = await consent(b, provider_url)
        real = URL(callback)
        forged = real.update_query(state="A" * 43)
        async with b.get(str(forged)) as answer:
            assert answer.status == 400
            assert "not valid" in await answer.text()
        missing = real.without_query_params("state")
        async with b.get(str(missing)) as answer:
            assert answer.status == 400
            assert "incomplete" in await answer.text()
        wrong_code = real.update_query(connect_code="forged-code")
        async with b.get(str(wrong_code)) as answer:
            assert answer.status == 400
            assert "did not accept" in await answer.text()
        # The state was used up by that attempt: the real code cannot finish it either.
        async with b.get(callback) as answer:
            assert answer.status == 400
            assert "already used" in await answer.text()
    assert not connected(bot, alice.sub)
    assert resumed(bot) == []


async def test_a_replayed_callback_is_refused(bot: Harness) -> None:
    alice = await linked(bot, "U0ALICE", "alice@example.com")
    url = await bot.deps.connect.connect_url(alice, Connection.GOOGLE_CALENDAR, resume_id="r")
    async with browser() as b:
        _page, provider_url = await start(bot, b, url)
        _consent, callback = await consent(b, provider_url)
        async with b.get(callback) as first:
            assert first.status == 200
        async with b.get(callback) as again:
            assert again.status == 400
            assert "already used" in await again.text()
    assert resumed(bot) == ["r"], "resumed once"


async def test_a_callback_in_someone_elses_browser_connects_nothing(bot: Harness) -> None:
    """Mallory starts connecting her own link, then gets Alice's browser to open the
    callback URL (or the reverse): the state is bound to the browser that started it."""
    alice = await linked(bot, "U0ALICE", "alice@example.com")
    url = await bot.deps.connect.connect_url(alice, Connection.GOOGLE_CALENDAR, resume_id="r")
    async with browser() as starter, browser() as other:
        _page, provider_url = await start(bot, starter, url)
        _consent, callback = await consent(starter, provider_url)
        async with other.get(callback) as answer:
            text = await answer.text()
            assert answer.status == 400
        assert "another browser" in text
        # The request is not used up by the refusal: its own browser still finishes it.
        async with starter.get(callback) as answer:
            assert answer.status == 200
    assert connected(bot, alice.sub)


async def test_someone_else_cannot_connect_an_account_to_my_request(bot: Harness) -> None:
    """The link is made for Alice's identity: whoever opens it, the account connected is
    the one of the identity behind the link (the My Account token is Alice's)."""
    alice = await linked(bot, "U0ALICE", "alice@example.com")
    url = await bot.deps.connect.connect_url(alice, Connection.GOOGLE_CALENDAR)
    async with browser() as b:
        _page, provider_url = await start(bot, b, url)
        consent_html, callback = await consent(b, provider_url)
        assert "alice@example.com" in consent_html
        async with b.get(callback) as answer:
            assert answer.status == 200
    account = bot.idp.federation.account(alice.sub, "google-oauth2")
    assert account is not None and account.account == "alice@example.com"


async def test_expired_and_used_requests_get_clear_pages(bot: Harness) -> None:
    alice = await linked(bot, "U0ALICE", "alice@example.com")
    url = await bot.deps.connect.connect_url(alice, Connection.GOOGLE_CALENDAR)
    async with bot.deps.db.session() as session:
        await session.execute(
            update(ConnectRequest)
            .where(ConnectRequest.id == url.rsplit("/", 1)[1])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    async with browser() as b:
        async with b.get(url) as page:
            text = await page.text()
            assert page.status == 400
            assert page.headers["X-Frame-Options"] == "DENY"
            assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        assert "has expired" in text
    # A flow that expires between Continue and the callback.
    url2 = await bot.deps.connect.connect_url(alice, Connection.GOOGLE_CALENDAR)
    async with browser() as b:
        _page, provider_url = await start(bot, b, url2)
        _consent, callback = await consent(b, provider_url)
        async with bot.deps.db.session() as session:
            await session.execute(
                update(ConnectRequest)
                .where(ConnectRequest.id == url2.rsplit("/", 1)[1])
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        async with b.get(callback) as answer:
            assert answer.status == 400
            assert "has expired" in await answer.text()
    assert not connected(bot, alice.sub)


@pytest.mark.parametrize(
    "path",
    [
        "/connect/" + quote("\x00" * 40),
        "/connect/" + "a" * 300,
        "/connect/abc",
        "/connect/" + quote("'><img src=x onerror=alert(1)>" + "a" * 30),
        "/connect/callback?state=" + quote("\x00" * 43) + "&connect_code=x",
        "/connect/callback?state=" + "b" * 500 + "&connect_code=x",
        "/connect/callback?state=" + quote("é" * 43) + "&connect_code=x",
        "/connect/callback?connect_code=x",
    ],
    ids=["nul", "long", "short", "markup", "state-nul", "state-long", "state-unicode", "no-state"],
)
async def test_hostile_ids_get_a_clear_page(bot: Harness, path: str) -> None:
    async with browser() as b:
        async with b.get(bot.bot_url + path) as page:
            text = await page.text()
            assert page.status == 400, text
            assert page.content_type == "text/html"
        async with b.post(
            bot.bot_url + path.split("?", 1)[0], data={"csrf": "x"}, headers=same_origin(bot)
        ) as posted:
            assert posted.status in {400, 403, 405}, await posted.text()
    assert "<img" not in text
    assert "Connecting failed" in text


async def test_unknown_request_page(bot: Harness) -> None:
    async with browser() as b, b.get(f"{bot.bot_url}/connect/{'Z' * 43}") as page:
        assert page.status == 400
        assert "not valid" in await page.text()
