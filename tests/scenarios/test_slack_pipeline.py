"""Signed Slack requests through the real Bolt app, with the sandbox as Slack's Web API."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import PG_ADMIN_URL, _pg_exec, _sa_url, _with_db
from tests.support import Harness, eventually, running_bot, sign


async def answered_command(bot: Harness, user: str, text: str) -> dict[str, Any]:
    """Run ``/pm text`` in #general and wait for its answer (commands are acked at once and
    answered after), so later counts of the channel start after it."""
    seen = len(bot.sandbox.messages("C0GENERAL", viewer=user))
    result = await bot.sandbox.run_command(user, "C0GENERAL", "/pm", text)
    await eventually(lambda: len(bot.sandbox.messages("C0GENERAL", viewer=user)) > seen)
    return result


@pytest.fixture
async def bot(database_url: str) -> AsyncIterator[Harness]:
    async with running_bot(database_url) as harness:
        for user, email in (("U0ALICE", "alice"), ("U0BOB", "bob"), ("U0DAVE", "dave")):
            await harness.link(user, f"{email}@example.com")
        yield harness


def bot_messages(bot: Harness, channel: str, viewer: str | None = None) -> list[dict[str, Any]]:
    return [
        m
        for m in bot.sandbox.messages(channel, viewer=viewer)
        if m.get("user") == "U0PMBOT" or m.get("bot_id")
    ]


async def dm_channel(bot: Harness, user: str) -> str:
    opened = await bot.deps.slack.conversations_open(users=user)
    return str(opened["channel"]["id"])


async def test_help_command_replies_ephemerally(bot: Harness) -> None:
    result = await bot.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "help")
    assert result
    visible = await eventually(lambda: bot.sandbox.messages("C0GENERAL", viewer="U0ALICE"))
    text = json.dumps(visible)
    assert "/pm help" in text
    assert not bot.sandbox.messages("C0GENERAL", viewer="U0BOB")


async def test_unknown_subcommand_gets_the_help(bot: Harness) -> None:
    await bot.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "frobnicate now")
    visible = await eventually(lambda: bot.sandbox.messages("C0GENERAL", viewer="U0ALICE"))
    text = json.dumps(visible)
    assert "frobnicate" in text and "/pm help" in text


async def test_mention_is_answered_in_its_thread(bot: Harness) -> None:
    posted = await bot.sandbox.post_message("U0ALICE", "C0GENERAL", "<@U0PMBOT> hello")
    ts = posted["ts"]
    reply = await eventually(
        lambda: [m for m in bot_messages(bot, "C0GENERAL") if m.get("thread_ts") == ts]
    )
    assert "pmbot" in reply[0]["text"]


async def test_dm_is_answered(bot: Harness) -> None:
    channel = await dm_channel(bot, "U0BOB")
    before = len(bot_messages(bot, channel))
    await bot.sandbox.post_message("U0BOB", channel, "what can you do?")
    reply = await eventually(lambda: bot_messages(bot, channel)[before:])
    assert "I'm pmbot" in reply[0]["text"] and "I answer as you" in reply[0]["text"]


async def test_app_home_is_published(bot: Harness) -> None:
    await bot.sandbox.open_home("U0CAROL")
    view = await eventually(lambda: bot.sandbox.home_view("U0CAROL"))
    assert view["type"] == "home"
    assert "U0CAROL" in json.dumps(view)


async def test_redeliveries_cause_no_second_side_effect(bot: Harness) -> None:
    channel = await dm_channel(bot, "U0DAVE")
    event = {
        "type": "message",
        "channel": channel,
        "channel_type": "im",
        "user": "U0DAVE",
        "text": "hi",
        "ts": "1700000000.000100",
    }
    body = bot.event_envelope(event, "EvDUPLICATE1")
    before = len(bot_messages(bot, channel))
    for retry in range(4):
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        resp = await bot.post_signed(body, "application/json", headers if retry else None)
        assert resp.status == 200
    await eventually(lambda: bot_messages(bot, channel)[before:])
    assert await bot.ingress.drain() == 0  # every delivery handled, duplicates included
    assert len(bot_messages(bot, channel)) - before == 1
    assert bot.deps.metrics.duplicates.value("event") == 3


async def test_dedup_survives_a_restart(database_url: str) -> None:
    body = b""
    async with running_bot(database_url) as first:
        await first.link("U0DAVE", "dave@example.com")
        channel = await dm_channel(first, "U0DAVE")
        event = {
            "type": "message",
            "channel": channel,
            "channel_type": "im",
            "user": "U0DAVE",
            "text": "hi",
            "ts": "1700000000.000200",
        }
        body = first.event_envelope(event, "EvRESTART1")
        assert (await first.post_signed(body, "application/json")).status == 200
        await eventually(lambda: bot_messages(first, channel))
    async with running_bot(database_url) as second:
        resp = await second.post_signed(body, "application/json", {"X-Slack-Retry-Num": "1"})
        assert resp.status == 200
        assert await second.ingress.drain() == 0
        assert second.deps.metrics.duplicates.value("event") == 1


async def test_bad_signature_and_stale_timestamp_are_rejected(bot: Harness) -> None:
    body = urlencode(
        {"command": "/pm", "text": "help", "user_id": "U0ALICE", "trigger_id": "t-bad"}
    ).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **sign(body, secret="wrong-secret"),
    }
    async with bot.http.post(bot.events_url, data=body, headers=headers) as resp:
        assert resp.status == 401
    stale = {
        "Content-Type": "application/x-www-form-urlencoded",
        **sign(body, timestamp=int(time.time()) - 301),
    }
    async with bot.http.post(bot.events_url, data=body, headers=stale) as resp:
        assert resp.status == 401
    async with bot.http.post(
        bot.events_url, data=body, headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 401
    assert bot.deps.metrics.requests.value("unknown", "401") == 3


async def test_malformed_bodies_get_400_without_traceback(bot: Harness) -> None:
    cases = [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"payload=%7Bbroken", "application/x-www-form-urlencoded"),
        (b"just=form", "application/x-www-form-urlencoded"),
        (b"\xff\xfe", "application/json"),
        (b"hello", "text/plain"),
    ]
    for body, content_type in cases:
        resp = await bot.post_signed(body, content_type)
        assert resp.status == 400, (body, resp.status)


async def test_oversized_body_gets_413(bot: Harness) -> None:
    body = b'{"type": "event_callback", "pad": "' + b"x" * 1_100_000 + b'"}'
    resp = await bot.post_signed(body, "application/json")
    assert resp.status == 413


async def test_url_verification_and_unknown_events(bot: Harness) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "abc123", "token": "t"}).encode()
    async with bot.http.post(
        bot.events_url, data=body, headers={"Content-Type": "application/json", **sign(body)}
    ) as resp:
        assert resp.status == 200
        assert "abc123" in await resp.text()
    unknown = bot.event_envelope({"type": "reaction_added", "user": "U0ALICE"}, "EvUNKNOWN1")
    assert (await bot.post_signed(unknown, "application/json")).status == 200


async def test_rate_limited_replies_are_retried(bot: Harness) -> None:
    bot.sandbox.fail_next("chat.postMessage", times=1, retry_after=1)
    channel = await dm_channel(bot, "U0ALICE")
    before = len(bot_messages(bot, channel))
    await bot.sandbox.post_message("U0ALICE", channel, "hello")
    reply = await eventually(lambda: bot_messages(bot, channel)[before:], within=8)
    assert len(reply) == 1
    calls = [c for c in bot.sandbox.api_calls() if c["method"] == "chat.postMessage"]
    assert [c.get("error") for c in calls[-2:]] == ["ratelimited", None]


async def test_a_failing_listener_does_not_stop_the_bot(bot: Harness) -> None:
    # One call and its three retries are rate limited: the listener fails for good.
    bot.sandbox.fail_next("chat.postMessage", times=4, retry_after=0)
    channel = await dm_channel(bot, "U0BOB")
    await bot.sandbox.post_message("U0BOB", channel, "hello")
    await eventually(lambda: bot.deps.metrics.errors.value("listener") >= 1, within=8)
    await eventually(
        lambda: "Something went wrong" in json.dumps(bot.sandbox.messages(channel, viewer="U0BOB"))
    )
    await bot.sandbox.run_command("U0BOB", "C0GENERAL", "/pm", "help")
    assert await eventually(lambda: bot.sandbox.messages("C0GENERAL", viewer="U0BOB"))


async def test_health_and_metrics(bot: Harness) -> None:
    async with bot.http.get(f"{bot.bot_url}/healthz") as resp:
        assert resp.status == 200
        assert (await resp.json())["database"] == "ok"
    await bot.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "help")
    async with bot.http.get(f"{bot.bot_url}/metrics") as resp:
        text = await resp.text()
    assert 'pmbot_slack_requests_total{kind="command",status="200"} 1' in text
    assert "pmbot_slack_ack_seconds_bucket" in text


async def test_health_is_503_when_the_database_is_down(pg_template: str) -> None:
    """A real outage: the bot's PostgreSQL database is dropped under it."""
    name = f"pmbot_down_{uuid.uuid4().hex[:10]}"
    await _pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        async with running_bot(_sa_url(_with_db(PG_ADMIN_URL, name))) as harness:
            async with harness.http.get(f"{harness.bot_url}/healthz") as resp:
                assert resp.status == 200
            await _pg_exec(f'DROP DATABASE "{name}" WITH (FORCE)')
            async with harness.http.get(f"{harness.bot_url}/healthz") as resp:
                assert resp.status == 503
                assert (await resp.json())["database"] == "down"
    finally:
        await _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_oversized_command_text_gets_a_clear_message(bot: Harness) -> None:
    # Slack itself caps command text at 4,000 characters, so the sandbox refuses more; a
    # forged (but correctly signed) request reuses a real response_url to reach the user.
    first = await answered_command(bot, "U0ALICE", "help")
    body = urlencode(
        {
            "command": "/pm",
            "text": "ask " + "x" * 5000,
            "team_id": "T0SANDBOX",
            "user_id": "U0ALICE",
            "channel_id": "C0GENERAL",
            "response_url": first["response_url"],
            "trigger_id": "t-oversized",
        }
    ).encode()
    resp = await bot.post_signed(body, "application/x-www-form-urlencoded")
    assert resp.status == 200
    await eventually(
        lambda: "too long" in json.dumps(bot.sandbox.messages("C0GENERAL", viewer="U0ALICE"))
    )
    assert "4000" in json.dumps(bot.sandbox.messages("C0GENERAL", viewer="U0ALICE"))


