"""The Slack Web API emulator (``api/{method}``) and ``response_url`` endpoint.

Answers use Slack's shapes: HTTP 200 with ``{"ok": true, ...}`` or ``{"ok": false, "error":
code}``; HTTP 429 + ``Retry-After`` for injected rate limits. Parameters are read from the
query string, form bodies and JSON bodies alike, as Slack does.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web

from .assistant import AssistantMethods
from .blocks import parse_blocks
from .common import JsonDict, SandboxError, truthy
from .conversations import Conversation
from .presentation import render
from .state import Workspace
from .team import SandboxUser

T = TypeVar("T")
Method = Callable[[JsonDict], JsonDict]

# Methods that work without a token, as in Slack.
_NO_AUTH = {"api.test"}


class WebApi:
    """Dispatches Web API calls made with the bot token against a :class:`Workspace`."""

    def __init__(self, workspace: Workspace, *, bot_token: str) -> None:
        self.ws = workspace
        self._bot_token = bot_token
        self.calls: list[JsonDict] = []
        self.methods: dict[str, Method] = {
            "api.test": self.api_test,
            "auth.test": self.auth_test,
            "chat.postMessage": self.chat_post_message,
            "chat.postEphemeral": self.chat_post_ephemeral,
            "chat.update": self.chat_update,
            "chat.delete": self.chat_delete,
            "conversations.open": self.conversations_open,
            "conversations.info": self.conversations_info,
            "conversations.list": self.conversations_list,
            "conversations.members": self.conversations_members,
            "conversations.history": self.conversations_history,
            "conversations.replies": self.conversations_replies,
            "team.info": self.team_info,
            "users.info": self.users_info,
            "users.list": self.users_list,
            "views.publish": self.views_publish,
        }
        # Streaming and assistant threads (what Slack gives AI apps).
        self.methods.update(AssistantMethods(workspace).methods())

    # -- HTTP ------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            params = await _read_params(request)
        except SandboxError as exc:
            return self._answer(method, {"ok": False, "error": exc.error})
        if method not in self.methods:
            return self._answer(method, {"ok": False, "error": "unknown_method"})
        if method not in _NO_AUTH:
            token = _bearer(request) or params.get("token")
            if not token:
                return self._answer(method, {"ok": False, "error": "not_authed"})
            if not isinstance(token, str) or not hmac.compare_digest(
                token.encode(), self._bot_token.encode()
            ):
                return self._answer(method, {"ok": False, "error": "invalid_auth"})
        fault = self.ws.faults.take(method)
        if fault is not None:
            self._log(method, False, "ratelimited")
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(fault.retry_after)},
            )
        params.pop("token", None)
        try:
            result = self.methods[method](params)
        except SandboxError as exc:
            return self._answer(method, {"ok": False, "error": exc.error, **exc.extra})
        return self._answer(method, result)

    def _answer(self, method: str, body: JsonDict) -> web.Response:
        self._log(method, bool(body.get("ok")), body.get("error"))
        return web.json_response(body)

    def _log(self, method: str, ok: bool, error: str | None) -> None:
        self.calls.append({"method": method, "ok": ok, "error": error, "at": time.time()})
        del self.calls[:-1000]

    async def handle_response_url(self, request: web.Request) -> web.Response:
        """POST to a ``response_url``: JSON message payload, at most 5 uses in 30 minutes."""
        try:
            payload = json.loads(await request.read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        if not isinstance(payload, dict):
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        try:
            ctx = self.ws.response_url(request.match_info["token"])
        except SandboxError as exc:
            return web.json_response({"ok": False, "error": exc.error}, status=404)
        try:
            self.ws.respond(ctx, payload)
        except SandboxError as exc:
            return web.json_response({"ok": False, "error": exc.error}, status=400)
        ctx.uses += 1
        return web.json_response({"ok": True})

    # -- helpers ---------------------------------------------------------------------------

    @property
    def _bot(self) -> SandboxUser:
        return self.ws.bot

    def _channel(self, p: JsonDict, *, member: bool = True) -> Conversation:
        conv = self.ws.conversation(_opt_str(p, "channel") or "", actor=self._bot.id)
        if member and self._bot.id not in conv.members:
            raise SandboxError("not_in_channel")
        return conv

    def channel_object(self, conv: Conversation) -> JsonDict:
        """``conversations.info`` shape of a conversation, seen by the bot."""
        if conv.is_im:
            others = [m for m in conv.members if m != self._bot.id] or [self._bot.id]
            return {
                "id": conv.id,
                "created": conv.created,
                "is_im": True,
                "is_org_shared": False,
                "user": others[0],
                "is_user_deleted": False,
                "priority": 0,
                "is_open": True,
            }
        name = conv.name or ""
        empty = {"value": "", "creator": "", "last_set": 0}
        return {
            "id": conv.id,
            "name": name,
            "name_normalized": name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": False,
            "created": conv.created,
            "creator": "",
            "is_archived": False,
            "is_general": name == "general",
            "unlinked": 0,
            "is_shared": False,
            "is_org_shared": False,
            "is_ext_shared": False,
            "is_pending_ext_shared": False,
            "context_team_id": self.ws.team_id,
            "is_member": self._bot.id in conv.members,
            "num_members": len(conv.members),
            "topic": dict(empty),
            "purpose": dict(empty),
        }

    def user_object(self, user: SandboxUser) -> JsonDict:
        """``users.info`` shape of a member."""
        profile: JsonDict = {
            "real_name": user.real_name,
            "real_name_normalized": user.real_name,
            "display_name": user.name,
            "display_name_normalized": user.name,
            "email": user.email,
            "team": user.home_team or self.ws.team_id,
        }
        if user.is_bot:
            profile.update(
                {"bot_id": self.ws.bot_id, "api_app_id": self.ws.app_id, "always_active": True}
            )
        return {
            "id": user.id,
            "team_id": user.home_team or self.ws.team_id,
            "name": user.name,
            "deleted": False,
            "real_name": user.real_name,
            "tz": "UTC",
            "tz_label": "Coordinated Universal Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": user.guest,
            "is_ultra_restricted": False,
            "is_stranger": user.home_team is not None,
            "is_bot": user.is_bot,
            "is_app_user": False,
            "updated": 0,
        }

    def _message_payload(
        self, p: JsonDict, *, require: bool = True
    ) -> tuple[str | None, list[JsonDict] | None, Any]:
        text = p.get("text")
        if text is not None and not isinstance(text, str):
            text = str(text)
        blocks = parse_blocks(p.get("blocks"))
        attachments = p.get("attachments")
        if isinstance(attachments, str):
            try:
                attachments = json.loads(attachments)
            except json.JSONDecodeError:
                raise SandboxError("invalid_attachments") from None
        if require and not text and not blocks and not attachments:
            raise SandboxError("no_text")
        return text, blocks, attachments

    # -- methods ---------------------------------------------------------------------------

    def api_test(self, p: JsonDict) -> JsonDict:
        return {"ok": True, "args": {k: v for k, v in p.items() if isinstance(v, str)}}

    def auth_test(self, p: JsonDict) -> JsonDict:
        return {
            "ok": True,
            "url": f"https://{self.ws.domain}.slack.com/",
            "team": self.ws.team_name,
            "user": self._bot.name,
            "team_id": self.ws.team_id,
            "user_id": self._bot.id,
            "bot_id": self.ws.bot_id,
            "is_enterprise_install": False,
        }

    def chat_post_message(self, p: JsonDict) -> JsonDict:
        conv = self._channel(p)
        text, blocks, attachments = self._message_payload(p)
        extra = {"attachments": attachments} if attachments else None
        stored = self.ws.add_message(
            conv,
            user_id=self._bot.id,
            text=text or "",
            blocks=blocks,
            thread_ts=_opt_str(p, "thread_ts"),
            extra=extra,
        )
        return {
            "ok": True,
            "channel": conv.id,
            "ts": stored.ts,
            "message": render(conv, stored),
        }

    def chat_post_ephemeral(self, p: JsonDict) -> JsonDict:
        conv = self._channel(p)
        user = self.ws.user(_opt_str(p, "user") or "")
        if user.id not in conv.members:
            raise SandboxError("user_not_in_channel")
        text, blocks, attachments = self._message_payload(p)
        extra = {"attachments": attachments} if attachments else None
        stored = self.ws.add_message(
            conv,
            user_id=self._bot.id,
            text=text or "",
            blocks=blocks,
            thread_ts=_opt_str(p, "thread_ts"),
            visible_to=user.id,
            extra=extra,
        )
        return {"ok": True, "message_ts": stored.ts}

    def _own_message(self, conv: Conversation, p: JsonDict, error: str) -> Any:
        ts = _opt_str(p, "ts")
        found = self.ws.find(conv, ts, viewer=None) if ts else None
        if found is None:
            raise SandboxError("message_not_found")
        if found.data.get("user") != self._bot.id:
            raise SandboxError(error)
        return found

    def chat_update(self, p: JsonDict) -> JsonDict:
        conv = self._channel(p, member=False)
        found = self._own_message(conv, p, "cant_update_message")
        text, blocks, attachments = self._message_payload(p)
        self.ws.update_message(found, text=text, blocks=blocks, editor=self._bot.id)
        if attachments is not None:
            found.data["attachments"] = attachments
        message = render(conv, found)
        return {
            "ok": True,
            "channel": conv.id,
            "ts": found.ts,
            "text": message.get("text", ""),
            "message": message,
        }

    def chat_delete(self, p: JsonDict) -> JsonDict:
        conv = self._channel(p, member=False)
        found = self._own_message(conv, p, "cant_delete_message")
        self.ws.delete_message(conv, found)
        return {"ok": True, "channel": conv.id, "ts": found.ts}

    def conversations_open(self, p: JsonDict) -> JsonDict:
        channel = _opt_str(p, "channel")
        users = _opt_str(p, "users")
        if channel:
            conv = self.ws.conversation(channel, actor=self._bot.id, create_im=False)
            if not conv.is_im:
                raise SandboxError("method_not_supported_for_channel_type")
            created = False
        elif users:
            ids = [u.strip() for u in users.split(",") if u.strip()]
            if len(ids) != 1:
                # Group DMs (mpim) are not part of the sandbox.
                raise SandboxError("too_many_users", "the sandbox opens one-to-one DMs only")
            conv, created = self.ws.open_im(self._bot.id, self.ws.user(ids[0]).id)
        else:
            raise SandboxError("users_list_not_supplied")
        out: JsonDict = {"ok": True}
        if not created:
            out.update({"no_op": True, "already_open": True})
        if truthy(p.get("return_im")):
            out["channel"] = self.channel_object(conv)
        else:
            out["channel"] = {"id": conv.id}
        return out

    def conversations_info(self, p: JsonDict) -> JsonDict:
        conv = self._channel(p, member=False)
        return {"ok": True, "channel": self.channel_object(conv)}

    def conversations_list(self, p: JsonDict) -> JsonDict:
        """The workspace's channels (the sandbox has public channels only; DMs are not
        listed), by id, a page at a time."""
        channels = sorted(
            (c for c in self.ws.conversations.values() if not c.is_im), key=lambda c: c.id
        )
        page, cursor = paginate(
            [self.channel_object(c) for c in channels],
            p,
            key=lambda c: str(c["id"]),
            prefix="channel",
            default=100,
        )
        return {"ok": True, "channels": page, "response_metadata": {"next_cursor": cursor}}

    def conversations_members(self, p: JsonDict) -> JsonDict:
        conv = self._channel(p, member=False)
        page, cursor = paginate(conv.members, p, key=lambda m: m, prefix="user", default=100)
        return {
            "ok": True,
            "members": page,
            "response_metadata": {"next_cursor": cursor},
        }

    def conversations_history(self, p: JsonDict) -> JsonDict:
        conv = self._channel(p)
        top = [
            render(conv, m)
            for m in reversed(conv.messages)
            if m.visible_to is None and m.root_ts == m.ts
        ]
        page, cursor = paginate(top, p, key=lambda m: str(m["ts"]), prefix="next_ts", default=100)
        return {
            "ok": True,
            "messages": page,
            "has_more": bool(cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    def conversations_replies(self, p: JsonDict) -> JsonDict:
        conv = self._channel(p)
        ts = _opt_str(p, "ts")
        parent = self.ws.find(conv, ts, viewer=None) if ts else None
        if parent is None:
            raise SandboxError("thread_not_found")
        root = parent.root_ts
        thread = [
            render(conv, m) for m in conv.messages if m.visible_to is None and m.root_ts == root
        ]
        page, cursor = paginate(
            thread, p, key=lambda m: str(m["ts"]), prefix="next_ts", default=100
        )
        return {
            "ok": True,
            "messages": page,
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }

    def team_info(self, p: JsonDict) -> JsonDict:
        team = _opt_str(p, "team")
        if team and team != self.ws.team_id:
            raise SandboxError("team_not_found")
        return {
            "ok": True,
            "team": {"id": self.ws.team_id, "name": self.ws.team_name, "domain": self.ws.domain},
        }

    def users_info(self, p: JsonDict) -> JsonDict:
        return {"ok": True, "user": self.user_object(self.ws.user(_opt_str(p, "user") or ""))}

    def users_list(self, p: JsonDict) -> JsonDict:
        users = [self.user_object(u) for u in self.ws.users.values()]
        page, cursor = paginate(users, p, key=lambda u: str(u["id"]), prefix="users", default=0)
        return {
            "ok": True,
            "members": page,
            "cache_ts": int(time.time()),
            "response_metadata": {"next_cursor": cursor},
        }

    def views_publish(self, p: JsonDict) -> JsonDict:
        user_id = _opt_str(p, "user_id")
        if not user_id:
            raise SandboxError("invalid_arguments", "user_id is required")
        view = p.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except json.JSONDecodeError:
                raise SandboxError("invalid_arguments", "view is not valid JSON") from None
        if not isinstance(view, dict):
            raise SandboxError("invalid_arguments", "view is required")
        stored = self.ws.publish_home(user_id, view, _opt_str(p, "hash"))
        return {"ok": True, "view": stored}


async def _read_params(request: web.Request) -> JsonDict:
    params: JsonDict = dict(request.query)
    if request.method != "POST" or not request.body_exists:
        return params
    if request.content_type == "application/json":
        raw = await request.read()
        if raw.strip():
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise SandboxError("invalid_json") from None
            if not isinstance(body, dict):
                raise SandboxError("invalid_json")
            params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.post()
        except ValueError:
            raise SandboxError("invalid_form_data") from None
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _opt_str(p: JsonDict, key: str) -> str | None:
    value = p.get(key)
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def paginate(
    items: Sequence[T], p: JsonDict, *, key: Callable[[T], str], prefix: str, default: int
) -> tuple[list[T], str]:
    """Slack cursor pagination: ``cursor`` is base64 of ``"{prefix}:{key of first item}"``.

    Returns the page and the next cursor (``""`` on the last page). ``limit`` 0 = everything
    (Slack caps pages at 1000).
    """
    raw_limit = p.get("limit", default)
    try:
        limit = int(raw_limit)
    except (TypeError, ValueError):
        raise SandboxError("invalid_limit") from None
    if limit < 0:
        raise SandboxError("invalid_limit")
    limit = min(limit or 1000, 1000)
    start = 0
    cursor = _opt_str(p, "cursor")
    if cursor:
        try:
            decoded = base64.b64decode(cursor.encode(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise SandboxError("invalid_cursor") from None
        tag, _, value = decoded.partition(":")
        keys = [key(i) for i in items]
        if tag != prefix or value not in keys:
            raise SandboxError("invalid_cursor")
        start = keys.index(value)
    page = list(items[start : start + limit])
    nxt = start + limit
    next_cursor = ""
    if nxt < len(items):
        next_cursor = base64.b64encode(f"{prefix}:{key(items[nxt])}".encode()).decode()
    return page, next_cursor
