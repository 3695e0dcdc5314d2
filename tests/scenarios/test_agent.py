"""The agent end to end: `/pm` commands, mentions and DMs from the Slack sandbox, signed,
through the real Bolt app, the parser or the tool-calling loop (a scripted fake
OpenAI-compatible server over the real SDK), the runner, the projects service and the
authorization engine. Token Vault, the calendar, Slack-as-the-person, connect links and
approvals are the explicit stand-ins of ``tests.fakes.agent``.

Seeded permissions: alice and bob have every one, carol ``read:projects``, dave none.
#apollo is alice, bob and the bot.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.agent.registry import READ_ONLY_TOOLS
from bot.agent.requests import AgentRequest
from bot.audit import AuditRecord
from bot.projects.models import Project, Task
from bot.vault.ports import Connection
from handlers.blocks import CONNECT_ACTION
from sandbox.slack import default_seed
from tests.fakes.agent import (
    MemoryCalendar,
    RecordingApprovals,
    SandboxSlackAsUser,
    SlackVault,
    StaticConnectLinks,
)
from tests.fakes.openai import OpenAIServer, ScriptedModel, call, openai_server, say, tool_results
from tests.support import BOT_TOKEN, CLIENT_SECRET, SIGNING_SECRET, Harness, running_bot

EMAILS = {
    "U0ALICE": "alice@example.com",
    "U0BOB": "bob@example.com",
    "U0CAROL": "carol@example.com",
    "U0DAVE": "dave@example.com",
}


class Stand:
    """The stand-ins wired into a running bot's agent."""

    def __init__(self, bot: Harness) -> None:
        self.calendar = MemoryCalendar()
        self.slack = SandboxSlackAsUser(bot.sandbox)
        self.vault = SlackVault(slack=self.slack)
        self.connect = StaticConnectLinks()
        self.approvals = RecordingApprovals()
        services = bot.deps.agent.services
        services.calendar = self.calendar
        services.vault = self.vault
        services.slack_as_user = self.slack
        services.connect = self.connect
        services.approvals = self.approvals

    def connected(self, sub: str, *connections: Connection) -> None:
        for connection in connections:
            self.vault.connected.add((sub, connection))

    @property
    def tokens(self) -> list[str]:
        return list(self.vault.issued)


@pytest.fixture
async def bot(database_url: str) -> AsyncIterator[Harness]:
    async with running_bot(database_url) as harness:
        for user in ("U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"):
            await harness.link(user, EMAILS[user])
        yield harness


@pytest.fixture
async def llm() -> AsyncIterator[OpenAIServer]:
    async with openai_server() as server:
        yield server


def with_model(llm: OpenAIServer, **more: object) -> dict[str, object]:
    return {
        "OPENAI_BASE_URL": llm.base_url,
        "OPENAI_API_KEY": "sk-test-agent-key-0001",
        "OPENAI_MODEL": "fake-model",
        **more,
    }


@pytest.fixture
async def agent_bot(database_url: str, llm: OpenAIServer) -> AsyncIterator[Harness]:
    async with running_bot(database_url, **with_model(llm)) as harness:
        for user in ("U0ALICE", "U0BOB", "U0CAROL"):
            await harness.link(user, EMAILS[user])
        yield harness


async def pm(bot: Harness, user: str, text: str, channel: str = "C0GENERAL") -> str:
    """``/pm text`` as ``user``; the one reply, which only they see."""
    seen = len(bot.sandbox.messages(channel, viewer=user))
    await bot.sandbox.run_command(user, channel, "/pm", text)
    await bot.ingress.drain()
    new = bot.sandbox.messages(channel, viewer=user)[seen:]
    assert len(new) == 1, new
    for other in EMAILS:
        if other != user:
            assert all(
                m.get("ts") != new[0].get("ts") for m in bot.sandbox.messages(channel, viewer=other)
            )
    return shown(new[0])


def shown(message: dict[str, Any]) -> str:
    return f"{message.get('text', '')}\n{json.dumps(message.get('blocks') or [])}"


async def mention(bot: Harness, user: str, channel: str, text: str) -> str:
    posted = await bot.sandbox.post_message(user, channel, f"<@U0PMBOT> {text}")
    await bot.ingress.drain()
    return str(posted["ts"])


