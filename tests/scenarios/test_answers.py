"""Answers end to end: questions from the Slack sandbox, signed, through the real Bolt app,
the answer service, the authorized retriever, the authorization engine and the chat model
(a fake OpenAI-compatible server, over the real SDK), on every surface.

The workspace is the demo's (``sandbox.demo``): alice owns Apollo and alone reads the
Apollo Board's notes ("what blocks Apollo's launch is the unsigned payment vendor
contract"); bob edits Apollo, carol views it; Borealis is bob's (carol and dave view it).
#apollo is alice, bob and the bot; #random everyone but dave. Seeded permissions: alice
has every one, bob and carol ``read:projects``, dave none.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.knowledge.feedback import Answer, AnswerFeedback
from bot.knowledge.ingest import Ingester
from sandbox.demo import seed_demo
from tests.fakes.openai import OpenAIServer, openai_server
from tests.support import Harness, running_bot

QUESTION = "What is blocking the Apollo launch?"
BOARD = "Apollo board notes, November"  # alice only
EMAILS = {
    "U0ALICE": "alice@example.com",
    "U0BOB": "bob@example.com",
    "U0CAROL": "carol@example.com",
    "U0DAVE": "dave@example.com",
}


async def seeded(bot: Harness, folder: Path, *linked: str) -> Harness:
    ingester = Ingester(db=bot.deps.db, outbox=bot.deps.outbox)
    assert await seed_demo(bot.deps.db, bot.deps.outbox, ingester.ingest, folder=folder)

    async def indexed() -> bool:
        found = await bot.deps.knowledge.search("Apollo", viewers=["user:auth0|alice"], k=1)
        return bool(found)

    loop_deadline = time.monotonic() + 10
    while not await indexed():
        assert time.monotonic() < loop_deadline, "the demo documents were not indexed"
        await bot.ingress.drain(0.05)
    for user in linked:
        await bot.link(user, EMAILS[user])
    return bot


@pytest.fixture
async def llm() -> AsyncIterator[OpenAIServer]:
    async with openai_server() as server:
        yield server


def with_model(llm: OpenAIServer, **more: object) -> dict[str, object]:
    return {
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": "sk-test-answers",
        "OPENAI_MODEL": "fake-model",
        "RETRIEVAL_REFRESH_SECONDS": 0.05,
        **more,
    }


@pytest.fixture
async def bot(database_url: str, llm: OpenAIServer, tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(database_url, **with_model(llm)) as harness:
        yield await seeded(harness, tmp_path, "U0ALICE", "U0BOB", "U0CAROL")


@pytest.fixture
async def extractive(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """No chat model configured: answers quote the documents."""
    async with running_bot(sqlite_url, RETRIEVAL_REFRESH_SECONDS=0.05) as harness:
        yield await seeded(harness, tmp_path, "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE")


# -- helpers --------------------------------------------------------------------------------


async def mention(
    bot: Harness, user: str, channel: str, text: str, thread_ts: str | None = None
) -> str:
    """Posts ``@pmbot text``; returns the message's ts once the bot is done with it."""
    posted = await bot.sandbox.post_message(user, channel, f"<@U0PMBOT> {text}", thread_ts)
    await bot.ingress.drain()
    return str(posted["ts"])


def in_thread(bot: Harness, channel: str, thread: str, viewer: str) -> list[dict[str, Any]]:
    """The bot's replies in a thread, as ``viewer`` sees them."""
    return [
        m
        for m in bot.sandbox.messages(channel, viewer=viewer)
        if m.get("user") == "U0PMBOT" and m.get("thread_ts") == thread and m.get("ts") != thread
    ]


def shown(message: dict[str, Any]) -> str:
    """Everything a message shows: its text and its blocks."""
    return f"{message.get('text', '')}\n{json.dumps(message.get('blocks') or [])}"


def calls(bot: Harness, method: str) -> int:
    return sum(1 for c in bot.sandbox.api_calls() if c["method"] == method and c["ok"])


async def answers(bot: Harness) -> list[Answer]:
    async with bot.deps.db.session() as session:
        return list(await session.scalars(select(Answer).order_by(Answer.created_at)))


async def document_ids(bot: Harness, *titles: str) -> set[str]:
    from bot.projects.models import Document

    async with bot.deps.db.session() as session:
        rows = await session.execute(select(Document.id, Document.title))
        return {i for i, t in rows if t in titles}


# -- channels: the audience decides ----------------------------------------------------------


