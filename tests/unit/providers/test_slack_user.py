"""Posting as the person (bot/providers/slack_user.py) against the Slack sandbox on
127.0.0.1, with user tokens (``xoxp-``) issued by the shared federation."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.providers.ports import ProviderRateLimited, ProviderRejected, ProviderUnavailable
from bot.providers.slack_user import SlackUserClient
from bot.vault.ports import ProviderToken
from sandbox.federation import ConnectedAccount, Federation
from sandbox.slack import SlackSandbox
from tests.fakes.slack import BOT_TOKEN, Receiver, running_sandbox
from tests.support import eventually

WRITE = frozenset({"chat:write"})


@dataclass
class Env:
    federation: Federation
    sandbox: SlackSandbox
    base: str
    receiver: Receiver
    bot: AsyncWebClient
    http: aiohttp.ClientSession
    client: SlackUserClient

    def token(
        self, user_id: str, scopes: frozenset[str] = WRITE, connection: str = "sign-in-with-slack"
    ) -> ProviderToken:
        account = ConnectedAccount(
            sub=f"auth0|{user_id.lower()}", connection=connection, account=user_id, scopes=scopes
        )
        self.federation.connect(account)
        return ProviderToken(
            access_token=self.federation.issue(account, prefix="xoxp-"),
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            scopes=scopes,
        )

    def calls(self, method: str) -> int:
        return sum(1 for c in self.sandbox.api_calls() if c["method"] == method)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    federation = Federation()
    receiver = Receiver()
    async with (
        running_sandbox(receiver, federation=federation) as (sandbox, base),
        aiohttp.ClientSession() as http,
    ):
        bot = AsyncWebClient(token=BOT_TOKEN, base_url=base + "api/", session=http)
        client = SlackUserClient(base_url=base + "api/", session=http, timeout=5, bot=bot)
        yield Env(federation, sandbox, base, receiver, bot, http, client)


async def test_a_message_posted_with_a_user_token_is_the_persons(env: Env) -> None:
    posted = await env.client.post_message(
        env.token("U0ALICE"), channel="C0APOLLO", text="Apollo ships Friday."
    )
    assert posted.channel == "C0APOLLO"
    [message] = [m for m in env.sandbox.messages("C0APOLLO") if m["ts"] == posted.ts]
    assert message["user"] == "U0ALICE"
    assert message["text"] == "Apollo ships Friday."
    assert "bot_id" not in message and "bot_profile" not in message
    assert posted.permalink == f"{env.base}archives/C0APOLLO/p{posted.ts.replace('.', '')}"
    async with env.http.get(posted.permalink, allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.headers["Location"] == "../../#C0APOLLO"


async def test_a_channel_name_and_a_dm_with_someone_work_like_slack(env: Env) -> None:
    token = env.token("U0BOB")
    by_name = await env.client.post_message(token, channel="#general", text="hello all")
    assert by_name.channel == "C0GENERAL"
    dm = await env.client.post_message(token, channel="U0CAROL", text="psst")
    messages = env.sandbox.messages("U0BOB", viewer="U0CAROL")
    assert [(m["user"], m["text"]) for m in messages] == [("U0BOB", "psst")]
    assert messages[0]["channel"] == dm.channel


async def test_the_bot_hears_a_persons_post_that_mentions_it_as_from_that_person(
    env: Env,
) -> None:
    await env.client.post_message(env.token("U0ALICE"), channel="C0APOLLO", text="<@U0PMBOT> hi")
    received = await eventually(lambda: env.receiver.received)
    event = received[0].json()["event"]
    assert (event["type"], event["user"], event["channel"]) == (
        "app_mention",
        "U0ALICE",
        "C0APOLLO",
    )
    assert received[0].signature_valid


async def test_a_person_cannot_post_where_they_are_not_a_member(env: Env) -> None:
    dave = env.token("U0DAVE")  # not in #apollo nor #random
    with pytest.raises(ProviderRejected) as err:
        await env.client.post_message(dave, channel="C0APOLLO", text="let me in")
    assert (err.value.status, err.value.reason) == (403, "not_in_channel")
    with pytest.raises(ProviderRejected) as err:
        await env.client.post_message(dave, channel="C0NOWHERE", text="x")
    assert (err.value.status, err.value.reason) == (404, "channel_not_found")
    # Someone else's DM does not exist for them.
    await env.client.post_message(env.token("U0ALICE"), channel="U0BOB", text="private")
    dm = env.sandbox.workspace.find_im("U0ALICE", "U0BOB")
    assert dm is not None
    with pytest.raises(ProviderRejected) as err:
        await env.client.post_message(dave, channel=dm.id, text="x")
    assert (err.value.status, err.value.reason) == (404, "channel_not_found")
    assert [m["text"] for m in env.sandbox.messages("C0APOLLO")] == []


async def test_tokens_slack_did_not_issue_are_invalid_auth(env: Env) -> None:
    forged = ProviderToken(access_token="xoxp-forged", expires_at=datetime.now(UTC), scopes=WRITE)
    google = env.token("U0ALICE", connection="google-oauth2")  # another connection's token
    revoked = env.token("U0BOB")
    env.federation.disconnect("auth0|u0bob", "sign-in-with-slack")
    expired_federation = Federation(token_ttl=-1)
    account = ConnectedAccount("auth0|carol", "sign-in-with-slack", "U0CAROL", WRITE)
    expired = ProviderToken(
        access_token=expired_federation.issue(account, prefix="xoxp-"),
        expires_at=datetime.now(UTC),
        scopes=WRITE,
    )
    as_bot_user = env.token("U0PMBOT")  # the app's own user is no person
    for token in (forged, google, revoked, expired, as_bot_user):
        with pytest.raises(ProviderRejected) as err:
            await env.client.post_message(token, channel="C0GENERAL", text="x")
        assert (err.value.status, err.value.reason) == (401, "invalid_auth")
    assert env.sandbox.messages("C0GENERAL") == []


async def test_a_token_without_chat_write_is_missing_scope(env: Env) -> None:
    with pytest.raises(ProviderRejected) as err:
        await env.client.post_message(
            env.token("U0ALICE", frozenset({"users:read"})), channel="C0GENERAL", text="x"
        )
    assert (err.value.status, err.value.reason) == (403, "missing_scope")


async def test_user_tokens_only_reach_the_methods_slack_allows_them(env: Env) -> None:
    token = env.token("U0ALICE")
    as_alice = AsyncWebClient(token=token.access_token, base_url=env.base + "api/")
    who = await as_alice.auth_test()
    assert who["user_id"] == "U0ALICE" and "bot_id" not in who.data
    for call in (
        lambda: as_alice.conversations_history(channel="C0GENERAL"),
        lambda: as_alice.views_publish(user_id="U0ALICE", view={"type": "home", "blocks": []}),
    ):
        with pytest.raises(SlackApiError) as err:
            await call()
        assert err.value.response["error"] == "not_allowed_token_type"


async def test_the_bot_token_works_as_before(env: Env) -> None:
    await env.client.post_message(env.token("U0ALICE"), channel="C0GENERAL", text="as alice")
    sent = await env.bot.chat_postMessage(channel="C0GENERAL", text="as the bot")
    assert (await env.bot.auth_test())["bot_id"] == "B0PMBOT"
    history = await env.bot.conversations_history(channel="C0GENERAL")
    by_text = {m["text"]: m for m in history["messages"]}
    assert by_text["as the bot"]["bot_id"] == "B0PMBOT"
    assert by_text["as the bot"]["ts"] == sent["ts"]
    assert "bot_id" not in by_text["as alice"] and by_text["as alice"]["user"] == "U0ALICE"
    link = await env.bot.chat_getPermalink(channel="C0GENERAL", message_ts=sent["ts"])
    assert link["permalink"].startswith(env.base + "archives/C0GENERAL/p")


async def test_a_rate_limit_is_raised_with_retry_after_and_the_post_is_not_retried(
    env: Env,
) -> None:
    env.sandbox.fail_next("chat.postMessage", times=1, retry_after=5)
    with pytest.raises(ProviderRateLimited) as err:
        await env.client.post_message(env.token("U0ALICE"), channel="C0GENERAL", text="x")
    assert err.value.retry_after == 5.0
    assert env.calls("chat.postMessage") == 1
    assert env.sandbox.messages("C0GENERAL") == []


async def test_without_a_bot_client_there_is_no_permalink(env: Env) -> None:
    bare = SlackUserClient(base_url=env.base + "api/", session=env.http, timeout=5)
    posted = await bare.post_message(env.token("U0ALICE"), channel="C0GENERAL", text="x")
    assert posted.permalink is None and posted.ts


async def test_an_unreachable_slack_is_unavailable(env: Env) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gone = SlackUserClient(base_url=f"http://127.0.0.1:{port}/api/", session=env.http, timeout=2)
    with pytest.raises(ProviderUnavailable):
        await gone.post_message(env.token("U0ALICE"), channel="C0GENERAL", text="x")


async def test_the_user_token_reaches_no_log_and_no_exception(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # slack_sdk logs requests and answers in full at DEBUG (its own level, whatever an
    # earlier logging set-up quietened it to).
    caplog.set_level(logging.DEBUG, logger="slack_sdk")
    token = env.token("U0DAVE")
    raised: list[BaseException] = []
    env.sandbox.fail_next("chat.postMessage", times=1, retry_after=1)
    for channel in ("C0GENERAL", "C0APOLLO", "C0NOWHERE"):
        try:
            await env.client.post_message(token, channel=channel, text="x")
        except (ProviderRejected, ProviderRateLimited, ProviderUnavailable) as exc:
            raised.append(exc)
    posted = await env.client.post_message(token, channel="C0GENERAL", text="fine")
    assert posted.ts
    assert [type(e).__name__ for e in raised] == [
        "ProviderRateLimited",
        "ProviderRejected",
        "ProviderRejected",
    ]
    for exc in raised:
        text = "".join(traceback.format_exception(exc))
        assert token.access_token not in text
    assert "chat.postMessage" in caplog.text  # slack_sdk did log the calls
    assert token.access_token not in caplog.text