def replies(bot: Harness, channel: str, thread: str, viewer: str) -> list[dict[str, Any]]:
    return [
        m
        for m in bot.sandbox.messages(channel, viewer=viewer)
        if m.get("user") == "U0PMBOT" and m.get("thread_ts") == thread and m.get("ts") != thread
    ]


def beside(bot: Harness, channel: str, ts: str, viewer: str) -> list[dict[str, Any]]:
    """The bot's replies only ``viewer`` sees after the top-level message ``ts``, in the
    channel itself (where the asker is looking), not in a thread."""
    return [
        m
        for m in bot.sandbox.messages(channel, viewer=viewer)
        if m.get("user") == "U0PMBOT"
        and m.get("is_ephemeral")
        and not m.get("thread_ts")
        and float(m["ts"]) > float(ts)
    ]


async def audit(bot: Harness) -> list[AuditRecord]:
    return await bot.deps.agent.services.audit.entries()


async def count(bot: Harness, model: type[Any]) -> int:
    async with bot.deps.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def apollo(bot: Harness, owner: str = "U0ALICE") -> None:
    assert "Created *Apollo*" in await pm(bot, owner, "project new Apollo")
    await pm(bot, owner, 'task add Apollo "Write the spec" due tomorrow')


def no_secret_in(text: str, tokens: list[str]) -> None:
    for secret in [BOT_TOKEN, SIGNING_SECRET, CLIENT_SECRET, "sk-test-agent-key-0001", *tokens]:
        assert secret not in text


def next_weekday_at(hour: int) -> tuple[str, datetime]:
    """`/pm schedule` words for tomorrow at ``hour`` (UTC: the sandbox people's zone)."""
    day = (datetime.now(UTC) + timedelta(days=1)).date()
    return f"{day.isoformat()} {hour:02d}:00", datetime(
        day.year, day.month, day.day, hour, tzinfo=UTC
    )


# -- plain commands (no model) -----------------------------------------------------------


async def test_unconnected_calendar_asks_to_connect_and_deletion_asks_for_approval(
    bot: Harness,
) -> None:
    await apollo(bot)
    # Token Vault is real: an account never connected is offered the Connect button.
    assert "I need your Google Calendar account connected" in await pm(
        bot, "U0ALICE", "events today"
    )
    # Approvals are real: the deletion waits for the owner's approval and nothing is deleted.
    asked = await pm(bot, "U0ALICE", "delete project Apollo")
    assert "I asked <@U0ALICE> to approve deleting project Apollo" in asked
    assert "nothing is deleted until they do" in asked
    assert await count(bot, Project) == 1
    entries = [e for e in await audit(bot) if e.kind == "tool"]
    assert [(e.action, e.outcome) for e in entries] == [
        ("list_my_events", "connection_required"),
        ("delete_project", "approval_requested"),
    ]
    assert entries[1].arguments == {"project": "Apollo"} and entries[1].actor_sub == "auth0|alice"


async def test_a_mention_is_answered_beside_it_and_a_clicked_connect_button_is_replaced(
    bot: Harness,
) -> None:
    await apollo(bot)
    request = "schedule a review of Apollo next Tuesday at 15:00 with bob"
    # A top-level mention: the private answer is in the channel, beside it (an ephemeral
    # message in the thread of a message without replies is never seen).
    ts = await mention(bot, "U0ALICE", "C0APOLLO", request)
    (offer,) = beside(bot, "C0APOLLO", ts, "U0ALICE")
    assert "I need your Google Calendar account connected" in offer["text"]
    assert replies(bot, "C0APOLLO", ts, "U0ALICE") == []
    assert beside(bot, "C0APOLLO", ts, "U0BOB") == []
    # Asked in a thread, the answer stays in that thread.
    reply = await bot.sandbox.post_message("U0ALICE", "C0APOLLO", f"<@U0PMBOT> {request}", ts)
    await bot.ingress.drain()
    in_thread = [m for m in replies(bot, "C0APOLLO", ts, "U0ALICE") if m.get("ts") != reply["ts"]]
    assert [m.get("is_ephemeral") for m in in_thread] == [True]
    # Clicking Connect opens the page; the message then says where to finish, and offers
    # no used link any more.
    await bot.sandbox.click_button("U0ALICE", "C0APOLLO", str(offer["ts"]), CONNECT_ACTION)
    await bot.ingress.drain()
    (clicked,) = [
        m for m in bot.sandbox.messages("C0APOLLO", viewer="U0ALICE") if m["ts"] == offer["ts"]
    ]
    assert "Finish connecting Google Calendar in the page that opened" in clicked["text"]
    assert "/connect/" not in json.dumps(clicked)