async def test_a_channel_answer_everyone_may_read_is_streamed_with_citations(
    bot: Harness, llm: OpenAIServer
) -> None:
    """Bob's best sources are Apollo's, which alice (the other person in #apollo) reads too:
    the answer is streamed into the thread for both, with numbered sources and buttons."""
    ts = await mention(bot, "U0BOB", "C0APOLLO", QUESTION)
    (reply,) = in_thread(bot, "C0APOLLO", ts, viewer="U0ALICE")
    assert not reply.get("is_ephemeral")
    assert calls(bot, "chat.startStream") == 1 and calls(bot, "chat.stopStream") == 1
    text = shown(reply)
    assert "[1]" in reply["text"] and "Sources" in text and "Apollo status, week" in text
    assert BOARD not in text and "vendor contract" not in text.lower()
    assert "answer_feedback_up" in text
    (prompt,) = llm.prompt_texts
    assert "Apollo status, week" in prompt and BOARD not in prompt
    (record,) = await answers(bot)
    assert record.visibility == "channel" and record.asker_slack_user_id == "U0BOB"
    assert record.question == QUESTION
    cited = set(json.loads(record.document_ids))
    assert cited and not cited & await document_ids(bot, BOARD)


async def test_an_answer_needing_more_than_the_channel_may_see_goes_to_the_asker_alone(
    bot: Harness, llm: OpenAIServer
) -> None:
    """Alice's best source is the board's notes, which bob may not read: she gets the
    answer only she can see; #apollo gets a note without content."""
    ts = await mention(bot, "U0ALICE", "C0APOLLO", QUESTION)
    mine = in_thread(bot, "C0APOLLO", ts, viewer="U0ALICE")
    private = [m for m in mine if m.get("is_ephemeral")]
    (answer,) = private
    assert BOARD in shown(answer) and "Only you can see this answer" in shown(answer)
    (note,) = in_thread(bot, "C0APOLLO", ts, viewer="U0BOB")
    assert "answered you privately" in note["text"] and "<@U0ALICE>" in note["text"]
    everything_bob_sees = json.dumps(bot.sandbox.messages("C0APOLLO", viewer="U0BOB"))
    assert "board" not in everything_bob_sees.lower()
    assert "vendor" not in everything_bob_sees.lower()
    assert calls(bot, "chat.startStream") == 0  # an ephemeral answer cannot be streamed
    assert BOARD in llm.prompt_texts[0]  # written for alice, from what she may read
    (record,) = await answers(bot)
    assert record.visibility == "private"
    assert await document_ids(bot, BOARD) <= set(json.loads(record.document_ids))


async def test_an_unlinked_member_means_the_channel_may_see_nothing(bot: Harness) -> None:
    """Dave (in #general) has not linked: whatever bob asks there is answered privately."""
    ts = await mention(bot, "U0BOB", "C0GENERAL", QUESTION)
    (note,) = in_thread(bot, "C0GENERAL", ts, viewer="U0DAVE")
    assert "answered you privately" in note["text"]
    private = [m for m in in_thread(bot, "C0GENERAL", ts, viewer="U0BOB") if m.get("is_ephemeral")]
    assert "Apollo status, week" in shown(private[0])


async def test_a_thread_is_the_context_of_a_follow_up(bot: Harness, llm: OpenAIServer) -> None:
    first = await mention(bot, "U0BOB", "C0APOLLO", "Tell me about the Apollo status reports.")
    await bot.sandbox.post_message("U0ALICE", "C0APOLLO", "The beta went well.", first)
    await mention(bot, "U0BOB", "C0APOLLO", "And the launch blockers?", first)
    follow_up = llm.prompts[-1][-1]["content"]
    assert "Earlier messages of this conversation" in follow_up
    assert "The beta went well." in follow_up and "Tell me about the Apollo status" in follow_up
    assert "pmbot" in follow_up  # the bot's own earlier answer, as the thread shows it
    replies = in_thread(bot, "C0APOLLO", first, viewer="U0ALICE")
    assert len([m for m in replies if not m.get("is_ephemeral")]) == 2


# -- private surfaces ------------------------------------------------------------------------


async def test_a_dm_is_answered_privately_and_streamed(bot: Harness, llm: OpenAIServer) -> None:
    dm = await bot.dm_channel("U0CAROL")
    posted = await bot.sandbox.post_message("U0CAROL", dm, "What is blocking Borealis?")
    await bot.ingress.drain()
    (reply,) = in_thread(bot, dm, str(posted["ts"]), viewer="U0CAROL")
    assert "Borealis blockers" in shown(reply) and calls(bot, "chat.startStream") == 1
    assert "Borealis" in llm.prompt_texts[0]


