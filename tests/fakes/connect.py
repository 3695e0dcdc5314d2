"""Helpers for Token Vault tests: a linked person's identity and a browser that goes
through the Connected Accounts flow (pmbot's page, the provider's consent, the callback)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiohttp

from bot.identity.model import Identity, refresh_purpose
from bot.storage.models import SlackLink
from tests.support import TEAM, Harness

CSRF = re.compile(r"name=csrf value='([^']+)'")
TICKET = re.compile(r"name='ticket' value='([^']+)'")


def browser() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def linked(bot: Harness, user_id: str, email: str) -> Identity:
    """Link ``user_id`` through the real flow and return its identity."""
    await bot.link(user_id, email)
    return await bot.deps.identity.require(TEAM, user_id)


async def stored_refresh_token(bot: Harness, user_id: str) -> str:
    async with bot.deps.db.session() as session:
        link = await session.get(SlackLink, (TEAM, user_id))
    assert link is not None and link.refresh_token_enc
    return bot.deps.identity.cipher.decrypt(
        link.refresh_token_enc, purpose=refresh_purpose(TEAM, user_id)
    )


def same_origin(bot: Harness) -> dict[str, str]:
    return {"Origin": bot.bot_url, "Sec-Fetch-Site": "same-origin"}


@dataclass
class Walk:
    """What a browser saw on its way through the flow."""

    page: str  # pmbot's connect page
    provider_url: str  # where Continue sent the browser (connect_uri?ticket=...)
    consent: str  # the provider's consent page
    callback_url: str  # where the provider sent the browser back


async def start(bot: Harness, b: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    """Open pmbot's page and press Continue; returns (page HTML, provider URL)."""
    async with b.get(url) as page:
        html = await page.text()
        assert page.status == 200, html
    match = CSRF.search(html)
    assert match is not None, html
    async with b.post(
        url, data={"csrf": match.group(1)}, headers=same_origin(bot), allow_redirects=False
    ) as started:
        assert started.status == 303, await started.text()
        return html, started.headers["Location"]


async def consent(
    b: aiohttp.ClientSession, provider_url: str, decision: str = "allow"
) -> tuple[str, str]:
    """Answer the provider's consent page; returns (its HTML, the callback URL)."""
    async with b.get(provider_url) as page:
        html = await page.text()
        assert page.status == 200, html
    match = TICKET.search(html)
    assert match is not None, html
    action = provider_url.split("?", 1)[0]
    async with b.post(
        action, data={"ticket": match.group(1), "decision": decision}, allow_redirects=False
    ) as answered:
        assert answered.status == 302, await answered.text()
        return html, answered.headers["Location"]


async def walk_to_callback(
    bot: Harness, b: aiohttp.ClientSession, url: str, decision: str = "allow"
) -> Walk:
    page, provider_url = await start(bot, b, url)
    consent_html, callback = await consent(b, provider_url, decision)
    return Walk(page, provider_url, consent_html, callback)


async def connect_through_browser(bot: Harness, url: str) -> str:
    """The whole flow in one browser; returns the final page's HTML."""
    async with browser() as b:
        walk = await walk_to_callback(bot, b, url)
        async with b.get(walk.callback_url) as final:
            html = await final.text()
            assert final.status == 200, html
            return html
