"""The values of the projects domain and its input rules: roles, names and titles, due
dates, and what the service returns. Pure: no I/O here."""

from __future__ import annotations

import enum
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta

from authz.ids import fga_id, from_fga_id
from bot.errors import (
    DueDateInPast,
    InvalidDueDate,
    InvalidProjectName,
    InvalidTaskTitle,
    NameProblem,
    UnknownRole,
)

MAX_NAME = 80
MAX_TITLE = 500
OPEN = "open"
DONE = "done"


class Role(enum.StrEnum):
    """A role on a project, as the FGA relation of the same name (``project#<role>``)."""

    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"
    APPROVER = "approver"


ROLES: tuple[str, ...] = tuple(role.value for role in Role)
# Owner > editor > viewer; approver stands beside them.
RANK = {Role.OWNER: 0, Role.EDITOR: 1, Role.VIEWER: 2, Role.APPROVER: 3}


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise UnknownRole(text, ROLES) from None


# -- FGA objects of the domain --------------------------------------------------------------


def project_object(project_id: str) -> str:
    return f"project:{fga_id(project_id)}"


def task_object(task_id: int) -> str:
    return f"task:{task_id}"


def project_id_of(fga_object: str) -> str | None:
    """The project id of ``project:<id>`` (None for anything else)."""
    kind, _, rest = fga_object.partition(":")
    if kind != "project" or not rest:
        return None
    return from_fga_id(rest)


# A task assigned to somebody who has not linked yet names them by their Slack account until
# they link (Auth0 subjects always read ``connection|id``; this form has no ``|``).
_PENDING_PREFIX = "slack:"


def pending_assignee(team_id: str, slack_user_id: str) -> str:
    return f"{_PENDING_PREFIX}{team_id}:{slack_user_id}"


def is_pending_assignee(assignee: str) -> bool:
    """Whether an assignee is a Slack user who has not linked yet (no tuple was written)."""
    return assignee.startswith(_PENDING_PREFIX) and "|" not in assignee


def pending_slack_user(assignee: str, team_id: str) -> str | None:
    """The Slack user a pending assignment names, if ``assignee`` is one of this team."""
    prefix = f"{_PENDING_PREFIX}{team_id}:"
    if "|" in assignee or not assignee.startswith(prefix):
        return None
    return assignee.removeprefix(prefix) or None


# -- names and titles ------------------------------------------------------------------------

# Control characters, and invisible format characters (bidirectional overrides, zero-width
# characters) that would make two names look alike or rearrange the text around them.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def _clean(text: str, limit: int) -> tuple[str, NameProblem | None]:
    text = unicodedata.normalize("NFC", text)
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in text):
        return "", NameProblem.CONTROL_CHARACTERS
    collapsed = " ".join(text.split())
    if not collapsed:
        return "", NameProblem.EMPTY
    if len(collapsed) > limit:
        return "", NameProblem.TOO_LONG
    return collapsed, None


def clean_name(text: str) -> str:
    """A project name as stored: 1-80 characters, runs of spaces made one, no control
    characters (:class:`InvalidProjectName` otherwise)."""
    name, problem = _clean(text, MAX_NAME)
    if problem is not None:
        raise InvalidProjectName(problem, MAX_NAME)
    return name


def clean_title(text: str) -> str:
    title, problem = _clean(text, MAX_TITLE)
    if problem is not None:
        raise InvalidTaskTitle(problem, MAX_TITLE)
    return title


def name_key(name: str) -> str:
    """What makes two names the same in a workspace: case (``Straße`` is ``STRASSE``),
    compatibility forms and spacing do not count. Fits the 80-character key column: a key
    that case folding made longer is replaced by a digest of itself."""
    key = " ".join(unicodedata.normalize("NFKC", name).casefold().split())
    if len(key) > MAX_NAME:
        key = "~" + hashlib.sha256(key.encode()).hexdigest()
    return key


# -- due dates -------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_WEEKDAYS = {
    "monday": 0,
    "mon": 0,
    "tuesday": 1,
    "tue": 1,
    "tues": 1,
    "wednesday": 2,
    "wed": 2,
    "thursday": 3,
    "thu": 3,
    "thur": 3,
    "thurs": 3,
    "friday": 4,
    "fri": 4,
    "saturday": 5,
    "sat": 5,
    "sunday": 6,
    "sun": 6,
}


def parse_due(text: str, today: date) -> date:
    """``YYYY-MM-DD``, ``today``, ``tomorrow`` or a weekday (the next one after today).
    Raises :class:`InvalidDueDate`, or :class:`DueDateInPast` for a day before ``today``."""
    word = text.strip().lower()
    if word == "today":
        return today
    if word == "tomorrow":
        return today + timedelta(days=1)
    if word in _WEEKDAYS:
        ahead = (_WEEKDAYS[word] - today.weekday()) % 7 or 7
        return today + timedelta(days=ahead)
    if not _ISO_DATE.fullmatch(word):
        raise InvalidDueDate(text)
    try:
        due = date.fromisoformat(word)
    except ValueError:
        raise InvalidDueDate(text) from None
    if due < today:
        raise DueDateInPast(due, today)
    return due


# -- what the service returns ----------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """A Slack user named in a command."""

    slack_user_id: str
    name: str


@dataclass(frozen=True)
class ProjectSummary:
    id: str
    name: str
    role: Role  # the highest of owner, editor, viewer
    approver: bool = False


@dataclass(frozen=True)
class ProjectList:
    projects: list[ProjectSummary]
    # Some decisions could not be made: those projects are left out.
    incomplete: bool = False


@dataclass(frozen=True)
class Member:
    """A person's roles on a project: a Slack user of this workspace, or (``label``) an
    identity no Slack user of this workspace is linked to any more."""

    slack_user_id: str | None
    label: str | None
    roles: tuple[Role, ...]
    pending: bool = False  # not linked yet: the roles apply when they link


@dataclass(frozen=True)
class Members:
    project: str
    members: list[Member]


@dataclass(frozen=True)
class Assignee:
    slack_user_id: str | None
    label: str | None = None
    pending: bool = False


@dataclass(frozen=True)
class TaskItem:
    id: int
    title: str
    project: str
    status: str
    due: date | None
    assignee: Assignee | None
    overdue: bool = False


@dataclass(frozen=True)
class TaskList:
    project: str | None
    mine: bool
    tasks: list[TaskItem]
    truncated: bool = False
    incomplete: bool = False


@dataclass(frozen=True)
class ProjectStatus:
    project: str
    open: int
    done: int
    overdue_count: int
    overdue: list[TaskItem] = field(default_factory=list)
    next_due: list[TaskItem] = field(default_factory=list)


@dataclass(frozen=True)
class ShareOutcome:
    project: str
    person: Person
    role: Role
    pending: bool  # not linked yet: applied when they link
    already: bool = False
    replaced: Role | None = None  # the pending role this one replaced


@dataclass(frozen=True)
class UnshareOutcome:
    project: str
    person: Person
    removed: tuple[Role, ...]
    pending: Role | None = None  # a pending role that was withdrawn


@dataclass(frozen=True)
class TaskAdded:
    task: TaskItem


@dataclass(frozen=True)
class TaskCompleted:
    task: TaskItem
    already: bool = False


@dataclass(frozen=True)
class TaskUpdated:
    """A task after a change; ``changed`` names what changed (``title``, ``assignee``,
    ``due``, ``status``), empty when it already was so."""

    task: TaskItem
    changed: tuple[str, ...] = ()
