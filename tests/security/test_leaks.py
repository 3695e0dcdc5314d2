"""Invariant 2: no answer, citation, channel reply, LLM prompt or feedback record holds
what its reader (the asker; in a channel, every human there) may not view.

A property test over generated workspaces: documents in projects with roles, direct
shares, blocks and workspace-wide shares; people linked or not; channels with members.
Random people ask random questions on every surface (an @mention, a reply in its thread,
a DM, ``/pm ask``, the assistant pane), through the real bot, its sandbox Slack and the
fake chat model (which records every prompt and quotes every source it is given). An
oracle built from one FGA check per person and document (``HIGHER_CONSISTENCY``, so no
cached decision) says what each reader may view; every document carries a marker word
(in its text, title and source), so any trace of it is found wherever it lands. Then a
share is revoked and the questions are asked again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from authz.ids import fga_user
from authz.ports import Consistency, TupleKey
from bot.knowledge.feedback import Answer, AnswerFeedback
from bot.projects.models import Chunk, Document, Project
from bot.storage.models import SlackLink
from sandbox.slack import SandboxSeed, SandboxUser
from tests.fakes.openai import OpenAIServer, openai_server, sources_in
from tests.support import (
    BOT_TOKEN,
    CLIENT_SECRET,
    ENCRYPTION_KEYS,
    SIGNING_SECRET,
    Harness,
    running_bot,
)

TEAM = "T0SANDBOX"
PEOPLE = 5
CHANNELS = 3
VOCABULARY = ["launch", "budget", "risk", "vendor", "review", "deadline"]
SURFACES = ["mention", "thread", "dm", "command", "assistant"]
MARKER = re.compile(r"zq\d+x\d+q")
HIGH = Consistency.HIGHER_CONSISTENCY


def person(i: int) -> str:
    return f"U0P{i}"


def channel(i: int) -> str:
    return f"C0LEAK{i}"


def sub(i: int) -> str:
    return f"auth0|leak{i}"


def seed() -> SandboxSeed:
    humans = [
        SandboxUser(person(i), f"p{i}", f"Person {i}", f"p{i}@example.com") for i in range(PEOPLE)
    ]
    bot = SandboxUser("U0PMBOT", "pmbot", "pmbot", "pmbot@example.com", is_bot=True)
    everyone = [u.id for u in humans] + [bot.id]
    return SandboxSeed(
        team_id=TEAM,
        team_name="Leaks",
        users=[*humans, bot],
        channels=[(channel(i), f"leak{i}", everyone) for i in range(CHANNELS)],
    )


# -- generated worlds -------------------------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    asker: int
    surface: str
    channel: int
    words: str


@dataclass
class World:
    projects: int
    documents: list[tuple[int, list[str]]]  # (project, chunk texts)
    roles: dict[tuple[int, int], str]  # (project, person) -> role
    direct: set[tuple[int, int]]  # (document, person): viewer
    blocked: set[tuple[int, int]]  # (document, person)
    workspace_wide: set[int]  # documents every workspace member may view
    linked: set[int]
    members: list[set[int]]  # per channel
    asks: list[Ask]
    revoke: int  # which grant is revoked (modulo their number)
    again: list[Ask]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    projects = draw(st.integers(1, 3))
    chunk = st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=4).map(" ".join)
    documents = draw(
        st.lists(
            st.tuples(st.integers(0, projects - 1), st.lists(chunk, min_size=1, max_size=3)),
            min_size=1,
            max_size=8,
        )
    )
    people = st.integers(0, PEOPLE - 1)
    docs = st.integers(0, len(documents) - 1)
    ask = st.builds(
        Ask,
        asker=people,
        surface=st.sampled_from(SURFACES),
        channel=st.integers(0, CHANNELS - 1),
        words=st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=3).map(" ".join),
    )
    return World(
        projects=projects,
        documents=documents,
        roles=draw(
            st.dictionaries(
                st.tuples(st.integers(0, projects - 1), people),
                st.sampled_from(["viewer", "editor", "owner"]),
                min_size=2,
                max_size=12,
            )
        ),
        direct=draw(st.sets(st.tuples(docs, people), max_size=5)),
        blocked=draw(st.sets(st.tuples(docs, people), max_size=3)),
        workspace_wide=draw(st.sets(docs, max_size=3)),
        # Most people are linked: an unlinked one silences every channel they are in.
        linked=set(range(PEOPLE)) - draw(st.sets(people, max_size=2)),
        members=draw(st.lists(st.sets(people, min_size=1), min_size=CHANNELS, max_size=CHANNELS)),
        asks=draw(st.lists(ask, min_size=1, max_size=4)),
        revoke=draw(st.integers(0, 100)),
        again=draw(st.lists(ask, min_size=1, max_size=2)),
    )


# -- one example ----------------------------------------------------------------------------


@dataclass
class Example:
    """A world written into the running bot under names no other example uses."""

    bot: Harness
    llm: OpenAIServer
    world: World
    n: int
    tuples: list[TupleKey] = field(default_factory=list)
    grants: list[TupleKey] = field(default_factory=list)  # what may be revoked
    threads: dict[int, str] = field(default_factory=dict)  # channel -> a mention's ts
    assistant: dict[int, tuple[str, str]] = field(default_factory=dict)  # person -> thread

    def document(self, j: int) -> str:
        return f"x{self.n}d{j}"

    def marker(self, j: int) -> str:
        return f"zq{self.n}x{j}q"

    def markers(self, text: str) -> set[str]:
        return set(MARKER.findall(text))

    async def write(self) -> None:
        w, now = self.world, datetime.now(UTC)
        project = [f"x{self.n}p{i}" for i in range(w.projects)]
        doc = [f"document:{self.document(j)}" for j in range(len(w.documents))]
        tuples = [
            TupleKey(f"project:{project[p]}", "project", doc[j])
            for j, (p, _) in enumerate(w.documents)
        ]
        self.grants = [
            TupleKey(fga_user(sub(u)), role, f"project:{project[p]}")
            for (p, u), role in sorted(w.roles.items())
        ]
        self.grants += [TupleKey(fga_user(sub(u)), "viewer", doc[j]) for j, u in sorted(w.direct)]
        self.grants += [
            TupleKey(f"workspace:{TEAM}#member", "viewer", doc[j]) for j in sorted(w.workspace_wide)
        ]
        tuples += self.grants
        tuples += [TupleKey(fga_user(sub(u)), "blocked", doc[j]) for j, u in sorted(w.blocked)]
        tuples += [TupleKey(fga_user(sub(u)), "member", f"workspace:{TEAM}") for u in w.linked]
        # A document only the sentinel reads: once it is searchable, so is the example.
        tuples.append(TupleKey("user:sentinel", "viewer", f"document:x{self.n}sentinel"))
        async with self.bot.deps.db.session() as session:
            for i, pid in enumerate(project):
                session.add(
                    Project(
                        id=pid,
                        team_id=TEAM,
                        name=f"Project {self.n}-{i}",
                        name_key=f"project {self.n}-{i}",
                        created_by="auth0|leak-setup",
                        created_at=now,
                    )
                )
            await session.flush()
            documents = [
                (self.document(j), project[p], self.marker(j), texts)
                for j, (p, texts) in enumerate(w.documents)
            ]
            documents.append((f"x{self.n}sentinel", project[0], f"zs{self.n}s", ["."]))
            await self._add_documents(session, documents)
            for u in w.linked:
                session.add(
                    SlackLink(
                        team_id=TEAM,
                        slack_user_id=person(u),
                        sub=sub(u),
                        email=f"p{u}@example.com",
                        email_verified=True,
                        name=f"Person {u}",
                        permissions=json.dumps(["read:projects"]),
                        permissions_expire_at=now + timedelta(days=1),
                        linked_at=now,
                        membership="member",
                    )
                )
        await self.bot.deps.authz.write(tuples)
        self.tuples = tuples
        for i, members in enumerate(w.members):
            self.bot.sandbox.workspace.conversations[channel(i)].members[:] = [
                *(person(u) for u in sorted(members)),
                "U0PMBOT",
            ]
        for _ in range(500):  # the index follows the table within RETRIEVAL_REFRESH_SECONDS
            if await self.bot.deps.knowledge.search(f"zs{self.n}s", viewers=["user:sentinel"], k=1):
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the example's documents were never indexed")

    @staticmethod
    async def _add_documents(
        session: Any, documents: list[tuple[str, str, str, list[str]]]
    ) -> None:
        """Documents (id, project, marker, chunk texts): the marker is in each one's title,
        source and every chunk."""
        now = datetime.now(UTC)
        for document_id, project_id, marker, _ in documents:
            session.add(
                Document(
                    id=document_id,
                    project_id=project_id,
                    title=f"Notes {marker}",
                    source=f"https://docs.example.com/{marker}",
                    content_hash=marker,
                    created_at=now,
                    updated_at=now,
                )
            )
        await session.flush()
        for document_id, _, marker, texts in documents:
            for ordinal, text in enumerate(texts):
                session.add(
                    Chunk(
                        document_id=document_id,
                        ordinal=ordinal,
                        heading="",
                        text=f"{text} {marker}.",
                        content_hash=f"{marker}-{ordinal}",
                    )
                )

    async def erase(self) -> None:
        await self.bot.deps.authz.delete(self.tuples)
        async with self.bot.deps.db.session() as session:
            await session.execute(delete(Project).where(Project.id.like(f"x{self.n}p%")))
            await session.execute(delete(SlackLink).where(SlackLink.team_id == TEAM))

    # -- the oracle ------------------------------------------------------------------------

    async def readable(self, u: int) -> set[str]:
        """The markers of the documents person ``u`` may view (none unless linked)."""
        if u not in self.world.linked:
            return set()
        found = set()
        for j in range(len(self.world.documents)):
            if await self.bot.deps.authz.check(
                fga_user(sub(u)), "can_view", f"document:{self.document(j)}", consistency=HIGH
            ):
                found.add(self.marker(j))
        return found

    async def channel_may_view(self, c: int) -> set[str]:
        members = self.world.members[c]
        if not members <= self.world.linked:
            return set()
        views = [await self.readable(u) for u in sorted(members)]
        return set.intersection(*views)

    # -- asking ----------------------------------------------------------------------------

    async def ask(self, ask: Ask) -> None:
        w = self.world
        sandbox = self.bot.sandbox
        members = sorted(w.members[ask.channel])
        asker = ask.asker
        surface = ask.surface
        if surface in ("mention", "thread", "command") and asker not in members:
            asker = members[ask.asker % len(members)]
        conversation = channel(ask.channel)
        thread: str | None = None
        if surface in ("dm", "assistant"):
            conversation = await self.bot.dm_channel(person(asker))
        if surface == "thread":
            thread = self.threads.get(ask.channel)
        if surface == "assistant":
            if asker not in self.assistant:
                opened = await sandbox.open_assistant(person(asker))
                await self.bot.ingress.drain()
                self.assistant[asker] = (str(opened["channel"]), str(opened["thread_ts"]))
            conversation, thread = self.assistant[asker]
        before = await self.state(conversation, asker)
        if surface == "command":
            await sandbox.run_command(person(asker), conversation, "/pm", f"ask {ask.words}")
        elif surface in ("mention", "thread"):
            posted = await sandbox.post_message(
                person(asker), conversation, f"<@U0PMBOT> {ask.words}", thread
            )
            if thread is None:
                self.threads[ask.channel] = str(posted["ts"])
        else:
            await sandbox.post_message(person(asker), conversation, ask.words, thread)
        await self.bot.ingress.drain()
        await self.check(ask, asker, conversation, before)

    async def state(self, conversation: str, asker: int) -> dict[str, Any]:
        return {
            "prompts": len(self.llm.prompts),
            "seen": {m["ts"] for m in self.messages(conversation, None)}
            | {m["ts"] for m in self.messages(conversation, person(asker))},
            "asker_saw": self.markers(json.dumps(self.messages(conversation, person(asker)))),
            "answers": {a.id for a in await self.answers()},
            "votes": len(await self.votes()),
        }

    def messages(self, conversation: str, viewer: str | None) -> list[dict[str, Any]]:
        return self.bot.sandbox.messages(conversation, viewer=viewer)

    async def answers(self) -> list[Answer]:
        async with self.bot.deps.db.session() as session:
            return list(await session.scalars(select(Answer)))

    async def votes(self) -> list[AnswerFeedback]:
        async with self.bot.deps.db.session() as session:
            return list(await session.scalars(select(AnswerFeedback)))

    async def check(self, ask: Ask, asker: int, conversation: str, before: dict[str, Any]) -> None:
        mine = await self.readable(asker)
        shared = ask.surface in ("mention", "thread")
        in_channel = shared or ask.surface == "command"
        public = await self.channel_may_view(ask.channel) if in_channel else mine
        where = f"{ask} as {asker} in {conversation}"
        # Prompts: sources only the asker may view; nothing else but what the asker
        # already saw in that conversation (the thread's earlier messages).
        for prompt in self.llm.prompts[before["prompts"] :]:
            sources = self.markers(json.dumps(sources_in(prompt)))
            assert sources <= mine, (where, sources)
            text = "\n".join(str(m["content"]) for m in prompt)
            assert self.markers(text) <= mine | before["asker_saw"], (where, text)
        if asker not in self.world.linked:
            assert len(self.llm.prompts) == before["prompts"], where
        # What everyone there reads: only what everyone there may view.
        for message in self.messages(conversation, None):
            if message["ts"] in before["seen"]:
                continue
            assert self.markers(json.dumps(message)) <= public, (where, message)
        # What the asker alone reads: only what the asker may view.
        for message in self.messages(conversation, person(asker)):
            if message["ts"] in before["seen"]:
                continue
            if message.get("is_ephemeral"):
                assert message.get("visible_to") in (None, person(asker)), where
            assert self.markers(json.dumps(message)) <= mine, (where, message)
        # Records: the cited documents, for their readers only.
        marker_of = {self.document(j): self.marker(j) for j in range(len(self.world.documents))}
        for answer in await self.answers():
            if answer.id in before["answers"]:
                continue
            cited = {marker_of.get(d, d) for d in json.loads(answer.document_ids)}
            assert answer.asker_slack_user_id == person(asker), where
            assert cited <= mine, (where, cited)
            if answer.visibility == "channel":
                assert shared and cited <= public, (where, cited)
                await self.vote(answer, conversation)

    async def vote(self, answer: Answer, conversation: str) -> None:
        """Someone of the channel rates a channel answer (everyone there is linked, or it
        would not be one): the record names the voter and the answer, whose documents they
        may view."""
        voter = min(self.world.members[int(conversation[-1])])
        message = next(
            m
            for m in self.messages(conversation, None)
            if answer.id in json.dumps(m.get("blocks") or [])
        )
        await self.bot.sandbox.click_button(
            person(voter), conversation, str(message["ts"]), "answer_feedback_up"
        )
        await self.bot.ingress.drain()
        cast = [v for v in await self.votes() if v.answer_id == answer.id]
        assert [v.voter_slack_user_id for v in cast] == [person(voter)]
        cited = set(json.loads(answer.document_ids))
        documents = range(len(self.world.documents))
        markers = {self.marker(j) for j in documents if self.document(j) in cited}
        assert markers <= await self.readable(voter)


async def run_world(bot: Harness, llm: OpenAIServer, world: World, n: int) -> None:
    example = Example(bot, llm, world, n)
    await example.write()
    try:
        for ask in world.asks:
            await example.ask(ask)
        if example.grants:
            revoked = example.grants[world.revoke % len(example.grants)]
            await bot.deps.authz.delete([revoked])
            for ask in world.again:
                await example.ask(ask)
    finally:
        await example.erase()


@contextlib.contextmanager
def running(database_url: str) -> Iterator[tuple[asyncio.Runner, Harness, OpenAIServer]]:
    with asyncio.Runner() as runner:
        stack = contextlib.AsyncExitStack()
        llm = runner.run(stack.enter_async_context(openai_server()))
        bot = runner.run(
            stack.enter_async_context(
                running_bot(
                    database_url,
                    seed=seed(),
                    OPENAI_BASE_URL=llm.base_url,
                    OPENAI_API_KEY="sk-test-leaks",
                    OPENAI_MODEL="fake-model",
                    RETRIEVAL_REFRESH_SECONDS=0.02,
                    ANSWER_PASSAGES=3,
                )
            )
        )
        try:
            yield runner, bot, llm
        finally:
            runner.run(stack.aclose())


def test_nothing_reaches_a_reader_who_may_not_view_it(sqlite_url: str) -> None:
    counter = itertools.count()
    with running(sqlite_url) as (runner, bot, llm):

        @settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(world=worlds())
        def property_holds(world: World) -> None:
            runner.run(run_world(bot, llm, world, next(counter)))

        property_holds()
        # The property was exercised, not skipped: answers went out and prompts were sent.
        assert llm.prompts
        # Invariant 5 on the way: no secret of the bot reaches the model.
        for secret in (BOT_TOKEN, SIGNING_SECRET, CLIENT_SECRET, ENCRYPTION_KEYS, "sk-test-leaks"):
            assert not [p for p in llm.prompt_texts if secret in p]