@pytest.mark.parametrize(
    "text", ["help payload", "help payload=1", '{"payload": "help"}', "{help payload"]
)
async def test_command_text_that_looks_like_an_interaction_is_answered(
    bot: Harness, text: str
) -> None:
    # Bolt's own body parser would take any form body containing "payload" (or starting
    # with "{") for something else and drop the command; pmbot parses the body itself.
    result = await bot.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", text)
    assert result["delivery"]["status"] == 200, result["delivery"]
    visible = await eventually(lambda: bot.sandbox.messages("C0GENERAL", viewer="U0ALICE"))
    shown = json.dumps(visible)
    assert "failed with the error" not in shown
    assert "/pm help" in shown
    assert bot.deps.metrics.requests.value("command", "200") == 1


async def test_an_unlinked_user_mentioning_payload_gets_the_link_prompt(
    database_url: str,
) -> None:
    async with running_bot(database_url) as bot:
        result = await bot.sandbox.run_command("U0CAROL", "C0GENERAL", "/pm", "help payload")
        assert result["delivery"]["status"] == 200
        prompt = await eventually(lambda: bot.sandbox.messages("C0GENERAL", viewer="U0CAROL"))
        assert "/auth/link/" in json.dumps(prompt)
        assert "failed with the error" not in json.dumps(prompt)