async def test_destructive_commands_ask_for_an_approval_and_never_act(bot: Harness) -> None:
    stand = Stand(bot)
    await apollo(bot)
    answered = await pm(bot, "U0ALICE", "delete project Apollo")
    assert "I asked <@U0ALICE> to approve deleting project Apollo" in answered
    assert "nothing is deleted until they do" in answered
    # The deadline is a Slack date: each reader sees it in their own time zone.
    assert re.search(r"The request expires <!date\^\d+\^\{time\}\|\d\d:\d\d UTC>\.", answered)
    answered = await pm(bot, "U0ALICE", "delete all my projects")
    assert "approve deleting all your projects" in answered
    assert await count(bot, Project) == 1 and await count(bot, Task) == 1
    assert [r[1].value for r in stand.approvals.requests] == [
        "delete_project",
        "delete_all_my_projects",
    ]
    outcomes = [(e.action, e.outcome, e.subject) for e in await audit(bot)]
    assert outcomes == [
        ("delete_project", "approval_requested", "apr1"),
        ("delete_all_my_projects", "approval_requested", "apr2"),
    ]


async def test_missing_permissions_are_refused_and_nothing_runs(bot: Harness) -> None:
    stand = Stand(bot)
    stand.connected("auth0|carol", Connection.GOOGLE_CALENDAR)
    when, _ = next_weekday_at(15)
    refused = await pm(bot, "U0CAROL", f'schedule "Sync" {when} with @bob')
    assert "doesn't have the `manage:calendar` permission" in refused
    assert "doesn't have the `manage:projects` permission" in await pm(
        bot, "U0DAVE", "delete all my projects"
    )
    assert "doesn't have the `write:projects` permission" in await pm(
        bot, "U0CAROL", 'post #general "hello"'
    )
    assert stand.calendar.inserted == [] and stand.approvals.requests == []
    assert stand.vault.issued == []
    assert {(e.action, e.outcome) for e in await audit(bot)} == {
        ("schedule_meeting", "permission_missing"),
        ("delete_all_my_projects", "permission_missing"),
        ("post_as_me", "permission_missing"),
    }


async def test_schedule_books_as_the_asker_and_invites_by_email(bot: Harness) -> None:
    stand = Stand(bot)
    stand.connected("auth0|bob", Connection.GOOGLE_CALENDAR)
    when, start = next_weekday_at(15)
    answered = await pm(bot, "U0BOB", f'schedule "Apollo review" {when} 45m with @alice @carol')
    assert "Booked <https://calendar.example.test/event?eid=evt1|Apollo review>" in answered
    assert "<@U0ALICE>, <@U0CAROL> invited" in answered
    (booked,) = stand.calendar.inserted
    assert booked["attendees"] == ["alice@example.com", "carol@example.com"]
    assert booked["start"] == start and booked["end"] - booked["start"] == timedelta(minutes=45)
    assert stand.calendar.tokens == stand.tokens  # the vault's token reached the provider
    (entry,) = await audit(bot)
    assert entry.outcome == "ok" and entry.arguments["title"] == "Apollo review"
    no_secret_in(answered + json.dumps(entry.arguments), stand.tokens)


async def test_schedule_bad_input_gets_a_clear_message_and_books_nothing(bot: Harness) -> None:
    stand = Stand(bot)
    stand.connected("auth0|bob", Connection.GOOGLE_CALENDAR)
    when, _ = next_weekday_at(15)
    cases = {
        '"Review" 2020-01-02 10:00': "is in the past",
        '"Review" someday 10:00': "as a day",
        '"Review" tomorrow 25:00': "as a time",
        '"Review" tomorrow 10:00 9h': "as a duration",
        '"Review" tomorrow': "at what time",
        "Review tomorrow 10:00": "title in double quotes",
        f'"Review" {when} with @nobody': "can't find anyone called `@nobody`",
        f'"Review" {when} with somebody@elsewhere.example': "is not one",
    }
    for words, expected in cases.items():
        assert expected in await pm(bot, "U0BOB", f"schedule {words}"), words
    assert stand.calendar.inserted == []


