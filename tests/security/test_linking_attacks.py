"""Attacks on account linking, each through the real HTTP surface or the real Slack path.

Every test here failed against the linking of the first release and passes now; the
docstring of each says what the attacker gets today.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import func, select, update

from authz.ids import fga_user
from authz.ports import Consistency
from bot.errors import RelinkRequired
from bot.identity.model import LinkFailed, LinkFailure
from bot.storage.models import LinkRequest, SlackLink
from sandbox.idp import IdpUser, default_users
from sandbox.slack import default_seed
from sandbox.slack.state import SandboxUser
from tests.support import TEAM, Harness, eventually, running_bot

CSRF = re.compile(r"name=csrf value='([^']+)'")


@pytest.fixture
async def bot(database_url: str) -> AsyncIterator[Harness]:
    async with running_bot(database_url) as harness:
        yield harness


def browser() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def links(bot: Harness) -> int:
    async with bot.deps.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(SlackLink)) or 0)


async def started(bot: Harness, url: str) -> bool:
    async with bot.deps.db.session() as session:
        row = await session.get(LinkRequest, url.rsplit("/", 1)[1])
    return row is not None and row.started_at is not None


async def page_token(b: aiohttp.ClientSession, url: str) -> str:
    async with b.get(url) as page:
        html = await page.text()
        assert page.status == 200, html
    match = CSRF.search(html)
    assert match is not None
    return match.group(1)


# -- 1. login CSRF ---------------------------------------------------------------------


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
async def test_a_cross_site_post_cannot_start_a_link(bot: Harness, headers: dict[str, str]) -> None:
    """The review's attack: the attacker's link, auto-submitted from another site in the
    victim's browser. Now 403 before anything happens: no binding cookie, nothing started."""
    url = await bot.deps.identity.start_link(TEAM, "U0DAVE")
    async with browser() as victim:
        token = await page_token(victim, url)  # even with a valid token
        async with victim.post(
            url, data={"csrf": token}, headers=headers, allow_redirects=False
        ) as resp:
            assert resp.status == 403
            assert not [c for c in victim.cookie_jar if c.key.startswith("pmbot_link")]
    assert not await started(bot, url)


async def test_a_post_without_the_page_s_token_is_refused(bot: Harness) -> None:
    """No browser headers at all (an old browser, or a form the attacker crafted) and no
    token, or the attacker's own token without the victim's cookie: 403, nothing started."""
    url = await bot.deps.identity.start_link(TEAM, "U0DAVE")
    async with browser() as attacker, browser() as victim:
        attackers_token = await page_token(attacker, url)
        async with victim.post(url, allow_redirects=False) as resp:
            assert resp.status == 403
            assert "did not come from pmbot" in await resp.text()
        async with victim.post(url, data={"csrf": attackers_token}, allow_redirects=False) as resp:
            assert resp.status == 403
        await page_token(victim, url)  # the victim's own cookie, still the attacker's token
        async with victim.post(url, data={"csrf": attackers_token}, allow_redirects=False) as resp:
            assert resp.status == 403
        async with victim.post(
            url,
            data=f"csrf={attackers_token}",
            headers={"Content-Type": "text/plain"},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 403
    assert not await started(bot, url)


async def test_link_pages_cannot_be_framed_and_name_the_person(bot: Harness) -> None:
    url = await bot.deps.identity.start_link(TEAM, "U0DAVE")
    async with browser() as b:
        async with b.get(url) as page:
            html = await page.text()
            assert page.headers["X-Frame-Options"] == "DENY"
            policy = page.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in policy and "script-src" not in policy
            assert page.headers["Cache-Control"] == "no-store"
        assert "Dave Diaz" in html and "Sandbox" in html  # display names, not ids
        async with b.get(f"{bot.bot_url}/auth/callback?state=x&code=y") as failed:
            assert failed.headers["X-Frame-Options"] == "DENY"
            assert "frame-ancestors 'none'" in failed.headers["Content-Security-Policy"]


async def test_the_login_cannot_finish_on_an_existing_session(bot: Harness) -> None:
    url = await bot.deps.identity.start_link(TEAM, "U0DAVE")
    async with browser() as b:
        authorize = await bot.open_link_in_browser(url, b)
    assert aiohttp.client.URL(authorize).query["prompt"] == "login"


async def test_a_login_finished_in_someone_else_s_browser_links_nothing(bot: Harness) -> None:
    """Alice's link opened by Mallory (Dave), who signs in as herself: Alice is asked in
    Slack whether to link dave@example.com, cancels, and nothing is linked."""
    url = await bot.deps.identity.start_link(TEAM, "U0ALICE")
    async with browser() as mallory:
        authorize = await bot.open_link_in_browser(url, mallory)
        callback = await bot.log_in(authorize, mallory, "dave@example.com")
        async with mallory.get(callback) as page:
            assert page.status == 200
    assert await links(bot) == 0
    question = await bot.confirmation_in_slack("U0ALICE")
    assert "dave@example.com" in question["text"]
    # Mallory cannot confirm it for Alice: the request answers only to Alice's Slack user.
    with pytest.raises(LinkFailed) as info:
        await bot.deps.identity.confirm_link(
            request_id=url.rsplit("/", 1)[1], team_id=TEAM, slack_user_id="U0DAVE"
        )
    assert info.value.reason is LinkFailure.NOT_YOURS
    assert await links(bot) == 0
    answer = await bot.press_in_slack("U0ALICE", "link_cancel")
    assert "nothing was linked" in answer
    assert await links(bot) == 0
    assert bot.idp.revoked_refresh_tokens()  # the sign-in Mallory made is revoked


# -- 2. stale permissions ----------------------------------------------------------------


async def expire_permissions(bot: Harness, user: str) -> None:
    async with bot.deps.db.session() as session:
        await session.execute(
            update(SlackLink)
            .where(SlackLink.slack_user_id == user)
            .values(permissions_expire_at=datetime.now(UTC) - timedelta(seconds=1))
        )


@pytest.mark.parametrize("token", ["none", "undecryptable"])
async def test_permissions_that_cannot_be_refreshed_are_none(bot: Harness, token: str) -> None:
    """No refresh token, or one that no longer decrypts (its key was dropped): the old
    permissions were kept forever. Now: none, and the person is told to link again."""
    await bot.link("U0ALICE", "alice@example.com")
    await expire_permissions(bot, "U0ALICE")
    async with bot.deps.db.session() as session:
        await session.execute(
            update(SlackLink).values(
                refresh_token_enc=None if token == "none" else "k9.bm90LWEta2V5LWFueW1vcmU"
            )
        )
    identity = await bot.deps.identity.require(TEAM, "U0ALICE")
    assert identity.permissions == frozenset() and identity.needs_relink
    with pytest.raises(RelinkRequired):
        bot.deps.identity.require_permission(identity, "read:projects")
    await bot.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "whoami")
    await eventually(
        lambda: [
            m
            for m in bot.sandbox.messages("C0GENERAL", viewer="U0ALICE")
            if "could not be refreshed" in m.get("text", "") and "/pm link" in m["text"]
        ]
    )