async def test_a_signed_command_form_reaches_the_listener_as_fields(bot: Harness) -> None:
    """A form posted by hand: a body starting with "{" and mentioning "payload" is still a
    command, a repeated field counts with its first value, and the answer goes through the
    sandbox's real response_url."""
    first = await answered_command(bot, "U0ALICE", "help")
    before = len(bot.sandbox.messages("C0GENERAL", viewer="U0ALICE"))
    body = (
        b'{"payload"=1&'
        + urlencode(
            [
                ("command", "/pm"),
                ("text", "whoami payload={}"),
                ("text", "ignored second value"),
                ("team_id", "T0SANDBOX"),
                ("user_id", "U0ALICE"),
                ("channel_id", "C0GENERAL"),
                ("response_url", first["response_url"]),
                ("trigger_id", "t-payload-by-hand"),
            ]
        ).encode()
    )
    resp = await bot.post_signed(body, "application/x-www-form-urlencoded")
    assert resp.status == 200
    answer = await eventually(lambda: bot.sandbox.messages("C0GENERAL", viewer="U0ALICE")[before:])
    assert "auth0|alice" in json.dumps(answer)


async def test_signature_is_still_required_for_payload_shaped_bodies(bot: Harness) -> None:
    command = urlencode(
        {"command": "/pm", "text": "help payload", "user_id": "U0ALICE", "trigger_id": "t-p1"}
    ).encode()
    interaction = urlencode(
        {"payload": json.dumps({"type": "block_actions", "user": {"id": "U0ALICE"}})}
    ).encode()
    form = "application/x-www-form-urlencoded"
    for body in (command, interaction):
        unsigned = {"Content-Type": form}
        badly_signed = {"Content-Type": form, **sign(body, secret="not-the-secret")}
        for headers in (unsigned, badly_signed):
            async with bot.http.post(bot.events_url, data=body, headers=headers) as resp:
                assert resp.status == 401
                assert (await resp.json())["error"] == "invalid signature"
    assert bot.deps.metrics.requests.value("unknown", "401") == 4
    assert bot.deps.metrics.requests.value("command", "200") == 0


