"""The aiohttp server: Slack endpoint, health, metrics (and the sandbox in dev mode)."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from hashlib import sha256
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.dedup import delivery_key
from bot.identity.routes import LinkRoutes
from bot.identity.routes import add_routes as add_auth_routes
from bot.settings import Mode
from bot.websec import security_middleware
from bot.wiring import Deps

log = logging.getLogger(__name__)

SIGNATURE_WINDOW_SECONDS = 300

DEPS_KEY = web.AppKey("deps", Deps)
BOLT_KEY = web.AppKey("bolt", AsyncApp)


# Unix seconds: ASCII digits only (``int()`` would also take "+1", "1_000" or "١٢٣").
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def verify_signature(secret: str, timestamp: str, signature: str, body: bytes, now: float) -> bool:
    """Slack's v0 request signature with a 5 minute timestamp window.

    The headers are the sender's: the timestamp must be plain ASCII digits and the signature
    ASCII, or the request is refused (never an exception)."""
    if not _TIMESTAMP.fullmatch(timestamp) or not signature or not signature.isascii():
        return False
    if abs(now - int(timestamp)) > SIGNATURE_WINDOW_SECONDS:
        return False
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    expected = b"v0=" + hmac.new(secret.encode(), base, sha256).hexdigest().encode("ascii")
    return hmac.compare_digest(expected, signature.encode("ascii"))


def _json_object(text: str, what: str) -> dict[str, Any]:
    """A JSON object of valid Unicode text; raises ValueError for anything else."""
    try:
        doc = json.loads(text)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{what} must be a JSON object")
    if "\\ud" in text.lower():
        # UTF-8 text cannot hold a surrogate; only a \u escape can, paired or not.
        try:
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{what} holds an unpaired surrogate") from None
    for name in _OBJECT_FIELDS:
        if doc.get(name) is not None and not isinstance(doc[name], dict):
            raise ValueError(f"{what}: {name} is not a JSON object")
    for name in _LIST_OF_OBJECTS_FIELDS:
        items = doc.get(name)
        if items is not None and (
            not isinstance(items, list) or not all(isinstance(item, dict) for item in items)
        ):
            raise ValueError(f"{what}: {name} is not a JSON array of objects")
    return doc


# Envelope fields Bolt reads while choosing a listener, with the JSON types Slack sends;
# any other type would fail inside Bolt (a 500) instead of being refused here.
_OBJECT_FIELDS = ("event", "view", "container", "message", "state")
_LIST_OF_OBJECTS_FIELDS = ("actions", "authorizations")


def _kind(content_type: str, body: bytes) -> tuple[str, dict[str, Any]]:
    """Classify and parse a Slack body; raises ValueError when it is malformed.

    This is the only parser of Slack bodies: Bolt receives the result, never the raw text
    (its own parser guesses the kind from the text, and takes any form mentioning
    "payload" for an interaction)."""
    text = body.decode("utf-8")
    if content_type == "application/json":
        doc = _json_object(text, "JSON body")
        return ("url_verification" if doc.get("type") == "url_verification" else "event"), doc
    if content_type == "application/x-www-form-urlencoded":
        form = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
        if "payload" in form:
            return "interaction", _json_object(form["payload"][0], "payload")
        fields = {name: values[0] for name, values in form.items()}
        if "command" in fields:
            return "command", fields
        if fields.get("ssl_check") == "1":
            return "ssl_check", fields
        raise ValueError("form body is neither a command nor an interaction")
    raise ValueError(f"unsupported content type {content_type or '(none)'}")


def _bolt_request(request: web.Request, parsed: dict[str, Any]) -> AsyncBoltRequest:
    """The Bolt request for a body pmbot has verified and parsed.

    Bolt takes a parsed body only outside its "http" mode. The mode decides nothing else
    here: Bolt's signature check, the one thing it switches, is off (see slack_app.py), and
    copies of the request (lazy listeners) keep the parsed body."""
    return AsyncBoltRequest(
        body=parsed,
        query=request.query_string,
        headers={k: list(request.headers.getall(k)) for k in request.headers},
        mode="socket_mode",
    )


async def slack_events(request: web.Request) -> web.Response:
    deps = request.app[DEPS_KEY]
    bolt = request.app[BOLT_KEY]
    started = time.perf_counter()
    kind = "unknown"

    def done(response: web.Response) -> web.Response:
        deps.metrics.requests.inc(kind, str(response.status))
        deps.metrics.ack_latency.observe(time.perf_counter() - started, kind)
        return response

    if (request.content_length or 0) > deps.settings.max_body_bytes:
        return done(web.json_response({"error": "body too large"}, status=413))
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return done(web.json_response({"error": "body too large"}, status=413))
    # The one signature check of the Slack path: Bolt's own is turned off.
    if not verify_signature(
        deps.settings.signing_secret,
        request.headers.get("X-Slack-Request-Timestamp", ""),
        request.headers.get("X-Slack-Signature", ""),
        body,
        time.time(),
    ):
        return done(web.json_response({"error": "invalid signature"}, status=401))
    try:
        kind, parsed = _kind(request.content_type, body)
    except (ValueError, UnicodeDecodeError) as exc:
        log.info("rejected a malformed Slack body: %s", exc)
        return done(web.json_response({"error": "malformed body"}, status=400))
    try:
        bolt_request = _bolt_request(request, parsed)
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        # Bolt reads user, team, channel, ... while building its context; a body whose
        # fields have the wrong types is not one Slack sends.
        log.info("rejected a Slack %s of the wrong shape: %s", kind, type(exc).__name__)
        return done(web.json_response({"error": "malformed body"}, status=400))

    if kind == "event":
        # Events need no response body: ack now, process after. A redelivery already seen
        # by this process is dropped here; the database claim (in the Bolt middleware)
        # catches the ones seen before a restart or by another replica.
        recent = request.app[RECENT_KEY]
        key = delivery_key(parsed)
        if key is not None and recent.seen(key[1]):
            deps.metrics.duplicates.inc(key[0])
            return done(web.Response(status=200))
        task = asyncio.create_task(_dispatch_event(bolt, bolt_request, deps), name=EVENT_TASK)
        pending = request.app[PENDING_KEY]
        pending.add(task)
        task.add_done_callback(pending.discard)
        return done(web.Response(status=200))
    try:
        bolt_response = await bolt.async_dispatch(bolt_request)
    except Exception:
        deps.metrics.errors.inc("dispatch")
        log.exception("dispatch failed")
        return done(web.json_response({"error": "internal error"}, status=500))
    return done(await to_aiohttp_response(bolt_response))


EVENT_TASK = "pmbot-event-dispatch"


class RecentDeliveries:
    """A bounded, in-process memory of delivery keys: the cheap first line of dedup."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def seen(self, key: str) -> bool:
        """True if ``key`` was seen before; records it either way."""
        if key in self._keys:
            return True
        self._keys[key] = None
        if len(self._keys) > self._capacity:
            self._keys.popitem(last=False)
        return False


