"""What Slack gives AI apps, emulated: streamed messages (``chat.startStream``,
``chat.appendStream``, ``chat.stopStream``) and assistant threads (the pane a person opens
from the app: ``assistant_thread_started``, ``assistant.threads.setStatus``,
``setSuggestedPrompts`` and ``setTitle``).

**Streams.** A stream is a reply of the bot in a thread that grows: its text is the
Markdown written so far, shown as one ``markdown`` block; ``chat.stopStream`` adds the
closing text and blocks and ends it. Until then the message is ``streaming`` (the page
shows it being written); a stream ends with the process, and appending to a message that is
not being streamed is ``message_not_in_streaming_state``. In a channel (not a DM) a stream
names its reader (``recipient_user_id`` and ``recipient_team_id``), as Slack requires.

**Assistant threads.** Opening the pane starts a thread in the person's DM with the bot:
its root is a bot message of subtype ``assistant_app_thread`` whose
``assistant_app_thread`` holds the title (and, here, the suggested prompts), stored with
the message. The bot's "is thinking…" status sits on the root until the bot replies in the
thread, sets an empty status, or the process ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .blocks import MAX_MARKDOWN, parse_blocks
from .common import JsonDict, SandboxError
from .conversations import Conversation, StoredMessage
from .presentation import render
from .state import MAX_TEXT, Workspace
from .team import SandboxUser

ASSISTANT_SUBTYPE = "assistant_app_thread"
MAX_PROMPTS = 4
MAX_STATUS = 50
MAX_TITLE = 255

Method = Callable[[JsonDict], JsonDict]


# -- streams ----------------------------------------------------------------------------------


def _markdown_blocks(text: str, closing: list[JsonDict]) -> list[JsonDict]:
    written = [{"type": "markdown", "text": text, "block_id": "stream"}] if text else []
    return [*written, *closing]


def _grow(ws: Workspace, m: StoredMessage, text: str, closing: list[JsonDict]) -> None:
    whole = str(m.data.get("text") or "") + text
    if len(whole) > min(MAX_TEXT, MAX_MARKDOWN):
        raise SandboxError("msg_too_long", "a streamed message holds at most 12,000 characters")
    m.data["text"] = whole
    m.data["blocks"] = _markdown_blocks(whole, closing)
    ws.changed(m)


def start_stream(
    ws: Workspace,
    conv: Conversation,
    *,
    thread_ts: str,
    text: str,
    recipient_user_id: str | None,
    recipient_team_id: str | None,
) -> StoredMessage:
    """A new streamed reply of the bot in the thread of ``thread_ts``."""
    if not conv.is_im:
        if not recipient_user_id or not recipient_team_id:
            raise SandboxError(
                "invalid_arguments",
                "streaming to a channel needs recipient_user_id and recipient_team_id",
            )
        if ws.user(recipient_user_id).id not in conv.members:
            raise SandboxError("user_not_in_channel")
        if recipient_team_id != ws.team_id:
            raise SandboxError("team_not_found")
    stored = ws.add_message(conv, user_id=ws.bot.id, text="", thread_ts=thread_ts)
    stored.streaming = True
    _grow(ws, stored, text, [])
    return stored


def streamed(ws: Workspace, conv: Conversation, ts: str | None) -> StoredMessage:
    """The bot's message ``ts`` of ``conv``, which must still be streaming."""
    found = ws.find(conv, ts, viewer=None) if ts else None
    if found is None:
        raise SandboxError("message_not_found")
    if found.data.get("user") != ws.bot.id:
        raise SandboxError("cant_update_message")
    if not found.streaming:
        raise SandboxError("message_not_in_streaming_state")
    return found


def append_stream(ws: Workspace, m: StoredMessage, text: str) -> None:
    if not text:
        raise SandboxError("no_text", "markdown_text is required")
    _grow(ws, m, text, [])


def stop_stream(ws: Workspace, m: StoredMessage, text: str, closing: list[JsonDict] | None) -> None:
    m.streaming = False
    _grow(ws, m, text, closing or [])


# -- assistant threads ----------------------------------------------------------------------


def open_thread(
    ws: Workspace, user: SandboxUser, context_channel: str | None
) -> tuple[Conversation, StoredMessage, JsonDict]:
    """A new assistant thread in ``user``'s DM with the bot: ``(dm, root, context)``.
    ``context`` names the channel the person was looking at, if any."""
    dm, _ = ws.open_im(user.id, ws.bot.id)
    context: JsonDict = {}
    if context_channel:
        viewed = ws.conversation(context_channel, actor=user.id, create_im=False)
        context = {"channel_id": viewed.id, "team_id": ws.team_id, "enterprise_id": None}
    root = ws.add_message(
        dm,
        user_id=ws.bot.id,
        text="",
        extra={
            "subtype": ASSISTANT_SUBTYPE,
            ASSISTANT_SUBTYPE: {
                "title": "",
                "title_blocks": [],
                "artifacts": [],
                "context": context,
            },
        },
    )
    return dm, root, context


def thread_root(ws: Workspace, conv: Conversation, thread_ts: str | None) -> StoredMessage:
    """The root of the thread ``thread_ts`` belongs to."""
    found = ws.find(conv, thread_ts, viewer=None) if thread_ts else None
    if found is None:
        raise SandboxError("thread_not_found")
    root = ws.find(conv, found.root_ts, viewer=None)
    assert root is not None
    return root


