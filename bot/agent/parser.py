"""The agent's tools without a model: plain commands read deterministically.

``/pm`` subcommands (:func:`parse_command`)::

    events [today|tomorrow|week]
    schedule "TITLE" DAY TIME [DURATION] [with @person ...]
    post #channel "text"
    delete project NAME
    delete all my projects

and the same requests in words in mentions and DMs (:func:`parse_request`), such as
``schedule a review of Apollo next Tuesday at 15:00 with bob``, ``book "Standup" tomorrow
9:30 for 15m``, ``post "Shipped!" to #apollo``, ``delete the project Apollo``, ``my events
this week``. Days, times and durations are read by :mod:`bot.agent.dates`, in the asker's
time zone; a time in the past, or anything unreadable, raises :class:`BadCommand` naming the
part. People and channels are checked by the tools (an unknown one is a clear refusal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.agent.dates import (
    WEEKDAYS,
    is_day_word,
    looks_like_duration,
    looks_like_time,
    parse_day,
    parse_duration,
    parse_time,
)
from bot.errors import BadCommand, CommandProblem

COMMANDS = frozenset({"events", "schedule", "post", "delete"})
# Words that start a request to act, in a mention or a DM.
_SCHEDULE_VERBS = frozenset({"schedule", "book"})
_POLITE = re.compile(
    r"^(?:(?:please|pls|hey|hi|ok|okay)[,!]?\s+)*"
    r"(?:(?:can|could|would|will) you\s+)?(?:please\s+)?",
    re.I,
)
_TOKEN = re.compile(r'"([^"]*)"|“([^”]*)”|(<[^>]*>)|([^\s,]+)')
_CHANNEL = re.compile(r"<#[CG][A-Z0-9]{1,31}(?:\|[^>]*)?>|#[a-z0-9][a-z0-9._-]{0,79}", re.I)
_ARTICLES = frozenset({"a", "an", "the"})
_EVENTS = re.compile(
    r"^(?:(?:show|list|get|what are|what's|whats|what is)\s+)?(?:me\s+)?(?:my\s+)?"
    r"(?:events|calendar|meetings|agenda)(?:\s+(?:on|for))?"
    r"(?:\s+(today|tomorrow|(?:this\s+)?week))?[?.!]*$",
    re.I,
)
_ON_MY_CALENDAR = re.compile(
    r"^what(?:'s| is) on my calendar(?:\s+(today|tomorrow|(?:this\s+)?week))?[?.!]*$", re.I
)
_DELETE_ALL = re.compile(r"^(?:delete|remove)\s+all\s+(?:of\s+)?my\s+projects[.!]*$", re.I)
_DELETE_ONE = re.compile(r"^(?:delete|remove)\s+(?:the\s+)?project\s+(.+?)[.!]*$", re.I)


@dataclass(frozen=True)
class ToolCall:
    """A tool and its arguments, read from a person's words."""

    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Token:
    text: str
    quoted: bool


def tokenize(text: str) -> list[Token]:
    found = []
    for match in _TOKEN.finditer(text):
        quoted = match.group(1) if match.group(1) is not None else match.group(2)
        found.append(Token(quoted if quoted is not None else match.group(0), quoted is not None))
    return found


def parse_command(sub: str, rest: str, *, now: datetime) -> ToolCall:
    """A ``/pm`` subcommand of :data:`COMMANDS`; ``now`` is aware, in the asker's zone."""
    if sub == "events":
        return _events(rest.strip().lower())
    if sub == "schedule":
        return _schedule(tokenize(rest), now=now, structured=True)
    if sub == "post":
        return _post(tokenize(rest))
    return _delete(f"delete {rest}".strip())


def parse_request(text: str, *, now: datetime) -> ToolCall | None:
    """A request to act in words (a mention or a DM), or None when it is not one (a
    question, for the answer path). One that starts as a request to act but cannot be
    read raises :class:`BadCommand`."""
    cleaned = _POLITE.sub("", text.strip(), count=1).strip()
    if not cleaned:
        return None
    head = cleaned.split(maxsplit=1)[0].lower()
    events = _EVENTS.fullmatch(cleaned) or _ON_MY_CALENDAR.fullmatch(cleaned)
    if events:
        return _events((events.group(1) or "today").lower())
    if head in _SCHEDULE_VERBS:
        return _schedule(tokenize(cleaned)[1:], now=now, structured=False)
    if head == "post":
        return _post(tokenize(cleaned)[1:])
    if head in {"delete", "remove"}:
        return _delete(cleaned)
    return None


