"""What the workspace hands its storage: the changes since the last save, and what a
previous run stored."""

from __future__ import annotations

from dataclasses import dataclass, field

from .common import JsonDict
from .conversations import Conversation, StoredMessage


@dataclass
class Changes:
    """What changed since the last save: conversations, messages and App Home views.

    Entries point at the live objects, so a save writes their latest state; a message key
    ``(conversation id, ts)`` mapping to None was deleted.
    """

    conversations: dict[str, Conversation] = field(default_factory=dict)
    messages: dict[tuple[str, str], StoredMessage | None] = field(default_factory=dict)
    home_views: dict[str, JsonDict] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.conversations or self.messages or self.home_views)

    def merge_older(self, older: Changes) -> None:
        """Take back changes a failed save did not write, unless changed again since."""
        for cid, conv in older.conversations.items():
            self.conversations.setdefault(cid, conv)
        for key, message in older.messages.items():
            self.messages.setdefault(key, message)
        for uid, view in older.home_views.items():
            self.home_views.setdefault(uid, view)


@dataclass
class Snapshot:
    """A workspace's stored conversations, messages (in ts order) and App Home views."""

    conversations: list[Conversation]
    messages: list[StoredMessage]
    home_views: dict[str, JsonDict]
