"""The sandbox's aiohttp application: Web API, response URLs, JSON API (``ui/...``) and page.

All routes are relative so the app works standalone and mounted with
``add_subapp("/sandbox", ...)``. JSON API errors are ``400 {"error": code, "detail": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from aiohttp import web

from .common import JsonDict, SandboxError
from .state import Workspace
from .webapi import WebApi

STATIC_DIR = Path(__file__).parent / "static"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Sandbox(Protocol):
    """What the application needs of the sandbox (:class:`~sandbox.slack.core.SlackSandbox`)."""

    workspace: Workspace
    webapi: WebApi

    def learn_public_url(self, request: web.Request, relative: str) -> None: ...

    async def load(self) -> None: ...

    async def persist(self) -> None: ...

    async def aclose(self) -> None: ...

    async def post_message(
        self,
        user_id: str,
        channel: str,
        text: str,
        thread_ts: str | None = None,
        *,
        wait: bool = True,
    ) -> JsonDict: ...

    async def run_command(
        self, user_id: str, channel: str, command: str, text: str
    ) -> JsonDict: ...

    async def click_button(
        self,
        user_id: str,
        channel: str,
        message_ts: str,
        action_id: str,
        *,
        block_id: str | None = None,
    ) -> JsonDict: ...

    async def click_home_button(
        self, user_id: str, action_id: str, *, block_id: str | None = None
    ) -> JsonDict: ...

    async def open_home(self, user_id: str, *, wait: bool = True) -> JsonDict: ...

    async def open_assistant(
        self, user_id: str, *, context_channel: str | None = None, wait: bool = True
    ) -> JsonDict: ...

    def assistant_thread(self, channel: str, thread_ts: str) -> JsonDict | None: ...

    def messages(self, channel: str, *, viewer: str | None = None) -> list[JsonDict]: ...

    def home_view(self, user_id: str) -> JsonDict | None: ...

    def fail_next(self, method: str, times: int = 1, retry_after: int = 1) -> None: ...

    def faults(self) -> dict[str, JsonDict]: ...

    def deliveries(self) -> list[JsonDict]: ...

    def api_calls(self) -> list[JsonDict]: ...


def _bad(error: str, detail: str | None = None) -> web.Response:
    body: JsonDict = {"error": error}
    if detail:
        body["detail"] = detail
    return web.json_response(body, status=400)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bad input is a 400 with a JSON error, never a 500."""
    try:
        return await handler(request)
    except SandboxError as exc:
        return _bad(exc.error, exc.detail)