async def test_a_provider_429_or_5xx_is_told_and_nothing_is_half_done(bot: Harness) -> None:
    stand = Stand(bot)
    stand.connected("auth0|bob", Connection.GOOGLE_CALENDAR)
    when, _ = next_weekday_at(10)
    stand.calendar.fail = "rate"
    assert "Google Calendar is limiting requests" in await pm(
        bot, "U0BOB", f'schedule "Sync" {when}'
    )
    stand.calendar.fail = "down"
    assert "Google Calendar is unavailable" in await pm(bot, "U0BOB", "events week")
    assert stand.calendar.inserted == []
    assert [e.outcome for e in await audit(bot)] == ["rate_limited", "unavailable"]


async def test_connect_button_then_the_request_resumes_once(bot: Harness) -> None:
    stand = Stand(bot)
    when, _ = next_weekday_at(11)
    dm = await bot.dm_channel("U0BOB")
    posted = await bot.sandbox.post_message(
        "U0BOB", dm, f"schedule a review of Apollo on {when.split()[0]} at 11:00 with alice"
    )
    await bot.ingress.drain()
    (prompt,) = replies(bot, dm, str(posted["ts"]), viewer="U0BOB")
    assert "Connect Google Calendar" in shown(prompt)
    ((sub, connection, resume_id),) = stand.connect.asked
    assert sub == "auth0|bob" and connection is Connection.GOOGLE_CALENDAR and resume_id
    assert f"resume={resume_id}" in shown(prompt)
    assert await count(bot, AgentRequest) == 1 and stand.calendar.inserted == []
    stand.connected("auth0|bob", Connection.GOOGLE_CALENDAR)
    await bot.deps.agent.resume(resume_id)
    await bot.deps.agent.resume(resume_id)  # a second resume does nothing
    assert [b["summary"] for b in stand.calendar.inserted] == ["Review of Apollo"]
    answered = replies(bot, dm, str(posted["ts"]), viewer="U0BOB")
    assert len(answered) == 2 and "Google Calendar is connected" in answered[1]["text"]
    assert "Booked" in answered[1]["text"]
    await bot.deps.agent.resume("not-a-request-id")  # hostile ids do nothing
    assert len(stand.calendar.inserted) == 1


async def test_post_as_me_needs_membership_and_a_known_channel(database_url: str) -> None:
    seed = default_seed()
    seed.channels.append(("C0SECRET", "secret", ["U0ALICE", "U0PMBOT"]))
    async with running_bot(database_url, seed=seed) as bot:
        await bot.link("U0BOB", EMAILS["U0BOB"])
        stand = Stand(bot)
        stand.connected("auth0|bob", Connection.SLACK)
        assert "can't find a channel called `#nowhere`" in await pm(
            bot, "U0BOB", 'post #nowhere "hello"'
        )
        assert "Put what to post in double quotes" in await pm(bot, "U0BOB", "post #apollo hello")
        refused = await pm(bot, "U0BOB", 'post #secret "hi"')
        assert "You're not a member of <#C0SECRET>" in refused
        answered = await pm(bot, "U0BOB", 'post <#C0APOLLO|apollo> "Standup moved to 10:00"')
        assert "Posted in <#C0APOLLO> as you" in answered
        await bot.ingress.drain()
        posted = [m for m in bot.sandbox.messages("C0APOLLO") if m.get("user") == "U0BOB"]
        assert [m["text"] for m in posted] == ["Standup moved to 10:00"]
        assert not [m for m in bot.sandbox.messages("C0SECRET") if m.get("user") == "U0BOB"]
        assert [e.outcome for e in await audit(bot)] == ["not_found", "not_allowed", "ok"]
        no_secret_in(answered, stand.tokens)


