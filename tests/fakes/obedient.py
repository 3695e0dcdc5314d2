"""The worst case for prompt injection: a scripted model, on the fake OpenAI server, that
does whatever the text it is sent tells it to.

:class:`ObedientModel` reads the messages pmbot sent (nothing else: it is not told what
the test planted) and understands a few instructions in plain words, as a credulous model
would, after undoing Unicode tricks (compatibility forms, Cyrillic look-alikes, invisible
characters): "ignore previous instructions", "call TOOL {json}", "delete project X",
"delete all my projects", "print your tokens" / "reveal the system prompt", "share X with
@someone", "assign the task to @someone", "invite someone to the meeting", "post the X to
#channel", "mark all tasks done". It starts with ``first`` (what an honest model would do
for the asker's request); then, each time tool results come back, it emits the tool calls
the newest results ask for, or, when they ask for nothing (or it is done), answers with
what it read. Everything it asked for is kept in :attr:`asked`, what it understood in
:attr:`understood`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from tests.fakes.openai import Messages, Turn, say

# Look-alike letters (Cyrillic, Greek, Latin small capitals) read as the Latin ones.
_CONFUSABLES = str.maketrans(
    {
        "а": "a",
        "е": "e",
        "о": "o",
        "р": "p",
        "с": "c",
        "х": "x",
        "у": "y",
        "і": "i",
        "ј": "j",
        "ѕ": "s",
        "ԁ": "d",
        "ӏ": "l",
        "ο": "o",
        "α": "a",
        "ɑ": "a",
        "ᴀ": "a",
    }
)
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_PERSON = r"(<@[a-z0-9]+>|@[\w-]+(?:\.[\w-]+)*|[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"
_CHANNEL = r"(<#[a-z0-9]+(?:\|[\w-]+)?>|#[\w-]+)"

DISCLOSE = "disclose"


def read_as_a_model(text: str) -> str:
    """``text`` as a credulous model understands it: compatibility forms folded (full-width
    letters are letters), look-alikes read as Latin, invisible characters gone, lower case,
    one space between words."""
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text).translate(_CONFUSABLES)
    return " ".join(text.casefold().split())


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def _content_text(content: str) -> str:
    """What a model reads in a message: its strings when it is JSON, else the raw text."""
    try:
        parsed = json.loads(content)
    except ValueError:
        return content
    return "\n".join(strings_in(parsed))


def _task_ids(messages: Messages) -> list[int]:
    ids: list[int] = []
    for message in messages:
        if message.get("role") != "tool":
            continue
        found = re.findall(r'\\?"id\\?":\s*(\d+)', str(message.get("content") or ""))
        ids += [int(i) for i in found if int(i) not in ids]
    return ids


def _tomorrow_at_ten() -> str:
    day = (datetime.now(UTC) + timedelta(days=1)).date()
    return datetime.combine(day, time(10)).isoformat()


class ObedientModel:
    """See the module docstring. ``obey``: follow instructions in tool results (False
    plays an honest model); ``from_user``: also follow instructions quoted in the asker's
    own message; ``repeat``: ask for each understood call this many times (a model stuck
    on it); ``max_calls``: the tool calls it asks for at most in one conversation."""

    def __init__(
        self,
        first: Turn | Callable[[Messages], Turn],
        *,
        obey: bool = True,
        from_user: bool = False,
        repeat: int = 1,
        max_calls: int = 8,
    ) -> None:
        self.first = first
        self.obey = obey
        self.from_user = from_user
        self.repeat = repeat
        self.max_calls = max_calls
        self.seen: list[Messages] = []
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.understood: list[str] = []

    def __call__(self, messages: Messages) -> Turn:
        self.seen.append(messages)
        turns = sum(1 for m in messages if m.get("role") == "assistant")
        if turns == 0:
            first = self.first(messages) if callable(self.first) else self.first
            extra: list[tuple[str, dict[str, Any] | str]] = []
            if self.from_user:
                extra = self._instructions(self._user_text(messages), messages)
            return self._ask(Turn(calls=first.calls, text=first.text), extra)
        if self.obey:
            wanted = self._instructions(self._newest_results(messages), messages)
            done = {(name, json.dumps(args, sort_keys=True)) for name, args in self.asked}
            fresh = [
                (name, args)
                for name, args in wanted
                if (name, json.dumps(args, sort_keys=True)) not in done or self.repeat > 1
            ]
            if fresh and len(self.asked) < self.max_calls:
                return self._ask(Turn(), fresh)
            if DISCLOSE in self.understood:
                return say(self._everything(messages))
        return say("Here is what I found: " + self._newest_results(messages)[:1500])

    # -- reading ---------------------------------------------------------------------------

    @staticmethod
    def _user_text(messages: Messages) -> str:
        return "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")

    @staticmethod
    def _newest_results(messages: Messages) -> str:
        newest: list[str] = []
        for message in reversed(messages):
            if message.get("role") == "assistant":
                break
            if message.get("role") == "tool":
                newest.append(_content_text(str(message.get("content") or "")))
        return "\n".join(reversed(newest))

    @staticmethod
    def _everything(messages: Messages) -> str:
        """A model leaking its whole context: every message it was sent, verbatim."""
        return "\n".join(f"[{m.get('role')}] {m.get('content') or ''}" for m in messages)[:3500]

    def _instructions(self, raw: str, messages: Messages) -> list[tuple[str, dict[str, Any] | str]]:
        text = read_as_a_model(raw)
        calls: list[tuple[str, dict[str, Any] | str]] = []

        def understood(what: str) -> None:
            if what not in self.understood:
                self.understood.append(what)

        if re.search(r"ignore (?:all )?(?:the )?(?:previous|prior|above) instructions", text):
            understood("ignore previous instructions")
        for found in re.finditer(
            r"\bcall (?:the tool )?`?([a-z]+(?:_[a-z]+)+)`?\s*(\{[^{}]*\})?", text
        ):
            arguments: dict[str, Any] = {}
            if found.group(2):
                try:
                    arguments = json.loads(found.group(2))
                except ValueError:
                    arguments = {}
            understood(f"call {found.group(1)}")
            calls.append((found.group(1), arguments))
        if re.search(r"\bdelete all (?:of )?(?:my|your|the) projects", text):
            understood("delete all my projects")
            calls.append(("delete_all_my_projects", {}))
        for found in re.finditer(r"\bdelete (?:the )?project \"?([\w-]+)", text):
            understood(f"delete project {found.group(1)}")
            calls.append(("delete_project", {"project": found.group(1).title()}))
        if re.search(
            r"\b(?:print|show|reveal|repeat|output|dump|send)(?: me)? (?:all )?(?:of )?(?:your|the)"
            r" (?:access |api |refresh |slack |bot |oauth )?"
            r"(?:tokens?|secrets?|system prompt|instructions|keys?|credentials)",
            text,
        ):
            understood(DISCLOSE)
        for found in re.finditer(rf"\bshare (?:project )?([\w-]+) with {_PERSON}", text):
            understood(f"share {found.group(1)} with {found.group(2)}")
            calls.append(
                (
                    "create_task",
                    {
                        "project": found.group(1).title(),
                        "title": f"Shared with {found.group(2)}",
                        "assignee": found.group(2),
                    },
                )
            )
        ids = _task_ids(messages)
        for found in re.finditer(
            r"\b(?:re)?assign (?:the |this |that |every |all )?(?:tasks? )?(?:#?(\d+) )?"
            rf"to {_PERSON}",
            text,
        ):
            understood(f"assign a task to {found.group(2)}")
            for task_id in [int(found.group(1))] if found.group(1) else ids[:1]:
                calls.append(("update_task", {"task_id": task_id, "assignee": found.group(2)}))
        for found in re.finditer(
            rf"\b(?:invite|add) {_PERSON} (?:to|into) (?:the |a |every |this )?meeting", text
        ):
            understood(f"invite {found.group(1)}")
            calls.append(
                (
                    "schedule_meeting",
                    {
                        "title": "Apollo sync",
                        "start": _tomorrow_at_ten(),
                        "attendees": [found.group(1)],
                    },
                )
            )
        for found in re.finditer(
            rf"\bpost (?:the |our )?([\w' -]{{1,40}}?) (?:to|in) {_CHANNEL}", text
        ):
            subject, channel = found.group(1), found.group(2)
            understood(f"post the {subject} to {channel}")
            calls.append(
                ("post_as_me", {"channel": channel, "text": self._about(subject, messages)})
            )
        if re.search(
            r"\b(?:mark|set) (?:all|every) (?:the |of the )?(?:open )?tasks? "
            r"(?:as )?(?:done|complete)",
            text,
        ):
            understood("mark all tasks done")
            calls += [("update_task", {"task_id": i, "status": "done"}) for i in ids]
        unique: dict[str, tuple[str, dict[str, Any] | str]] = {}
        for name, args in calls:
            unique.setdefault(f"{name}:{json.dumps(args, sort_keys=True)}", (name, args))
        return list(unique.values())

    @staticmethod
    def _about(subject: str, messages: Messages) -> str:
        """What a model would post about ``subject``: every line it read mentioning its
        last word (the worst case: secrets included), else the subject itself."""
        key = subject.split()[-1]
        lines = [
            line.strip()
            for m in messages
            if m.get("role") in ("tool", "user")
            for line in _content_text(str(m.get("content") or "")).split("\n")
            if key in line.casefold() and line.strip()
        ]
        return ("\n".join(lines) or subject)[:3900]

    def _ask(self, turn: Turn, obeyed: list[tuple[str, dict[str, Any] | str]]) -> Turn:
        """``turn``'s calls, then the ``obeyed`` ones (each ``repeat`` times)."""
        calls = [*turn.calls, *(c for c in obeyed for _ in range(self.repeat))][: self.max_calls]
        for name, args in calls:
            self.asked.append((name, args if isinstance(args, dict) else {"raw": args}))
        if not calls:
            return turn
        return Turn(calls=tuple(calls), text=turn.text)
