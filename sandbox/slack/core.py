"""The sandbox facade: user actions that produce signed deliveries to the bot.

:class:`SlackSandbox` runs the sandbox (standalone or mounted, its workspace stored or in
memory), acts as people (each action delivered to the bot) and reads the workspace back for
the page and the tests. The requests it sends are built in :mod:`.payloads`; the workspace
itself is :mod:`.state`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from sandbox.federation import Federation

from .assistant import open_thread, thread_root, thread_state
from .blocks import find_action
from .common import JsonDict, SandboxError
from .conversations import Conversation, StoredMessage
from .delivery import Deliverer, cancel_all, parse_reply
from .manifest import manifest_commands
from .payloads import (
    app_home_opened,
    assistant_thread_started,
    command_form,
    event_envelope,
    home_block_actions,
    message_block_actions,
    message_event,
)
from .people_tokens import SLACK_CONNECTION, PersonTokens
from .presentation import listing, present
from .state import Workspace
from .storage import SandboxStore
from .team import SLACKBOT_ID, SandboxSeed, SandboxUser
from .ui import build_app
from .webapi import WebApi

#: Where the application built by :meth:`SlackSandbox.app` keeps its sandbox.
SANDBOX_KEY: web.AppKey[SlackSandbox] = web.AppKey("slack_sandbox")

log = logging.getLogger("sandbox.slack")
_COMMAND = re.compile(r"/\S{1,80}")
MAX_COMMAND_TEXT = 4000
# What Slack itself answers, without contacting any app, for a command nobody declared.
NOT_A_COMMAND = (
    '{command} is not a valid command. In Slack, messages that start with "/" are '
    "interpreted as commands. To send it as a message, start it with a space."
)


class SlackSandbox:
    """A local, stateful Slack workspace with one app installed: the bot.

    ``app()`` serves the Web API emulator, the JSON API and the page. The async methods are
    the programmatic equivalents of the JSON API; they raise :class:`SandboxError` where the
    JSON API answers 400.

    ``public_url`` is the sandbox's absolute base URL (ending in ``/``), used to build
    ``response_url``s. When it is None it is learnt from the first HTTP request the sandbox
    serves; set it explicitly when the sandbox runs on a port chosen at start-up.

    ``commands`` are the app's slash commands (default: those ``manifest.yml`` declares);
    any other command is answered by "Slack" itself and never reaches the bot.

    With an ``engine`` (SQLAlchemy async, on a database migrated with the bot's migrations)
    the workspace is kept in that database: :meth:`load` (run by the app's start-up and by
    :meth:`serve`) reads what a previous run stored, and every change is saved before the
    request that made it is answered. Without one, everything lives in memory.

    With a ``federation`` the Web API also accepts the user tokens it issued for
    ``user_token_connection``: calls made with one act as that person (see
    :mod:`.people_tokens`); a message a person posts that way reaches the bot as their
    messages do.
    """

    def __init__(
        self,
        *,
        seed: SandboxSeed,
        signing_secret: str,
        bot_token: str,
        events_url: str,
        public_url: str | None = None,
        retry_timeout: float = 3.0,
        commands: Iterable[str] | None = None,
        engine: AsyncEngine | None = None,
        federation: Federation | None = None,
        user_token_connection: str = SLACK_CONNECTION,
    ) -> None:
        self.workspace = Workspace(seed)
        self.commands = frozenset(manifest_commands() if commands is None else commands)
        self.store = SandboxStore(engine, seed.team_id) if engine is not None else None
        self._loaded = engine is None
        self._storage_lock = asyncio.Lock()
        self.events_url = events_url
        self._public_url = _with_slash(public_url) if public_url else None
        self.federation = federation
        people = (
            PersonTokens(self.workspace, federation, user_token_connection)
            if federation is not None
            else None
        )
        self.webapi = WebApi(
            self.workspace, bot_token=bot_token, people=people, public_url=lambda: self.public_url
        )
        self.webapi.on_person_message = self._person_posted
        self._deliverer = Deliverer(
            signing_secret=signing_secret,
            events_url=lambda: self.events_url,
            retry_timeout=retry_timeout,
        )
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- configuration ---------------------------------------------------------------------

    @property
    def public_url(self) -> str | None:
        return self._public_url

    @public_url.setter
    def public_url(self, value: str | None) -> None:
        self._public_url = _with_slash(value) if value else None

    @property
    def retry_timeout(self) -> float:
        return self._deliverer.retry_timeout

    @retry_timeout.setter
    def retry_timeout(self, value: float) -> None:
        self._deliverer.retry_timeout = value

    @property
    def bot_user(self) -> SandboxUser:
        return self.workspace.bot

    def learn_public_url(self, request: web.Request, relative: str) -> None:
        """Derive the base URL from a request whose path ends with ``relative``."""
        if self._public_url is not None:
            return
        url = str(request.url.with_query(None))
        if url.endswith(relative):
            self._public_url = url[: len(url) - len(relative)]

    def app(self) -> web.Application:
        """The whole sandbox as one aiohttp application with relative routes."""
        app = build_app(self)
        app[SANDBOX_KEY] = self
        return app

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Run the sandbox standalone; yields its base URL (ending in ``/``).

        Sets ``public_url`` to that URL unless one was given, so response URLs work from
        the first slash command on.
        """
        runner = web.AppRunner(self.app())
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound_host, bound_port = runner.addresses[0][:2]
            if bound_host in ("0.0.0.0", "::"):  # noqa: S104 - mapping, not binding
                bound_host = "127.0.0.1"
            if ":" in bound_host:
                bound_host = f"[{bound_host}]"
            base = f"http://{bound_host}:{bound_port}/"
            if self._public_url is None:
                self._public_url = base
            yield base
        finally:
            await runner.cleanup()

    async def aclose(self) -> None:
        """Cancel deliveries still in flight and save what is left (on the app's cleanup)."""
        await cancel_all(self._tasks)
        await self.persist()

    # -- storage ---------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the stored workspace (once); later changes are saved by :meth:`persist`."""
        if self._loaded or self.store is None:
            return
        async with self._storage_lock:
            if self._loaded:
                return
            self.workspace.restore(await self.store.load())
            self.workspace.track_changes()
            self._loaded = True

    async def persist(self) -> None:
        """Save the changes made since the last save.

        A failed save is logged and its changes are kept for the next one, so the sandbox
        keeps working while its database is away.
        """
        if self.store is None or not self._loaded:
            return
        async with self._storage_lock:
            changes = self.workspace.take_changes()
            if not changes:
                return
            try:
                await self.store.save(changes)
            except Exception:
                log.warning("could not save the sandbox workspace; will retry", exc_info=True)
                pending = self.workspace.changes
                if pending is not None:
                    pending.merge_older(changes)

    # -- helpers ---------------------------------------------------------------------------

    def _response_url(self, token: str) -> str:
        if self._public_url is None:
            raise SandboxError(
                "public_url_unknown",
                "set SlackSandbox.public_url (or serve one request) before sending commands",
            )
        return f"{self._public_url}response/{token}"

    def _member_conversation(self, user: SandboxUser, channel: str) -> Conversation:
        conv = self.workspace.conversation(channel, actor=user.id)
        if user.id not in conv.members:
            raise SandboxError("not_in_channel", f"{user.name} is not a member of {conv.id}")
        return conv

    async def _send_event(self, event: JsonDict, wait: bool) -> tuple[str, list[JsonDict] | None]:
        envelope = event_envelope(self.workspace, event)
        if wait:
            return envelope["event_id"], await self._deliverer.deliver_event(envelope)
        task = asyncio.create_task(self._deliverer.deliver_event(envelope))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return envelope["event_id"], None

    async def _person_posted(self, conv: Conversation, stored: StoredMessage) -> None:
        """A message posted with a person's user token reaches the bot as theirs do."""
        event = message_event(self.workspace, conv, stored)
        if event is not None:
            await self._send_event(event, wait=False)

    # -- user actions ----------------------------------------------------------------------

    async def post_message(
        self,
        user_id: str,
        channel: str,
        text: str,
        thread_ts: str | None = None,
        *,
        wait: bool = True,
    ) -> JsonDict:
        """Post as a person (``@name`` becomes a mention) and deliver the matching event.

        A channel message mentioning the bot gives ``app_mention`` (if the bot is a member);
        a message in a DM with the bot gives ``message`` with ``channel_type: "im"``. With
        ``wait`` the call returns after the delivery and its retries, listed in
        ``deliveries``; otherwise delivery happens in the background.
        """
        await self.load()
        ws = self.workspace
        user = ws.human(user_id)
        if not isinstance(text, str) or not text.strip():
            raise SandboxError("no_text", "text is required")
        conv = self._member_conversation(user, channel)
        text = ws.mentionize(text)
        stored = ws.add_message(
            conv,
            user_id=user.id,
            text=text,
            thread_ts=thread_ts,
            extra={"client_msg_id": str(uuid.uuid4())},
        )
        event = message_event(ws, conv, stored)
        result: JsonDict = {
            "ok": True,
            "channel": conv.id,
            "ts": stored.ts,
            "message": present(conv, stored),
            "event_id": None,
            "deliveries": None,
        }
        await self.persist()
        if event is not None:
            result["event_id"], result["deliveries"] = await self._send_event(event, wait)
        return result

    async def run_command(self, user_id: str, channel: str, command: str, text: str) -> JsonDict:
        """Run a slash command; the bot's synchronous reply is shown as Slack shows it.

        Returns ``{"ok", "channel", "delivery", "response", "response_url"}`` where
        ``response`` is the message the reply produced (None for an empty reply). A failed
        delivery shows Slack's ``failed with the error`` notice to the user. A command the
        app does not declare is not delivered (``delivery`` and ``response_url`` are None):
        the user gets Slack's "is not a valid command" notice instead.
        """
        await self.load()
        ws = self.workspace
        user = ws.human(user_id)
        if not isinstance(command, str) or not _COMMAND.fullmatch(command):
            raise SandboxError("invalid_command", "command must look like /pm")
        if not isinstance(text, str) or len(text) > MAX_COMMAND_TEXT:
            raise SandboxError("invalid_text", f"text must be at most {MAX_COMMAND_TEXT} chars")
        conv = self._member_conversation(user, channel)
        if command not in self.commands:
            notice = ws.add_message(
                conv,
                user_id=SLACKBOT_ID,
                text=slack_escape(NOT_A_COMMAND.format(command=command)),
                visible_to=user.id,
            )
            await self.persist()
            return {
                "ok": True,
                "channel": conv.id,
                "delivery": None,
                "response": present(conv, notice),
                "response_url": None,
            }
        ctx = ws.new_response_url(user_id=user.id, channel_id=conv.id)
        response_url = self._response_url(ctx.token)
        fields = command_form(ws, user, conv, command, text, response_url)
        attempt, record = await self._deliverer.deliver_form("command", command, fields)
        shown: JsonDict | None = None
        if not attempt.ok:
            reason = "operation_timeout" if attempt.error == "http_timeout" else "dispatch_failed"
            stored = ws.add_message(
                conv,
                user_id=SLACKBOT_ID,
                text=f'{command} failed with the error "{reason}"',
                visible_to=user.id,
            )
            shown = present(conv, stored)
        else:
            reply = parse_reply(attempt)
            if reply is not None:
                if reply.get("response_type") == "in_channel":
                    # Slack shows the invocation itself before an in-channel answer.
                    ws.add_message(conv, user_id=user.id, text=f"{command} {text}".rstrip())
                try:
                    shown = ws.respond(ctx, reply)
                except SandboxError as exc:
                    stored = ws.add_message(
                        conv,
                        user_id=SLACKBOT_ID,
                        text=f'{command} failed with the error "invalid_response" ({exc.error})',
                        visible_to=user.id,
                    )
                    shown = present(conv, stored)
        await self.persist()
        return {
            "ok": True,
            "channel": conv.id,
            "delivery": record,
            "response": shown,
            "response_url": response_url,
        }

    async def click_button(
        self,
        user_id: str,
        channel: str,
        message_ts: str,
        action_id: str,
        *,
        block_id: str | None = None,
    ) -> JsonDict:
        """Click a button in a message; sends a ``block_actions`` payload.

        As in Slack, the synchronous reply body of an interaction is ignored: the bot
        answers through ``response_url`` or the Web API. ``message`` is omitted from the
        payload for ephemeral messages, as Slack does.
        """
        await self.load()
        ws = self.workspace
        user = ws.human(user_id)
        conv = self._member_conversation(user, channel)
        found = ws.find(conv, message_ts, viewer=user.id) if isinstance(message_ts, str) else None
        if found is None:
            raise SandboxError("message_not_found", f"no message {message_ts!r} in {conv.id}")
        block, element = find_action(list(found.data.get("blocks") or []), action_id, block_id)
        if element.get("type") != "button":
            raise SandboxError("unsupported_element", "the sandbox clicks buttons only")
        ephemeral = found.visible_to is not None
        thread = found.data.get("thread_ts")
        ctx = ws.new_response_url(
            user_id=user.id,
            channel_id=conv.id,
            original_ts=found.ts,
            original_ephemeral=ephemeral,
            thread_ts=str(thread) if thread else None,
        )
        response_url = self._response_url(ctx.token)
        payload = message_block_actions(ws, user, conv, found, block, element, response_url)
        await self.persist()
        _, record = await self._deliverer.deliver_form(
            "interaction", str(element["action_id"]), {"payload": json.dumps(payload)}
        )
        return {"ok": True, "channel": conv.id, "delivery": record, "response_url": response_url}

    async def click_home_button(
        self, user_id: str, action_id: str, *, block_id: str | None = None
    ) -> JsonDict:
        """Click a button in the user's App Home; sends ``block_actions`` with a view container."""
        await self.load()
        ws = self.workspace
        user = ws.human(user_id)
        view = ws.home_views.get(user.id)
        if view is None:
            raise SandboxError("view_not_found", "the bot has not published a home view")
        block, element = find_action(list(view.get("blocks") or []), action_id, block_id)
        if element.get("type") != "button":
            raise SandboxError("unsupported_element", "the sandbox clicks buttons only")
        payload = home_block_actions(ws, user, view, block, element)
        _, record = await self._deliverer.deliver_form(
            "interaction", str(element["action_id"]), {"payload": json.dumps(payload)}
        )
        return {"ok": True, "delivery": record}

    async def open_home(self, user_id: str, *, wait: bool = True) -> JsonDict:
        """Open the bot's App Home tab as a user: sends ``app_home_opened``."""
        await self.load()
        ws = self.workspace
        user = ws.human(user_id)
        dm, _ = ws.open_im(user.id, ws.bot.id)
        await self.persist()
        view = ws.home_views.get(user.id)
        event = app_home_opened(user, dm, view)
        event_id, deliveries = await self._send_event(event, wait)
        return {
            "ok": True,
            "channel": dm.id,
            "view": copy.deepcopy(view),
            "event_id": event_id,
            "deliveries": deliveries,
        }

    async def open_assistant(
        self, user_id: str, *, context_channel: str | None = None, wait: bool = True
    ) -> JsonDict:
        """Open the app's assistant pane as a person: a new thread in their DM with the bot,
        and ``assistant_thread_started`` (its ``context`` names ``context_channel``, the
        channel the person was looking at, when given). Returns ``{"ok", "channel",
        "thread_ts", "event_id", "deliveries"}``."""
        await self.load()
        ws = self.workspace
        user = ws.human(user_id)
        dm, root, context = open_thread(ws, user, context_channel)
        await self.persist()
        event = assistant_thread_started(user, dm, root, context)
        event_id, deliveries = await self._send_event(event, wait)
        return {
            "ok": True,
            "channel": dm.id,
            "thread_ts": root.ts,
            "event_id": event_id,
            "deliveries": deliveries,
        }

    # -- reading ---------------------------------------------------------------------------

    def assistant_thread(self, channel: str, thread_ts: str) -> JsonDict | None:
        """An assistant thread's title, status and suggested prompts (None if the thread
        does not exist or is not an assistant thread)."""
        conv = self.workspace.conversations.get(channel)
        if conv is None:
            return None
        try:
            root = thread_root(self.workspace, conv, thread_ts)
        except SandboxError:
            return None
        if root.data.get("subtype") != "assistant_app_thread":
            return None
        return thread_state(root)

    def messages(self, channel: str, *, viewer: str | None = None) -> list[JsonDict]:
        """A conversation's messages in ts order, thread replies included (flat).

        Ephemeral messages appear only for their recipient ``viewer``. A user id as
        ``channel`` means the DM between that user and ``viewer`` (or the bot when no
        viewer is given); a DM that does not exist yet has no messages.
        """
        ws = self.workspace
        actor = viewer if viewer is not None else ws.bot.id
        if viewer is not None:
            ws.user(viewer)
        if channel in ws.users and ws.find_im(actor, channel) is None:
            return []
        if viewer is None and channel in ws.conversations:
            # Without a viewer every conversation is readable (ephemeral messages excepted).
            return listing(ws.conversations[channel], None)
        conv = ws.conversation(channel, actor=actor, create_im=False)
        return listing(conv, viewer)

    def home_view(self, user_id: str) -> JsonDict | None:
        """The App Home view the bot published for a user, if any."""
        self.workspace.user(user_id)
        view = self.workspace.home_views.get(user_id)
        return copy.deepcopy(view) if view is not None else None

    def fail_next(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of a Web API method with HTTP 429."""
        self.workspace.faults.add(method, times, retry_after)

    def faults(self) -> dict[str, JsonDict]:
        return {
            m: {"remaining": f.remaining, "retry_after": f.retry_after}
            for m, f in self.workspace.faults.pending().items()
        }

    def deliveries(self) -> list[JsonDict]:
        """Every request sent to the bot: kind, name, status, latency_ms, retry_num, ..."""
        return self._deliverer.log()

    def api_calls(self) -> list[JsonDict]:
        """Every Web API call the bot made: method, ok, error."""
        return [dict(c) for c in self.webapi.calls]

    async def idle(self) -> None:
        """Wait until background deliveries are done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def wait_for_message(
        self,
        channel: str,
        *,
        viewer: str | None = None,
        match: Callable[[JsonDict], bool] | None = None,
        within: float = 5.0,
    ) -> JsonDict:
        """The first message in ``channel`` (as ``viewer`` sees it) for which ``match`` holds.

        Polls for ``within`` seconds, then raises ``TimeoutError``. Useful because the
        bot answers asynchronously after acknowledging an event.
        """
        deadline = time.monotonic() + within
        while True:
            for message in self.messages(channel, viewer=viewer):
                if match is None or match(message):
                    return message
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no matching message in {channel} after {within}s")
            await asyncio.sleep(0.02)

    async def wait_for_home_view(self, user_id: str, *, within: float = 5.0) -> JsonDict:
        """The user's App Home view once the bot has published one (``TimeoutError`` if not)."""
        deadline = time.monotonic() + within
        while (view := self.home_view(user_id)) is None:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no home view for {user_id} after {within}s")
            await asyncio.sleep(0.02)
        return view


def slack_escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` as Slack does in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
