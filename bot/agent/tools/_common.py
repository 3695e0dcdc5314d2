"""What several tools share: time zones, people named in arguments, task rendering and the
Token Vault scopes each provider call needs."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot import messages as words
from bot.agent.channels import Channel
from bot.agent.tool import FailureCode, ToolContext, ToolFailure
from bot.projects.people import PersonRef, parse_person
from bot.projects.values import Person, TaskItem

# Token Vault scopes of each provider call (Google's OAuth scopes, Slack's user scope).
CALENDAR_READ_SCOPES = frozenset({"https://www.googleapis.com/auth/calendar.events"})
CALENDAR_WRITE_SCOPES = CALENDAR_READ_SCOPES
FREEBUSY_SCOPES = frozenset({"https://www.googleapis.com/auth/calendar.freebusy"})
SLACK_POST_SCOPES = frozenset({"chat:write"})

_BARE_NAME = re.compile(r"[\w][\w.\-']{0,79}")
_OFFSET = re.compile(r"UTC([+-])(\d{2}):(\d{2})")


def zone_name(zone: tzinfo) -> str:
    """A name :func:`zone_of` reads back: the IANA key, or ``UTC±HH:MM``."""
    key = getattr(zone, "key", None)
    if isinstance(key, str):
        return key
    offset = zone.utcoffset(None) or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def zone_of(name: str) -> tzinfo:
    found = _OFFSET.fullmatch(name)
    if found:
        minutes = int(found.group(2)) * 60 + int(found.group(3))
        return timezone(timedelta(minutes=minutes if found.group(1) == "+" else -minutes))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def local(ctx: ToolContext, value: datetime) -> datetime:
    """``value`` in the asker's time zone (a naive value is read as local time there)."""
    zone = zone_of(ctx.timezone)
    if value.tzinfo is None:
        return value.replace(tzinfo=zone)
    return value.astimezone(zone)


def person_ref(text: str) -> PersonRef:
    """A person of this workspace named in an argument: ``@name``, ``<@U…>`` or a bare
    Slack name. An email (or anything else) is refused: only workspace people are invited
    or assigned, so a request cannot send anything outside the workspace."""
    ref = parse_person(text)
    if ref is not None:
        return ref
    cleaned = text.strip()
    if _BARE_NAME.fullmatch(cleaned):
        return PersonRef(text=cleaned, name=cleaned)
    raise ToolFailure(FailureCode.INVALID_ARGUMENTS, words.ATTENDEE_EXTERNAL)


def task_line(task: TaskItem, *, with_project: bool = True) -> str:
    assignee = None
    if task.assignee is not None:
        assignee = words.assignee_text(
            task.assignee.slack_user_id, task.assignee.label, pending=task.assignee.pending
        )
    return words.task_line(
        task.id,
        task.title,
        task.project,
        assignee=assignee,
        due=task.due.isoformat() if task.due else None,
        overdue=task.overdue,
        with_project=with_project,
    )


def task_data(task: TaskItem) -> dict[str, Any]:
    assignee = None
    if task.assignee is not None:
        assignee = task.assignee.slack_user_id or task.assignee.label
    return {
        "id": task.id,
        "title": task.title,
        "project": task.project,
        "status": task.status,
        "due": task.due.isoformat() if task.due else None,
        "assignee": assignee,
        "overdue": task.overdue,
    }


def _normalized(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def written_by_the_asker(ctx: ToolContext, text: str) -> bool:
    """Whether ``text`` is words the asker wrote in their own request. Plain commands are
    the asker's own words; for the agent the request's text is in ``extras`` and what the
    model wants to send out must be found in it (so words that came from a document or
    a tool result can never be sent on in the asker's name)."""
    request = _request(ctx)
    return request is None or _normalized(text) in request


def _request(ctx: ToolContext) -> str | None:
    """The asker's request in words, normalized (None for a plain command)."""
    request = ctx.extras.get("request_text")
    return None if request is None else _normalized(str(request))


def _says(request: str, phrase: str) -> bool:
    """Whether ``phrase`` is in the (normalized) request as whole words."""
    wanted = _normalized(phrase)
    if not wanted:
        return False
    return re.search(rf"(?<![\w]){re.escape(wanted)}(?![\w])", request) is not None


def named_by_the_asker(ctx: ToolContext, phrase: str) -> bool:
    """Whether the asker's own request names ``phrase`` (a project, as whole words); plain
    commands are the asker's own words."""
    request = _request(ctx)
    return request is None or _says(request, phrase)


async def require_person_named(ctx: ToolContext, ref: PersonRef) -> Person:
    """The person ``ref`` names, who must be the asker or someone the asker named in their
    request (``<@U…>``, ``@name`` or their name), so a name found in a document, a task or
    an event is never assigned, invited or added: :class:`ToolFailure` otherwise."""
    person = await ctx.services.people.resolve(ref)
    request = _request(ctx)
    if request is None or person.slack_user_id == ctx.asker.slack_user_id:
        return person
    if f"<@{person.slack_user_id.casefold()}" in request:
        return person
    if any(name and _says(request, name) for name in (ref.name, person.name)):
        return person
    raise ToolFailure(FailureCode.NOT_REQUESTED, words.person_not_requested_text(ref.text))


def require_channel_named(ctx: ToolContext, channel: Channel) -> None:
    """A channel posted to must be one the asker named (``<#C…>`` or ``#name``)."""
    request = _request(ctx)
    if request is None or f"<#{channel.id.casefold()}" in request:
        return
    if re.search(rf"#{re.escape(channel.name.casefold())}(?![\w.-])", request):
        return
    raise ToolFailure(FailureCode.NOT_REQUESTED, words.CHANNEL_NOT_REQUESTED)


async def require_task_named(ctx: ToolContext, task_id: int) -> None:
    """A task a request in words changes must be one the asker named, by its number or by
    its title (among the open tasks they may view): :class:`ToolFailure` otherwise, so
    "mark all tasks done" written in a task or a document changes nothing else."""
    request = _request(ctx)
    if request is None or _says(request, str(task_id)):
        return
    found = await ctx.services.projects.tasks(ctx.asker, None, mine=False)
    for task in found.tasks:
        if task.id == task_id and _says(request, task.title):
            return
    raise ToolFailure(FailureCode.NOT_REQUESTED, words.task_not_requested_text(task_id))


def require_project_named(ctx: ToolContext, project: str) -> None:
    """A project a request in words changes must be one the asker named."""
    if not named_by_the_asker(ctx, project):
        raise ToolFailure(FailureCode.NOT_REQUESTED, words.project_not_requested_text(project))