async def _body(request: web.Request) -> JsonDict:
    try:
        body = json.loads(await request.read() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SandboxError("invalid_json", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise SandboxError("invalid_json", "the body must be a JSON object")
    return body


def _str(body: JsonDict, key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise SandboxError("missing_field", f"{key} is required")
        return None
    if not isinstance(value, str):
        raise SandboxError("invalid_field", f"{key} must be a string")
    return value


def _req(body: JsonDict, key: str) -> str:
    value = _str(body, key)
    assert value is not None
    return value


def _bool(body: JsonDict, key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise SandboxError("invalid_field", f"{key} must be true or false")
    return value


def _int(body: JsonDict, key: str, default: int) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise SandboxError("invalid_field", f"{key} must be an integer")
    return value


class _Routes:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox

    async def api(self, request: web.Request) -> web.Response:
        self.sb.learn_public_url(request, "api/" + request.match_info["method"])
        return await self.sb.webapi.handle(request)

    async def response_url(self, request: web.Request) -> web.Response:
        return await self.sb.webapi.handle_response_url(request)

    async def index(self, request: web.Request) -> web.StreamResponse:
        if not request.path.endswith("/"):
            # Mounted at /sandbox: the page's relative URLs need the trailing slash.
            raise web.HTTPFound(request.path + "/")
        self.sb.learn_public_url(request, "")
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def workspace(self, request: web.Request) -> web.Response:
        self.sb.learn_public_url(request, "ui/workspace")
        ws = self.sb.workspace
        viewer = request.query.get("user")
        if viewer:
            ws.user(viewer)
        users = [
            {
                "id": u.id,
                "name": u.name,
                "real_name": u.real_name,
                "email": u.email,
                "is_bot": u.is_bot,
            }
            for u in ws.users.values()
        ]
        channels = [
            {"id": c.id, "name": c.name, "members": list(c.members)}
            for c in ws.conversations.values()
            if not c.is_im
        ]
        dms = [
            {"id": c.id, "members": list(c.members)}
            for c in ws.conversations.values()
            if c.is_im and (not viewer or viewer in c.members)
        ]
        return web.json_response(
            {
                "team": {"id": ws.team_id, "name": ws.team_name, "domain": ws.domain},
                "bot": {
                    "user_id": ws.bot.id,
                    "bot_id": ws.bot_id,
                    "app_id": ws.app_id,
                    "name": ws.bot.name,
                },
                "users": users,
                "channels": channels,
                "dms": dms,
            }
        )

    async def post_message(self, request: web.Request) -> web.Response:
        self.sb.learn_public_url(request, "ui/messages")
        body = await _body(request)
        result = await self.sb.post_message(
            _req(body, "user"),
            _req(body, "channel"),
            _req(body, "text"),
            _str(body, "thread_ts", required=False),
            wait=_bool(body, "wait", False),
        )
        return web.json_response(result)

    async def read_messages(self, request: web.Request) -> web.Response:
        channel = request.query.get("channel")
        if not channel:
            raise SandboxError("missing_field", "channel is required")
        viewer = request.query.get("user") or None
        ws = self.sb.workspace
        messages = self.sb.messages(channel, viewer=viewer)
        conv = None
        if channel in ws.users:
            conv = ws.find_im(viewer or ws.bot.id, channel)
        else:
            conv = ws.conversations.get(channel) or ws.conversation(
                channel, actor=viewer or ws.bot.id, create_im=False
            )
        info = (
            {"id": conv.id, "name": conv.name, "is_im": conv.is_im, "members": list(conv.members)}
            if conv is not None
            else None
        )
        return web.json_response({"channel": info, "messages": messages})

    async def command(self, request: web.Request) -> web.Response:
        self.sb.learn_public_url(request, "ui/commands")
        body = await _body(request)
        text = body.get("text", "")
        if not isinstance(text, str):
            raise SandboxError("invalid_field", "text must be a string")
        result = await self.sb.run_command(
            _req(body, "user"), _req(body, "channel"), _req(body, "command"), text
        )
        return web.json_response(result)

    async def action(self, request: web.Request) -> web.Response:
        self.sb.learn_public_url(request, "ui/actions")
        body = await _body(request)
        user = _req(body, "user")
        action_id = _req(body, "action_id")
        block_id = _str(body, "block_id", required=False)
        if body.get("view") == "home":
            result = await self.sb.click_home_button(user, action_id, block_id=block_id)
        else:
            result = await self.sb.click_button(
                user,
                _req(body, "channel"),
                _req(body, "message_ts"),
                action_id,
                block_id=block_id,
            )
        return web.json_response(result)

    async def open_home(self, request: web.Request) -> web.Response:
        self.sb.learn_public_url(request, "ui/home")
        body = await _body(request)
        result = await self.sb.open_home(_req(body, "user"), wait=_bool(body, "wait", False))
        return web.json_response(result)

    async def read_home(self, request: web.Request) -> web.Response:
        user = request.query.get("user")
        if not user:
            raise SandboxError("missing_field", "user is required")
        return web.json_response({"view": self.sb.home_view(user)})

    async def open_assistant(self, request: web.Request) -> web.Response:
        self.sb.learn_public_url(request, "ui/assistant")
        body = await _body(request)
        result = await self.sb.open_assistant(
            _req(body, "user"),
            context_channel=_str(body, "context_channel", required=False),
            wait=_bool(body, "wait", False),
        )
        return web.json_response(result)

    async def read_assistant(self, request: web.Request) -> web.Response:
        channel = request.query.get("channel")
        thread_ts = request.query.get("thread_ts")
        if not channel or not thread_ts:
            raise SandboxError("missing_field", "channel and thread_ts are required")
        thread = self.sb.assistant_thread(channel, thread_ts)
        if thread is None:
            raise SandboxError("thread_not_found", "no assistant thread there")
        return web.json_response({"thread": thread})

    async def read_faults(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": self.sb.faults()})

    async def add_fault(self, request: web.Request) -> web.Response:
        body = await _body(request)
        self.sb.fail_next(
            _req(body, "method"), _int(body, "times", 1), _int(body, "retry_after", 1)
        )
        return web.json_response({"ok": True, "faults": self.sb.faults()})

    async def read_deliveries(self, request: web.Request) -> web.Response:
        raw = request.query.get("since", "0")
        try:
            since = int(raw)
        except ValueError:
            raise SandboxError("invalid_field", "since must be an integer") from None
        items = [d for d in self.sb.deliveries() if d["seq"] > since]
        return web.json_response({"deliveries": items})

    async def read_calls(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": self.sb.api_calls()})

    async def archives(self, request: web.Request) -> web.Response:
        """A permalink (``archives/{channel}/p{ts}``) opens the channel on the page."""
        channel = request.match_info["channel"]
        if channel not in self.sb.workspace.conversations:
            raise SandboxError("channel_not_found", "no such conversation")
        raise web.HTTPFound(f"../../#{channel}")


def build_app(sandbox: Sandbox) -> web.Application:
    """One aiohttp app for the sandbox (see module docstring)."""

    @web.middleware
    async def saved(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Whatever a request changed (a Web API call, a response URL, ...) is stored
        before the answer leaves."""
        await sandbox.load()
        try:
            return await handler(request)
        finally:
            await sandbox.persist()

    app = web.Application(middlewares=[saved, _errors])
    r = _Routes(sandbox)
    app.router.add_route("GET", "/api/{method}", r.api)
    app.router.add_route("POST", "/api/{method}", r.api)
    app.router.add_post("/response/{token}", r.response_url)
    app.router.add_get("/ui/workspace", r.workspace)
    app.router.add_get("/ui/messages", r.read_messages)
    app.router.add_post("/ui/messages", r.post_message)
    app.router.add_post("/ui/commands", r.command)
    app.router.add_post("/ui/actions", r.action)
    app.router.add_get("/ui/home", r.read_home)
    app.router.add_post("/ui/home", r.open_home)
    app.router.add_get("/ui/assistant", r.read_assistant)
    app.router.add_post("/ui/assistant", r.open_assistant)
    app.router.add_get("/ui/faults", r.read_faults)
    app.router.add_post("/ui/faults", r.add_fault)
    app.router.add_get("/ui/deliveries", r.read_deliveries)
    app.router.add_get("/ui/calls", r.read_calls)
    app.router.add_get("/archives/{channel}/{message}", r.archives)
    app.router.add_get("", r.index)
    app.router.add_get("/", r.index)
    app.router.add_static("/static/", STATIC_DIR)

    async def _startup(_: web.Application) -> None:
        await sandbox.load()

    async def _cleanup(_: web.Application) -> None:
        await sandbox.aclose()

    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    return app
