"""Signed deliveries from the sandbox to the bot: events, slash commands, interactions."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from sandbox.slack import SlackSandbox
from sandbox.slack.manifest import manifest_commands
from tests.fakes.slack import BOT_TOKEN, Received, Receiver, running_sandbox

BUTTONS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Delete *Apollo*?"}},
    {
        "type": "actions",
        "block_id": "decide",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": "apr-1",
                "style": "primary",
            },
            {
                "type": "button",
                "action_id": "deny",
                "text": {"type": "plain_text", "text": "Deny"},
                "value": "apr-1",
            },
        ],
    },
]


@dataclass
class Env:
    sandbox: SlackSandbox
    base: str
    receiver: Receiver
    client: AsyncWebClient


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    receiver = Receiver()
    async with running_sandbox(receiver, retry_timeout=0.3) as (sandbox, base):
        yield Env(sandbox, base, receiver, AsyncWebClient(token=BOT_TOKEN, base_url=base + "api/"))


def json_reply(body: dict[str, object]) -> web.Response:
    return web.json_response(body)


async def test_app_mention_is_a_signed_event_callback(env: Env) -> None:
    posted = await env.sandbox.post_message("U0ALICE", "C0APOLLO", "@pmbot what blocks Apollo?")
    assert posted["message"]["text"] == "<@U0PMBOT> what blocks Apollo?"
    (got,) = env.receiver.received
    assert got.signature_valid
    assert got.content_type == "application/json"
    assert "X-Slack-Retry-Num" not in got.headers
    envelope = got.json()
    assert envelope["type"] == "event_callback"
    assert envelope["team_id"] == "T0SANDBOX"
    assert envelope["api_app_id"] == "A0PMBOT"
    assert envelope["event_id"].startswith("Ev")
    assert envelope["event_id"] == posted["event_id"]
    assert abs(envelope["event_time"] - time.time()) < 5
    assert envelope["authorizations"][0]["user_id"] == "U0PMBOT"
    assert envelope["is_ext_shared_channel"] is False
    assert envelope["token"] and envelope["event_context"]
    event = envelope["event"]
    assert event["type"] == "app_mention"
    assert event["user"] == "U0ALICE"
    assert event["channel"] == "C0APOLLO"
    assert event["ts"] == event["event_ts"] == posted["ts"]
    assert "<@U0PMBOT>" in event["text"]
    (record,) = env.sandbox.deliveries()
    assert record["kind"] == "event"
    assert record["name"] == "app_mention"
    assert record["status"] == 200
    assert record["retry_num"] == 0
    assert record["latency_ms"] > 0


async def test_mention_in_a_thread_carries_thread_ts(env: Env) -> None:
    parent = await env.sandbox.post_message("U0BOB", "C0APOLLO", "launch plan")
    reply = await env.sandbox.post_message(
        "U0ALICE", "C0APOLLO", "<@U0PMBOT> summarise", thread_ts=parent["ts"]
    )
    (got,) = env.receiver.received
    event = got.json()["event"]
    assert event["thread_ts"] == parent["ts"]
    assert event["ts"] == reply["ts"]
    assert event["parent_user_id"] == "U0BOB"


async def test_plain_channel_message_is_not_delivered(env: Env) -> None:
    result = await env.sandbox.post_message("U0ALICE", "C0GENERAL", "lunch?")
    assert result["event_id"] is None
    assert env.receiver.received == []


async def test_dm_to_the_bot_is_a_message_im_event(env: Env) -> None:
    posted = await env.sandbox.post_message("U0CAROL", "U0PMBOT", "my tasks")
    assert posted["channel"].startswith("D")
    event = env.receiver.received[0].json()["event"]
    assert event["type"] == "message"
    assert event["channel_type"] == "im"
    assert event["channel"] == posted["channel"]
    assert event["user"] == "U0CAROL"
    assert event["text"] == "my tasks"


async def test_non_member_cannot_post(env: Env) -> None:
    from sandbox.slack import SandboxError

    with pytest.raises(SandboxError) as err:
        await env.sandbox.post_message("U0DAVE", "C0APOLLO", "let me in")
    assert err.value.error == "not_in_channel"
    with pytest.raises(SandboxError) as err:
        await env.sandbox.post_message("U0PMBOT", "C0APOLLO", "as the bot")
    assert err.value.error == "cannot_act_as_bot"


async def test_app_home_opened(env: Env) -> None:
    first = await env.sandbox.open_home("U0ALICE")
    assert first["view"] is None
    event = env.receiver.received[0].json()["event"]
    assert event["type"] == "app_home_opened"
    assert event["tab"] == "home"
    assert event["user"] == "U0ALICE"
    assert event["channel"] == first["channel"]
    assert "view" not in event
    await env.client.views_publish(
        user_id="U0ALICE",
        view={"type": "home", "blocks": [{"type": "divider"}]},
    )
    await env.sandbox.open_home("U0ALICE")
    event = env.receiver.received[1].json()["event"]
    assert event["view"]["type"] == "home"
    assert event["view"]["blocks"][0]["type"] == "divider"


async def test_background_delivery_without_wait(env: Env) -> None:
    result = await env.sandbox.post_message("U0ALICE", "U0PMBOT", "hi", wait=False)
    assert result["deliveries"] is None
    await env.sandbox.idle()
    assert len(env.receiver.received) == 1


async def test_slash_command_form_and_ephemeral_reply(env: Env) -> None:
    env.receiver.reply = lambda got: json_reply({"text": "Linked as alice"})
    result = await env.sandbox.run_command("U0ALICE", "C0APOLLO", "/pm", "whoami")
    (got,) = env.receiver.received
    assert got.signature_valid
    assert got.content_type == "application/x-www-form-urlencoded"
    form = got.form()
    assert form["command"] == "/pm"
    assert form["text"] == "whoami"
    assert form["user_id"] == "U0ALICE"
    assert form["user_name"] == "alice"
    assert form["channel_id"] == "C0APOLLO"
    assert form["channel_name"] == "apollo"
    assert form["team_id"] == "T0SANDBOX"
    assert form["team_domain"] == "sandbox"
    assert form["api_app_id"] == "A0PMBOT"
    assert form["response_url"] == result["response_url"]
    assert form["response_url"].startswith(env.base + "response/")
    assert form["trigger_id"] and form["token"]
    assert result["delivery"]["kind"] == "command"
    assert result["response"]["text"] == "Linked as alice"
    # Ephemeral by default: only alice sees the reply.
    assert [m["text"] for m in env.sandbox.messages("C0APOLLO", viewer="U0ALICE")] == [
        "Linked as alice"
    ]
    assert env.sandbox.messages("C0APOLLO", viewer="U0BOB") == []


async def test_unknown_slash_command_is_answered_by_slack_and_never_delivered(env: Env) -> None:
    result = await env.sandbox.run_command("U0ALICE", "C0APOLLO", "/deploy", "apollo <now>")
    assert env.receiver.received == []
    assert env.sandbox.deliveries() == []
    assert result["delivery"] is None and result["response_url"] is None
    notice = result["response"]
    assert notice["user"] == "USLACKBOT" and notice["is_ephemeral"] is True
    assert notice["text"].startswith("/deploy is not a valid command. In Slack, messages that")
    assert "start it with a space" in notice["text"]
    assert env.sandbox.messages("C0APOLLO", viewer="U0ALICE") == [notice]
    assert env.sandbox.messages("C0APOLLO", viewer="U0BOB") == []
    # Slack escapes what it echoes, so a typed <@U0BOB> is text, not a mention.
    await env.sandbox.run_command("U0ALICE", "C0APOLLO", "/<@U0BOB>", "")
    echoed = env.sandbox.messages("C0APOLLO", viewer="U0ALICE")[-1]["text"]
    assert echoed.startswith("/&lt;@U0BOB&gt; is not a valid command")


async def test_only_the_commands_the_manifest_declares_are_delivered(tmp_path: Path) -> None:
    assert manifest_commands() == ("/pm",)
    manifest = tmp_path / "manifest.yml"
    manifest.write_text(
        "features:\n  slash_commands:\n    - command: /tasks\n    - command: /standup\n"
    )
    assert manifest_commands(manifest) == ("/tasks", "/standup")
    receiver = Receiver()
    async with running_sandbox(receiver) as (sandbox, _base):
        assert sandbox.commands == {"/pm"}
        sandbox.commands = frozenset(manifest_commands(manifest))
        delivered = await sandbox.run_command("U0ALICE", "C0GENERAL", "/tasks", "mine")
        refused = await sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "help")
    assert delivered["delivery"]["ok"] is True
    assert refused["delivery"] is None
    assert [r.form()["command"] for r in receiver.received] == ["/tasks"]


async def test_slash_command_in_channel_reply_is_public(env: Env) -> None:
    env.receiver.reply = lambda got: json_reply(
        {"response_type": "in_channel", "text": "Apollo is on track"}
    )
    await env.sandbox.run_command("U0ALICE", "C0APOLLO", "/pm", "status apollo")
    seen_by_bob = env.sandbox.messages("C0APOLLO", viewer="U0BOB")
    assert [(m["user"], m["text"]) for m in seen_by_bob] == [
        ("U0ALICE", "/pm status apollo"),
        ("U0PMBOT", "Apollo is on track"),
    ]


async def test_slash_command_plain_text_and_empty_replies(env: Env) -> None:
    env.receiver.reply = lambda got: web.Response(text="plain answer")
    result = await env.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "help")
    assert result["response"]["text"] == "plain answer"
    env.receiver.reply = None
    result = await env.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "help")
    assert result["response"] is None


async def test_slash_command_timeout_shows_slacks_error(env: Env) -> None:
    env.receiver.delays = [0.5]
    result = await env.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "slow")
    assert result["delivery"]["error"] == "http_timeout"
    assert result["delivery"]["status"] is None
    assert result["response"]["text"] == '/pm failed with the error "operation_timeout"'
    assert result["response"]["is_ephemeral"] is True
    # Commands are not retried, unlike events.
    assert len(env.receiver.received) == 1


async def test_response_url_posts_replace_and_delete(env: Env) -> None:
    result = await env.sandbox.run_command("U0ALICE", "C0APOLLO", "/pm", "tasks")
    hook = AsyncWebhookClient(result["response_url"])
    sent = await hook.send(text="working on it")
    assert sent.status_code == 200
    mine = env.sandbox.messages("C0APOLLO", viewer="U0ALICE")
    assert [(m["text"], m.get("is_ephemeral")) for m in mine] == [("working on it", True)]
    await hook.send(text="3 tasks", replace_original=True)
    mine = env.sandbox.messages("C0APOLLO", viewer="U0ALICE")
    assert [m["text"] for m in mine] == ["3 tasks"]
    await hook.send(text="shared", response_type="in_channel")
    assert [m["text"] for m in env.sandbox.messages("C0APOLLO", viewer="U0BOB")] == ["shared"]
    await hook.send_dict({"delete_original": True})
    assert env.sandbox.messages("C0APOLLO", viewer="U0BOB") == []
    # Five uses are allowed, like Slack; this is the sixth.
    await hook.send(text="fifth")
    refused = await hook.send(text="sixth")
    assert refused.status_code == 404
    assert json.loads(refused.body)["error"] == "used_url"
    bad = await AsyncWebhookClient(env.base + "response/unknown").send(text="x")
    assert bad.status_code == 404


async def test_response_url_rejects_bad_payloads(env: Env) -> None:
    result = await env.sandbox.run_command("U0ALICE", "C0APOLLO", "/pm", "x")
    hook = AsyncWebhookClient(result["response_url"])
    empty = await hook.send_dict({"response_type": "ephemeral"})
    assert empty.status_code == 400
    assert json.loads(empty.body)["error"] == "no_text"
    wrong = await hook.send_dict({"text": "x", "response_type": "everyone"})
    assert wrong.status_code == 400


async def test_block_actions_payload_and_replace_original(env: Env) -> None:
    posted = await env.client.chat_postMessage(
        channel="C0APOLLO", text="Delete Apollo?", blocks=BUTTONS
    )
    result = await env.sandbox.click_button("U0BOB", "C0APOLLO", posted["ts"], "approve")
    (got,) = env.receiver.received
    assert got.signature_valid
    assert got.content_type == "application/x-www-form-urlencoded"
    payload = got.payload()
    assert payload["type"] == "block_actions"
    assert payload["user"] == {
        "id": "U0BOB",
        "username": "bob",
        "name": "bob",
        "team_id": "T0SANDBOX",
    }
    assert payload["api_app_id"] == "A0PMBOT"
    assert payload["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "C0APOLLO",
        "is_ephemeral": False,
    }
    assert payload["team"]["id"] == "T0SANDBOX"
    assert payload["channel"] == {"id": "C0APOLLO", "name": "apollo"}
    assert payload["message"]["ts"] == posted["ts"]
    assert payload["message"]["blocks"][1]["block_id"] == "decide"
    assert payload["trigger_id"] and payload["token"]
    (action,) = payload["actions"]
    assert action["action_id"] == "approve"
    assert action["block_id"] == "decide"
    assert action["value"] == "apr-1"
    assert action["type"] == "button"
    assert action["text"]["text"] == "Approve"
    assert action["action_ts"]
    assert payload["response_url"] == result["response_url"]
    assert result["delivery"]["kind"] == "interaction"
    assert result["delivery"]["name"] == "approve"

    hook = AsyncWebhookClient(payload["response_url"])
    await hook.send(text="Approved by bob", replace_original=True)
    (message,) = env.sandbox.messages("C0APOLLO", viewer="U0ALICE")
    assert message["ts"] == posted["ts"]
    assert message["text"] == "Approved by bob"
    assert "blocks" not in message


async def test_click_on_an_ephemeral_message(env: Env) -> None:
    posted = await env.client.chat_postEphemeral(
        channel="C0APOLLO", user="U0ALICE", text="Confirm?", blocks=BUTTONS
    )
    ts = posted["message_ts"]
    from sandbox.slack import SandboxError

    with pytest.raises(SandboxError):
        # Bob cannot see alice's ephemeral message, let alone click it.
        await env.sandbox.click_button("U0BOB", "C0APOLLO", ts, "approve")
    await env.sandbox.click_button("U0ALICE", "C0APOLLO", ts, "deny")
    payload = env.receiver.received[0].payload()
    assert payload["container"]["is_ephemeral"] is True
    assert "message" not in payload, "Slack sends no message for ephemeral containers"
    await AsyncWebhookClient(payload["response_url"]).send_dict({"delete_original": True})
    assert env.sandbox.messages("C0APOLLO", viewer="U0ALICE") == []


async def test_click_unknown_action_is_refused(env: Env) -> None:
    from sandbox.slack import SandboxError

    posted = await env.client.chat_postMessage(channel="C0APOLLO", text="x", blocks=BUTTONS)
    with pytest.raises(SandboxError) as err:
        await env.sandbox.click_button("U0ALICE", "C0APOLLO", posted["ts"], "nope")
    assert err.value.error == "action_not_found"


async def test_home_button_click_has_a_view_container(env: Env) -> None:
    published = await env.client.views_publish(
        user_id="U0CAROL", view={"type": "home", "blocks": BUTTONS}
    )
    await env.sandbox.click_home_button("U0CAROL", "approve")
    payload = env.receiver.received[0].payload()
    assert payload["container"] == {"type": "view", "view_id": published["view"]["id"]}
    assert payload["view"]["id"] == published["view"]["id"]
    assert payload["actions"][0]["action_id"] == "approve"
    assert "response_url" not in payload


async def test_slow_bot_gets_retries_with_retry_headers(env: Env) -> None:
    env.receiver.delays = [0.6]
    posted = await env.sandbox.post_message("U0ALICE", "U0PMBOT", "hello")
    assert len(env.receiver.received) == 2
    first, retry = env.receiver.received
    assert first.json()["event_id"] == retry.json()["event_id"]
    assert retry.signature_valid
    assert retry.headers["X-Slack-Retry-Num"] == "1"
    assert retry.headers["X-Slack-Retry-Reason"] == "http_timeout"
    records = posted["deliveries"]
    assert [(r["retry_num"], r["error"], r["status"]) for r in records] == [
        (0, "http_timeout", None),
        (1, None, 200),
    ]
    assert records[0]["latency_ms"] >= 250
    assert env.sandbox.deliveries() == records


async def test_failing_bot_gets_three_retries(env: Env) -> None:
    env.receiver.statuses = [500, 500, 503, 500]
    await env.sandbox.post_message("U0ALICE", "C0APOLLO", "<@U0PMBOT> hi")
    got = env.receiver.received
    assert len(got) == 4
    assert [g.headers.get("X-Slack-Retry-Num") for g in got] == [None, "1", "2", "3"]
    assert {g.headers.get("X-Slack-Retry-Reason") for g in got[1:]} == {"http_error"}
    assert [d["status"] for d in env.sandbox.deliveries()] == [500, 500, 503, 500]


async def test_no_retry_header_stops_redelivery(env: Env) -> None:
    def refuse(got: Received) -> web.Response:
        return web.Response(status=200)

    env.receiver.statuses = [500]
    env.receiver.reply = refuse
    await env.sandbox.post_message("U0ALICE", "U0PMBOT", "once more")
    assert len(env.receiver.received) == 2  # one failure, one successful retry

    async def no_retry(request: web.Request) -> web.Response:
        return web.Response(status=500, headers={"X-Slack-No-Retry": "1"})

    app = web.Application()
    app.router.add_post("/slack/events", no_retry)
    from tests.fakes.slack import serve

    async with serve(app) as base:
        env.sandbox.events_url = base + "slack/events"
        result = await env.sandbox.post_message("U0ALICE", "U0PMBOT", "stop")
    assert [r["status"] for r in result["deliveries"]] == [500]


async def test_unreachable_bot_is_recorded(env: Env) -> None:
    env.sandbox.events_url = "http://127.0.0.1:9/slack/events"
    result = await env.sandbox.post_message("U0ALICE", "U0PMBOT", "anyone?")
    assert [r["error"] for r in result["deliveries"]] == ["connection_failed"] * 4
    assert [r["retry_reason"] for r in result["deliveries"]] == [None] + ["connection_failed"] * 3


async def test_wait_for_message_sees_an_async_answer(env: Env) -> None:
    async def answer_later() -> None:
        await asyncio.sleep(0.05)
        await env.client.chat_postMessage(channel="C0APOLLO", text="done")

    task = asyncio.create_task(answer_later())
    found = await env.sandbox.wait_for_message(
        "C0APOLLO", match=lambda m: m["text"] == "done", within=2
    )
    await task
    assert found["user"] == "U0PMBOT"
    with pytest.raises(TimeoutError):
        await env.sandbox.wait_for_message(
            "C0APOLLO", match=lambda m: m["text"] == "never", within=0.1
        )
