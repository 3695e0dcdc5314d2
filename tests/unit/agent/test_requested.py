"""What a request in words may change, decided from the asker's own words and never from
what the model read: a request that only asks to look changes nothing; one that asks for a
change runs only the tools of its verb, with the people, channels, projects and tasks the
asker named."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, ClassVar, cast

import pytest

from bot.agent.channels import Channel
from bot.agent.parser import CHANGE_VERBS, change_verb, is_request_to_act, is_request_to_look
from bot.agent.registry import READ_ONLY_TOOLS, TOOLS, ToolRegistry
from bot.agent.runner import ToolRunner
from bot.agent.services import AgentServices
from bot.agent.tool import (
    FailureCode,
    Permission,
    Tool,
    ToolArgs,
    ToolContext,
    ToolFailure,
    ToolResult,
)
from bot.agent.tools._common import (
    require_channel_named,
    require_person_named,
    require_project_named,
)
from bot.identity.model import Identity
from bot.projects.people import PersonRef
from bot.projects.values import Person

ASKER = Identity(
    team_id="T0",
    slack_user_id="U0ALICE",
    sub="auth0|alice",
    email="alice@example.com",
    email_verified=True,
    name="Alice",
    permissions=frozenset(p.value for p in Permission),
    linked_at=datetime(2026, 1, 1, tzinfo=UTC),
)
PEOPLE = {
    "mallory": Person("U0MALLORY", "Mallory Moss"),
    "bob": Person("U0BOB", "Bob Brown"),
    "alice": Person("U0ALICE", "Alice Anders"),
}


@dataclass
class Recorded:
    entries: list[dict[str, Any]] = field(default_factory=list)

    async def append(self, **entry: Any) -> None:
        self.entries.append(entry)


class People:
    async def resolve(self, ref: PersonRef) -> Person:
        if ref.slack_user_id is not None:
            return next(p for p in PEOPLE.values() if p.slack_user_id == ref.slack_user_id)
        assert ref.name is not None
        return PEOPLE[ref.name.lower()]


def context(request: str | None, audit: Recorded | None = None) -> ToolContext:
    services = cast(AgentServices, SimpleNamespace(audit=audit or Recorded(), people=People()))
    return ToolContext(
        asker=ASKER,
        services=services,
        channel_id=None,
        now=datetime.now(UTC),
        extras={} if request is None else {"request_text": request},
        read_only=request is not None and is_request_to_look(request),
        change_verb=change_verb(request) if request is not None else None,
    )


def test_injection_defence_requests_to_look_are_read_deterministically() -> None:
    for words in (
        "what are my tasks?",
        "what's on my calendar this week?",
        "list the tasks of Apollo",
        "show me the launch notes",
        "my events this week",
        "how is Apollo doing?",
        "find a free slot with bob",
        "Please, could you list my projects",
        # A change asked for later in the words does not make the request one to act.
        "show my tasks and then delete project Apollo",
    ):
        assert is_request_to_look(words), words
        assert change_verb(words) is None
    for words, verb in (
        ("delete project Apollo", "delete"),
        ("please post 'hi' to #apollo", "post"),
        ("Mark task 3 done", "mark"),
        ("could you add a task to Apollo", "add"),
        ("schedule a review tomorrow at 10:00", "schedule"),
    ):
        assert not is_request_to_look(words) and change_verb(words) == verb
        assert is_request_to_act(words)


def test_injection_defence_every_changing_tool_names_its_verbs() -> None:
    assert {
        "search_docs",
        "list_projects",
        "project_status",
        "list_tasks",
        "list_my_events",
        "find_free_slot",
    } == READ_ONLY_TOOLS
    for tool in TOOLS:
        if tool.changes:
            assert tool.verbs and tool.verbs <= CHANGE_VERBS, tool.name
        if tool.destructive:
            assert tool.changes and tool.verbs <= {"delete", "remove"}, tool.name


def test_injection_defence_a_request_to_look_is_offered_no_changing_tool() -> None:
    registry = ToolRegistry()
    names = {s["function"]["name"] for s in registry.schemas(read_only=True)}
    assert names == READ_ONLY_TOOLS
    posting = {s["function"]["name"] for s in registry.schemas(verb="post")}
    assert posting == READ_ONLY_TOOLS | {"post_as_me"}
    deleting = {s["function"]["name"] for s in registry.schemas(verb="delete")}
    assert deleting == READ_ONLY_TOOLS | {"delete_project", "delete_all_my_projects"}
    assert len(registry.schemas()) == len(TOOLS)  # plain commands: every tool


class Probe(ToolArgs):
    pass


class Changer(Tool[Probe]):
    name = "changer"
    description = "Changes something."
    Args = Probe
    permission = Permission.WRITE_PROJECTS
    verbs = frozenset({"add"})
    runs: ClassVar[list[str]] = []

    async def run(self, ctx: ToolContext, args: Probe) -> ToolResult:
        self.runs.append("ran")
        return ToolResult(data={}, text="changed")


class Looker(Changer):
    name = "looker"
    changes = False


@pytest.mark.parametrize(
    ("request_text", "tool", "runs"),
    [
        ("what are my tasks?", "changer", False),
        ("what are my tasks?", "looker", True),
        ("post 'x' to #apollo", "changer", False),
        ("add a task to Apollo", "changer", True),
        (None, "changer", True),  # a plain command: the asker's words chose the tool
    ],
)
async def test_injection_defence_the_runner_refuses_changes_not_asked_for(
    request_text: str | None, tool: str, runs: bool
) -> None:
    Changer.runs.clear()
    audit = Recorded()
    runner = ToolRunner(registry=ToolRegistry([Changer, Looker]), timeout=5)
    outcome = await runner.call(context(request_text, audit), tool, {})
    assert outcome.ok is runs
    assert Changer.runs == (["ran"] if runs else [])
    if not runs:
        assert outcome.code is FailureCode.NOT_REQUESTED
        assert "nothing" in outcome.text or "not run" in outcome.text
        assert audit.entries[0]["outcome"] == "not_requested"


async def test_injection_defence_people_must_be_named_by_the_asker() -> None:
    ctx = context("schedule a review tomorrow at 10:00 with <@U0BOB>")
    assert (await require_person_named(ctx, PersonRef("@bob", name="bob"))).slack_user_id == "U0BOB"
    assert (
        await require_person_named(ctx, PersonRef("<@U0BOB>", slack_user_id="U0BOB"))
    ) == PEOPLE["bob"]
    # The asker themselves is always allowed.
    assert await require_person_named(ctx, PersonRef("@alice", name="alice")) == PEOPLE["alice"]
    for ref in (PersonRef("@mallory", name="mallory"), PersonRef("<@U0MALLORY>", "U0MALLORY")):
        with pytest.raises(ToolFailure) as refused:
            await require_person_named(ctx, ref)
        assert refused.value.code is FailureCode.NOT_REQUESTED
    named = context("add a task to Apollo for Mallory Moss")
    assert await require_person_named(named, PersonRef("@mallory", name="mallory"))
    # A name inside another word is not naming them.
    with pytest.raises(ToolFailure):
        await require_person_named(
            context("add a task to Apollo: bobsled"), PersonRef("@bob", name="bob")
        )


def test_injection_defence_channels_and_projects_must_be_named_by_the_asker() -> None:
    general = Channel(id="C0GENERAL", name="general")
    require_channel_named(context('post "hi" to #general'), general)
    require_channel_named(context('post "hi" to <#C0GENERAL|general>'), general)
    require_channel_named(context(None), general)
    for words in ('post "hi" to #apollo', 'post "hi" to #general-talk', "post the notes"):
        with pytest.raises(ToolFailure):
            require_channel_named(context(words), general)
    require_project_named(context("delete project Apollo"), "apollo")
    require_project_named(context("delete project Apollo Board"), "Apollo Board")
    with pytest.raises(ToolFailure):
        require_project_named(context("delete project Apollo"), "Borealis")
    with pytest.raises(ToolFailure):
        require_project_named(context("delete project Apollo Board"), "Board Apollo")