async def test_a_refresh_token_copied_to_another_row_does_not_decrypt(bot: Harness) -> None:
    """Ciphertexts are bound to their (team, Slack user): Alice's token moved to Bob's row
    gives Bob nothing of Alice's."""
    await bot.link("U0ALICE", "alice@example.com")
    await bot.link("U0BOB", "bob@example.com")
    async with bot.deps.db.session() as session:
        alice = await session.get(SlackLink, (TEAM, "U0ALICE"))
        assert alice is not None
        await session.execute(
            update(SlackLink)
            .where(SlackLink.slack_user_id == "U0BOB")
            .values(refresh_token_enc=alice.refresh_token_enc)
        )
    await expire_permissions(bot, "U0BOB")
    bob = await bot.deps.identity.require(TEAM, "U0BOB")
    assert bob.needs_relink and "manage:projects" not in bob.permissions


# -- 9. refresh tokens: rotation and re-linking ---------------------------------------------


async def test_rotated_refresh_tokens_are_kept(bot: Harness) -> None:
    bot.idp.rotate_refresh_tokens = True
    await bot.link("U0BOB", "bob@example.com")
    for _ in range(3):
        await expire_permissions(bot, "U0BOB")
        identity = await bot.deps.identity.require(TEAM, "U0BOB")
        assert not identity.needs_relink
        assert identity.permissions == {
            "read:projects",
            "write:projects",
            "manage:calendar",
            "manage:projects",
        }


async def test_relinking_asks_first_and_revokes_the_replaced_identity(bot: Harness) -> None:
    await bot.link("U0ALICE", "alice@example.com")
    await bot.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "link")
    question = await eventually(
        lambda: [
            m
            for m in bot.sandbox.messages("C0GENERAL", viewer="U0ALICE")
            if "You are linked as *alice@example.com*" in m.get("text", "")
        ]
    )
    assert "link_replace" in json.dumps(question[0]["blocks"])
    assert "/auth/link/" not in json.dumps(question)  # no new link until asked for
    await bot.sign_in("U0ALICE", "bob@example.com")
    dm_question = await bot.confirmation_in_slack("U0ALICE")
    assert "Replace it with *bob@example.com*" in dm_question["text"]
    revoked_before = bot.idp.revoked_refresh_tokens()
    assert "now linked to *bob@example.com*" in await bot.press_in_slack("U0ALICE", "link_confirm")
    assert len(bot.idp.revoked_refresh_tokens() - revoked_before) == 1
    identity = await bot.deps.identity.require(TEAM, "U0ALICE")
    assert identity.sub == "auth0|bob"
    assert not await bot.deps.authz.check(
        fga_user("auth0|alice"),
        "member",
        f"workspace:{TEAM}",
        consistency=Consistency.HIGHER_CONSISTENCY,
    )