def assistant_root(ws: Workspace, conv: Conversation, thread_ts: str | None) -> StoredMessage:
    root = thread_root(ws, conv, thread_ts)
    if root.data.get("subtype") != ASSISTANT_SUBTYPE:
        raise SandboxError("invalid_arguments", "not an assistant thread")
    return root


def thread_state(root: StoredMessage) -> JsonDict:
    """An assistant thread as the page and the tests read it."""
    info = root.data.get(ASSISTANT_SUBTYPE) or {}
    suggested = info.get("suggested_prompts") or {}
    return {
        "channel": root.conversation_id,
        "thread_ts": root.ts,
        "title": str(info.get("title") or ""),
        "status": root.status,
        "prompts": list(suggested.get("prompts") or []),
        "prompts_title": str(suggested.get("title") or ""),
        "context": dict(info.get("context") or {}),
    }


def _prompts(raw: Any) -> list[JsonDict]:
    if isinstance(raw, str):  # a form body carries them as JSON
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise SandboxError("invalid_arguments", "prompts is not valid JSON") from None
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_PROMPTS:
        raise SandboxError("invalid_arguments", f"prompts must hold 1 to {MAX_PROMPTS} prompts")
    prompts = []
    for prompt in raw:
        if not (
            isinstance(prompt, dict)
            and isinstance(prompt.get("title"), str)
            and isinstance(prompt.get("message"), str)
            and prompt["title"]
            and prompt["message"]
        ):
            raise SandboxError("invalid_arguments", "each prompt needs a title and a message")
        prompts.append({"title": prompt["title"], "message": prompt["message"]})
    return prompts


# -- the Web API methods ------------------------------------------------------------------------


def _str(p: JsonDict, key: str) -> str | None:
    value = p.get(key)
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


class AssistantMethods:
    """The Web API methods of this module, for :class:`~sandbox.slack.webapi.WebApi`."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def methods(self) -> dict[str, Method]:
        return {
            "chat.startStream": self.start_stream,
            "chat.appendStream": self.append_stream,
            "chat.stopStream": self.stop_stream,
            "assistant.threads.setStatus": self.set_status,
            "assistant.threads.setSuggestedPrompts": self.set_suggested_prompts,
            "assistant.threads.setTitle": self.set_title,
        }

    def _conversation(self, p: JsonDict, key: str) -> Conversation:
        conv = self.ws.conversation(_str(p, key) or "", actor=self.ws.bot.id, create_im=False)
        if self.ws.bot.id not in conv.members:
            raise SandboxError("not_in_channel")
        return conv

    def start_stream(self, p: JsonDict) -> JsonDict:
        conv = self._conversation(p, "channel")
        thread_ts = _str(p, "thread_ts")
        if thread_ts is None:
            raise SandboxError("invalid_arguments", "thread_ts is required: a stream is a reply")
        stored = start_stream(
            self.ws,
            conv,
            thread_ts=thread_ts,
            text=_str(p, "markdown_text") or "",
            recipient_user_id=_str(p, "recipient_user_id"),
            recipient_team_id=_str(p, "recipient_team_id"),
        )
        return {"ok": True, "channel": conv.id, "ts": stored.ts}

    def append_stream(self, p: JsonDict) -> JsonDict:
        conv = self._conversation(p, "channel")
        found = streamed(self.ws, conv, _str(p, "ts"))
        append_stream(self.ws, found, _str(p, "markdown_text") or "")
        return {"ok": True, "channel": conv.id, "ts": found.ts}

    def stop_stream(self, p: JsonDict) -> JsonDict:
        conv = self._conversation(p, "channel")
        found = streamed(self.ws, conv, _str(p, "ts"))
        stop_stream(self.ws, found, _str(p, "markdown_text") or "", parse_blocks(p.get("blocks")))
        return {"ok": True, "channel": conv.id, "ts": found.ts, "message": render(conv, found)}

    def set_status(self, p: JsonDict) -> JsonDict:
        conv = self._conversation(p, "channel_id")
        root = thread_root(self.ws, conv, _str(p, "thread_ts"))
        status = p.get("status")
        if not isinstance(status, str) or len(status) > MAX_STATUS:
            raise SandboxError("invalid_arguments", f"status is text of at most {MAX_STATUS}")
        root.status = status
        return {"ok": True}

    def set_suggested_prompts(self, p: JsonDict) -> JsonDict:
        conv = self._conversation(p, "channel_id")
        root = assistant_root(self.ws, conv, _str(p, "thread_ts"))
        info = root.data[ASSISTANT_SUBTYPE]
        info["suggested_prompts"] = {
            "title": _str(p, "title") or "",
            "prompts": _prompts(p.get("prompts")),
        }
        self.ws.changed(root)
        return {"ok": True}

    def set_title(self, p: JsonDict) -> JsonDict:
        conv = self._conversation(p, "channel_id")
        root = assistant_root(self.ws, conv, _str(p, "thread_ts"))
        title = _str(p, "title")
        if title is None or len(title) > MAX_TITLE:
            raise SandboxError("invalid_arguments", f"title is text of 1 to {MAX_TITLE}")
        root.data[ASSISTANT_SUBTYPE]["title"] = title
        self.ws.changed(root)
        return {"ok": True}
