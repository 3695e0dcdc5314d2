"""The projects subcommands of ``/pm``: parse the text, call the projects service as the
asker, render (words from ``bot.messages``, blocks from ``handlers.blocks``).

Grammar (NAME may hold spaces, or be put in double quotes; a person is ``@name``,
``<@U…>`` or ``<@U…|name>``)::

    projects
    project new NAME
    project share NAME @person ROLE
    project unshare NAME @person
    project members NAME
    status NAME
    tasks [NAME] [mine]
    task add NAME "title" [@person] [due DATE]
    task done ID
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncRespond

from bot import messages as words
from bot.errors import CommandHint, MalformedCommand, PmbotError, Usage
from bot.identity.model import Identity
from bot.projects.people import PersonRef, parse_person
from bot.wiring import Deps
from handlers import blocks

SUBCOMMANDS = frozenset({"projects", "project", "status", "tasks", "task"})

# A double-quoted string (straight or typographic quotes, as Slack clients type them), a
# Slack reference in angle brackets, or a word.
_TOKEN = re.compile(r'"([^"]*)"|“([^”]*)”|(<[^>]*>)|(\S+)')
_TASK_ID = re.compile(r"#?([0-9]{1,9})")


@dataclass(frozen=True)
class Token:
    text: str  # without its quotes
    quoted: bool
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    tokens = []
    for match in _TOKEN.finditer(text):
        quoted = match.group(1) if match.group(1) is not None else match.group(2)
        value = quoted if quoted is not None else match.group(0)
        tokens.append(Token(value, quoted is not None, match.start(), match.end()))
    return tokens


def name_of(text: str, tokens: list[Token]) -> str:
    """The project name the tokens spell: a quoted one as it is, else the text they cover
    (so what is between the words, spaces or anything else, reaches the name's rules)."""
    if len(tokens) == 1 and tokens[0].quoted:
        return tokens[0].text
    return text[tokens[0].start : tokens[-1].end] if tokens else ""


def _person(token: Token, usage: Usage) -> PersonRef:
    ref = None if token.quoted else parse_person(token.text)
    if ref is None:
        raise MalformedCommand(usage, CommandHint.PERSON_EXPECTED)
    return ref


@dataclass(frozen=True)
class Reply:
    text: str
    blocks: list[blocks.Block]


async def run(deps: Deps, sub: str, rest: str, identity: Identity, respond: AsyncRespond) -> None:
    """Answer one projects subcommand; refusals are told in words, nothing else changes."""
    try:
        reply = await _dispatch(deps, sub, rest, identity)
    except PmbotError as error:
        await respond(words.project_refusal(error))
        return
    await respond(text=reply.text, blocks=reply.blocks)


async def _dispatch(deps: Deps, sub: str, rest: str, identity: Identity) -> Reply:
    projects = deps.projects
    tokens = tokenize(rest)
    if sub == "projects":
        if tokens:
            raise MalformedCommand(Usage.PROJECTS, CommandHint.UNEXPECTED_WORDS)
        return _text_reply(blocks.projects_blocks(await projects.list_projects(identity)))
    if sub == "status":
        if not tokens:
            raise MalformedCommand(Usage.STATUS)
        status = await projects.status(identity, name_of(rest, tokens))
        return _text_reply(blocks.status_blocks(status))
    if sub == "tasks":
        mine = bool(tokens) and not tokens[-1].quoted and tokens[-1].text.lower() == "mine"
        named = tokens[:-1] if mine else tokens
        found = await projects.tasks(identity, name_of(rest, named) or None, mine=mine)
        return _text_reply(blocks.tasks_blocks(found))
    verb = tokens[0].text.lower() if tokens and not tokens[0].quoted else ""
    if sub == "project":
        return await _project(deps, identity, verb, rest, tokens[1:])
    return await _task(deps, identity, verb, rest, tokens[1:])


async def _project(
    deps: Deps, identity: Identity, verb: str, rest: str, tokens: list[Token]
) -> Reply:
    projects = deps.projects
    if verb == "new":
        if not tokens:
            raise MalformedCommand(Usage.PROJECT_NEW)
        created = await projects.create_project(identity, name_of(rest, tokens))
        return _plain(words.project_created_text(created.name))
    if verb == "share":
        if len(tokens) < 3:
            raise MalformedCommand(Usage.PROJECT_SHARE)
        person = _person(tokens[-2], Usage.PROJECT_SHARE)
        shared = await projects.share(identity, name_of(rest, tokens[:-2]), person, tokens[-1].text)
        return _plain(
            words.shared_text(
                shared.project,
                shared.person.slack_user_id,
                shared.role.value,
                pending=shared.pending,
                already=shared.already,
                replaced=shared.replaced.value if shared.replaced else None,
            )
        )
    if verb == "unshare":
        if len(tokens) < 2:
            raise MalformedCommand(Usage.PROJECT_UNSHARE)
        person = _person(tokens[-1], Usage.PROJECT_UNSHARE)
        removed = await projects.unshare(identity, name_of(rest, tokens[:-1]), person)
        return _plain(
            words.unshared_text(
                removed.project,
                removed.person.slack_user_id,
                [r.value for r in removed.removed],
                removed.pending.value if removed.pending else None,
            )
        )
    if verb == "members":
        if not tokens:
            raise MalformedCommand(Usage.PROJECT_MEMBERS)
        return _text_reply(
            blocks.members_blocks(await projects.members(identity, name_of(rest, tokens)))
        )
    hint = CommandHint.UNKNOWN_ACTION if verb else CommandHint.MISSING_ARGUMENTS
    raise MalformedCommand(Usage.PROJECT, hint)


async def _task(deps: Deps, identity: Identity, verb: str, rest: str, tokens: list[Token]) -> Reply:
    projects = deps.projects
    if verb == "done":
        if len(tokens) != 1:
            raise MalformedCommand(Usage.TASK_DONE, CommandHint.TASK_ID_EXPECTED)
        number = _TASK_ID.fullmatch(tokens[0].text)
        if number is None or tokens[0].quoted:
            raise MalformedCommand(Usage.TASK_DONE, CommandHint.TASK_ID_EXPECTED)
        completed = await projects.complete_task(identity, int(number.group(1)))
        return _plain(
            words.task_done_text(completed.task.id, completed.task.title, already=completed.already)
        )
    if verb == "add":
        name, title, assignee, due = _task_add_arguments(rest, tokens)
        added = await projects.add_task(identity, name, title, assignee, due)
        task = added.task
        pending = task.assignee is not None and task.assignee.pending
        return _plain(
            words.task_added_text(task.id, task.title, task.project, pending_assignee=pending)
        )
    hint = CommandHint.UNKNOWN_ACTION if verb else CommandHint.MISSING_ARGUMENTS
    raise MalformedCommand(Usage.TASK, hint)


def _task_add_arguments(
    rest: str, tokens: list[Token]
) -> tuple[str, str, PersonRef | None, str | None]:
    """NAME, then the title (the last quoted token), then ``@person`` and ``due DATE`` in
    either order."""
    quoted = [i for i, t in enumerate(tokens) if t.quoted]
    if not quoted:
        raise MalformedCommand(Usage.TASK_ADD, CommandHint.TITLE_NOT_QUOTED)
    at = quoted[-1]
    if at == 0:
        raise MalformedCommand(Usage.TASK_ADD)
    assignee: PersonRef | None = None
    due: str | None = None
    tail = tokens[at + 1 :]
    i = 0
    while i < len(tail):
        token = tail[i]
        if token.text.lower() == "due" and due is None:
            if i + 1 >= len(tail):
                raise MalformedCommand(Usage.TASK_ADD, CommandHint.DATE_EXPECTED)
            due = tail[i + 1].text
            i += 2
            continue
        ref = parse_person(token.text)
        if ref is None or assignee is not None:
            raise MalformedCommand(Usage.TASK_ADD, CommandHint.UNEXPECTED_WORDS)
        assignee = ref
        i += 1
    return name_of(rest, tokens[:at]), tokens[at].text, assignee, due


def _plain(text: str) -> Reply:
    return Reply(text, [blocks.section(text)])


def _text_reply(arranged: tuple[str, list[dict[str, Any]]]) -> Reply:
    text, built = arranged
    return Reply(text, built)