RECENT_KEY = web.AppKey("recent_deliveries", RecentDeliveries)
PENDING_KEY = web.AppKey("pending_dispatches", set)


async def _dispatch_event(bolt: AsyncApp, bolt_request: AsyncBoltRequest, deps: Deps) -> None:
    try:
        await bolt.async_dispatch(bolt_request)
    except Exception:
        deps.metrics.errors.inc("dispatch")
        log.exception("event dispatch failed")


async def healthz(request: web.Request) -> web.Response:
    deps = request.app[DEPS_KEY]
    if await deps.db.ping():
        return web.json_response({"status": "ok", "database": "ok"})
    return web.json_response({"status": "unavailable", "database": "down"}, status=503)


async def metrics(request: web.Request) -> web.Response:
    deps = request.app[DEPS_KEY]
    return web.Response(text=deps.metrics.render(), content_type="text/plain", charset="utf-8")


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """No traceback ever reaches a client; unexpected errors are logged and counted."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        request.app[DEPS_KEY].metrics.errors.inc("web")
        return web.json_response({"error": "internal error"}, status=500)


def create_web_app(deps: Deps, bolt: AsyncApp, *, slack_endpoint: bool = True) -> web.Application:
    app = web.Application(
        client_max_size=deps.settings.max_body_bytes,
        middlewares=[
            security_middleware(
                public_url=deps.settings.base_url, sandbox=deps.settings.mode is Mode.SANDBOX
            ),
            error_middleware,
        ],
    )
    app[DEPS_KEY] = deps
    app[BOLT_KEY] = bolt
    app[RECENT_KEY] = RecentDeliveries()
    app[PENDING_KEY] = set()
    if slack_endpoint:
        app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    from handlers.linking import SlackLinkNotifier

    add_auth_routes(
        app,
        LinkRoutes(
            identity=deps.identity,
            directory=deps.directory,
            notify=SlackLinkNotifier(deps.slack),
            public_url=deps.settings.base_url,
            auth0_url=deps.auth0.base_url,
        ),
    )
    return app
