"""Slack ingress, owned in one place: every Slack delivery (HTTP or Socket Mode) passes
here on its way to the Bolt app.

HTTP: ``POST /slack/events`` checks the size, verifies the v0 signature (the only check:
Bolt's own is off), parses the body once (Bolt gets the parsed object, never the text) and
acks at once. Then, for HTTP and Socket Mode alike, :class:`SlackIngress` claims the
delivery (:class:`bot.dedup.Deduplicator`: a redelivery or a replay causes no second side
effect) and runs the Bolt app in a task it registers, so shutdown can wait for the work
in flight. Bolt runs with ``process_before_response=True``: its listeners run inside that
task, and whatever they pass to ``ack()`` is not sent (Slack already has its 200);
listeners answer through ``respond`` or the Web API.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
from collections.abc import Sequence
from hashlib import sha256
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.dedup import Deduplicator, DedupUnavailable, delivery_key
from bot.metrics import Registry
from bot.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_WINDOW_SECONDS = 300


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


def bolt_request(
    body: dict[str, Any],
    *,
    headers: dict[str, str | Sequence[str]] | None = None,
    query: str = "",
) -> AsyncBoltRequest:
    """The Bolt request for a body pmbot has verified and parsed.

    Bolt takes a parsed body only outside its "http" mode. The mode decides nothing else
    here: Bolt's signature check, the one thing it switches, is off (see slack_app.py), and
    copies of the request (lazy listeners) keep the parsed body. Raises TypeError,
    AttributeError, KeyError, IndexError or ValueError for a body of the wrong shape."""
    return AsyncBoltRequest(body=body, query=query, headers=headers or {}, mode="socket_mode")


class SlackIngress:
    """Claims each delivery once and runs the Bolt app on it in a registered task."""

    def __init__(self, *, bolt: AsyncApp, dedup: Deduplicator, metrics: Registry) -> None:
        self.bolt = bolt
        self._dedup = dedup
        self._metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, request: AsyncBoltRequest) -> None:
        """Handle ``request`` after the ack (the caller has already answered Slack)."""
        task = asyncio.create_task(self._handle(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, request: AsyncBoltRequest) -> None:
        found = delivery_key(request.body)
        if found is not None:
            kind, key = found
            try:
                fresh = await self._dedup.claim(kind, key)
            except DedupUnavailable:
                # Losing the delivery would be worse than the small chance of a duplicate:
                # redeliveries to this process are still caught in memory.
                self._metrics.errors.inc("dedup")
                log.error("could not record delivery %s; handling it anyway", key)
                fresh = True
            if not fresh:
                self._metrics.duplicates.inc(kind)
                log.info("ignored a redelivery of %s", key)
                return
        try:
            await self.bolt.async_dispatch(request)
        except Exception:
            self._metrics.errors.inc("dispatch")
            log.exception("dispatch failed")

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def drain(self, within: float = 10.0) -> int:
        """Wait for the deliveries still being handled (graceful shutdown); returns how
        many were still running when ``within`` seconds ran out."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)
        return len(self._tasks)


INGRESS_KEY = web.AppKey("slack_ingress", SlackIngress)
SETTINGS_KEY = web.AppKey("slack_settings", Settings)
METRICS_KEY = web.AppKey("slack_metrics", Registry)


async def slack_events(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    metrics = request.app[METRICS_KEY]
    ingress = request.app[INGRESS_KEY]
    started = time.perf_counter()
    kind = "unknown"

    def done(response: web.Response) -> web.Response:
        metrics.requests.inc(kind, str(response.status))
        metrics.ack_latency.observe(time.perf_counter() - started, kind)
        return response

    if (request.content_length or 0) > settings.max_body_bytes:
        return done(web.json_response({"error": "body too large"}, status=413))
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return done(web.json_response({"error": "body too large"}, status=413))
    if not verify_signature(
        settings.signing_secret,
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
    if kind == "url_verification":
        challenge = parsed.get("challenge")
        if not isinstance(challenge, str):
            return done(web.json_response({"error": "malformed body"}, status=400))
        return done(web.json_response({"challenge": challenge}))
    if kind == "ssl_check":
        return done(web.Response(status=200))
    try:
        bolt_req = bolt_request(
            parsed,
            headers={k: request.headers.getall(k) for k in request.headers},
            query=request.query_string,
        )
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        # Bolt reads user, team, channel, ... while building its context; a body whose
        # fields have the wrong types is not one Slack sends.
        log.info("rejected a Slack %s of the wrong shape: %s", kind, type(exc).__name__)
        return done(web.json_response({"error": "malformed body"}, status=400))
    # Ack first (Slack's 3 s budget), work after: every listener runs in the ingress.
    ingress.submit(bolt_req)
    return done(web.Response(status=200))


def add_slack_routes(
    app: web.Application, *, ingress: SlackIngress, settings: Settings, metrics: Registry
) -> None:
    app[INGRESS_KEY] = ingress
    app[SETTINGS_KEY] = settings
    app[METRICS_KEY] = metrics
    app.router.add_post("/slack/events", slack_events)