# -- 10. identities with unusual subs ------------------------------------------------------


ODD_SUBS = ["samlp|corp|Jane Doe", "oidc|idp|a:b", "ad|corp#eng|x", "waad|100%real"]


async def test_subs_with_reserved_characters_link(database_url: str) -> None:
    users = [
        IdpUser(sub=sub, email=f"odd{i}@example.com", name=f"Odd {i}", password=f"odd{i}-password")
        for i, sub in enumerate(ODD_SUBS)
    ]
    async with running_bot(database_url, users=[*default_users(), *users]) as bot:
        for i, sub in enumerate(ODD_SUBS):
            user = ["U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"][i]
            await bot.link(user, f"odd{i}@example.com")
            identity = await bot.deps.identity.require(TEAM, user)
            assert identity.sub == sub
            assert await bot.deps.authz.check(
                identity.fga_user,
                "member",
                f"workspace:{TEAM}",
                consistency=Consistency.HIGHER_CONSISTENCY,
            )


# -- also: guests, external users, unverified emails ---------------------------------------


async def test_guests_and_slack_connect_users_are_not_workspace_members(
    database_url: str,
) -> None:
    seed = default_seed()
    seed.users += [
        SandboxUser("U0GUEST", "gina", "Gina Guest", "gina@example.com", guest=True),
        SandboxUser("U0EXT", "eve", "Eve External", "eve@partner.example", home_team="T0OTHER"),
    ]
    users = [
        *default_users(),
        IdpUser(sub="auth0|gina", email="gina@example.com", name="Gina", password="gina-password"),
        IdpUser(sub="auth0|eve", email="eve@partner.example", name="Eve", password="eve-password"),
    ]
    async with running_bot(database_url, seed=seed, users=users) as bot:
        for slack_user, email, kind in [
            ("U0GUEST", "gina@example.com", "guest"),
            ("U0EXT", "eve@partner.example", "external"),
            ("U0ALICE", "alice@example.com", "member"),
        ]:
            await bot.link(slack_user, email)
            identity = await bot.deps.identity.require(TEAM, slack_user)
            assert identity.membership.value == kind
            member = await bot.deps.authz.check(
                identity.fga_user,
                "member",
                f"workspace:{TEAM}",
                consistency=Consistency.HIGHER_CONSISTENCY,
            )
            assert member is (kind == "member")


async def test_an_unverified_email_is_not_presented_as_the_identity(database_url: str) -> None:
    users = [
        *default_users(),
        IdpUser(
            sub="auth0|ursula",
            email="ceo@example.com",
            name="Ursula",
            password="ceo-password",
            email_verified=False,
        ),
    ]
    async with running_bot(database_url, users=users) as bot:
        html = await bot.sign_in("U0CAROL", "ceo@example.com")
        assert "Signed in as Ursula (ceo@example.com, email not verified)" in html
        question = await bot.confirmation_in_slack("U0CAROL")
        assert "email not verified" in question["text"]


# -- concurrency: link and unlink --------------------------------------------------------


async def test_concurrent_link_and_unlink_leave_no_membership_without_a_link(
    bot: Harness,
) -> None:
    await bot.link("U0ALICE", "alice@example.com")
    for _ in range(6):
        await bot.sign_in("U0ALICE", "alice@example.com")
        async with bot.deps.db.session() as session:
            request_id = await session.scalar(
                select(LinkRequest.id).where(
                    LinkRequest.verified_at.is_not(None), LinkRequest.finished_at.is_(None)
                )
            )
        assert request_id is not None
        await asyncio.gather(
            bot.deps.identity.confirm_link(
                request_id=request_id, team_id=TEAM, slack_user_id="U0ALICE"
            ),
            bot.deps.identity.unlink(TEAM, "U0ALICE"),
            return_exceptions=True,
        )
        linked = await bot.deps.identity.lookup(TEAM, "U0ALICE") is not None
        member = await bot.deps.authz.check(
            fga_user("auth0|alice"),
            "member",
            f"workspace:{TEAM}",
            consistency=Consistency.HIGHER_CONSISTENCY,
        )
        assert member is linked
        if not linked:
            await bot.link("U0ALICE", "alice@example.com")