def is_request_to_act(text: str) -> bool:
    """Whether words look like a request to act (for the agent), not a question."""
    cleaned = _POLITE.sub("", text.strip(), count=1).strip()
    head = cleaned.split(maxsplit=1)[0].lower() if cleaned else ""
    return head in _ACTION_VERBS or bool(
        _EVENTS.fullmatch(cleaned)
        or _ON_MY_CALENDAR.fullmatch(cleaned)
        or _ABOUT_MY_WORK.search(cleaned)
    )


def _head(text: str) -> str:
    cleaned = _POLITE.sub("", text.strip(), count=1).strip()
    return cleaned.split(maxsplit=1)[0].lower().strip(",.:;!?") if cleaned else ""


def change_verb(text: str) -> str | None:
    """The verb of change a request in words begins with (``schedule``, ``post``,
    ``delete``, ``add``, ``mark``...), or None when it only asks to look."""
    head = _head(text)
    return head if head in CHANGE_VERBS else None


def is_request_to_look(text: str) -> bool:
    """Whether a request in words only asks to look ("what are my tasks?", "what's on my
    calendar?", "list the tasks of Apollo"): everything that does not begin with a verb of
    change. Nothing may change for such a request, whatever the model reads and asks for."""
    return change_verb(text) is None


def asks_to_delete_all(text: str) -> bool:
    """Whether the asker's own words ask for all their projects to be deleted."""
    return bool(_DELETE_ALL_WORDS.search(" ".join(text.split())))


_DELETE_ALL_WORDS = re.compile(r"\b(?:delete|remove)\s+all\s+(?:of\s+)?my\s+projects\b", re.I)


# Questions about the asker's own work, which the tools answer (not the documents).
_ABOUT_MY_WORK = re.compile(
    r"\b(?:my|our)\s+(?:open\s+)?(?:tasks|projects|events|meetings|calendar)\b"
    r"|\bstatus of\b|^how(?:'s| is) \S+ (?:doing|going)\b",
    re.I,
)


# Verbs that begin a request to change something (each changing tool names its own).
CHANGE_VERBS = frozenset(
    {
        "schedule",
        "book",
        "post",
        "delete",
        "remove",
        "create",
        "add",
        "assign",
        "reassign",
        "update",
        "rename",
        "mark",
        "complete",
        "close",
        "reopen",
        "move",
        "set",
    }
)
_ACTION_VERBS = CHANGE_VERBS | {"find", "list", "show"}


def _events(word: str) -> ToolCall:
    word = " ".join(word.split())
    if word in ("", "today"):
        return ToolCall("list_my_events", {"when": "today"})
    if word == "tomorrow":
        return ToolCall("list_my_events", {"when": "tomorrow"})
    if word in ("week", "this week"):
        return ToolCall("list_my_events", {"when": "week"})
    raise BadCommand(CommandProblem.EVENTS_RANGE, word)