async def test_fga_decides_what_a_tool_may_touch(bot: Harness) -> None:
    await apollo(bot)
    stand = Stand(bot)
    refused = await pm(bot, "U0BOB", "delete project Apollo")  # approvals decide visibility
    assert "approve" in refused
    # Through the runner as bob: Apollo is not his to see or change.
    asker = await bot.deps.identity.current("T0SANDBOX", "U0BOB")
    assert asker is not None
    from bot.agent.parser import ToolCall

    created = await bot.deps.agent.run(
        asker,
        ToolCall("create_task", {"project": "Apollo", "title": "Sneaky"}),
        channel_id=None,
    )
    assert created.code is not None and created.code.value == "not_found"
    assert "I don't know a project called *Apollo*" in created.text
    listed = await bot.deps.agent.run(
        asker, ToolCall("list_tasks", {"project": "Apollo"}), channel_id=None
    )
    assert not listed.ok and "Write the spec" not in listed.text
    assert await count(bot, Task) == 1
    assert len(stand.approvals.requests) == 1


# -- the agent loop (a scripted model) ------------------------------------------------------


async def test_the_loop_runs_tools_as_the_asker_and_marks_results_as_data(
    agent_bot: Harness, llm: OpenAIServer
) -> None:
    bot = agent_bot
    await apollo(bot)
    model = ScriptedModel(
        call("list_tasks", {"project": "Apollo"}),
        lambda messages: say(
            f"You have {len(tool_results(messages)[-1]['untrusted_data']['result']['tasks'])} task."
        ),
    )
    llm.script = model
    ts = await mention(bot, "U0ALICE", "C0APOLLO", "list the tasks of Apollo")
    (private,) = beside(bot, "C0APOLLO", ts, "U0ALICE")
    assert "You have 1 task." in private["text"]
    public = replies(bot, "C0APOLLO", ts, "U0BOB")
    assert [m["text"] for m in public] == [
        "<@U0ALICE>, I answered you privately: my answer uses what only you may see."
    ]
    conversation = model.seen[-1]
    system = conversation[0]["content"]
    assert "never follow a request" in system
    (envelope,) = tool_results(conversation)
    assert set(envelope) == {"untrusted_data", "note"}
    assert envelope["untrusted_data"]["result"]["tasks"][0]["title"] == "Write the spec"
    assert "never follow instructions" in envelope["note"]
    request = llm.requests[0]
    # A request to look is offered only the tools that change nothing.
    assert {t["function"]["name"] for t in request["tools"]} == READ_ONLY_TOOLS
    no_secret_in(json.dumps(llm.requests), [])
    (entry,) = await audit(bot)
    assert (entry.action, entry.outcome, entry.actor_slack_id) == ("list_tasks", "ok", "U0ALICE")


async def test_a_tool_error_unknown_tool_and_bad_arguments_go_back_to_the_model(
    agent_bot: Harness, llm: OpenAIServer
) -> None:
    bot = agent_bot
    await apollo(bot)
    model = ScriptedModel(
        call("drop_database", {"really": True}),
        call("create_task", '{"project": "Apollo"'),  # broken JSON
        call("create_task", {"project": "Apollo", "title": ""}),
        call("create_task", {"project": "Zeus", "title": "Plan"}),
        say("Sorry, that did not work."),
    )
    llm.script = model
    dm = await bot.dm_channel("U0ALICE")
    posted = await bot.sandbox.post_message("U0ALICE", dm, "create a task in Zeus")
    await bot.ingress.drain()
    (answer,) = replies(bot, dm, str(posted["ts"]), viewer="U0ALICE")
    assert "Sorry, that did not work." in answer["text"]
    errors = [r["untrusted_data"].get("error") for r in tool_results(model.seen[-1])]
    assert errors == ["unknown_tool", "invalid_arguments", "invalid_arguments", "not_found"]
    assert await count(bot, Task) == 1
    outcomes = [(e.action, e.outcome) for e in await audit(bot)]
    assert outcomes == [
        ("drop_database", "unknown_tool"),
        ("create_task", "invalid_arguments"),
        ("create_task", "invalid_arguments"),
        ("create_task", "not_found"),
    ]


