"""Projects and tasks, always as the asker.

(Over 600 lines on purpose: one service for the domain, each method one command's whole
decision; the value rules live in ``values.py`` and people in ``people.py``.)

Every method takes the asker's :class:`~bot.identity.model.Identity` and decides in two
steps: the Auth0 RBAC permission from their token (``read:projects`` to read,
``write:projects`` to change), then OpenFGA on the object (``project:<id>#can_view`` ...,
through the decision cache). A project the asker may not view is answered exactly like one
that does not exist; lists hold only what FGA allows, item by item.

Changes of who may do what write their rows and the matching tuple changes
(:func:`bot.storage.outbox.stage`) in one transaction, then drain the outbox, so the next
request on this replica already sees them (the drain writes through the decision cache,
which forgets its answers). Should the process stop between the commit and the drain, the
scheduled drain delivers the changes later: the rows and the tuples never disagree for long,
and never by more than what was committed.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from authz.ids import fga_id, fga_user, fga_workspace
from authz.ports import Authorizer, AuthzUnavailable, CheckRequest, Consistency, TupleKey
from bot.errors import (
    ApprovalProblem,
    ApprovedActionInvalid,
    LastOwner,
    NoProjectRole,
    ProjectAction,
    ProjectActionDenied,
    ProjectNameTaken,
    ProjectNotFound,
    TaskActionDenied,
    TaskNotFound,
)
from bot.identity.model import Identity
from bot.identity.service import IdentityService
from bot.projects.models import Document, PendingGrant, Project, ProjectMember, Task
from bot.projects.people import PeopleDirectory, PersonRef
from bot.projects.values import (
    DONE,
    OPEN,
    RANK,
    Assignee,
    Member,
    Members,
    ProjectList,
    ProjectStatus,
    ProjectSummary,
    Role,
    ShareOutcome,
    TaskAdded,
    TaskCompleted,
    TaskItem,
    TaskList,
    TaskUpdated,
    UnshareOutcome,
    clean_name,
    clean_title,
    is_pending_assignee,
    name_key,
    parse_due,
    parse_role,
    pending_assignee,
    pending_slack_user,
    project_id_of,
    project_object,
    task_object,
)
from bot.storage.db import Database
from bot.storage.models import SlackLink
from bot.storage.outbox import stage

log = logging.getLogger(__name__)

READ = "read:projects"
WRITE = "write:projects"
# A task list shows at most this many tasks; the rest is announced, not shown.
MAX_TASKS_SHOWN = 50
# Candidates are checked in pages, so a long list costs checks only until it is full.
_CANDIDATE_PAGE = 200
_STATUS_ITEMS = 5


# Called inside the transaction of an approved action, before it commits (it marks the
# approval executed; raising rolls the action back).
CommitHook = Callable[[AsyncSession], Awaitable[None]]


@dataclass(frozen=True)
class RemovedProjects:
    names: tuple[str, ...]


class Drains(Protocol):
    """The outbox as this service uses it (tests pass one that never drains)."""

    async def drain(self) -> int: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


def _member_tuple(project_id: str, sub: str, role: Role | str) -> TupleKey:
    return TupleKey(user=fga_user(sub), relation=str(role), object=project_object(project_id))


class ProjectsService:
    def __init__(
        self,
        *,
        db: Database,
        authorizer: Authorizer,
        outbox: Drains,
        people: PeopleDirectory,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._authz = authorizer
        self._outbox = outbox
        self._people = people
        self._clock = clock

    # -- decisions -------------------------------------------------------------------------

    async def _decide(self, user: str, asks: Sequence[tuple[str, str]]) -> list[bool]:
        """Decisions on named objects: one that cannot be made fails the whole request
        (the person is told authorization is unavailable), never reads as a no."""
        results = await self._authz.batch_check(
            [CheckRequest(user=user, relation=rel, object=obj) for rel, obj in asks]
        )
        if any(r.denied_by_error for r in results):
            raise AuthzUnavailable("a decision could not be made")
        return [r.allowed for r in results]

    async def _filter(
        self, user: str, relation: str, objects: Sequence[str]
    ) -> tuple[set[str], bool]:
        """The objects ``user`` has ``relation`` on, and whether some could not be decided
        (those are left out)."""
        if not objects:
            return set(), False
        results = await self._authz.batch_check(
            [CheckRequest(user=user, relation=relation, object=obj) for obj in objects]
        )
        allowed = {r.request.object for r in results if r.allowed}
        return allowed, any(r.denied_by_error for r in results)

    async def _project(
        self,
        identity: Identity,
        name: str,
        relation: str = "can_view",
        action: ProjectAction | None = None,
    ) -> Project:
        """The project called ``name`` in the asker's workspace, if they may view it and,
        with ``relation``, also have that relation (else :class:`ProjectActionDenied`)."""
        async with self._db.session() as session:
            project = await _project_named(session, identity.team_id, name)
        if project is None:
            raise ProjectNotFound(name)
        obj = project_object(project.id)
        asks = [("can_view", obj)] + ([(relation, obj)] if relation != "can_view" else [])
        decisions = await self._decide(identity.fga_user, asks)
        if not decisions[0]:
            raise ProjectNotFound(name)
        if not all(decisions):
            assert action is not None
            raise ProjectActionDenied(action, project.name)
        return project

    # -- projects --------------------------------------------------------------------------

    async def list_projects(self, identity: Identity) -> ProjectList:
        """The projects of this workspace the asker may view, with their role on each."""
        IdentityService.require_permission(identity, READ)
        user = identity.fga_user
        viewable = await self._authz.list_objects(user, "can_view", "project")
        ids = [pid for pid in (project_id_of(obj) for obj in viewable) if pid]
        if not ids:
            return ProjectList([])
        async with self._db.session() as session:
            rows = list(
                await session.scalars(
                    select(Project).where(Project.id.in_(ids), Project.team_id == identity.team_id)
                )
            )
        asks = [
            CheckRequest(user=user, relation=role.value, object=project_object(p.id))
            for p in rows
            for role in (Role.OWNER, Role.EDITOR, Role.APPROVER)
        ]
        held = {
            (r.request.object, r.request.relation)
            for r in await self._authz.batch_check(asks)
            if r.allowed
        }
        summaries = []
        for project in rows:
            obj = project_object(project.id)
            role = Role.VIEWER
            if (obj, Role.OWNER.value) in held:
                role = Role.OWNER
            elif (obj, Role.EDITOR.value) in held:
                role = Role.EDITOR
            approver = role is not Role.OWNER and (obj, Role.APPROVER.value) in held
            summaries.append(ProjectSummary(project.id, project.name, role, approver))
        summaries.sort(key=lambda s: (name_key(s.name), s.id))
        return ProjectList(summaries)

    async def create_project(self, identity: Identity, raw_name: str) -> ProjectSummary:
        """A new project of the asker's workspace, owned by the asker."""
        IdentityService.require_permission(identity, WRITE)
        name = clean_name(raw_name)
        workspace = fga_workspace(identity.team_id)
        (allowed,) = await self._decide(identity.fga_user, [("can_create_project", workspace)])
        if not allowed:
            raise ProjectActionDenied(ProjectAction.CREATE_PROJECT, name)
        now = self._clock()
        project_id = secrets.token_hex(13)
        async with self._db.session() as session:
            key = name_key(name)
            taken = await session.scalar(
                select(Project.id).where(
                    Project.team_id == identity.team_id, Project.name_key == key
                )
            )
            if taken is not None:
                raise ProjectNameTaken(name)
            session.add(
                Project(
                    id=project_id,
                    team_id=identity.team_id,
                    name=name,
                    name_key=key,
                    created_by=identity.sub,
                    created_at=now,
                )
            )
            session.add(
                ProjectMember(
                    project_id=project_id,
                    sub=identity.sub,
                    relation=Role.OWNER.value,
                    granted_by=identity.sub,
                    granted_at=now,
                )
            )
            try:
                await session.flush()
            except IntegrityError:
                # Somebody took the name between our look and our write.
                raise ProjectNameTaken(name) from None
            stage(
                session,
                writes=[
                    TupleKey(
                        user=workspace, relation="workspace", object=project_object(project_id)
                    ),
                    _member_tuple(project_id, identity.sub, Role.OWNER),
                ],
            )
        await self._outbox.drain()
        return ProjectSummary(project_id, name, Role.OWNER)

    async def share(
        self, identity: Identity, name: str, person_ref: PersonRef, role_text: str
    ) -> ShareOutcome:
        """Give a person a role on a project (the asker needs ``can_share``). Somebody who
        has not linked yet gets it when they link (one pending role per project: a later
        share replaces it)."""
        IdentityService.require_permission(identity, WRITE)
        role = parse_role(role_text)
        project = await self._project(identity, name, "can_share", ProjectAction.SHARE)
        person = await self._people.resolve(person_ref)
        now = self._clock()
        async with self._db.session() as session:
            await _lock(session, project.id)
            sub = await _linked_sub(session, identity.team_id, person.slack_user_id)
            if sub is not None:
                inserted = await _insert_ignoring_duplicate(
                    session,
                    ProjectMember,
                    {
                        "project_id": project.id,
                        "sub": sub,
                        "relation": role.value,
                        "granted_by": identity.sub,
                        "granted_at": now,
                    },
                )
                if inserted:
                    stage(session, writes=[_member_tuple(project.id, sub, role)])
                outcome = ShareOutcome(project.name, person, role, False, already=not inserted)
            else:
                pending = await session.get(
                    PendingGrant, (project.id, identity.team_id, person.slack_user_id)
                )
                if pending is None:
                    session.add(
                        PendingGrant(
                            project_id=project.id,
                            team_id=identity.team_id,
                            slack_user_id=person.slack_user_id,
                            relation=role.value,
                            granted_by=identity.sub,
                            granted_at=now,
                        )
                    )
                    outcome = ShareOutcome(project.name, person, role, True)
                else:
                    before = Role(pending.relation)
                    pending.relation = role.value
                    pending.granted_by = identity.sub
                    pending.granted_at = now
                    outcome = ShareOutcome(
                        project.name,
                        person,
                        role,
                        True,
                        already=before is role,
                        replaced=None if before is role else before,
                    )
        await self._outbox.drain()
        return outcome

    async def unshare(self, identity: Identity, name: str, person_ref: PersonRef) -> UnshareOutcome:
        """Remove every role a person holds on a project (and any pending one). The last
        owner stays: a project always has somebody who can share it."""
        IdentityService.require_permission(identity, WRITE)
        project = await self._project(identity, name, "can_share", ProjectAction.SHARE)
        person = await self._people.resolve(person_ref)
        async with self._db.session() as session:
            await _lock(session, project.id)
            sub = await _linked_sub(session, identity.team_id, person.slack_user_id)
            rows: list[ProjectMember] = []
            if sub is not None:
                rows = list(
                    await session.scalars(
                        select(ProjectMember).where(
                            ProjectMember.project_id == project.id, ProjectMember.sub == sub
                        )
                    )
                )
            pending = await session.get(
                PendingGrant, (project.id, identity.team_id, person.slack_user_id)
            )
            if not rows and pending is None:
                raise NoProjectRole(project.name, person.slack_user_id)
            if any(r.relation == Role.OWNER.value for r in rows):
                owners = await session.scalar(
                    select(func.count())
                    .select_from(ProjectMember)
                    .where(
                        ProjectMember.project_id == project.id,
                        ProjectMember.relation == Role.OWNER.value,
                    )
                )
                if (owners or 0) <= 1:
                    raise LastOwner(project.name, person.slack_user_id)
            removed = tuple(sorted((Role(r.relation) for r in rows), key=RANK.__getitem__))
            if sub is not None and rows:
                await session.execute(
                    delete(ProjectMember).where(
                        ProjectMember.project_id == project.id, ProjectMember.sub == sub
                    )
                )
                stage(session, deletes=[_member_tuple(project.id, sub, r) for r in removed])
            pending_role = Role(pending.relation) if pending is not None else None
            if pending is not None:
                await session.delete(pending)
        await self._outbox.drain()
        return UnshareOutcome(project.name, person, removed, pending_role)

    async def members(self, identity: Identity, name: str) -> Members:
        """Who holds which role on a project (the asker needs ``can_view``)."""
        IdentityService.require_permission(identity, READ)
        project = await self._project(identity, name)
        async with self._db.session() as session:
            rows = list(
                await session.scalars(
                    select(ProjectMember).where(ProjectMember.project_id == project.id)
                )
            )
            pending = list(
                await session.scalars(
                    select(PendingGrant).where(
                        PendingGrant.project_id == project.id,
                        PendingGrant.team_id == identity.team_id,
                    )
                )
            )
            slack_of = await _slack_users_of(session, identity.team_id, {r.sub for r in rows})
        roles: dict[str, list[Role]] = {}
        for row in rows:
            roles.setdefault(row.sub, []).append(Role(row.relation))
        members = [
            Member(
                slack_user_id=slack_of.get(sub),
                label=None if sub in slack_of else sub,
                roles=tuple(sorted(held, key=RANK.__getitem__)),
            )
            for sub, held in roles.items()
        ]
        members += [
            Member(p.slack_user_id, None, (Role(p.relation),), pending=True) for p in pending
        ]
        members.sort(key=lambda m: (RANK[m.roles[0]], m.pending, m.slack_user_id or m.label or ""))
        return Members(project.name, members)

    # -- tasks -----------------------------------------------------------------------------

    async def status(self, identity: Identity, name: str) -> ProjectStatus:
        """Open and done counts, overdue tasks and the next due dates of a project."""
        IdentityService.require_permission(identity, READ)
        project = await self._project(identity, name)
        today = await self._people.today(identity.slack_user_id, self._clock())
        async with self._db.session() as session:
            counted = await session.execute(
                select(Task.status, func.count())
                .where(Task.project_id == project.id)
                .group_by(Task.status)
            )
            counts = {status: count for status, count in counted}
            is_open = (Task.project_id == project.id) & (Task.status == OPEN)
            overdue_count = await session.scalar(
                select(func.count()).select_from(Task).where(is_open, Task.due < today)
            )
            overdue = list(
                await session.scalars(
                    select(Task)
                    .where(is_open, Task.due < today)
                    .order_by(Task.due, Task.id)
                    .limit(_STATUS_ITEMS)
                )
            )
            upcoming = list(
                await session.scalars(
                    select(Task)
                    .where(is_open, Task.due >= today)
                    .order_by(Task.due, Task.id)
                    .limit(_STATUS_ITEMS)
                )
            )
            render = await self._renderer(session, identity.team_id, [*overdue, *upcoming])
        return ProjectStatus(
            project=project.name,
            open=int(counts.get(OPEN, 0)),
            done=int(counts.get(DONE, 0)),
            overdue_count=int(overdue_count or 0),
            overdue=[render(t, project.name, today) for t in overdue],
            next_due=[render(t, project.name, today) for t in upcoming],
        )

    async def tasks(self, identity: Identity, name: str | None, *, mine: bool) -> TaskList:
        """Open tasks the asker may view (``task:<id>#can_view``, one by one): of one
        project, or of every project of this workspace they may view plus the tasks
        assigned to them; with ``mine`` only the latter."""
        IdentityService.require_permission(identity, READ)
        user = identity.fga_user
        today = await self._people.today(identity.slack_user_id, self._clock())
        assigned = Task.assignee_sub == identity.sub
        project_name: str | None = None
        if name is not None:
            async with self._db.session() as session:
                project = await _project_named(session, identity.team_id, name)
            if project is None:
                raise ProjectNotFound(name)
            (viewable,) = await self._decide(user, [("can_view", project_object(project.id))])
            # Without the project, only tasks assigned to the asker may be visible.
            scope = Task.project_id == project.id
            if mine or not viewable:
                scope = scope & assigned
            project_name = project.name
        else:
            objects = await self._authz.list_objects(user, "can_view", "project")
            ids = [pid for pid in (project_id_of(obj) for obj in objects) if pid]
            scope = assigned if mine or not ids else or_(Task.project_id.in_(ids), assigned)
            viewable = True
        found, truncated, incomplete = await self._visible_tasks(identity, scope, today)
        if name is not None and not viewable and not found:
            assert project_name is not None
            raise ProjectNotFound(name)
        return TaskList(project_name, mine, found, truncated=truncated, incomplete=incomplete)

    async def _visible_tasks(
        self, identity: Identity, scope: Any, today: date
    ) -> tuple[list[TaskItem], bool, bool]:
        """Open tasks of ``scope`` in the asker's workspace that FGA lets them view, by due
        date; checked a page at a time until the list is full."""
        shown: list[TaskItem] = []
        incomplete = False
        offset = 0
        while True:
            async with self._db.session() as session:
                result = await session.execute(
                    select(Task, Project.name)
                    .join(Project, Project.id == Task.project_id)
                    .where(scope, Task.status == OPEN, Project.team_id == identity.team_id)
                    .order_by(Task.due.is_(None), Task.due, Task.id)
                    .offset(offset)
                    .limit(_CANDIDATE_PAGE)
                )
                page = [(task, name) for task, name in result]
                allowed, unsure = await self._filter(
                    identity.fga_user, "can_view", [task_object(t.id) for t, _ in page]
                )
                incomplete = incomplete or unsure
                visible = [(t, n) for t, n in page if task_object(t.id) in allowed]
                render = await self._renderer(session, identity.team_id, [t for t, _ in visible])
            for task, project_name in visible:
                if len(shown) == MAX_TASKS_SHOWN:
                    return shown, True, incomplete
                shown.append(render(task, project_name, today))
            if len(page) < _CANDIDATE_PAGE:
                return shown, False, incomplete
            offset += _CANDIDATE_PAGE

    async def add_task(
        self,
        identity: Identity,
        name: str,
        raw_title: str,
        assignee_ref: PersonRef | None = None,
        due_text: str | None = None,
    ) -> TaskAdded:
        """A new open task of a project (the asker needs ``can_create_task``). An assignee
        who has not linked yet is recorded by their Slack account and becomes the assignee
        when they link."""
        IdentityService.require_permission(identity, WRITE)
        title = clean_title(raw_title)
        project = await self._project(identity, name, "can_create_task", ProjectAction.CREATE_TASK)
        today = await self._people.today(identity.slack_user_id, self._clock())
        due = parse_due(due_text, today) if due_text is not None else None
        person = await self._people.resolve(assignee_ref) if assignee_ref is not None else None
        now = self._clock()
        async with self._db.session() as session:
            sub = None
            assignee = None
            if person is not None:
                sub = await _linked_sub(session, identity.team_id, person.slack_user_id)
                assignee = sub or pending_assignee(identity.team_id, person.slack_user_id)
            task = Task(
                project_id=project.id,
                title=title,
                assignee_sub=assignee,
                status=OPEN,
                due=due,
                created_by=identity.sub,
                created_at=now,
                updated_at=now,
            )
            session.add(task)
            await session.flush()
            writes = [
                TupleKey(
                    user=project_object(project.id), relation="project", object=task_object(task.id)
                )
            ]
            if sub is not None:
                writes.append(_assignee_tuple(task.id, sub))
            stage(session, writes=writes)
            render = await self._renderer(session, identity.team_id, [task])
            item = render(task, project.name, today)
        await self._outbox.drain()
        return TaskAdded(item)

    async def complete_task(self, identity: Identity, task_id: int) -> TaskCompleted:
        """Mark a task done (the asker needs ``can_edit`` on it: its assignee or an editor
        of its project)."""
        IdentityService.require_permission(identity, WRITE)
        async with self._db.session() as session:
            row = (
                await session.execute(
                    select(Task, Project.name)
                    .join(Project, Project.id == Task.project_id)
                    .where(Task.id == task_id, Project.team_id == identity.team_id)
                )
            ).first()
        if row is None:
            raise TaskNotFound(task_id)
        obj = task_object(task_id)
        view, edit = await self._decide(identity.fga_user, [("can_view", obj), ("can_edit", obj)])
        if not view:
            raise TaskNotFound(task_id)
        if not edit:
            raise TaskActionDenied(task_id)
        today = await self._people.today(identity.slack_user_id, self._clock())
        async with self._db.session() as session:
            result = await session.execute(
                update(Task)
                .where(Task.id == task_id, Task.status == OPEN)
                .values(status=DONE, updated_at=self._clock())
            )
            task = await session.get(Task, task_id)
            assert task is not None
            render = await self._renderer(session, identity.team_id, [task])
            item = render(task, row[1], today)
        return TaskCompleted(item, already=getattr(result, "rowcount", 0) != 1)

    # -- linking ---------------------------------------------------------------------------

    async def apply_pending_grants(self, team_id: str, slack_user_id: str, sub: str) -> int:
        """A Slack user linked as ``sub``: the roles shared with them and the tasks assigned
        to them before they linked become theirs (rows and tuples in one transaction).
        Returns how many were applied."""
        now = self._clock()
        async with self._db.session() as session:
            grants = list(
                await session.scalars(
                    select(PendingGrant).where(
                        PendingGrant.team_id == team_id,
                        PendingGrant.slack_user_id == slack_user_id,
                    )
                )
            )
            writes: list[TupleKey] = []
            for grant in grants:
                await _insert_ignoring_duplicate(
                    session,
                    ProjectMember,
                    {
                        "project_id": grant.project_id,
                        "sub": sub,
                        "relation": grant.relation,
                        "granted_by": grant.granted_by,
                        "granted_at": now,
                    },
                )
                writes.append(_member_tuple(grant.project_id, sub, grant.relation))
                await session.delete(grant)
            tasks = list(
                await session.scalars(
                    select(Task).where(
                        Task.assignee_sub == pending_assignee(team_id, slack_user_id)
                    )
                )
            )
            for task in tasks:
                task.assignee_sub = sub
                task.updated_at = now
                writes.append(_assignee_tuple(task.id, sub))
            stage(session, writes=writes)
        if writes:
            await self._outbox.drain()
        return len(writes)

    # -- rendering helpers -----------------------------------------------------------------

    async def _renderer(
        self, session: AsyncSession, team_id: str, tasks: Iterable[Task]
    ) -> Callable[[Task, str, date], TaskItem]:
        """A function turning tasks into :class:`TaskItem`, their assignees named by their
        Slack accounts in this workspace."""
        subs = {t.assignee_sub for t in tasks if t.assignee_sub}
        slack_of = await _slack_users_of(session, team_id, subs)

        def render(task: Task, project_name: str, today: date) -> TaskItem:
            assignee = None
            if task.assignee_sub:
                pending = pending_slack_user(task.assignee_sub, team_id)
                if pending is not None:
                    assignee = Assignee(pending, pending=True)
                elif task.assignee_sub in slack_of:
                    assignee = Assignee(slack_of[task.assignee_sub])
                else:
                    assignee = Assignee(None, label=task.assignee_sub)
            return TaskItem(
                id=task.id,
                title=task.title,
                project=project_name,
                status=task.status,
                due=task.due,
                assignee=assignee,
                overdue=task.status == OPEN and task.due is not None and task.due < today,
            )

        return render

    # -- the agent's task edits ------------------------------------------------------------

    async def update_task(
        self,
        identity: Identity,
        task_id: int,
        *,
        title: str | None = None,
        assignee_ref: PersonRef | None = None,
        due_text: str | None = None,
        status: str | None = None,
    ) -> TaskUpdated:
        """Change a task's title, assignee, due date or status (``open``/``done``); the
        asker needs ``write:projects`` and ``task:ID#can_edit`` (its assignee, or an editor
        of its project). A task the asker may not view is answered as one that does not
        exist. Values are checked before anything is written; the row and the assignee
        tuples change in one transaction."""
        IdentityService.require_permission(identity, WRITE)
        if status is not None and status not in (OPEN, DONE):
            raise ValueError(status)
        new_title = clean_title(title) if title is not None else None
        async with self._db.session() as session:
            row = (
                await session.execute(
                    select(Task, Project.name)
                    .join(Project, Project.id == Task.project_id)
                    .where(Task.id == task_id, Project.team_id == identity.team_id)
                )
            ).first()
        if row is None:
            raise TaskNotFound(task_id)
        obj = task_object(task_id)
        view, edit = await self._decide(identity.fga_user, [("can_view", obj), ("can_edit", obj)])
        if not view:
            raise TaskNotFound(task_id)
        if not edit:
            raise TaskActionDenied(task_id)
        today = await self._people.today(identity.slack_user_id, self._clock())
        due = parse_due(due_text, today) if due_text is not None else None
        person = await self._people.resolve(assignee_ref) if assignee_ref is not None else None
        changed: list[str] = []
        async with self._db.session() as session:
            task = await session.get(Task, task_id, with_for_update=True)
            if task is None:
                raise TaskNotFound(task_id)
            writes: list[TupleKey] = []
            deletes: list[TupleKey] = []
            if new_title is not None and new_title != task.title:
                task.title = new_title
                changed.append("title")
            if person is not None:
                sub = await _linked_sub(session, identity.team_id, person.slack_user_id)
                assignee = sub or pending_assignee(identity.team_id, person.slack_user_id)
                if assignee != task.assignee_sub:
                    old = task.assignee_sub
                    if old and pending_slack_user(old, identity.team_id) is None:
                        deletes.append(_assignee_tuple(task_id, old))
                    if sub is not None:
                        writes.append(_assignee_tuple(task_id, sub))
                    task.assignee_sub = assignee
                    changed.append("assignee")
            if due is not None and due != task.due:
                task.due = due
                changed.append("due")
            if status is not None and status != task.status:
                task.status = status
                changed.append("status")
            if changed:
                task.updated_at = self._clock()
                stage(session, writes=writes, deletes=deletes)
            render = await self._renderer(session, identity.team_id, [task])
            item = render(task, row[1], today)
        if changed:
            await self._outbox.drain()
        return TaskUpdated(item, tuple(changed))

    # -- approved actions ------------------------------------------------------------------
    # Run only by the approvals executor (``bot/approvals/actions.py``) after a CIBA grant.
    # Each re-checks, fresh, that the action is still valid and authorized, then changes
    # rows and stages the tuple changes in ONE transaction, in which ``commit_with`` marks
    # the approval executed: the change and "executed" commit together or not at all, so
    # an approval can never run twice.

    async def _still_allowed(self, asks: Sequence[tuple[str, str, str]]) -> list[bool]:
        """Fresh decisions (``HIGHER_CONSISTENCY``); one that cannot be made fails closed."""
        results = await self._authz.batch_check(
            [CheckRequest(user=u, relation=r, object=o) for u, r, o in asks],
            consistency=Consistency.HIGHER_CONSISTENCY,
        )
        if any(r.denied_by_error for r in results):
            raise AuthzUnavailable("a decision could not be made")
        return [r.allowed for r in results]

    async def delete_project(
        self,
        *,
        team_id: str,
        requester_sub: str,
        approver_sub: str,
        project_id: str,
        commit_with: CommitHook,
    ) -> RemovedProjects:
        """Delete a project, its tasks, documents and memberships, and their tuples. The
        requester must still see the project and the approver still approve it."""
        project = await self._project_by_id(team_id, project_id)
        obj = project_object(project.id)
        view, approve = await self._still_allowed(
            [
                (fga_user(requester_sub), "can_view", obj),
                (fga_user(approver_sub), "approver", obj),
            ]
        )
        if not view:
            raise ApprovedActionInvalid(ApprovalProblem.REQUESTER_NOT_ALLOWED)
        if not approve:
            raise ApprovedActionInvalid(ApprovalProblem.APPROVER_NOT_ALLOWED)
        async with self._db.session() as session:
            await _lock(session, project.id)
            names = await self._remove_projects(session, [project.id])
            if not names:
                raise ApprovedActionInvalid(ApprovalProblem.PROJECT_GONE)
            await commit_with(session)
        await self._outbox.drain()
        return RemovedProjects(tuple(names))

    async def delete_all_owned_by(
        self,
        *,
        team_id: str,
        owner_sub: str,
        approver_sub: str,
        project_ids: Sequence[str],
        commit_with: CommitHook,
    ) -> RemovedProjects:
        """Delete those of ``project_ids`` that ``owner_sub`` still owns (and the approver
        still approves); the others are left alone. Nothing left: ``NOTHING_TO_DO``."""
        async with self._db.session() as session:
            existing = list(
                await session.scalars(
                    select(Project.id).where(
                        Project.id.in_(list(project_ids)), Project.team_id == team_id
                    )
                )
            )
        if not existing:
            raise ApprovedActionInvalid(ApprovalProblem.PROJECT_GONE)
        asks = []
        for pid in existing:
            asks.append((fga_user(owner_sub), "owner", project_object(pid)))
            asks.append((fga_user(approver_sub), "approver", project_object(pid)))
        decisions = await self._still_allowed(asks)
        kept = [pid for i, pid in enumerate(existing) if decisions[2 * i] and decisions[2 * i + 1]]
        if not kept:
            raise ApprovedActionInvalid(ApprovalProblem.REQUESTER_NOT_ALLOWED)
        async with self._db.session() as session:
            for pid in sorted(kept):
                await _lock(session, pid)
            names = await self._remove_projects(session, kept)
            if not names:
                raise ApprovedActionInvalid(ApprovalProblem.PROJECT_GONE)
            await commit_with(session)
        await self._outbox.drain()
        return RemovedProjects(tuple(names))

    async def change_owner(
        self,
        *,
        team_id: str,
        requester_sub: str,
        approver_sub: str,
        project_id: str,
        new_owner_sub: str,
        commit_with: CommitHook,
    ) -> str:
        """Make ``new_owner_sub`` the project's only owner; the previous owners become
        editors (they keep working on it). Returns the project's name."""
        project = await self._project_by_id(team_id, project_id)
        obj = project_object(project.id)
        view, approve = await self._still_allowed(
            [
                (fga_user(requester_sub), "can_view", obj),
                (fga_user(approver_sub), "approver", obj),
            ]
        )
        if not view:
            raise ApprovedActionInvalid(ApprovalProblem.REQUESTER_NOT_ALLOWED)
        if not approve:
            raise ApprovedActionInvalid(ApprovalProblem.APPROVER_NOT_ALLOWED)
        now = self._clock()
        async with self._db.session() as session:
            await _lock(session, project.id)
            linked = await session.scalar(
                select(SlackLink.sub).where(
                    SlackLink.team_id == team_id, SlackLink.sub == new_owner_sub
                )
            )
            if linked is None:
                raise ApprovedActionInvalid(ApprovalProblem.PERSON_NOT_LINKED)
            owners = list(
                await session.scalars(
                    select(ProjectMember.sub).where(
                        ProjectMember.project_id == project.id,
                        ProjectMember.relation == Role.OWNER.value,
                    )
                )
            )
            deletes, writes = [], []
            for sub in owners:
                if sub == new_owner_sub:
                    continue
                await session.execute(
                    delete(ProjectMember).where(
                        ProjectMember.project_id == project.id,
                        ProjectMember.sub == sub,
                        ProjectMember.relation == Role.OWNER.value,
                    )
                )
                deletes.append(_member_tuple(project.id, sub, Role.OWNER))
                if await _insert_ignoring_duplicate(
                    session,
                    ProjectMember,
                    {
                        "project_id": project.id,
                        "sub": sub,
                        "relation": Role.EDITOR.value,
                        "granted_by": requester_sub,
                        "granted_at": now,
                    },
                ):
                    writes.append(_member_tuple(project.id, sub, Role.EDITOR))
            if await _insert_ignoring_duplicate(
                session,
                ProjectMember,
                {
                    "project_id": project.id,
                    "sub": new_owner_sub,
                    "relation": Role.OWNER.value,
                    "granted_by": requester_sub,
                    "granted_at": now,
                },
            ):
                writes.append(_member_tuple(project.id, new_owner_sub, Role.OWNER))
            stage(session, deletes=deletes, writes=writes)
            await commit_with(session)
        await self._outbox.drain()
        return project.name

    async def _project_by_id(self, team_id: str, project_id: str) -> Project:
        async with self._db.session() as session:
            project = await session.get(Project, project_id)
        if project is None or project.team_id != team_id:
            raise ApprovedActionInvalid(ApprovalProblem.PROJECT_GONE)
        return project

    async def _remove_projects(
        self, session: AsyncSession, project_ids: Sequence[str]
    ) -> list[str]:
        """Delete the projects (their members, grants, tasks, documents and chunks go with
        them: foreign keys cascade) and stage the removal of every tuple pmbot wrote for
        them. Returns the names of those that existed."""
        projects = list(await session.scalars(select(Project).where(Project.id.in_(project_ids))))
        if not projects:
            return []
        ids = [p.id for p in projects]
        deletes: list[TupleKey] = []
        members = await session.execute(
            select(ProjectMember.project_id, ProjectMember.sub, ProjectMember.relation).where(
                ProjectMember.project_id.in_(ids)
            )
        )
        deletes += [_member_tuple(pid, sub, rel) for pid, sub, rel in members]
        tasks = await session.execute(
            select(Task.id, Task.project_id, Task.assignee_sub).where(Task.project_id.in_(ids))
        )
        for task_id, pid, assignee in tasks:
            deletes.append(
                TupleKey(user=project_object(pid), relation="project", object=task_object(task_id))
            )
            if assignee and not is_pending_assignee(assignee):
                deletes.append(_assignee_tuple(task_id, assignee))
        documents = await session.execute(
            select(Document.id, Document.project_id).where(Document.project_id.in_(ids))
        )
        deletes += [
            TupleKey(user=project_object(pid), relation="project", object=f"document:{fga_id(doc)}")
            for doc, pid in documents
        ]
        deletes += [
            TupleKey(
                user=fga_workspace(p.team_id), relation="workspace", object=project_object(p.id)
            )
            for p in projects
        ]
        await session.execute(delete(Project).where(Project.id.in_(ids)))
        stage(session, deletes=deletes)
        return sorted((p.name for p in projects), key=name_key)


