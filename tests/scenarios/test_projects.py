"""Projects and tasks end to end: `/pm` commands from the Slack sandbox, signed, through the
real Bolt app, the projects service, the outbox and the authorization engine.

Seeded permissions: alice has every one, bob ``read:projects`` and ``write:projects``, carol
``read:projects``, dave none.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from authz.ports import Consistency, TupleKey
from bot.projects.models import PendingGrant, Project, ProjectMember, Task
from bot.projects.people import SlackPeople, parse_person
from bot.projects.service import ProjectsService
from bot.storage.models import FgaOutbox
from bot.storage.outbox import Outbox
from sandbox.idp import IdpUser, default_users
from sandbox.slack import default_seed
from sandbox.slack.state import SandboxUser
from tests.support import TEAM, Harness, running_bot

HIGH = Consistency.HIGHER_CONSISTENCY
EMAILS = {
    "U0ALICE": "alice@example.com",
    "U0BOB": "bob@example.com",
    "U0CAROL": "carol@example.com",
    "U0DAVE": "dave@example.com",
}


@pytest.fixture
async def bot(database_url: str) -> AsyncIterator[Harness]:
    async with running_bot(database_url) as harness:
        yield harness


async def reply(bot: Harness, user: str, text: str, channel: str = "C0GENERAL") -> str:
    """Run ``/pm text`` as ``user`` and return what the bot answered (only they see it)."""
    seen = len(bot.sandbox.messages(channel, viewer=user))
    await bot.sandbox.run_command(user, channel, "/pm", text)
    await bot.ingress.drain()
    new = bot.sandbox.messages(channel, viewer=user)[seen:]
    assert len(new) == 1, new
    assert new[0].get("user") == "U0PMBOT"
    others = {u for u in EMAILS if u != user}
    for other in others:  # an answer to a command is for the asker alone
        assert all(
            m.get("ts") != new[0].get("ts") for m in bot.sandbox.messages(channel, viewer=other)
        )
    return str(new[0]["text"])


async def link(bot: Harness, *users: str) -> None:
    for user in users:
        await bot.link(user, EMAILS[user])


async def rows(bot: Harness, model: type[Any]) -> int:
    async with bot.deps.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def snapshot(bot: Harness) -> tuple[int, ...]:
    """How many rows of each kind exist, and how many tuple changes were ever staged."""
    return tuple(
        [await rows(bot, m) for m in (Project, ProjectMember, PendingGrant, Task, FgaOutbox)]
    )


async def project_id(bot: Harness, name: str) -> str:
    async with bot.deps.db.session() as session:
        found = await session.scalar(select(Project.id).where(Project.name == name))
    assert found is not None
    return str(found)


async def check(bot: Harness, sub: str, relation: str, obj: str) -> bool:
    return await bot.deps.authz.check(f"user:{sub}", relation, obj, consistency=HIGH)


# -- creating and listing --------------------------------------------------------------------


async def test_create_and_list_projects(bot: Harness) -> None:
    await link(bot, "U0ALICE", "U0BOB")
    assert "You can't see any project" in await reply(bot, "U0ALICE", "projects")
    created = await reply(bot, "U0ALICE", "project new Apollo  launch")
    assert "Created *Apollo launch*; you are its owner" in created
    await reply(bot, "U0BOB", "project new Zeus")
    listed = await reply(bot, "U0ALICE", "projects")
    assert "*Apollo launch*: you are owner" in listed and "Zeus" not in listed
    pid = await project_id(bot, "Apollo launch")
    assert await check(bot, "auth0|alice", "owner", f"project:{pid}")
    assert await check(bot, "auth0|alice", "can_create_task", f"project:{pid}")
    assert not await check(bot, "auth0|bob", "can_view", f"project:{pid}")
    async with bot.deps.db.session() as session:
        project = await session.scalar(select(Project).where(Project.id == pid))
        assert project is not None and project.team_id == TEAM
    found = await bot.deps.authz.read(object=f"project:{pid}")
    assert set(found.tuples) == {
        TupleKey(user=f"workspace:{TEAM}", relation="workspace", object=f"project:{pid}"),
        TupleKey(user="user:auth0|alice", relation="owner", object=f"project:{pid}"),
    }


async def test_project_names_are_checked(bot: Harness) -> None:
    await link(bot, "U0ALICE")
    await reply(bot, "U0ALICE", "project new Apollo")
    before = await snapshot(bot)
    taken = await reply(bot, "U0ALICE", "project new APOLLO")
    assert "already a project called *APOLLO*" in taken
    too_long = await reply(bot, "U0ALICE", "project new " + "x" * 81)
    assert "longer than 80 characters" in too_long
    control = await reply(bot, "U0ALICE", "project new Apollo\u202e2")
    assert "control or invisible formatting characters" in control
    assert "Usage: `/pm project new NAME`" in await reply(bot, "U0ALICE", "project new")
    assert await snapshot(bot) == before


async def test_permissions_from_the_token_come_first(bot: Harness) -> None:
    await link(bot, "U0CAROL", "U0DAVE")
    for command in ["projects", "status Apollo", "tasks", "project members Apollo"]:
        assert "doesn't have the `read:projects` permission" in await reply(bot, "U0DAVE", command)
    before = await snapshot(bot)
    for command in [
        "project new Apollo",
        "project share Apollo @bob viewer",
        "project unshare Apollo @bob",
        'task add Apollo "Spec"',
        "task done 1",
    ]:
        assert "doesn't have the `write:projects` permission" in await reply(
            bot, "U0CAROL", command
        )
    assert await snapshot(bot) == before


async def test_guests_cannot_create_projects_but_can_be_shared_with(database_url: str) -> None:
    seed = default_seed()
    seed.users += [
        SandboxUser("U0GUEST", "gina", "Gina Guest", "gina@example.com", guest=True),
        SandboxUser("U0EXT", "eve", "Eve External", "eve@partner.example", home_team="T0OTHER"),
    ]
    general = next(members for cid, _, members in seed.channels if cid == "C0GENERAL")
    general += ["U0GUEST", "U0EXT"]
    users = [
        *default_users(),
        IdpUser(
            sub="auth0|gina",
            email="gina@example.com",
            name="Gina",
            password="gina-password",
            permissions=["read:projects", "write:projects"],
        ),
        IdpUser(
            sub="auth0|eve",
            email="eve@partner.example",
            name="Eve",
            password="eve-password",
            permissions=["read:projects"],
        ),
    ]
    async with running_bot(database_url, seed=seed, users=users) as bot:
        await link(bot, "U0ALICE")
        await bot.link("U0GUEST", "gina@example.com")
        await bot.link("U0EXT", "eve@partner.example")
        refused = await reply(bot, "U0GUEST", "project new Gina's")
        assert "Only members of this workspace can create projects" in refused
        assert await rows(bot, Project) == 0
        await reply(bot, "U0ALICE", "project new Apollo")
        shared = await reply(bot, "U0ALICE", "project share Apollo @gina editor")
        assert "<@U0GUEST> is now editor of *Apollo*" in shared
        assert "*Apollo*: you are editor" in await reply(bot, "U0GUEST", "projects")
        await reply(bot, "U0ALICE", "project share Apollo <@U0EXT> viewer")
        assert "*Apollo*: you are viewer" in await reply(bot, "U0EXT", "projects")


# -- sharing -------------------------------------------------------------------------------


async def test_a_share_is_seen_at_once_and_an_unshare_denied_at_once(bot: Harness) -> None:
    """The very next request after a change of permissions sees it (no waiting out the
    decision cache), both ways."""
    await link(bot, "U0ALICE", "U0BOB")
    await reply(bot, "U0ALICE", "project new Apollo")
    await reply(bot, "U0ALICE", 'task add Apollo "Write the spec" due tomorrow')
    # Bob asks first, so a denial is in the decision cache.
    assert "I don't know a project called *Apollo*" in await reply(bot, "U0BOB", "status Apollo")
    assert "No open tasks" in await reply(bot, "U0BOB", "tasks")

    shared = await reply(bot, "U0ALICE", "project share Apollo @bob editor")
    assert "<@U0BOB> is now editor of *Apollo*" in shared
    assert "*Apollo*: you are editor" in await reply(bot, "U0BOB", "projects")
    assert "*1* open" in await reply(bot, "U0BOB", "status Apollo")
    assert "Write the spec" in await reply(bot, "U0BOB", "tasks")
    again = await reply(bot, "U0ALICE", "project share Apollo @bob editor")
    assert "already editor" in again

    await reply(bot, "U0ALICE", "project share Apollo @bob approver")
    members = await reply(bot, "U0ALICE", "project members Apollo")
    assert "<@U0ALICE>: owner" in members and "<@U0BOB>: editor, approver" in members
    removed = await reply(bot, "U0ALICE", "project unshare Apollo @bob")
    assert "<@U0BOB> is no longer editor, approver of *Apollo*" in removed
    assert "I don't know a project called *Apollo*" in await reply(bot, "U0BOB", "status Apollo")
    assert "You can't see any project" in await reply(bot, "U0BOB", "projects")
    assert "No open tasks" in await reply(bot, "U0BOB", "tasks")
    pid = await project_id(bot, "Apollo")
    assert not await check(bot, "auth0|bob", "approver", f"project:{pid}")
    assert await rows(bot, ProjectMember) == 1


async def test_only_owners_share(bot: Harness) -> None:
    await link(bot, "U0ALICE", "U0BOB")
    await reply(bot, "U0ALICE", "project new Apollo")
    await reply(bot, "U0ALICE", "project share Apollo @bob editor")
    before = await snapshot(bot)
    refused = await reply(bot, "U0BOB", "project share Apollo @carol viewer")
    assert "You can see *Apollo* but not change who has access to it" in refused
    refused = await reply(bot, "U0BOB", "project unshare Apollo @alice")
    assert "not change who has access" in refused
    assert await snapshot(bot) == before


async def test_share_refusals_change_nothing(bot: Harness) -> None:
    await link(bot, "U0ALICE", "U0BOB")
    await reply(bot, "U0ALICE", "project new Apollo")
    before = await snapshot(bot)
    cases = {
        "project share Apollo @bob boss": "`boss` is not a role. Roles: `owner`, `editor`",
        "project share Apollo @nobody viewer": "I can't find anyone called `@nobody`",
        "project share Apollo @pmbot viewer": "`@pmbot` is an app or a deactivated account",
        "project share Apollo <@U0NOPE> viewer": "I can't find anyone called `&lt;@U0NOPE&gt;`",
        "project share Apollo bob viewer": "Name the person with @",
        "project share Apollo @bob": "Usage: `/pm project share NAME @person ROLE`",
        "project share Hermes @bob viewer": "I don't know a project called *Hermes*",
        "project unshare Apollo @carol": "<@U0CAROL> has no role on *Apollo*",
        "project frobnicate Apollo": "I don't know that one. Usage: `/pm project new NAME |",
        "project": "Something is missing.",
    }
    for command, expected in cases.items():
        assert expected in await reply(bot, "U0ALICE", command), command
    assert await snapshot(bot) == before


async def test_the_last_owner_stays(bot: Harness) -> None:
    await link(bot, "U0ALICE", "U0BOB")
    await reply(bot, "U0ALICE", "project new Apollo")
    refused = await reply(bot, "U0ALICE", "project unshare Apollo @alice")
    assert "<@U0ALICE> is the last owner of *Apollo*" in refused
    await reply(bot, "U0ALICE", "project share Apollo <@U0BOB|bob> owner")
    assert "no longer owner" in await reply(bot, "U0ALICE", "project unshare Apollo @alice")
    assert "last owner" in await reply(bot, "U0BOB", "project unshare Apollo @bob")
    pid = await project_id(bot, "Apollo")
    assert await check(bot, "auth0|bob", "owner", f"project:{pid}")
    assert not await check(bot, "auth0|alice", "can_view", f"project:{pid}")


# -- people who have not linked yet ----------------------------------------------------------


async def test_shares_and_tasks_wait_for_people_to_link(bot: Harness) -> None:
    await link(bot, "U0ALICE")
    await reply(bot, "U0ALICE", "project new Apollo")
    pending = await reply(bot, "U0ALICE", "project share Apollo @carol editor")
    assert "<@U0CAROL> hasn't linked their account yet: they become editor" in pending
    replaced = await reply(bot, "U0ALICE", "project share Apollo @carol viewer")
    assert "replaces the editor role" in replaced
    added = await reply(bot, "U0ALICE", 'task add Apollo "Review the plan" @carol due friday')
    assert "Its assignee hasn't linked their account yet" in added
    members = await reply(bot, "U0ALICE", "project members Apollo")
    assert "<@U0CAROL>: viewer (when they link their account)" in members
    assert "<@U0CAROL> (not linked yet)" in await reply(bot, "U0ALICE", "tasks")
    assert await rows(bot, PendingGrant) == 1
    pid = await project_id(bot, "Apollo")
    async with bot.deps.db.session() as session:
        task_id = await session.scalar(select(Task.id))

    await link(bot, "U0CAROL")
    # The link is confirmed once the grants are applied: her next request sees them.
    assert "*Apollo*: you are viewer" in await reply(bot, "U0CAROL", "projects")
    mine = await reply(bot, "U0CAROL", "tasks mine")
    assert f"#{task_id} Review the plan" in mine and "not linked yet" not in mine
    assert await rows(bot, PendingGrant) == 0
    assert await check(bot, "auth0|carol", "viewer", f"project:{pid}")
    assert await check(bot, "auth0|carol", "assignee", f"task:{task_id}")
    async with bot.deps.db.session() as session:
        assert await session.scalar(select(Task.assignee_sub)) == "auth0|carol"
        roles = list(
            await session.scalars(
                select(ProjectMember.relation).where(ProjectMember.sub == "auth0|carol")
            )
        )
    assert roles == ["viewer"]
    # Unlinking and linking again applies nothing twice.
    await reply(bot, "U0CAROL", "unlink")
    await link(bot, "U0CAROL")
    assert await rows(bot, ProjectMember) == 2


async def test_a_pending_share_can_be_withdrawn(bot: Harness) -> None:
    await link(bot, "U0ALICE")
    await reply(bot, "U0ALICE", "project new Apollo")
    await reply(bot, "U0ALICE", "project share Apollo @carol viewer")
    withdrawn = await reply(bot, "U0ALICE", "project unshare Apollo @carol")
    assert "The viewer role waiting for <@U0CAROL> on *Apollo* is withdrawn" in withdrawn
    await link(bot, "U0CAROL")
    assert "You can't see any project" in await reply(bot, "U0CAROL", "projects")


# -- tasks ---------------------------------------------------------------------------------


async def test_tasks_status_and_done(bot: Harness) -> None:
    await link(bot, "U0ALICE", "U0BOB", "U0CAROL")
    await reply(bot, "U0ALICE", "project new Apollo")
    await reply(bot, "U0ALICE", "project new Hermes")
    await reply(bot, "U0ALICE", "project share Apollo @carol viewer")
    today = date.today()
    later = (today + timedelta(days=30)).isoformat()
    await reply(bot, "U0ALICE", f'task add Apollo "Write the spec" @bob due {later}')
    await reply(bot, "U0ALICE", 'task add Apollo "Book the venue" due today')
    await reply(bot, "U0ALICE", 'task add Apollo "Old chore" @alice')
    await reply(bot, "U0ALICE", 'task add Hermes "Hermes only"')
    async with bot.deps.db.session() as session:
        ids = {t.title: t.id for t in await session.scalars(select(Task))}
        # A task whose day has passed (the command refuses past dates).
        await session.execute(
            update(Task).where(Task.id == ids["Old chore"]).values(due=today - timedelta(days=2))
        )

    everything = await reply(bot, "U0ALICE", "tasks")
    assert all(f"#{i} " in everything for i in ids.values())
    apollo = await reply(bot, "U0ALICE", "tasks Apollo")
    assert "Open tasks of Apollo" in apollo and "Hermes only" not in apollo
    assert "Old chore" in await reply(bot, "U0ALICE", "tasks mine")
    assert "Write the spec" not in await reply(bot, "U0ALICE", "tasks Apollo mine")

    status = await reply(bot, "U0ALICE", "status Apollo")
    assert "*3* open · *0* done · *1* overdue" in status
    overdue, _, upcoming = status.partition("Due next")
    assert "Old chore" in overdue and ":warning: overdue" in overdue
    assert upcoming.index("Book the venue") < upcoming.index("Write the spec")

    # Bob sees only what is assigned to him (a task's assignee may view it without the
    # project) and may complete it; nothing else of Apollo or Hermes.
    bobs = await reply(bot, "U0BOB", "tasks")
    assert "Write the spec" in bobs and "Book the venue" not in bobs and "Hermes" not in bobs
    assert "Write the spec" in await reply(bot, "U0BOB", "tasks Apollo")
    assert "I don't know a project called *Hermes*" in await reply(bot, "U0BOB", "tasks Hermes")
    assert "I don't know a project called *Apollo*" in await reply(bot, "U0BOB", "status Apollo")
    done = await reply(bot, "U0BOB", f"task done #{ids['Write the spec']}")
    assert f"Task #{ids['Write the spec']} *Write the spec* is done" in done
    assert "already done" in await reply(bot, "U0BOB", f"task done {ids['Write the spec']}")
    unknown = await reply(bot, "U0BOB", f"task done {ids['Book the venue']}")
    assert f"I don't know a task #{ids['Book the venue']} that you can see" in unknown
    assert "*2* open · *1* done" in await reply(bot, "U0ALICE", "status Apollo")

    # Carol may view Apollo's tasks but has no write:projects; with it she would still
    # only view (viewer): checked in test_task_refusals.
    assert "Book the venue" in await reply(bot, "U0CAROL", "tasks")
    assert "write:projects" in await reply(bot, "U0CAROL", f"task done {ids['Book the venue']}")


async def test_task_refusals(bot: Harness) -> None:
    await link(bot, "U0ALICE", "U0BOB")
    await reply(bot, "U0ALICE", "project new Apollo")
    await reply(bot, "U0ALICE", "project share Apollo @bob viewer")
    await reply(bot, "U0ALICE", 'task add Apollo "Spec"')
    async with bot.deps.db.session() as session:
        task_id = await session.scalar(select(Task.id))
    before = await snapshot(bot)
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    cases = {
        ("U0ALICE", f'task add Apollo "Spec" due {yesterday}'): "is in the past",
        ("U0ALICE", 'task add Apollo "Spec" due someday'): "I can't read `someday` as a date",
        ("U0ALICE", "task add Apollo Spec"): "Put the task's title in double quotes",
        ("U0ALICE", 'task add Apollo ""'): "That task title can't be used: it is empty",
        ("U0ALICE", 'task add Hermes "Spec"'): "I don't know a project called *Hermes*",
        ("U0ALICE", 'task add Apollo "Spec" @nobody'): "I can't find anyone called `@nobody`",
        ("U0ALICE", "task done twelve"): "Give the task's number",
        ("U0ALICE", "task done 999"): "I don't know a task #999",
        ("U0ALICE", "task finish 1"): "I don't know that one. Usage: `/pm task add",
        ("U0BOB", 'task add Apollo "Spec"'): "You can see *Apollo* but not add tasks to it",
        ("U0BOB", f"task done {task_id}"): f"You can see task #{task_id} but not change it",
    }
    for (user, command), expected in cases.items():
        assert expected in await reply(bot, user, command), command
    assert await snapshot(bot) == before


# -- every list and read goes through authorization ---------------------------------------


async def test_rows_without_tuples_show_nothing(bot: Harness) -> None:
    """A project in the database that the asker holds no tuple for (here: rows written
    without any) shows nothing of itself, its tasks or its members; nor does a project of
    another workspace that the asker may view."""
    await link(bot, "U0ALICE")
    now = datetime.now(UTC)
    async with bot.deps.db.session() as session:
        for pid, team, name in [("secret1", TEAM, "Secret"), ("other1", "T0OTHER", "Elsewhere")]:
            session.add(
                Project(
                    id=pid,
                    team_id=team,
                    name=name,
                    name_key=name.lower(),
                    created_by="auth0|zed",
                    created_at=now,
                )
            )
            await session.flush()
            session.add(
                ProjectMember(
                    project_id=pid,
                    sub="auth0|alice",
                    relation="owner",
                    granted_by="auth0|zed",
                    granted_at=now,
                )
            )
            session.add(
                Task(
                    project_id=pid,
                    title=f"{name} task",
                    assignee_sub="auth0|alice",
                    status="open",
                    due=None,
                    created_by="auth0|zed",
                    created_at=now,
                    updated_at=now,
                )
            )
    await bot.deps.authz.write(
        [TupleKey(user="user:auth0|alice", relation="owner", object="project:other1")]
    )
    async with bot.deps.db.session() as session:
        task_ids = list(await session.scalars(select(Task.id)))
    seen = [
        await reply(bot, "U0ALICE", command)
        for command in [
            "projects",
            "tasks",
            "tasks mine",
            "tasks Secret",
            "status Secret",
            "project members Secret",
            "tasks Elsewhere",
            *[f"task done {i}" for i in task_ids],
        ]
    ]
    text = "\n".join(seen)
    assert "Secret task" not in text and "Elsewhere task" not in text
    assert "<@U0ALICE>: owner" not in text
    assert "You can't see any project" in seen[0]
    assert "No open tasks" in seen[1] and "No open tasks" in seen[2]
    assert all("I don't know a project called" in t for t in seen[3:7])
    assert all("I don't know a task" in t for t in seen[7:])
    async with bot.deps.db.session() as session:
        assert set(await session.scalars(select(Task.status))) == {"open"}


# -- the outbox: a crash between the commit and the drain ----------------------------------


class CrashBeforeDrain:
    """An outbox whose process stops right after the commit: nothing is delivered."""

    async def drain(self) -> int:
        return 0


async def test_a_crash_before_the_drain_is_repaired_by_the_scheduled_drain(
    bot: Harness,
) -> None:
    await link(bot, "U0ALICE", "U0BOB")
    await reply(bot, "U0ALICE", "project new Apollo")
    pid = await project_id(bot, "Apollo")
    crashing = ProjectsService(
        db=bot.deps.db,
        authorizer=bot.deps.authz,
        outbox=CrashBeforeDrain(),
        people=SlackPeople(bot.deps.slack),
    )
    alice = await bot.deps.identity.require(TEAM, "U0ALICE")
    bob = parse_person("@bob")
    assert bob is not None
    shared = await crashing.share(alice, "Apollo", bob, "editor")
    assert not shared.pending
    # Committed: the row and the pending tuple change; not delivered: no access yet.
    assert await rows(bot, ProjectMember) == 2
    assert await bot.deps.outbox.pending() == 1
    assert not await check(bot, "auth0|bob", "can_view", f"project:{pid}")
    assert "You can't see any project" in await reply(bot, "U0BOB", "projects")

    # The scheduled job (a fresh outbox, as after a restart) delivers it.
    assert await Outbox(db=bot.deps.db, authorizer=bot.deps.authz).drain() == 1
    assert await bot.deps.outbox.pending() == 0
    assert "*Apollo*: you are editor" in await reply(bot, "U0BOB", "projects")
    # The rows and the tuples agree.
    async with bot.deps.db.session() as session:
        members = {
            (f"user:{m.sub}", m.relation)
            for m in await session.scalars(
                select(ProjectMember).where(ProjectMember.project_id == pid)
            )
        }
    tuples = {
        (t.user, t.relation)
        for t in (await bot.deps.authz.read(object=f"project:{pid}")).tuples
        if t.relation != "workspace"
    }
    assert tuples == members == {("user:auth0|alice", "owner"), ("user:auth0|bob", "editor")}

    # The same for a removal.
    await crashing.unshare(alice, "Apollo", bob)
    assert await check(bot, "auth0|bob", "can_view", f"project:{pid}")
    assert await Outbox(db=bot.deps.db, authorizer=bot.deps.authz).drain() == 1
    assert "You can't see any project" in await reply(bot, "U0BOB", "projects")


# -- help ------------------------------------------------------------------------------------


async def test_help_and_home_list_the_project_commands(bot: Harness) -> None:
    await link(bot, "U0BOB")
    help_text = await reply(bot, "U0BOB", "help")
    for command in ["/pm projects", "/pm project share NAME @person ROLE", "/pm task done ID"]:
        assert command in help_text
    await bot.sandbox.open_home("U0BOB")
    view = json.dumps(await bot.sandbox.wait_for_home_view("U0BOB"))
    assert "/pm tasks [NAME] [mine]" in view