async def test_ssl_check_is_answered(bot: Harness) -> None:
    body = urlencode({"ssl_check": "1", "token": "legacy"}).encode()
    resp = await bot.post_signed(body, "application/x-www-form-urlencoded")
    assert resp.status == 200


async def test_socket_mode_commands_are_answered(bot: Harness) -> None:
    """Socket Mode carries no signature: with Bolt's own check off it still works. A
    loopback Socket Mode server (``apps.connections.open`` and its WebSocket) sends one
    slash command; the answer goes through the sandbox's real response_url."""
    from aiohttp import WSMsgType, web
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.socket_mode import SocketModeReceiver
    from tests.support import start_site

    first = await answered_command(bot, "U0ALICE", "help")
    before = len(bot.sandbox.messages("C0GENERAL", viewer="U0ALICE"))
    acks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    socket_url = ""

    async def connections_open(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "url": socket_url})

    async def link(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1})
        command = {
            "command": "/pm",
            "text": "help payload",
            "team_id": "T0SANDBOX",
            "user_id": "U0ALICE",
            "channel_id": "C0GENERAL",
            "response_url": first["response_url"],
            "trigger_id": "t-socket-1",
        }
        envelope = {"envelope_id": "env-1", "type": "slash_commands", "payload": command}
        await ws.send_json({**envelope, "accepts_response_payload": True})
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await acks.put(json.loads(message.data))
        return ws

    server = web.Application()
    server.router.add_post("/api/apps.connections.open", connections_open)
    server.router.add_get("/link", link)
    runner, base = await start_site(server)
    socket_url = base.replace("http://", "ws://") + "/link"
    receiver = SocketModeReceiver(
        app_token="xapp-1-A0PMBOT-1-socketmodetest",
        ingress=bot.ingress,
        web_client=AsyncWebClient(token="xapp-1-A0PMBOT-1-socketmodetest", base_url=f"{base}/api/"),
    )
    try:
        await receiver.connect()
        ack = await asyncio.wait_for(acks.get(), timeout=5)
        assert ack["envelope_id"] == "env-1"
        answer = await eventually(
            lambda: bot.sandbox.messages("C0GENERAL", viewer="U0ALICE")[before:]
        )
        assert "/pm help" in json.dumps(answer)
    finally:
        await receiver.close()
        await runner.cleanup()
