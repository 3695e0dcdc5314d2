"""What the sandbox gives AI apps: streamed messages and assistant threads, driven by the
real slack_sdk AsyncWebClient, delivered to a signed-request receiver, and kept across a
restart where Slack keeps them."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.storage.db import Database
from sandbox.slack import SandboxError, SlackSandbox
from tests.fakes.slack import BOT_TOKEN, Receiver, running_sandbox

PROMPTS = [{"title": "Blockers", "message": "What is blocking the launch?"}]
CLOSING: list[dict[str, Any]] = [
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "Sources: [1] Plan"}]}
]


def client(base: str) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=base + "api/")


def one(sandbox: SlackSandbox, channel: str, ts: str, viewer: str) -> dict[str, Any]:
    (found,) = [m for m in sandbox.messages(channel, viewer=viewer) if m["ts"] == ts]
    return found


async def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as err:
        await call
    return str(err.value.response["error"])


async def test_a_streamed_reply_grows_then_ends_with_its_blocks() -> None:
    async with running_sandbox() as (sandbox, base):
        slack = client(base)
        top = await sandbox.post_message("U0ALICE", "C0APOLLO", "a question")
        started = await slack.chat_startStream(
            channel="C0APOLLO",
            thread_ts=top["ts"],
            markdown_text="The launch ",
            recipient_user_id="U0ALICE",
            recipient_team_id="T0SANDBOX",
        )
        ts = str(started["ts"])
        seen = one(sandbox, "C0APOLLO", ts, "U0BOB")
        assert seen["is_streaming"] and seen["thread_ts"] == top["ts"]
        assert seen["text"] == "The launch " and seen["user"] == "U0PMBOT"
        await slack.chat_appendStream(channel="C0APOLLO", ts=ts, markdown_text="is **late**")
        assert one(sandbox, "C0APOLLO", ts, "U0BOB")["text"] == "The launch is **late**"
        stopped = await slack.chat_stopStream(
            channel="C0APOLLO", ts=ts, markdown_text=" [1]", blocks=CLOSING
        )
        final = one(sandbox, "C0APOLLO", ts, "U0BOB")
        assert "is_streaming" not in final
        assert final["text"] == "The launch is **late** [1]"
        assert final["blocks"][0] == {
            "type": "markdown",
            "text": "The launch is **late** [1]",
            "block_id": "stream",
        }
        assert final["blocks"][1]["elements"] == CLOSING[0]["elements"]
        assert stopped["message"]["text"] == final["text"]
        # What the bot reads back is Slack's shape: no sandbox marks.
        replies = await slack.conversations_replies(channel="C0APOLLO", ts=top["ts"])
        assert replies["messages"][1]["text"] == final["text"]
        assert "is_streaming" not in json.dumps(replies["messages"])
        assert await error_of(
            slack.chat_appendStream(channel="C0APOLLO", ts=ts, markdown_text="more")
        ) == ("message_not_in_streaming_state")


async def test_streams_are_refused_as_slack_refuses_them() -> None:
    async with running_sandbox() as (sandbox, base):
        slack = client(base)
        top = await sandbox.post_message("U0ALICE", "C0APOLLO", "a question")
        everyone = {"recipient_user_id": "U0ALICE", "recipient_team_id": "T0SANDBOX"}
        # A stream is a reply, and in a channel it names its reader.
        assert await error_of(
            slack.api_call("chat.startStream", json={"channel": "C0APOLLO", **everyone})
        ) == ("invalid_arguments")
        assert await error_of(
            slack.chat_startStream(channel="C0APOLLO", thread_ts=top["ts"], markdown_text="x")
        ) == ("invalid_arguments")
        assert await error_of(
            slack.chat_startStream(channel="C0APOLLO", thread_ts="1.000001", **everyone)
        ) == ("thread_not_found")
        assert await error_of(
            slack.chat_startStream(
                channel="C0APOLLO",
                thread_ts=top["ts"],
                recipient_user_id="U0DAVE",  # not in #apollo
                recipient_team_id="T0SANDBOX",
            )
        ) == ("user_not_in_channel")
        posted = await slack.chat_postMessage(channel="C0APOLLO", text="not a stream")
        assert await error_of(
            slack.chat_appendStream(channel="C0APOLLO", ts=posted["ts"], markdown_text="x")
        ) == ("message_not_in_streaming_state")
        assert await error_of(slack.chat_stopStream(channel="C0APOLLO", ts="1.000001")) == (
            "message_not_found"
        )
        started = await slack.chat_startStream(channel="C0APOLLO", thread_ts=top["ts"], **everyone)
        assert await error_of(
            slack.chat_appendStream(
                channel="C0APOLLO", ts=started["ts"], markdown_text="x" * 12_001
            )
        ) == ("msg_too_long")
        assert await error_of(
            slack.chat_stopStream(
                channel="C0APOLLO", ts=started["ts"], blocks=[{"type": "section"}]
            )
        ) == ("invalid_blocks")
        # In a DM the reader is the person of the DM.
        dm = await slack.conversations_open(users="U0BOB")
        note = await sandbox.post_message("U0BOB", dm["channel"]["id"], "hi")
        await slack.chat_startStream(channel=dm["channel"]["id"], thread_ts=note["ts"])


async def test_opening_the_assistant_starts_a_thread_and_tells_the_bot() -> None:
    receiver = Receiver()
    async with running_sandbox(receiver) as (sandbox, base):
        slack = client(base)
        opened = await sandbox.open_assistant("U0CAROL", context_channel="C0GENERAL")
        dm, thread = str(opened["channel"]), str(opened["thread_ts"])
        envelope = receiver.received[-1]
        assert envelope.signature_valid
        event = envelope.json()["event"]
        assert event["type"] == "assistant_thread_started"
        assert event["assistant_thread"] == {
            "user_id": "U0CAROL",
            "context": {"channel_id": "C0GENERAL", "team_id": "T0SANDBOX", "enterprise_id": None},
            "channel_id": dm,
            "thread_ts": thread,
        }
        await slack.assistant_threads_setSuggestedPrompts(
            channel_id=dm, thread_ts=thread, prompts=PROMPTS, title="Try"
        )
        await slack.assistant_threads_setStatus(
            channel_id=dm, thread_ts=thread, status="is thinking…"
        )
        state = sandbox.assistant_thread(dm, thread)
        assert state is not None
        assert state["prompts"] == PROMPTS and state["prompts_title"] == "Try"
        assert state["status"] == "is thinking…"
        root = one(sandbox, dm, thread, "U0CAROL")
        assert root["subtype"] == "assistant_app_thread"
        assert root["assistant_status"] == "is thinking…"
        # A person's reply in the pane reaches the bot as a DM message in that thread.
        await sandbox.post_message("U0CAROL", dm, "What is blocking the launch?", thread)
        asked = receiver.received[-1].json()["event"]
        assert asked["channel_type"] == "im" and asked["thread_ts"] == thread
        await slack.assistant_threads_setTitle(channel_id=dm, thread_ts=thread, title="Blockers")
        await slack.chat_postMessage(channel=dm, thread_ts=thread, text="An answer")
        state = sandbox.assistant_thread(dm, thread)
        assert state is not None
        assert state["title"] == "Blockers" and state["status"] == ""  # the reply ended it


async def test_assistant_calls_are_checked() -> None:
    async with running_sandbox() as (sandbox, base):
        slack = client(base)
        opened = await sandbox.open_assistant("U0CAROL")
        dm, thread = str(opened["channel"]), str(opened["thread_ts"])
        assert sandbox.assistant_thread(dm, thread) is not None
        assert (
            await error_of(
                slack.assistant_threads_setStatus(channel_id=dm, thread_ts="1.000001", status="x")
            )
            == "thread_not_found"
        )
        assert (
            await error_of(
                slack.assistant_threads_setSuggestedPrompts(
                    channel_id=dm, thread_ts=thread, prompts=PROMPTS * 5
                )
            )
            == "invalid_arguments"
        )
        plain = await sandbox.post_message("U0CAROL", dm, "a plain DM")
        assert (
            await error_of(
                slack.assistant_threads_setTitle(channel_id=dm, thread_ts=plain["ts"], title="x")
            )
            == "invalid_arguments"
        )
        assert sandbox.assistant_thread(dm, str(plain["ts"])) is None
        assert (
            await error_of(
                slack.assistant_threads_setStatus(channel_id="C0NOPE", thread_ts=thread, status="x")
            )
            == "channel_not_found"
        )
        with pytest.raises(SandboxError) as err:
            await sandbox.open_assistant("U0PMBOT")
        assert err.value.error == "cannot_act_as_bot"


async def test_the_json_api_opens_and_reads_assistant_threads() -> None:
    async with running_sandbox() as (_sandbox, base), aiohttp.ClientSession() as http:
        async with http.post(base + "ui/assistant", json={"user": "U0ALICE"}) as resp:
            opened = await resp.json()
            assert resp.status == 200 and opened["ok"]
        query = f"channel={opened['channel']}&thread_ts={opened['thread_ts']}"
        async with http.get(base + "ui/assistant?" + query) as resp:
            thread = (await resp.json())["thread"]
            assert thread["title"] == "" and thread["prompts"] == []
        async with http.get(base + "ui/assistant?channel=C0GENERAL&thread_ts=1.0") as resp:
            assert resp.status == 400 and (await resp.json())["error"] == "thread_not_found"
        async with http.post(base + "ui/assistant", json={"user": "U0NOBODY"}) as resp:
            assert resp.status == 400 and (await resp.json())["error"] == "user_not_found"


async def test_titles_and_prompts_survive_a_restart_streams_and_statuses_do_not(
    database_url: str,
) -> None:
    db = Database(database_url)
    try:
        async with running_sandbox(engine=db.engine) as (sandbox, base):
            slack = client(base)
            opened = await sandbox.open_assistant("U0BOB")
            dm, thread = str(opened["channel"]), str(opened["thread_ts"])
            await slack.assistant_threads_setTitle(channel_id=dm, thread_ts=thread, title="Plan")
            await slack.assistant_threads_setSuggestedPrompts(
                channel_id=dm, thread_ts=thread, prompts=PROMPTS
            )
            question = await sandbox.post_message("U0BOB", dm, "status?", thread)
            started = await slack.chat_startStream(
                channel=dm, thread_ts=question["ts"], markdown_text="Half an ans"
            )
            await slack.assistant_threads_setStatus(channel_id=dm, thread_ts=thread, status="hm")
        async with running_sandbox(engine=db.engine) as (sandbox, base):
            await sandbox.load()
            state = sandbox.assistant_thread(dm, thread)
            assert state is not None
            assert state["title"] == "Plan" and state["prompts"] == PROMPTS
            assert state["status"] == ""
            left = one(sandbox, dm, str(started["ts"]), "U0BOB")
            assert left["text"] == "Half an ans" and "is_streaming" not in left
            assert (
                await error_of(
                    client(base).chat_appendStream(channel=dm, ts=started["ts"], markdown_text="x")
                )
                == "message_not_in_streaming_state"
            )
    finally:
        await db.dispose()
