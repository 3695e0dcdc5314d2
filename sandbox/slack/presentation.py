"""How stored messages are shown: as Slack's API returns them (thread summaries on
parents), and as the sandbox's page and JSON API list them (channel, ephemeral marks)."""

from __future__ import annotations

import copy

from .common import JsonDict
from .conversations import Conversation, StoredMessage


def render(conv: Conversation, m: StoredMessage) -> JsonDict:
    """A copy of the message as Slack shows it, with thread summary fields on parents."""
    out = copy.deepcopy(m.data)
    if m.visible_to is None and "thread_ts" not in m.data:
        replies = [
            r
            for r in conv.messages
            if r.visible_to is None and r.data.get("thread_ts") == m.ts and r is not m
        ]
        if replies:
            users: list[str] = []
            for r in replies:
                uid = str(r.data.get("user"))
                if uid not in users:
                    users.append(uid)
            out["thread_ts"] = m.ts
            out["reply_count"] = len(replies)
            out["reply_users_count"] = len(users)
            out["reply_users"] = users[:5]
            out["latest_reply"] = replies[-1].ts
    return out


def listing(conv: Conversation, viewer: str | None) -> list[JsonDict]:
    """All messages of a conversation in ts order as ``viewer`` sees them.

    Each carries ``channel``; ephemeral ones add ``is_ephemeral`` and ``visible_to``, one
    the bot is still streaming ``is_streaming``, and an assistant thread's root its
    ``assistant_status`` while one is set.
    """
    return [
        present(conv, m) for m in conv.messages if m.visible_to is None or m.visible_to == viewer
    ]


def present(conv: Conversation, m: StoredMessage) -> JsonDict:
    """One message as :func:`listing` shows it."""
    item = render(conv, m)
    item["channel"] = conv.id
    if m.visible_to is not None:
        item["is_ephemeral"] = True
        item["visible_to"] = m.visible_to
    if m.streaming:
        item["is_streaming"] = True
    if m.status:
        item["assistant_status"] = m.status
    return item