# -- 7. hostile ids ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/auth/link/%00" + "a" * 42,
        "/auth/link/" + "a" * 20 + "%00" + "b" * 22,
        "/auth/callback?state=%00" + "a" * 42 + "&code=x",
        "/auth/callback?state=" + "é" * 43 + "&code=x",
        "/auth/link/" + "a" * 5000,
    ],
    ids=["nul-page", "nul-middle", "nul-state", "non-ascii-state", "long-id"],
)
async def test_hostile_link_ids_get_a_clear_page_not_a_500(bot: Harness, path: str) -> None:
    async with browser() as b:
        async with b.get(bot.bot_url + path) as resp:
            assert resp.status == 400 or (resp.status == 404 and "long" in path)
        if path.startswith("/auth/link/"):
            async with b.post(bot.bot_url + path, data={"csrf": "x"}) as resp:
                assert resp.status in {400, 403, 404}


# -- cookies -------------------------------------------------------------------------------


async def test_cookies_are_host_prefixed_and_secure_behind_https(sqlite_url: str) -> None:
    """With an https PMBOT_PUBLIC_URL (TLS ends at a proxy in front of pmbot) the link
    cookies are ``__Host-`` cookies: Secure, path /, no Domain."""
    async with running_bot(sqlite_url, PMBOT_PUBLIC_URL="https://pmbot.example.test") as bot:
        link = await bot.deps.identity.start_link(TEAM, "U0ALICE")
        local = bot.bot_url + "/auth/link/" + link.rsplit("/", 1)[1]
        async with aiohttp.ClientSession() as b:
            async with b.get(local) as page:
                html = await page.text()
                set_cookies = page.headers.getall("Set-Cookie")
            match = CSRF.search(html)
            assert match is not None
            nonce = next(c for c in set_cookies if c.startswith("__Host-pmbot_csrf="))
            assert "Secure" in nonce and "Path=/" in nonce and "Domain" not in nonce
            assert "SameSite=Strict" in nonce and "HttpOnly" in nonce
            cookie = nonce.split(";", 1)[0]
            async with b.post(
                local,
                data={"csrf": match.group(1)},
                headers={"Cookie": cookie, "Origin": "https://pmbot.example.test"},
                allow_redirects=False,
            ) as started_resp:
                assert started_resp.status == 303
                binding = next(
                    c
                    for c in started_resp.headers.getall("Set-Cookie")
                    if c.startswith("__Host-pmbot_link_")
                )
        assert "Secure" in binding and "Path=/" in binding and "SameSite=Lax" in binding


# -- sweeps ---------------------------------------------------------------------------------


async def test_an_unconfirmed_login_is_swept_and_its_token_revoked(bot: Harness) -> None:
    from bot.scheduler import sweep_link_requests

    await bot.sign_in("U0CAROL", "carol@example.com")
    async with bot.deps.db.session() as session:
        await session.execute(
            update(LinkRequest).values(confirm_by=datetime.now(UTC) - timedelta(seconds=1))
        )
    await sweep_link_requests(bot.deps)
    assert bot.idp.revoked_refresh_tokens()
    answer = await bot.press_in_slack("U0CAROL", "link_confirm")
    assert "not confirmed in time" in answer
    assert await links(bot) == 0


async def test_an_identity_that_cannot_be_recorded_is_not_blamed_on_availability(
    database_url: str,
) -> None:
    """A sub too long to record (the database column, OpenFGA's 512-character user field):
    the sign-in page says the account could not be recorded, not that a service is down
    (PostgreSQL used to answer with a 500), and nothing is linked."""
    long_sub = "oidc|corp|" + "x" * 600
    users = [
        *default_users(),
        IdpUser(sub=long_sub, email="long@example.com", name="Long", password="long-password"),
    ]
    async with running_bot(database_url, users=users) as bot:
        link = await bot.deps.identity.start_link(TEAM, "U0CAROL")
        async with browser() as b:
            authorize = await bot.open_link_in_browser(link, b)
            callback = await bot.log_in(authorize, b, "long@example.com")
            async with b.get(callback) as page:
                html = await page.text()
        assert page.status == 400 and "could not record this Auth0 identity" in html
        assert await links(bot) == 0


async def test_the_embedded_engine_refuses_ids_the_real_one_refuses(bot: Harness) -> None:
    """The in-process engine applies OpenFGA's field rules, as the real server would: a
    validation error, never a stored tuple (and never "unavailable")."""
    from authz.ports import AuthzValidationError, TupleKey

    for key in [
        TupleKey(user="user:" + "x" * 600, relation="member", object=f"workspace:{TEAM}"),
        TupleKey(user="user:a b", relation="member", object=f"workspace:{TEAM}"),
        TupleKey(user="user:a", relation="member", object="workspace:" + "y" * 300),
    ]:
        with pytest.raises(AuthzValidationError):
            await bot.deps.authz.write([key])
