"""Hostile input to ``POST /slack/events`` over raw HTTP: always a 4xx, never a 500."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import pytest

from tests.support import SIGNING_SECRET, Harness, running_bot

FORM = b"application/x-www-form-urlencoded"
JSON = b"application/json"
URL_VERIFICATION = json.dumps({"type": "url_verification", "challenge": "c-1", "token": "t"})


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_post(url: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> Reply:
    """One HTTP/1.1 POST written byte for byte, so headers can hold anything."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        head = [
            b"POST " + parts.path.encode() + b" HTTP/1.1",
            b"Host: " + parts.netloc.encode(),
            b"Connection: close",
            b"Content-Length: " + str(len(body)).encode(),
        ]
        head += [name + b": " + value for name, value in headers]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    top, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return Reply(int(status_line.split()[1]), parsed, payload)


def signature(timestamp: bytes, body: bytes) -> bytes:
    mac = hmac.new(SIGNING_SECRET.encode(), b"v0:" + timestamp + b":" + body, hashlib.sha256)
    return b"v0=" + mac.hexdigest().encode()


Build = Callable[[int], tuple[bytes, list[tuple[bytes, bytes]]]]


def signed(body: bytes | str, content_type: bytes | None = JSON) -> Build:
    """A correctly signed request with a current timestamp."""
    data = body.encode() if isinstance(body, str) else body

    def build(now: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        ts = str(now).encode()
        headers = [(b"X-Slack-Request-Timestamp", ts), (b"X-Slack-Signature", signature(ts, data))]
        if content_type is not None:
            headers.append((b"Content-Type", content_type))
        return data, headers

    return build


def with_timestamp(render: Callable[[int], bytes], body: str = URL_VERIFICATION) -> Build:
    """Signed with the right secret, over an odd timestamp header."""
    data = body.encode()

    def build(now: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        ts = render(now)
        return data, [
            (b"Content-Type", JSON),
            (b"X-Slack-Request-Timestamp", ts),
            (b"X-Slack-Signature", signature(ts, data)),
        ]

    return build


def with_signature(value: bytes, *, extra: list[tuple[bytes, bytes]] | None = None) -> Build:
    data = URL_VERIFICATION.encode()

    def build(now: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        return data, [
            (b"Content-Type", JSON),
            (b"X-Slack-Request-Timestamp", str(now).encode()),
            (b"X-Slack-Signature", value),
            *(extra or []),
        ]

    return build


def duplicate_signatures(now: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    data = URL_VERIFICATION.encode()
    ts = str(now).encode()
    return data, [
        (b"Content-Type", JSON),
        (b"X-Slack-Request-Timestamp", ts),
        (b"X-Slack-Signature", b"v0=" + b"0" * 64),
        (b"X-Slack-Signature", signature(ts, data)),
    ]


ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

CASES: dict[str, tuple[Build, int]] = {
    # -- the signature header ---------------------------------------------------------
    "non-ascii signature": (with_signature("v0=é".encode()), 401),
    "non-ascii signature of the right length": (with_signature(("v0=" + "é" * 64).encode()), 401),
    "non-utf-8 byte in the signature": (with_signature(b"v0=" + b"\xff" * 64), 401),
    "signature of 8000 characters": (with_signature(b"v0=" + b"a" * 8000), 401),
    "empty signature": (with_signature(b""), 401),
    "first of two signatures is wrong": (duplicate_signatures, 401),
    # -- the timestamp header (each one signed with the right secret) ------------------
    "non-numeric timestamp": (with_timestamp(lambda now: b"abc"), 401),
    "non-ascii digits in the timestamp": (
        with_timestamp(lambda now: str(now).translate(ARABIC_INDIC).encode()),
        401,
    ),
    "timestamp with a plus sign": (with_timestamp(lambda now: b"+" + str(now).encode()), 401),
    "timestamp with underscores": (
        with_timestamp(lambda now: f"{now:_}".encode()),
        401,
    ),
    "timestamp of 5000 digits": (with_timestamp(lambda now: b"9" * 5000), 401),
    "non-utf-8 timestamp": (with_timestamp(lambda now: b"\xff\xfe"), 401),
    # -- bodies with a valid signature --------------------------------------------------
    "non-utf-8 json body": (signed(b'{"type": "\xff\xfe"}'), 400),
    "non-utf-8 form body": (signed(b"command=%2Fpm&text=\xff", FORM), 400),
    "form payload that is not json": (signed("payload=%7Bnot+json", FORM), 400),
    "form payload that is a json array": (signed("payload=%5B1%2C2%5D", FORM), 400),
    "form payload that is a json string": (signed("payload=%22hi%22", FORM), 400),
    "json array body": (signed("[1, 2]"), 400),
    "json null body": (signed("null"), 400),
    "empty json body": (signed(""), 400),
    "deeply nested json body": (signed("[" * 200_000 + "]" * 200_000), 400),
    "deeply nested interaction payload": (
        signed(urlencode({"payload": '{"a":' * 20_000 + "1" + "}" * 20_000}), FORM),
        400,
    ),
    "event whose user is a number": (
        signed(json.dumps({"type": "event_callback", "event_id": "EvX1", "user": 5})),
        400,
    ),
    "event whose authorizations are a string": (
        signed(json.dumps({"type": "event_callback", "event_id": "EvX2", "authorizations": "x"})),
        400,
    ),
    "interaction whose team is a number": (
        signed(urlencode({"payload": json.dumps({"type": "block_actions", "team": 5})}), FORM),
        400,
    ),
    "interaction whose actions are a number": (
        signed(urlencode({"payload": json.dumps({"type": "block_actions", "actions": 5})}), FORM),
        400,
    ),
    "interaction whose view is a string": (
        signed(urlencode({"payload": json.dumps({"type": "view_submission", "view": "v"})}), FORM),
        400,
    ),
    "interaction whose actions hold a string": (
        signed(
            urlencode({"payload": json.dumps({"type": "block_actions", "actions": ["x"]})}), FORM
        ),
        400,
    ),
    "challenge with a lone surrogate": (
        signed('{"type": "url_verification", "challenge": "\\ud800"}'),
        400,
    ),
    "form that is not a query string": (signed("a&&=&b", FORM), 400),
    "form that is neither command nor interaction": (signed("just=form", FORM), 400),
    "no content type": (signed(URL_VERIFICATION, None), 400),
    "multipart content type": (signed(URL_VERIFICATION, b"multipart/form-data; boundary=x"), 400),
}


@pytest.fixture
async def bot(sqlite_url: str) -> AsyncIterator[Harness]:
    async with running_bot(sqlite_url) as harness:
        yield harness


@pytest.mark.parametrize("case", list(CASES))
async def test_hostile_requests_get_a_4xx_with_a_json_error(bot: Harness, case: str) -> None:
    build, expected = CASES[case]
    body, headers = build(int(time.time()))
    reply = await raw_post(bot.events_url, body, headers)
    assert reply.status == expected, (case, reply.status, reply.body[:300])
    assert reply.headers.get("content-type", "").startswith("application/json")
    assert isinstance(json.loads(reply.body)["error"], str)
    assert bot.deps.metrics.errors.value("web") == 0
    assert bot.deps.metrics.errors.value("dispatch") == 0


async def test_headers_beyond_the_server_limit_are_refused_before_the_app(bot: Harness) -> None:
    """aiohttp refuses header fields over 8190 bytes itself (a plain-text 4xx); the bot is
    never reached and nothing is counted as an error."""
    build = with_signature(b"v0=" + b"a" * 20_000)
    body, headers = build(int(time.time()))
    reply = await raw_post(bot.events_url, body, headers)
    assert 400 <= reply.status < 500
    assert bot.deps.metrics.errors.value("web") == 0
    assert bot.deps.metrics.requests.value("unknown", "401") == 0


async def test_a_valid_request_is_still_answered(bot: Harness) -> None:
    """The control case for the table above: the same raw client, a good request."""
    body, headers = signed(URL_VERIFICATION)(int(time.time()))
    reply = await raw_post(bot.events_url, body, headers)
    assert reply.status == 200
    assert json.loads(reply.body) == {"challenge": "c-1"}