def _schedule(tokens: list[Token], *, now: datetime, structured: bool) -> ToolCall:
    """TITLE DAY TIME [DURATION] [with PEOPLE]; in words, "on", "at" and "for" may come
    between them and the title need not be quoted (it ends where the day begins)."""
    i = 0
    if tokens and tokens[0].quoted:
        title = tokens[0].text.strip()
        i = 1
    else:
        if structured:
            raise BadCommand(CommandProblem.SCHEDULE_TITLE)
        words: list[str] = []
        while i < len(tokens) and not (
            not tokens[i].quoted
            and (is_day_word(tokens[i].text) or tokens[i].text.lower() == "on")
            and _day_starts(tokens, i)
        ):
            words.append(tokens[i].text)
            i += 1
        if words and words[0].lower() in _ARTICLES:
            words = words[1:]
        title = " ".join(words).strip()
        title = title[:1].upper() + title[1:]
    if not title:
        raise BadCommand(CommandProblem.SCHEDULE_TITLE)
    if i < len(tokens) and tokens[i].text.lower() == "on" and not tokens[i].quoted:
        i += 1
    if i >= len(tokens):
        raise BadCommand(CommandProblem.DATE_MISSING)
    day_words = [tokens[i].text]
    if tokens[i].text.lower() == "next" and i + 1 < len(tokens):
        day_words.append(tokens[i + 1].text)
    day = parse_day(" ".join(day_words), now.date())
    i += len(day_words)
    if i < len(tokens) and tokens[i].text.lower() == "at":
        i += 1
    if i >= len(tokens) or tokens[i].text.lower() == "with":
        raise BadCommand(CommandProblem.TIME_MISSING)
    at = parse_time(tokens[i].text)
    i += 1
    duration = timedelta(minutes=30)
    if i < len(tokens) and tokens[i].text.lower() == "for":
        i += 1
        if i >= len(tokens):
            raise BadCommand(CommandProblem.DURATION_UNREADABLE, "for")
        duration = parse_duration(tokens[i].text)
        i += 1
    elif i < len(tokens) and looks_like_duration(tokens[i].text):
        duration = parse_duration(tokens[i].text)
        i += 1
    people: list[str] = []
    if i < len(tokens):
        if tokens[i].text.lower() != "with":
            raise BadCommand(CommandProblem.UNEXPECTED_WORDS, tokens[i].text)
        i += 1
        for token in tokens[i:]:
            word = token.text.strip().rstrip(".!?")
            if word.lower() == "and" and not token.quoted:
                continue
            mention = word.startswith("<@")
            if token.quoted or not word or _CHANNEL.fullmatch(word):
                raise BadCommand(CommandProblem.PERSON_EXPECTED, token.text)
            if not mention and "@" in word.lstrip("@"):
                raise BadCommand(CommandProblem.PERSON_EXPECTED, token.text)
            people.append(word if word.startswith(("@", "<@")) else f"@{word}")
        if not people:
            raise BadCommand(CommandProblem.PERSON_EXPECTED, "with")
    start = datetime.combine(day, at, tzinfo=now.tzinfo)
    if start <= now:
        raise BadCommand(CommandProblem.IN_THE_PAST, f"{day.isoformat()} {at:%H:%M}")
    return ToolCall(
        "schedule_meeting",
        {
            "title": title,
            "start": start.isoformat(),
            "duration_minutes": int(duration.total_seconds() // 60),
            "attendees": people,
        },
    )


def _day_starts(tokens: list[Token], i: int) -> bool:
    """Whether the day (and then a time) begins at token ``i``: ``on`` must be followed by
    a day, ``next`` by a weekday, and the day by a time (after an optional ``at``), so a
    title such as "Next steps" is not read as a day."""
    j = i + 1 if tokens[i].text.lower() == "on" else i
    if j >= len(tokens) or not is_day_word(tokens[j].text):
        return False
    if tokens[j].text.lower() == "next":
        if j + 1 >= len(tokens) or tokens[j + 1].text.lower() not in WEEKDAYS:
            return False
        j += 1
    j += 1
    if j < len(tokens) and tokens[j].text.lower() == "at":
        j += 1
    return j >= len(tokens) or looks_like_time(tokens[j].text) or tokens[j].text.lower() == "with"


def _post(tokens: list[Token]) -> ToolCall:
    """``#channel "text"`` or ``"text" (to|in) #channel``."""
    channel = None
    text = None
    for token in tokens:
        if token.quoted:
            if text is not None:
                raise BadCommand(CommandProblem.UNEXPECTED_WORDS, token.text)
            text = token.text
        elif _CHANNEL.fullmatch(token.text.rstrip(":")):
            if channel is not None:
                raise BadCommand(CommandProblem.UNEXPECTED_WORDS, token.text)
            channel = token.text.rstrip(":")
        elif token.text.lower() not in {"to", "in", "on"}:
            # Unquoted words where the text belongs: say how to give the text.
            raise BadCommand(CommandProblem.POST_TEXT)
    if channel is None:
        raise BadCommand(CommandProblem.POST_CHANNEL)
    if text is None or not text.strip():
        raise BadCommand(CommandProblem.POST_TEXT)
    return ToolCall("post_as_me", {"channel": channel, "text": text})


def _delete(text: str) -> ToolCall:
    cleaned = " ".join(text.split())
    if _DELETE_ALL.fullmatch(cleaned):
        return ToolCall("delete_all_my_projects", {})
    one = _DELETE_ONE.fullmatch(cleaned)
    if one:
        name = one.group(1).strip()
        if len(name) >= 2 and name[0] in '"“' and name[-1] in '"”':
            name = name[1:-1].strip()
        if name:
            return ToolCall("delete_project", {"project": name})
    raise BadCommand(CommandProblem.DELETE_WHAT)
