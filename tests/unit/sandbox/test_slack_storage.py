"""The sandbox workspace kept in the bot's database: a restart shows yesterday's
conversations, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select, text

from bot.storage.db import Database
from sandbox.slack import SandboxError, SlackSandbox
from sandbox.slack.storage import sandbox_messages
from tests.fakes.slack import BOT_TOKEN, Receiver, running_sandbox
from tests.support import serving_embedded_default

PEOPLE = ["U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"]
HOME = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Hi"}}]}
BUTTON = [
    {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "approve",
                "text": {"type": "plain_text", "text": "Approve"},
            }
        ],
    }
]


def everything(sandbox: SlackSandbox, conversations: list[str]) -> dict[str, Any]:
    """Every conversation as every person sees it (ephemeral messages only by their own,
    DMs only by their members) and as the bot reads it."""

    def seen(channel: str, viewer: str | None) -> Any:
        try:
            return sandbox.messages(channel, viewer=viewer)
        except SandboxError as exc:
            return exc.error

    viewers: list[str | None] = [*PEOPLE, None]
    return {c: {str(u): seen(c, u) for u in viewers} for c in conversations}


async def test_a_restarted_sandbox_shows_what_happened_before(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with running_sandbox(Receiver(), engine=db.engine) as (sandbox, base):
            slack = AsyncWebClient(token=BOT_TOKEN, base_url=base + "api/")
            top = await sandbox.post_message("U0ALICE", "C0APOLLO", "@pmbot status?")
            await sandbox.post_message("U0BOB", "C0APOLLO", "on track", thread_ts=top["ts"])
            await slack.chat_postMessage(channel="C0APOLLO", text="Done", thread_ts=top["ts"])
            await slack.chat_postEphemeral(channel="C0APOLLO", user="U0ALICE", text="for alice")
            edited = await slack.chat_postMessage(channel="C0GENERAL", text="draft", blocks=BUTTON)
            await slack.chat_update(channel="C0GENERAL", ts=edited["ts"], text="final")
            gone = await slack.chat_postMessage(channel="C0GENERAL", text="oops")
            await slack.chat_delete(channel="C0GENERAL", ts=gone["ts"])
            parent = await slack.chat_postMessage(channel="C0RANDOM", text="parent")
            await slack.chat_postMessage(channel="C0RANDOM", text="reply", thread_ts=parent["ts"])
            await slack.chat_delete(channel="C0RANDOM", ts=parent["ts"])  # leaves a tombstone
            bob_dm = (await slack.conversations_open(users="U0BOB"))["channel"]["id"]
            await slack.chat_postMessage(channel=bob_dm, text="hi bob")
            people_dm = (await sandbox.post_message("U0CAROL", "U0DAVE", "psst"))["channel"]
            view = (await slack.views_publish(user_id="U0CAROL", view=HOME))["view"]
            command = await sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", "help")
            conversations = ["C0APOLLO", "C0GENERAL", "C0RANDOM", bob_dm, people_dm]
            before = everything(sandbox, conversations)
            last_ts = max(m["ts"] for m in sandbox.messages("C0APOLLO"))

        async with running_sandbox(Receiver(), engine=db.engine) as (again, base_again):
            assert everything(again, conversations) == before
            apollo = again.messages("C0APOLLO", viewer="U0ALICE")
            assert [m["text"] for m in apollo] == [
                "<@U0PMBOT> status?",
                "on track",
                "Done",
                "for alice",
            ]
            assert apollo[0]["reply_count"] == 2 and apollo[-1]["visible_to"] == "U0ALICE"
            assert "for alice" not in str(again.messages("C0APOLLO", viewer="U0BOB"))
            general = again.messages("C0GENERAL", viewer="U0BOB")
            assert [(m["text"], "edited" in m) for m in general] == [("final", True)]
            assert again.messages("C0RANDOM")[0]["subtype"] == "tombstone"
            assert again.home_view("U0CAROL") == view

            slack = AsyncWebClient(token=BOT_TOKEN, base_url=base_again + "api/")
            reopened = await slack.conversations_open(users="U0BOB")
            assert reopened["channel"]["id"] == bob_dm and reopened["already_open"]
            new_dm = (await slack.conversations_open(users="U0DAVE"))["channel"]["id"]
            assert new_dm not in (bob_dm, people_dm)
            later = await slack.chat_postMessage(channel="C0APOLLO", text="later")
            assert float(later["ts"]) > float(last_ts)
            republished = await slack.views_publish(user_id="U0CAROL", view=HOME, hash=view["hash"])
            assert republished["view"]["id"] == view["id"]

            # Response URLs end with the run that issued them.
            token = command["response_url"].rsplit("/", 1)[1]
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"{base_again}response/{token}", json={"text": "late"}) as resp,
            ):
                assert resp.status == 404
                assert (await resp.json())["error"] == "expired_url"
    finally:
        await db.dispose()


async def test_without_a_database_nothing_outlives_the_sandbox() -> None:
    async with running_sandbox(Receiver()) as (sandbox, _base):
        await sandbox.post_message("U0ALICE", "C0GENERAL", "hello")
        assert sandbox.store is None
    async with running_sandbox(Receiver()) as (again, _base):
        assert again.messages("C0GENERAL") == []


async def test_a_failed_save_is_retried_with_the_next_change(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(sqlite_url)
    try:
        async with running_sandbox(Receiver(), engine=db.engine) as (sandbox, _base):
            async with db.engine.begin() as conn:
                await conn.execute(text("ALTER TABLE sandbox_messages RENAME TO sandbox_away"))
            with caplog.at_level(logging.WARNING, logger="sandbox.slack"):
                first = await sandbox.post_message("U0ALICE", "C0GENERAL", "while away")
            assert first["ok"] and "could not save the sandbox workspace" in caplog.text
            async with db.engine.begin() as conn:
                await conn.execute(text("ALTER TABLE sandbox_away RENAME TO sandbox_messages"))
            await sandbox.post_message("U0ALICE", "C0GENERAL", "back again")
        async with db.engine.connect() as conn:
            stored = await conn.scalar(select(func.count()).select_from(sandbox_messages))
        assert stored == 2
        async with running_sandbox(Receiver(), engine=db.engine) as (again, _base):
            texts = [m["text"] for m in again.messages("C0GENERAL")]
        assert texts == ["while away", "back again"]
    finally:
        await db.dispose()


async def test_make_run_after_make_run_shows_yesterdays_conversations(tmp_path: Path) -> None:
    database = f"{tmp_path}/pmbot.sqlite3"
    message = {"user": "U0ALICE", "channel": "C0GENERAL", "text": "hello from yesterday"}
    command = {"user": "U0ALICE", "channel": "C0GENERAL", "command": "/pm", "text": "help"}
    async with serving_embedded_default(database) as url, aiohttp.ClientSession() as http:
        async with http.post(f"{url}/sandbox/ui/messages", json=message) as resp:
            assert resp.status == 200
        async with http.post(f"{url}/sandbox/ui/commands", json=command) as resp:
            assert resp.status == 200
        seen = f"{url}/sandbox/ui/messages?channel=C0GENERAL&user=U0ALICE"
        for _ in range(250):  # the bot may answer through the response URL, a bit later
            async with http.get(seen) as resp:
                yesterday = (await resp.json())["messages"]
            if any(m.get("is_ephemeral") and m.get("bot_id") for m in yesterday):
                break
            await asyncio.sleep(0.02)
    assert yesterday[0]["text"] == "hello from yesterday"
    assert any(m.get("is_ephemeral") and m.get("bot_id") for m in yesterday)

    async with serving_embedded_default(database) as url, aiohttp.ClientSession() as http:
        async with http.get(f"{url}/sandbox/ui/messages?channel=C0GENERAL&user=U0ALICE") as resp:
            today = (await resp.json())["messages"]
        async with http.get(f"{url}/sandbox/ui/messages?channel=C0GENERAL&user=U0BOB") as resp:
            for_bob = (await resp.json())["messages"]
    assert today == yesterday
    assert [m["text"] for m in for_bob] == ["hello from yesterday"]
