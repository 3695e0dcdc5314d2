"""Signed HTTP delivery of events, slash commands and interactions to the bot.

Requests carry Slack's v0 signature so the bot verifies them exactly as it verifies real
Slack. Events are redelivered like Slack does (up to three retries with
``X-Slack-Retry-Num``/``X-Slack-Retry-Reason``) when the bot is slow or fails; commands and
interactions are not retried, as in Slack.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

JsonDict = dict[str, Any]

MAX_RETRIES = 3
MAX_LOG = 1000


def sign(signing_secret: str, timestamp: str, body: bytes) -> str:
    """Slack's request signature: ``v0=`` + hex HMAC-SHA256 of ``v0:{ts}:{body}``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return f"v0={digest}"


@dataclass
class Attempt:
    """One HTTP attempt: the bot's status (None if no answer) and body."""

    status: int | None
    body: bytes
    content_type: str
    error: str | None
    latency_ms: float
    no_retry: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Deliverer:
    """Posts signed requests to the bot's URL and keeps a log of every attempt."""

    def __init__(
        self,
        *,
        signing_secret: str,
        events_url: Callable[[], str],
        retry_timeout: float,
    ) -> None:
        self._signing_secret = signing_secret
        self._events_url = events_url
        self.retry_timeout = retry_timeout
        self._log: list[JsonDict] = []
        self._seq = 0

    def log(self) -> list[JsonDict]:
        return [dict(d) for d in self._log]

    async def _post(self, body: bytes, content_type: str, extra: dict[str, str]) -> Attempt:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": sign(self._signing_secret, timestamp, body),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            **extra,
        }
        started = time.perf_counter()
        timeout = aiohttp.ClientTimeout(total=self.retry_timeout)
        try:
            # A session per attempt: the timeout closes the connection, so the next retry
            # never waits behind a request the bot is still chewing on.
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(self._events_url(), data=body, headers=headers) as resp,
            ):
                payload = await resp.read()
                return Attempt(
                    status=resp.status,
                    body=payload,
                    content_type=resp.content_type,
                    error=None if 200 <= resp.status < 300 else "http_error",
                    latency_ms=_elapsed_ms(started),
                    no_retry=resp.headers.get("X-Slack-No-Retry") == "1",
                )
        except TimeoutError:
            return Attempt(None, b"", "", "http_timeout", _elapsed_ms(started))
        except aiohttp.ClientError:
            return Attempt(None, b"", "", "connection_failed", _elapsed_ms(started))

    def _record(
        self,
        attempt: Attempt,
        *,
        kind: str,
        name: str,
        event_id: str | None = None,
        retry_num: int = 0,
        retry_reason: str | None = None,
    ) -> JsonDict:
        self._seq += 1
        entry: JsonDict = {
            "seq": self._seq,
            "kind": kind,
            "name": name,
            "event_id": event_id,
            "retry_num": retry_num,
            "retry_reason": retry_reason,
            "status": attempt.status,
            "ok": attempt.ok,
            "error": attempt.error,
            "latency_ms": attempt.latency_ms,
            "at": time.time(),
        }
        self._log.append(entry)
        del self._log[:-MAX_LOG]
        return dict(entry)

    async def deliver_event(self, envelope: JsonDict) -> list[JsonDict]:
        """Deliver an event_callback, retrying up to 3 times; returns the attempts' records."""
        body = json.dumps(envelope, separators=(",", ":")).encode()
        name = str(envelope["event"]["type"])
        event_id = str(envelope["event_id"])
        records: list[JsonDict] = []
        reason: str | None = None
        for retry_num in range(MAX_RETRIES + 1):
            extra: dict[str, str] = {}
            if retry_num:
                extra = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": str(reason)}
            attempt = await self._post(body, "application/json", extra)
            records.append(
                self._record(
                    attempt,
                    kind="event",
                    name=name,
                    event_id=event_id,
                    retry_num=retry_num,
                    retry_reason=reason if retry_num else None,
                )
            )
            if attempt.ok or attempt.no_retry:
                break
            reason = attempt.error
        return records

    async def deliver_form(
        self, kind: str, name: str, fields: dict[str, str]
    ) -> tuple[Attempt, JsonDict]:
        """Deliver a slash command or interaction once; returns the attempt and its record."""
        body = urlencode(fields).encode()
        attempt = await self._post(body, "application/x-www-form-urlencoded", {})
        return attempt, self._record(attempt, kind=kind, name=name)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def parse_reply(attempt: Attempt) -> JsonDict | None:
    """The bot's synchronous answer to a command as a message payload, or None if empty.

    JSON bodies are taken as message payloads; other non-empty bodies as plain text.
    """
    if not attempt.ok or not attempt.body.strip():
        return None
    text = attempt.body.decode("utf-8", errors="replace")
    if attempt.content_type == "application/json" or text.lstrip().startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            return {"text": text}
        if isinstance(parsed, dict):
            return parsed
    return {"text": text}


async def cancel_all(tasks: set[asyncio.Task[Any]]) -> None:
    """Cancel and await background deliveries (on shutdown)."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
