"""Account linking end to end: Slack sandbox -> pmbot -> dev identity provider -> pmbot."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select, update

from authz.ports import Consistency
from bot.identity.crypto import DecryptionError, TokenCipher
from bot.storage.models import LinkRequest, SlackLink
from tests.support import (
    BOT_TOKEN,
    CLIENT_SECRET,
    ENCRYPTION_KEYS,
    SIGNING_SECRET,
    TEAM,
    Harness,
    eventually,
    from_bot,
    running_bot,
)


@pytest.fixture
async def bot(database_url: str) -> AsyncIterator[Harness]:
    async with running_bot(database_url) as harness:
        yield harness


def browser() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def link_count(bot: Harness) -> int:
    async with bot.deps.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(SlackLink)) or 0)


async def callback_status(
    bot: Harness, session: aiohttp.ClientSession, url: str
) -> tuple[int, str]:
    async with session.get(url) as resp:
        return resp.status, await resp.text()


def link_url_from(messages: list[dict[str, Any]]) -> str:
    text = json.dumps(messages)
    start = text.index("/auth/link/")
    end = min(
        i for i in (text.find("|", start), text.find('"', start), text.find(">", start)) if i > 0
    )
    prefix_start = text.rfind("http", 0, start)
    return text[prefix_start:end]


async def test_link_whoami_and_unlink_through_slack(bot: Harness) -> None:
    await bot.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "link")
    prompt = await eventually(lambda: bot.sandbox.messages("C0GENERAL", viewer="U0ALICE"))
    assert not bot.sandbox.messages("C0GENERAL", viewer="U0BOB")
    url = link_url_from(prompt)
    async with browser() as b:
        authorize = await bot.open_link_in_browser(url, b)
        callback = await bot.log_in(authorize, b, "alice@example.com")
        status, html = await callback_status(bot, b, callback)
    assert status == 200 and "Signed in as alice@example.com" in html
    assert "go back to Slack" in html
    assert await link_count(bot) == 0  # nothing is linked before the confirmation in Slack
    question = await bot.confirmation_in_slack("U0ALICE")
    assert "Link *alice@example.com* to your Slack account?" in question["text"]
    answer = await bot.press_in_slack("U0ALICE", "link_confirm")
    assert "now linked to *alice@example.com*" in answer

    assert await bot.deps.authz.check("user:auth0|alice", "member", f"workspace:{TEAM}")
    await bot.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "whoami")
    whoami = await eventually(
        lambda: [
            m
            for m in bot.sandbox.messages("C0GENERAL", viewer="U0ALICE")
            if "Permissions:" in m.get("text", "")
        ]
    )
    assert "auth0|alice" in whoami[0]["text"] and "manage:projects" in whoami[0]["text"]

    await bot.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "unlink")
    await eventually(
        lambda: [
            m
            for m in bot.sandbox.messages("C0GENERAL", viewer="U0ALICE")
            if "unlinked" in m.get("text", "")
        ]
    )
    assert await link_count(bot) == 0
    assert bot.idp.revoked_refresh_tokens()
    assert not await bot.deps.authz.check(
        "user:auth0|alice",
        "member",
        f"workspace:{TEAM}",
        consistency=Consistency.HIGHER_CONSISTENCY,
    )


async def test_link_prompts_reuse_one_live_link(bot: Harness) -> None:
    """Three messages before opening the link give the same link, not three."""
    urls = {await bot.deps.identity.start_link(TEAM, "U0CAROL") for _ in range(3)}
    assert len(urls) == 1
    (first,) = urls
    async with browser() as b:
        await bot.open_link_in_browser(first, b)
    # Once started, a new prompt gets a new link.
    assert await bot.deps.identity.start_link(TEAM, "U0CAROL") != first


async def test_unlinked_users_only_get_an_ephemeral_link_prompt(bot: Harness) -> None:
    posted = await bot.sandbox.post_message("U0BOB", "C0GENERAL", "<@U0PMBOT> status of Apollo?")
    prompt = await eventually(lambda: bot.sandbox.messages("C0GENERAL", viewer="U0BOB")[1:])
    assert any("/auth/link/" in json.dumps(m) for m in prompt)
    public = [
        m
        for m in bot.sandbox.messages("C0GENERAL", viewer="U0CAROL")
        if m.get("ts") != posted["ts"]
    ]
    assert public == []
    await bot.sandbox.run_command("U0BOB", "C0GENERAL", "/pm", "whoami")
    await eventually(
        lambda: (
            len(
                [
                    m
                    for m in bot.sandbox.messages("C0GENERAL", viewer="U0BOB")
                    if "/auth/link/" in json.dumps(m)
                ]
            )
            >= 2
        )
    )


async def test_linked_users_are_answered(bot: Harness) -> None:
    await bot.link("U0BOB", "bob@example.com")
    posted = await bot.sandbox.post_message("U0BOB", "C0GENERAL", "<@U0PMBOT> hi")
    reply = await eventually(
        lambda: [
            m
            for m in from_bot(bot.sandbox.messages("C0GENERAL"))
            if m.get("thread_ts") == posted["ts"]
        ]
    )
    # Everyone in #general reads the reply: it is not about Bob's account.
    assert "I'm pmbot" in reply[0]["text"] and "linked" not in reply[0]["text"]
    await bot.sandbox.post_message("U0BOB", await bot.dm_channel("U0BOB"), "hi")
    dm = await bot.dm_channel("U0BOB")
    answer = await eventually(
        lambda: [
            m
            for m in from_bot(bot.sandbox.messages(dm))
            if "Your account is linked" in m.get("text", "")
        ]
    )
    assert answer


async def test_home_shows_the_link_state(bot: Harness) -> None:
    await bot.sandbox.open_home("U0CAROL")
    view = await eventually(lambda: bot.sandbox.home_view("U0CAROL"))
    assert "not linked" in json.dumps(view)
    await bot.link("U0CAROL", "carol@example.com")
    await bot.sandbox.open_home("U0CAROL")
    await eventually(lambda: "carol@example.com" in json.dumps(bot.sandbox.home_view("U0CAROL")))


async def test_state_is_single_use_and_codes_cannot_be_replayed(bot: Harness) -> None:
    link = await bot.deps.identity.start_link(TEAM, "U0ALICE")
    async with browser() as b:
        authorize = await bot.open_link_in_browser(link, b)
        callback = await bot.log_in(authorize, b, "alice@example.com")
        assert (await callback_status(bot, b, callback))[0] == 200
        status, html = await callback_status(bot, b, callback)
        assert status == 400 and "already used" in html
        async with b.get(link) as again:
            assert again.status == 400 and "already used" in await again.text()
    await bot.press_in_slack("U0ALICE", "link_confirm")
    assert await link_count(bot) == 1


async def test_unknown_and_expired_states_are_refused(bot: Harness) -> None:
    async with browser() as b:
        status, html = await callback_status(
            bot, b, f"{bot.bot_url}/auth/callback?state=nope&code=x"
        )
        assert status == 400 and "not valid" in html
        link = await bot.deps.identity.start_link(TEAM, "U0ALICE")
        authorize = await bot.open_link_in_browser(link, b)
        callback = await bot.log_in(authorize, b, "alice@example.com")
        async with bot.deps.db.session() as session:
            await session.execute(
                update(LinkRequest).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        status, html = await callback_status(bot, b, callback)
        assert status == 400 and "expired" in html
        status, _ = await callback_status(
            bot, b, f"{bot.bot_url}/auth/callback?error=access_denied&state=x"
        )
        assert status == 400
    assert await link_count(bot) == 0


async def test_a_callback_in_another_browser_is_refused(bot: Harness) -> None:
    """Alice's flow finished in Bob's browser (e.g. a forwarded callback) links nobody."""
    link = await bot.deps.identity.start_link(TEAM, "U0ALICE")
    async with browser() as alice, browser() as bob:
        authorize = await bot.open_link_in_browser(link, alice)
        callback = await bot.log_in(authorize, alice, "alice@example.com")
        status, html = await callback_status(bot, bob, callback)
    assert status == 400 and "another browser" in html
    assert await link_count(bot) == 0


async def test_an_injected_code_from_another_login_is_refused(bot: Harness) -> None:
    mallory_link = await bot.deps.identity.start_link(TEAM, "U0DAVE")
    alice_link = await bot.deps.identity.start_link(TEAM, "U0ALICE")
    async with browser() as mallory, browser() as alice:
        m_authorize = await bot.open_link_in_browser(mallory_link, mallory)
        m_callback = await bot.log_in(m_authorize, mallory, "dave@example.com")
        a_authorize = await bot.open_link_in_browser(alice_link, alice)
        a_callback = await bot.log_in(a_authorize, alice, "alice@example.com")
        m_code = aiohttp.client.URL(m_callback).query["code"]
        a_state = aiohttp.client.URL(a_callback).query["state"]
        status, html = await callback_status(
            bot, alice, f"{bot.bot_url}/auth/callback?state={a_state}&code={m_code}"
        )
    assert status == 400 and "did not accept" in html
    assert await link_count(bot) == 0


async def test_one_identity_links_one_slack_user(bot: Harness) -> None:
    await bot.link("U0ALICE", "alice@example.com")
    link = await bot.deps.identity.start_link(TEAM, "U0BOB")
    async with browser() as b:
        authorize = await bot.open_link_in_browser(link, b)
        callback = await bot.log_in(authorize, b, "alice@example.com")
        status, html = await callback_status(bot, b, callback)
    assert status == 400 and "already linked to another Slack user" in html
    assert await link_count(bot) == 1


async def test_identity_provider_down_writes_nothing(bot: Harness) -> None:
    link = await bot.deps.identity.start_link(TEAM, "U0ALICE")
    async with browser() as b:
        authorize = await bot.open_link_in_browser(link, b)
        callback = await bot.log_in(authorize, b, "alice@example.com")
        bot.idp.set_unavailable(True)
        status, html = await callback_status(bot, b, callback)
    assert status == 503 and "unreachable" in html
    assert await link_count(bot) == 0


async def test_expired_permissions_are_refreshed(bot: Harness) -> None:
    await bot.link("U0CAROL", "carol@example.com")
    async with bot.deps.db.session() as session:
        await session.execute(
            update(SlackLink).values(
                permissions="[]", permissions_expire_at=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
    identity = await bot.deps.identity.require(TEAM, "U0CAROL")
    assert identity.permissions == {"read:projects"}
    bot.deps.identity.require_permission(identity, "read:projects")
    from bot.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        bot.deps.identity.require_permission(identity, "write:projects")


async def test_refresh_tokens_are_encrypted_at_rest(bot: Harness) -> None:
    await bot.link("U0BOB", "bob@example.com")
    async with bot.deps.db.session() as session:
        row = await session.scalar(select(SlackLink))
    assert row is not None and row.refresh_token_enc
    assert row.key_id == "k1" and row.refresh_token_enc.startswith("k1.")
    plain = TokenCipher(ENCRYPTION_KEYS).decrypt(
        row.refresh_token_enc, purpose=f"refresh_token|{TEAM}|U0BOB"
    )
    assert plain not in row.refresh_token_enc
    refreshed = await bot.deps.auth0.refresh(plain)
    assert refreshed.access_token
    with pytest.raises(DecryptionError):
        TokenCipher(ENCRYPTION_KEYS).decrypt(row.refresh_token_enc, purpose="pkce")


async def test_authorization_down_fails_closed_and_links_nobody(sqlite_url: str) -> None:
    async with running_bot(
        sqlite_url,
        AUTHZ_ENGINE="openfga",
        FGA_API_URL="http://127.0.0.1:1",
        FGA_STORE_ID="01ARZ3NDEKTSV4RRFFQ69G5FAV",
        FGA_TIMEOUT_MS=300,
    ) as bot:
        await bot.sign_in("U0ALICE", "alice@example.com")
        message = await bot.confirmation_in_slack("U0ALICE")
        dm = await bot.dm_channel("U0ALICE")
        await bot.sandbox.click_button("U0ALICE", dm, str(message["ts"]), "link_confirm")
        await eventually(
            lambda: [
                m
                for m in bot.sandbox.messages(dm, viewer="U0ALICE")
                if "Authorization is unavailable" in m.get("text", "")
            ]
        )
        assert await link_count(bot) == 0
        assert await bot.deps.identity.lookup(TEAM, "U0ALICE") is None
        # The button still works once authorization is back (nothing was used up).
        still = await bot.confirmation_in_slack("U0ALICE")
        assert still["ts"] == message["ts"]


async def test_no_secret_or_token_reaches_the_logs(sqlite_url: str) -> None:
    """Run linking, commands and unlinking with DEBUG logs on (slack_sdk and aiohttp log
    requests at that level) and look for every secret and token in what was logged."""
    from bot.cli import secrets_of
    from bot.logs import configure_logging

    stream = io.StringIO()
    try:
        async with running_bot(sqlite_url) as bot:
            configure_logging("text", "DEBUG", secrets_of(bot.settings), stream=stream)
            await bot.link("U0ALICE", "alice@example.com")
            async with bot.deps.db.session() as session:
                row = await session.scalar(select(SlackLink))
            assert row is not None and row.refresh_token_enc
            refresh = TokenCipher(ENCRYPTION_KEYS).decrypt(
                row.refresh_token_enc, purpose=f"refresh_token|{TEAM}|U0ALICE"
            )
            tokens = await bot.deps.auth0.refresh(refresh)
            await bot.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "whoami")
            await bot.sandbox.post_message("U0ALICE", "C0GENERAL", "<@U0PMBOT> hi")
            await bot.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "unlink")
            await eventually(lambda: bot.idp.revoked_refresh_tokens())
    finally:
        configure_logging("text", "WARNING", [])
    logged = stream.getvalue()
    assert "chat.postMessage" in logged or "chat_postMessage" in logged  # DEBUG was on
    for secret in (
        BOT_TOKEN,
        SIGNING_SECRET,
        CLIENT_SECRET,
        ENCRYPTION_KEYS.partition(":")[2],
        refresh,
        tokens.access_token,
        tokens.id_token,
    ):
        assert secret not in logged


async def test_the_home_link_button_offers_a_sign_in_link(bot: Harness) -> None:
    await bot.sandbox.open_home("U0DAVE")
    await eventually(lambda: bot.sandbox.home_view("U0DAVE"))
    await bot.sandbox.click_home_button("U0DAVE", "link_account")
    view = await eventually(
        lambda: (
            "/auth/link/" in json.dumps(bot.sandbox.home_view("U0DAVE"))
            and bot.sandbox.home_view("U0DAVE")
        )
    )
    url = link_url_from([view])
    async with browser() as b:
        authorize = await bot.open_link_in_browser(url, b)
        callback = await bot.log_in(authorize, b, "dave@example.com")
        status, html = await callback_status(bot, b, callback)
    assert status == 200 and "Signed in as dave@example.com" in html
    assert "now linked" in await bot.press_in_slack("U0DAVE", "link_confirm")
    await eventually(lambda: "dave@example.com" in json.dumps(bot.sandbox.home_view("U0DAVE")))


async def test_scheduled_sweeps_forget_expired_link_requests(bot: Harness) -> None:
    from bot.scheduler import build_scheduler, sweep_link_requests

    await bot.deps.identity.start_link(TEAM, "U0ALICE")
    await bot.deps.identity.start_link(TEAM, "U0BOB")
    async with bot.deps.db.session() as session:
        await session.execute(
            update(LinkRequest)
            .where(LinkRequest.slack_user_id == "U0ALICE")
            .values(expires_at=datetime.now(UTC) - timedelta(hours=2))
        )
    jobs = {job.id for job in build_scheduler(bot.deps).get_jobs()}
    assert {"sweep_link_requests", "sweep_processed_events"} <= jobs
    await sweep_link_requests(bot.deps)
    async with bot.deps.db.session() as session:
        left = list(await session.scalars(select(LinkRequest.slack_user_id)))
    assert left == ["U0BOB"]


async def test_link_prompts_are_replaced_once_the_link_is_used(bot: Harness) -> None:
    """Two /pm prompts showing the same link: after the confirmation both say it is done,
    and no link button is left in the channel."""

    def prompts() -> list[dict[str, Any]]:
        return [
            m
            for m in bot.sandbox.messages("C0GENERAL", viewer="U0CAROL")
            if "/auth/link/" in json.dumps(m)
        ]

    await bot.sandbox.run_command("U0CAROL", "C0GENERAL", "/pm", "link")
    await eventually(prompts)
    await bot.sandbox.run_command("U0CAROL", "C0GENERAL", "/pm", "whoami")
    shown = await eventually(lambda: len(prompts()) == 2 and prompts())
    urls = {link_url_from([m]) for m in shown}
    assert len(urls) == 1  # one live link, shown twice
    async with browser() as b:
        authorize = await bot.open_link_in_browser(urls.pop(), b)
        callback = await bot.log_in(authorize, b, "carol@example.com")
        assert (await callback_status(bot, b, callback))[0] == 200
    assert "now linked" in await bot.press_in_slack("U0CAROL", "link_confirm")
    await eventually(lambda: not prompts())
    done = [
        m
        for m in bot.sandbox.messages("C0GENERAL", viewer="U0CAROL")
        if "Done: you are linked as *carol@example.com*" in m.get("text", "")
    ]
    assert len(done) == 2


async def test_the_gate_handles_what_it_stops(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """An unlinked person's command, mention and DM are answered by the gate alone: Bolt
    does not go looking for another listener and warn that nobody handled them."""
    import logging

    caplog.set_level(logging.WARNING)
    await bot.sandbox.run_command("U0DAVE", "C0GENERAL", "/pm", "whoami")
    await bot.sandbox.post_message("U0DAVE", "C0GENERAL", "<@U0PMBOT> hi")
    await eventually(
        lambda: (
            len(
                [
                    m
                    for m in bot.sandbox.messages("C0GENERAL", viewer="U0DAVE")
                    if "/auth/link/" in json.dumps(m)
                ]
            )
            >= 2
        )
    )
    await bot.ingress.drain()
    assert not [r for r in caplog.records if "Unhandled request" in r.getMessage()]