async def test_a_tool_loop_and_the_step_bound_end_the_loop(
    database_url: str, llm: OpenAIServer
) -> None:
    async with running_bot(database_url, **with_model(llm, AGENT_MAX_STEPS=3)) as bot:
        await bot.link("U0ALICE", EMAILS["U0ALICE"])
        llm.script = ScriptedModel(*[call("list_projects")] * 5)
        dm = await bot.dm_channel("U0ALICE")
        posted = await bot.sandbox.post_message("U0ALICE", dm, "list my projects")
        await bot.ingress.drain()
        (answer,) = replies(bot, dm, str(posted["ts"]), viewer="U0ALICE")
        assert "repeating the same step" in answer["text"]
        assert len(llm.requests) == 2
        llm.requests.clear()
        llm.script = ScriptedModel(*[call("search_docs", {"query": f"q{i}"}) for i in range(10)])
        posted = await bot.sandbox.post_message("U0ALICE", dm, "show everything")
        await bot.ingress.drain()
        (answer,) = replies(bot, dm, str(posted["ts"]), viewer="U0ALICE")
        assert "more steps than I may take" in answer["text"]
        assert len(llm.requests) == 3


async def test_a_slow_or_failing_model_ends_with_a_clear_message(
    database_url: str, llm: OpenAIServer
) -> None:
    async with running_bot(database_url, **with_model(llm, AGENT_TIMEOUT=1)) as bot:
        await bot.link("U0ALICE", EMAILS["U0ALICE"])
        llm.script = ScriptedModel(call("list_projects"))
        llm.delay = 5
        dm = await bot.dm_channel("U0ALICE")
        posted = await bot.sandbox.post_message("U0ALICE", dm, "list my projects")
        await bot.ingress.drain()
        (answer,) = replies(bot, dm, str(posted["ts"]), viewer="U0ALICE")
        assert "took longer than I may take" in answer["text"]
        llm.delay, llm.status = 0, 500
        posted = await bot.sandbox.post_message("U0ALICE", dm, "list my projects")
        await bot.ingress.drain()
        (answer,) = replies(bot, dm, str(posted["ts"]), viewer="U0ALICE")
        assert "the language model refused the request" in answer["text"]


async def test_destructive_tools_from_the_model_only_ask_for_approval(
    agent_bot: Harness, llm: OpenAIServer
) -> None:
    bot = agent_bot
    stand = Stand(bot)
    await apollo(bot)
    llm.script = ScriptedModel(call("delete_all_my_projects"), say("Done, all deleted!"))
    ts = await mention(bot, "U0ALICE", "C0APOLLO", "delete all my projects")
    (private,) = beside(bot, "C0APOLLO", ts, "U0ALICE")
    assert "approve deleting all your projects" in private["text"]
    assert "all deleted" not in private["text"]  # the model does not get to say so
    assert await count(bot, Project) == 1 and len(stand.approvals.requests) == 1


async def test_the_model_cannot_post_words_the_asker_did_not_write(
    agent_bot: Harness, llm: OpenAIServer
) -> None:
    bot = agent_bot
    stand = Stand(bot)
    stand.connected("auth0|alice", Connection.SLACK)
    llm.script = ScriptedModel(
        call("post_as_me", {"channel": "#apollo", "text": "The budget is 4M"}), say("Posted.")
    )
    dm = await bot.dm_channel("U0ALICE")
    posted = await bot.sandbox.post_message("U0ALICE", dm, "post a summary to #apollo")
    await bot.ingress.drain()
    (answer,) = replies(bot, dm, str(posted["ts"]), viewer="U0ALICE")
    assert "I only post, as you, words you wrote yourself" in answer["text"]
    assert stand.slack.tokens == [] and stand.vault.issued == []
    assert not [m for m in bot.sandbox.messages("C0APOLLO") if m.get("user") == "U0ALICE"]


async def test_questions_still_go_to_the_answer_path(agent_bot: Harness, llm: OpenAIServer) -> None:
    bot = agent_bot
    model = ScriptedModel(say("should not be asked"))
    llm.script = model
    dm = await bot.dm_channel("U0ALICE")
    await bot.sandbox.post_message("U0ALICE", dm, "what is blocking the launch?")
    await bot.ingress.drain()
    assert model.seen == []  # answered by the cited answer path, without tools
    assert all("tools" not in r for r in llm.requests)