async def test_pm_ask_answers_only_the_asker(bot: Harness) -> None:
    await bot.sandbox.run_command("U0ALICE", "C0GENERAL", "/pm", f"ask {QUESTION}")
    await bot.ingress.drain()
    (reply,) = [
        m for m in bot.sandbox.messages("C0GENERAL", viewer="U0ALICE") if m.get("user") == "U0PMBOT"
    ]
    assert reply.get("is_ephemeral") and BOARD in shown(reply)
    assert not [
        m for m in bot.sandbox.messages("C0GENERAL", viewer="U0BOB") if m.get("user") == "U0PMBOT"
    ]


async def test_the_assistant_pane(bot: Harness, llm: OpenAIServer) -> None:
    opened = await bot.sandbox.open_assistant("U0CAROL")
    await bot.ingress.drain()
    dm, thread = str(opened["channel"]), str(opened["thread_ts"])
    state = bot.sandbox.assistant_thread(dm, thread)
    assert state is not None
    assert state["prompts"][0]["message"] == "What is blocking our launch?"
    greeting = in_thread(bot, dm, thread, viewer="U0CAROL")
    assert "Ask me about your projects" in greeting[0]["text"]
    await bot.sandbox.post_message("U0CAROL", dm, QUESTION, thread)
    await bot.ingress.drain()
    statuses = [c for c in bot.sandbox.api_calls() if c["method"] == "assistant.threads.setStatus"]
    assert statuses and statuses[0]["ok"]
    state = bot.sandbox.assistant_thread(dm, thread)
    assert state is not None
    assert state["title"] == QUESTION and state["status"] == ""  # cleared by the answer
    replies = in_thread(bot, dm, thread, viewer="U0CAROL")
    assert "Apollo status, week" in shown(replies[-1]) and BOARD not in shown(replies[-1])


# -- feedback ---------------------------------------------------------------------------------


async def test_feedback_is_stored_with_the_question_the_sources_and_the_asker(
    bot: Harness,
) -> None:
    ts = await mention(bot, "U0BOB", "C0APOLLO", QUESTION)
    (reply,) = in_thread(bot, "C0APOLLO", ts, viewer="U0ALICE")
    for user, action in (
        ("U0ALICE", "answer_feedback_up"),
        ("U0BOB", "answer_feedback_down"),
        ("U0BOB", "answer_feedback_up"),
    ):
        await bot.sandbox.click_button(user, "C0APOLLO", str(reply["ts"]), action)
        await bot.ingress.drain()
    async with bot.deps.db.session() as session:
        votes = {
            (v.voter_slack_user_id, v.vote) for v in await session.scalars(select(AnswerFeedback))
        }
    assert votes == {("U0ALICE", "up"), ("U0BOB", "up")}
    (record,) = await answers(bot)
    assert record.question == QUESTION and record.asker_sub == "auth0|bob"
    assert json.loads(record.document_ids)
    thanks = [
        m
        for m in bot.sandbox.messages("C0APOLLO", viewer="U0BOB")
        if m.get("is_ephemeral") and "feedback" in m.get("text", "")
    ]
    assert [m["text"] for m in thanks] == [
        "Thanks for your feedback.",
        "Thanks: your feedback is updated.",
    ]


# -- refusals and failures --------------------------------------------------------------------


async def test_empty_and_oversized_questions_get_a_clear_message(bot: Harness) -> None:
    ts = await mention(bot, "U0BOB", "C0APOLLO", "")
    (empty,) = in_thread(bot, "C0APOLLO", ts, viewer="U0BOB")
    assert empty.get("is_ephemeral") and "What would you like to know?" in empty["text"]
    huge = "<@U0PMBOT> " + "x" * 39_989
    assert len(huge) == 40_000
    posted = await bot.sandbox.post_message("U0BOB", "C0APOLLO", huge)
    await bot.ingress.drain()
    (long,) = in_thread(bot, "C0APOLLO", str(posted["ts"]), viewer="U0BOB")
    assert long.get("is_ephemeral")
    assert "too long (39,989 characters; the limit is 4,000)" in long["text"]
    assert in_thread(bot, "C0APOLLO", str(posted["ts"]), viewer="U0ALICE") == []
    await bot.sandbox.run_command("U0BOB", "C0APOLLO", "/pm", "ask")
    await bot.ingress.drain()
    assert any(
        "What would you like to know?" in m.get("text", "")
        for m in bot.sandbox.messages("C0APOLLO", viewer="U0BOB")
    )


