"""Conversations and their messages as the workspace keeps them, and Slack's message
timestamps."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .common import JsonDict


@dataclass
class StoredMessage:
    """A message plus who may see it (``visible_to`` is set for ephemeral messages).

    ``streaming`` (the bot is still writing it, :mod:`.assistant`) and ``status`` (an
    assistant thread's "is thinking…", on its root) live only as long as the process: a
    restart ends streams and statuses, as Slack's own time out.
    """

    data: JsonDict
    visible_to: str | None = None
    conversation_id: str = ""
    streaming: bool = False
    status: str = ""

    @property
    def ts(self) -> str:
        return str(self.data["ts"])

    @property
    def root_ts(self) -> str:
        return str(self.data.get("thread_ts") or self.data["ts"])


@dataclass
class Conversation:
    """A public channel or a direct message (``is_im``)."""

    id: str
    name: str | None
    is_im: bool
    members: list[str]
    created: int
    messages: list[StoredMessage] = field(default_factory=list)


class TsClock:
    """Slack message timestamps: ``"<epoch seconds>.<6 digit micros>"``, strictly increasing."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._last = 0

    def next(self) -> str:
        micros = max(int(self._now() * 1_000_000), self._last + 1)
        self._last = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def observe(self, ts: str) -> None:
        """Make every later timestamp greater than ``ts`` (one read back from storage)."""
        seconds, _, micros = ts.partition(".")
        if seconds.isdigit() and (not micros or micros.isdigit()):
            self._last = max(self._last, int(seconds) * 1_000_000 + int(micros.ljust(6, "0")[:6]))
