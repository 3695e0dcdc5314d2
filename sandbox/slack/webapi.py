"""The Slack Web API emulator (``api/{method}``) and ``response_url`` endpoint.

Answers use Slack's shapes: HTTP 200 with ``{"ok": true, ...}`` or ``{"ok": false, "error":
code}``; HTTP 429 + ``Retry-After`` for injected rate limits. Parameters are read from the
query string, form bodies and JSON bodies alike, as Slack does.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .assistant import AssistantMethods
from .blocks import parse_blocks
from .common import JsonDict, SandboxError, truthy
from .conversations import Conversation, StoredMessage
from .params import bearer, opt_str, paginate, read_params
from .people_tokens import PersonTokens, permalink
from .presentation import render
from .state import Workspace
from .team import SandboxUser

Method = Callable[[JsonDict], JsonDict]
PersonPosted = Callable[[Conversation, StoredMessage], Awaitable[None]]

# Methods that work without a token, as in Slack.
_NO_AUTH = {"api.test"}


class WebApi:
    """Dispatches Web API calls made with the bot token (or a person's user token, see
    :mod:`.people_tokens`) against a :class:`Workspace`."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        bot_token: str,
        people: PersonTokens | None = None,
        public_url: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.ws = workspace
        self._bot_token = bot_token
        # User tokens (``xoxp-``) of people, when a federation issues them.
        self.people = people
        self._public_url = public_url
        # Told of every message a person posted with their user token (event delivery).
        self.on_person_message: PersonPosted | None = None
        self.calls: list[JsonDict] = []
        self.methods: dict[str, Method] = {
            "api.test": self.api_test,
            "auth.test": self.auth_test,
            "chat.postMessage": self.chat_post_message,
            "chat.postEphemeral": self.chat_post_ephemeral,
            "chat.update": self.chat_update,
            "chat.delete": self.chat_delete,
            "chat.getPermalink": self.chat_get_permalink,
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
            params = await read_params(request)
        except SandboxError as exc:
            return self._answer(method, {"ok": False, "error": exc.error})
        if method not in self.methods:
            return self._answer(method, {"ok": False, "error": "unknown_method"})
        person = None
        if method not in _NO_AUTH:
            token = bearer(request) or params.get("token")
            if not token:
                return self._answer(method, {"ok": False, "error": "not_authed"})
            if not isinstance(token, str):
                return self._answer(method, {"ok": False, "error": "invalid_auth"})
            if not hmac.compare_digest(token.encode(), self._bot_token.encode()):
                person = self.people.resolve(token) if self.people is not None else None
                if person is None:
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
            if person is None:
                result = self.methods[method](params)
            elif method == "chat.getPermalink":
                result = permalink(self.ws, person[0], params, self._public_url)
            else:
                assert self.people is not None
                result = self.people.call(method, person[0], person[1], params)
        except SandboxError as exc:
            return self._answer(method, {"ok": False, "error": exc.error, **exc.extra})
        if self.people is not None:
            for conv, stored in self.people.take_posted():
                if self.on_person_message is not None:
                    await self.on_person_message(conv, stored)
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
        conv = self.ws.conversation(opt_str(p, "channel") or "", actor=self._bot.id)
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
            thread_ts=opt_str(p, "thread_ts"),
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
        user = self.ws.user(opt_str(p, "user") or "")
        if user.id not in conv.members:
            raise SandboxError("user_not_in_channel")
        text, blocks, attachments = self._message_payload(p)
        extra = {"attachments": attachments} if attachments else None
        stored = self.ws.add_message(
            conv,
            user_id=self._bot.id,
            text=text or "",
            blocks=blocks,
            thread_ts=opt_str(p, "thread_ts"),
            visible_to=user.id,
            extra=extra,
        )
        return {"ok": True, "message_ts": stored.ts}

    def _own_message(self, conv: Conversation, p: JsonDict, error: str) -> Any:
        ts = opt_str(p, "ts")
        found = self.ws.find(conv, ts, viewer=None) if ts else None
        if found is None:
            raise SandboxError("message_not_found")
        if found.data.get("user") != self._bot.id:
            raise SandboxError(error)
        return found

    def chat_get_permalink(self, p: JsonDict) -> JsonDict:
        return permalink(self.ws, self._bot, p, self._public_url)

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
        channel = opt_str(p, "channel")
        users = opt_str(p, "users")
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
        ts = opt_str(p, "ts")
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
        team = opt_str(p, "team")
        if team and team != self.ws.team_id:
            raise SandboxError("team_not_found")
        return {
            "ok": True,
            "team": {"id": self.ws.team_id, "name": self.ws.team_name, "domain": self.ws.domain},
        }

    def users_info(self, p: JsonDict) -> JsonDict:
        return {"ok": True, "user": self.user_object(self.ws.user(opt_str(p, "user") or ""))}

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
        user_id = opt_str(p, "user_id")
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
        stored = self.ws.publish_home(user_id, view, opt_str(p, "hash"))
        return {"ok": True, "view": stored}