# -- queries -------------------------------------------------------------------------------


async def _project_named(session: AsyncSession, team_id: str, name: str) -> Project | None:
    project: Project | None = await session.scalar(
        select(Project).where(Project.team_id == team_id, Project.name_key == name_key(name))
    )
    return project


async def _lock(session: AsyncSession, project_id: str) -> None:
    """Serialise changes of one project's members (PostgreSQL; SQLite has one writer)."""
    await session.execute(select(Project.id).where(Project.id == project_id).with_for_update())


async def _linked_sub(session: AsyncSession, team_id: str, slack_user_id: str) -> str | None:
    sub: str | None = await session.scalar(
        select(SlackLink.sub).where(
            SlackLink.team_id == team_id, SlackLink.slack_user_id == slack_user_id
        )
    )
    return sub


async def _slack_users_of(session: AsyncSession, team_id: str, subs: set[str]) -> dict[str, str]:
    if not subs:
        return {}
    rows = await session.execute(
        select(SlackLink.sub, SlackLink.slack_user_id).where(
            SlackLink.team_id == team_id, SlackLink.sub.in_(subs)
        )
    )
    return {sub: slack_user_id for sub, slack_user_id in rows}


async def _insert_ignoring_duplicate(
    session: AsyncSession, model: type[ProjectMember], values: dict[str, Any]
) -> bool:
    """Insert a row unless its key exists; True when it was inserted."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    result = await session.execute(insert(model).values(**values).on_conflict_do_nothing())
    return bool(getattr(result, "rowcount", 0))


def _assignee_tuple(task_id: int, sub: str) -> TupleKey:
    return TupleKey(user=fga_user(sub), relation="assignee", object=task_object(task_id))
