"""In-memory state of the sandbox Slack workspace: its conversations and messages as people
and the bot change them, App Home views, and the changes its storage is given.

Everything here is synchronous and single-threaded: the sandbox runs on one event loop and
every mutation happens between awaits, so no locking is needed. Messages are kept as the
JSON-shaped dicts Slack returns, so they can be handed to the bot and the page unchanged.

Beside it: the team and its people (:mod:`.team`), the conversation and message records
(:mod:`.conversations`), Block Kit (:mod:`.blocks`), how messages are shown
(:mod:`.presentation`), response URLs (:mod:`.response_urls`), injected faults
(:mod:`.faults`) and what storage reads and writes (:mod:`.changes`).
"""

from __future__ import annotations

import copy
import re
import secrets
import time
from collections.abc import Callable

from .blocks import parse_blocks
from .changes import Changes, Snapshot
from .common import JsonDict, SandboxError, truthy
from .conversations import Conversation, StoredMessage, TsClock
from .faults import Faults
from .presentation import present
from .response_urls import ResponseUrl, ResponseUrls
from .team import SLACKBOT_ID, SandboxSeed, Team
from .team import SandboxUser as SandboxUser  # sandbox.slack.state.SandboxUser stays importable

MAX_TEXT = 40_000


class Workspace(Team):
    """A team with its conversations, messages, App Home views, response URLs and faults."""

    def __init__(
        self,
        seed: SandboxSeed,
        *,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(seed)
        self._wall_clock = wall_clock
        self.clock = TsClock(wall_clock)
        created = int(wall_clock())
        self.conversations: dict[str, Conversation] = {}
        for cid, name, members in seed.channels:
            unknown = [m for m in members if m not in self.users]
            if unknown:
                raise ValueError(f"channel {name} has unknown members {unknown}")
            self.conversations[cid] = Conversation(cid, name, False, list(members), created)
        self._ims: dict[frozenset[str], str] = {}
        self._im_counter = 0
        self._view_counter = 0
        self.home_views: dict[str, JsonDict] = {}
        self.response_urls = ResponseUrls(monotonic)
        self.faults = Faults()
        # Changes since the last save; None while nothing is stored (in memory only).
        self.changes: Changes | None = None

    # -- storage ---------------------------------------------------------------------------

    def track_changes(self) -> None:
        """Record every change from now on, for :meth:`take_changes`."""
        if self.changes is None:
            self.changes = Changes()

    def take_changes(self) -> Changes:
        """The changes since the last call (empty when changes are not tracked)."""
        taken = self.changes or Changes()
        if self.changes is not None:
            self.changes = Changes()
        return taken

    def _changed_message(self, m: StoredMessage, *, deleted: bool = False) -> None:
        if self.changes is not None:
            self.changes.messages[(m.conversation_id, m.ts)] = None if deleted else m

    def changed(self, m: StoredMessage) -> None:
        """Record that a message was changed in place (to be saved)."""
        self._changed_message(m)

    def restore(self, snapshot: Snapshot) -> None:
        """Add what a previous run stored: DMs, messages and App Home views.

        The seed stays authoritative for people and channels: stored DMs with someone no
        longer seeded, and messages of conversations that no longer exist, are left out.
        """
        for conv in snapshot.conversations:
            known = all(m in self.users for m in conv.members)
            if conv.id in self.conversations or not known:
                continue
            self.conversations[conv.id] = conv
            if conv.is_im:
                self._ims[frozenset(conv.members)] = conv.id
                if re.fullmatch(r"D0\d+", conv.id):
                    self._im_counter = max(self._im_counter, int(conv.id[2:]))
        for m in snapshot.messages:
            found = self.conversations.get(m.conversation_id)
            if found is not None:
                found.messages.append(m)
                self.clock.observe(m.ts)
        for user_id, view in snapshot.home_views.items():
            if user_id in self.users:
                self.home_views[user_id] = view
                view_id = str(view.get("id", ""))
                if re.fullmatch(r"V0\d+", view_id):
                    self._view_counter = max(self._view_counter, int(view_id[2:]))

    # -- lookups ---------------------------------------------------------------------------

    def open_im(self, a: str, b: str) -> tuple[Conversation, bool]:
        """The DM between two users, created on first use; returns (dm, created)."""
        self.user(a)
        self.user(b)
        key = frozenset((a, b))
        existing = self._ims.get(key)
        if existing is not None:
            return self.conversations[existing], False
        self._im_counter += 1
        dm = Conversation(
            f"D0{self._im_counter:07d}", None, True, sorted(key), int(self._wall_clock())
        )
        self.conversations[dm.id] = dm
        self._ims[key] = dm.id
        if self.changes is not None:
            self.changes.conversations[dm.id] = dm
        return dm, True

    def find_im(self, a: str, b: str) -> Conversation | None:
        cid = self._ims.get(frozenset((a, b)))
        return self.conversations[cid] if cid else None

    def conversation(self, ref: str, *, actor: str, create_im: bool = True) -> Conversation:
        """Resolve a channel id, ``#name``/``name``, DM id, or a user id (the DM with ``actor``).

        A DM that ``actor`` is not part of does not exist for them (``channel_not_found``).
        """
        if not isinstance(ref, str) or not ref:
            raise SandboxError("channel_not_found", "channel is required")
        conv: Conversation | None
        if ref in self.users:
            if create_im:
                conv, _ = self.open_im(actor, ref)
            else:
                conv = self.find_im(actor, ref)
        else:
            conv = self.conversations.get(ref)
            if conv is None:
                name = ref.removeprefix("#")
                conv = next(
                    (c for c in self.conversations.values() if not c.is_im and c.name == name),
                    None,
                )
        if conv is None or (conv.is_im and actor not in conv.members):
            raise SandboxError("channel_not_found", f"no conversation {ref!r}")
        return conv

    def channel_name(self, conv: Conversation) -> str:
        """The name Slack sends for a conversation in slash commands and payloads."""
        return conv.name if conv.name is not None else "directmessage"

    # -- messages --------------------------------------------------------------------------

    def _base_message(self, user_id: str, text: str, blocks: list[JsonDict] | None) -> JsonDict:
        msg: JsonDict = {"type": "message", "user": user_id, "text": text}
        if user_id == self.bot.id:
            msg["bot_id"] = self.bot_id
            msg["app_id"] = self.app_id
            msg["bot_profile"] = {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": self.bot.name,
                "team_id": self.team_id,
                "deleted": False,
            }
        if blocks is not None:
            msg["blocks"] = blocks
        msg["team"] = self.team_id
        return msg

    def root_of(self, conv: Conversation, thread_ts: str) -> str:
        """The parent ts a reply should hang from (replies to replies go to the parent)."""
        parent = self.find(conv, thread_ts, viewer=None)
        if parent is None:
            raise SandboxError("thread_not_found", f"no message {thread_ts!r} in {conv.id}")
        return parent.root_ts

    def add_message(
        self,
        conv: Conversation,
        *,
        user_id: str,
        text: str,
        blocks: list[JsonDict] | None = None,
        thread_ts: str | None = None,
        visible_to: str | None = None,
        extra: JsonDict | None = None,
    ) -> StoredMessage:
        """Append a message; ``thread_ts`` must name an existing message in ``conv``."""
        if len(text) > MAX_TEXT:
            raise SandboxError("msg_too_long", f"text is longer than {MAX_TEXT} characters")
        data = self._base_message(user_id, text, blocks)
        root = self.root_of(conv, thread_ts) if thread_ts else None
        data["ts"] = self.clock.next()
        if root is not None:
            data["thread_ts"] = root
            parent = self.find(conv, root, viewer=None)
            if parent is not None:
                data["parent_user_id"] = parent.data.get("user")
                if user_id == self.bot.id:
                    # As in Slack, the app's reply ends its "is thinking…" status.
                    parent.status = ""
        if extra:
            data.update(extra)
        stored = StoredMessage(data, visible_to, conv.id)
        conv.messages.append(stored)
        self._changed_message(stored)
        return stored

    def find(self, conv: Conversation, ts: str, *, viewer: str | None) -> StoredMessage | None:
        """A message by ts; ephemeral ones only for their recipient (``viewer``)."""
        for m in conv.messages:
            if m.ts == ts and (m.visible_to is None or m.visible_to == viewer):
                return m
        return None

    def update_message(
        self,
        m: StoredMessage,
        *,
        text: str | None,
        blocks: list[JsonDict] | None,
        editor: str,
    ) -> None:
        """Replace text and/or blocks; omitted blocks are kept, ``[]`` removes them."""
        if text is not None:
            if len(text) > MAX_TEXT:
                raise SandboxError("msg_too_long", f"text is longer than {MAX_TEXT} characters")
            m.data["text"] = text
        if blocks is not None:
            if blocks:
                m.data["blocks"] = blocks
            else:
                m.data.pop("blocks", None)
        if m.visible_to is None:
            m.data["edited"] = {"user": editor, "ts": self.clock.next()}
        self._changed_message(m)

    def delete_message(self, conv: Conversation, m: StoredMessage) -> None:
        """Remove a message; a parent with replies leaves a tombstone, as in Slack."""
        has_replies = m.visible_to is None and any(
            r.data.get("thread_ts") == m.ts and r is not m for r in conv.messages
        )
        if has_replies and "thread_ts" not in m.data:
            m.data = {
                "type": "message",
                "subtype": "tombstone",
                "text": "This message was deleted.",
                "user": SLACKBOT_ID,
                "hidden": True,
                "ts": m.ts,
                "team": self.team_id,
            }
            self._changed_message(m)
        else:
            conv.messages.remove(m)
            self._changed_message(m, deleted=True)

    # -- App Home --------------------------------------------------------------------------

    def publish_home(self, user_id: str, view: JsonDict, hash_: str | None) -> JsonDict:
        """Store a user's App Home view (``hash`` guards against lost updates like Slack)."""
        self.user(user_id)
        if view.get("type") != "home":
            raise SandboxError("invalid_arguments", "view.type must be home")
        raw_blocks = view.get("blocks", [])
        blocks = parse_blocks(raw_blocks) if raw_blocks is not None else []
        current = self.home_views.get(user_id)
        if hash_ is not None and current is not None and current["hash"] != hash_:
            raise SandboxError("hash_conflict", "the view was changed since that hash")
        if current is None:
            self._view_counter += 1
            view_id = f"V0{self._view_counter:07d}"
        else:
            view_id = current["id"]
        stored: JsonDict = {
            "id": view_id,
            "team_id": self.team_id,
            "type": "home",
            "blocks": blocks or [],
            "private_metadata": str(view.get("private_metadata", "")),
            "callback_id": str(view.get("callback_id", "")),
            "external_id": str(view.get("external_id", "")),
            "state": {"values": {}},
            "hash": f"{int(self._wall_clock())}.{secrets.token_hex(4)}",
            "title": view.get("title"),
            "close": None,
            "submit": None,
            "clear_on_close": False,
            "notify_on_close": False,
            "root_view_id": view_id,
            "previous_view_id": None,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        self.home_views[user_id] = stored
        if self.changes is not None:
            self.changes.home_views[user_id] = stored
        return copy.deepcopy(stored)

    # -- response URLs ---------------------------------------------------------------------

    def new_response_url(
        self,
        *,
        user_id: str,
        channel_id: str,
        original_ts: str | None = None,
        original_ephemeral: bool = False,
        thread_ts: str | None = None,
    ) -> ResponseUrl:
        return self.response_urls.new(
            user_id=user_id,
            channel_id=channel_id,
            original_ts=original_ts,
            original_ephemeral=original_ephemeral,
            thread_ts=thread_ts,
        )

    def response_url(self, token: str) -> ResponseUrl:
        """A usable response URL (see :meth:`ResponseUrls.get`)."""
        return self.response_urls.get(token)

    def respond(self, ctx: ResponseUrl, payload: JsonDict) -> JsonDict | None:
        """Apply a response (from a response_url or a synchronous reply); returns the message.

        ``delete_original`` removes the original; ``replace_original`` rewrites it in place;
        otherwise a new message is posted, ephemeral to the user unless ``response_type`` is
        ``in_channel``.
        """
        conv = self.conversations[ctx.channel_id]
        original = None
        if ctx.original_ts is not None:
            viewer = ctx.user_id if ctx.original_ephemeral else None
            original = self.find(conv, ctx.original_ts, viewer=viewer)
        if truthy(payload.get("delete_original")):
            if original is not None:
                self.delete_message(conv, original)
            ctx.original_ts = None
            return None
        text = payload.get("text")
        if text is not None and not isinstance(text, str):
            raise SandboxError("invalid_payload", "text must be a string")
        blocks = parse_blocks(payload.get("blocks"))
        if not text and not blocks:
            raise SandboxError("no_text", "text or blocks is required")
        if truthy(payload.get("replace_original")) and original is not None:
            self.update_message(original, text=text or "", blocks=blocks or [], editor=self.bot.id)
            return present(conv, original)
        response_type = payload.get("response_type", "ephemeral")
        if response_type not in ("ephemeral", "in_channel"):
            raise SandboxError("invalid_payload", "response_type must be ephemeral or in_channel")
        thread_ts = payload.get("thread_ts") or ctx.thread_ts
        stored = self.add_message(
            conv,
            user_id=self.bot.id,
            text=text or "",
            blocks=blocks,
            thread_ts=str(thread_ts) if thread_ts else None,
            visible_to=ctx.user_id if response_type == "ephemeral" else None,
        )
        ctx.original_ts = stored.ts
        ctx.original_ephemeral = stored.visible_to is not None
        return present(conv, stored)