async def test_nothing_readable_is_the_same_answer_whether_or_not_something_exists(
    extractive: Harness,
) -> None:
    """Carol may not read the vendor contract's liability clause; nothing at all is about
    zebras: both get the same words, and nothing else."""
    bot = extractive
    dm = await bot.dm_channel("U0CAROL")
    replies = []
    for question in ("Liability clause cap?", "Zebra sleep cycles?"):
        posted = await bot.sandbox.post_message("U0CAROL", dm, question)
        await bot.ingress.drain()
        (reply,) = [
            m for m in bot.sandbox.messages(dm, viewer="U0CAROL") if m.get("ts") > posted["ts"]
        ]
        replies.append(shown(reply))
    assert replies[0] == replies[1]
    assert "I found nothing you have access to about that." in replies[0]
    assert await answers(bot) == []


async def test_extractive_answers_quote_the_documents(extractive: Harness) -> None:
    ts = await mention(extractive, "U0BOB", "C0APOLLO", "What is blocking Borealis?")
    # Borealis is bob's, not alice's: the channel may not see it.
    (reply,) = [m for m in in_thread(extractive, "C0APOLLO", ts, "U0BOB") if m.get("is_ephemeral")]
    assert "Here is what the documents say:" in shown(reply)
    assert "Borealis is blocked by the time zone loss in two tables." in shown(reply)
    assert "[1]" in shown(reply)


async def test_a_person_without_read_permission_is_told_so(extractive: Harness) -> None:
    dm = await extractive.dm_channel("U0DAVE")
    posted = await extractive.sandbox.post_message("U0DAVE", dm, "What is blocking Borealis?")
    await extractive.ingress.drain()
    (reply,) = [
        m for m in extractive.sandbox.messages(dm, viewer="U0DAVE") if m.get("ts") > posted["ts"]
    ]
    assert "`read:projects`" in reply["text"] and "Borealis" not in reply["text"]


async def test_a_failing_model_gets_a_clear_message(bot: Harness, llm: OpenAIServer) -> None:
    llm.status = 500
    ts = await mention(bot, "U0BOB", "C0APOLLO", QUESTION)
    (reply,) = in_thread(bot, "C0APOLLO", ts, viewer="U0BOB")
    assert "the language model refused the request" in reply["text"]
    assert await answers(bot) == []


async def test_a_slow_model_is_given_up_in_bounded_time(
    sqlite_url: str, llm: OpenAIServer, tmp_path: Path
) -> None:
    async with running_bot(sqlite_url, **with_model(llm, ANSWER_TIMEOUT=1)) as harness:
        bot = await seeded(harness, tmp_path, "U0ALICE", "U0BOB")
        llm.stall_after = 3
        started = time.perf_counter()
        ts = await mention(bot, "U0BOB", "C0APOLLO", QUESTION)
        assert time.perf_counter() - started < 5
        (reply,) = in_thread(bot, "C0APOLLO", ts, viewer="U0BOB")
        assert "I couldn't finish this answer: the language model took too long" in reply["text"]
        llm.stall_after, llm.delay = None, 10
        dm = await bot.dm_channel("U0BOB")
        posted = await bot.sandbox.post_message("U0BOB", dm, QUESTION)
        await bot.ingress.drain()
        (late,) = in_thread(bot, dm, str(posted["ts"]), viewer="U0BOB")
        assert "I can't answer right now: the language model took too long" in late["text"]


async def test_authorization_unavailable_answers_nothing_and_says_so(
    bot: Harness, llm: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from authz.ports import AuthzUnavailable

    async def down(*args: object, **kwargs: object) -> Any:
        raise AuthzUnavailable("engine down")

    for method in ("check", "batch_check", "list_objects"):
        monkeypatch.setattr(bot.deps.authz, method, down)
    ts = await mention(bot, "U0BOB", "C0APOLLO", QUESTION)
    (reply,) = in_thread(bot, "C0APOLLO", ts, viewer="U0BOB")
    assert reply.get("is_ephemeral") and "Authorization is unavailable" in reply["text"]
    assert in_thread(bot, "C0APOLLO", ts, viewer="U0ALICE") == []
    assert llm.prompts == [] and await answers(bot) == []
