"""Attacks on ``pmbot fga serve`` through its real HTTP surface (the OpenFGA API served by
aiohttp on 127.0.0.1, spoken to by a real HTTP client or a raw socket) and its command line:
a missing or wrong bearer token, bodies that are not ``application/json`` (what a browser
can send cross-origin without a preflight), a DNS-rebinding ``Host``, and binding beyond
loopback without a token. After every refused write the store is read back: nothing may
have been written."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from authz.embedded.engine import EmbeddedEngine
from authz.embedded.model import parse_dsl
from authz.http_api import create_fga_app
from authz.ports import TupleKey
from tests.conftest import REPO_ROOT
from tests.fakes.authz import HTTP_MODEL, embedded_engine, serve_app, tk

TOKEN = "fga-serve-token-4f1c9a7e2b6d8053"
UNAUTHENTICATED = {"code": "unauthenticated", "message": "unauthenticated"}
MALLORY = tk("user:mallory", "owner", "document:1")
WRITE_BODY = json.dumps({"writes": {"tuple_keys": [MALLORY]}}).encode()


# ------------------------------------------------------------------------------------------
# Fixtures and helpers
# ------------------------------------------------------------------------------------------


@pytest.fixture
async def fga(sqlite_url: str) -> AsyncIterator[EmbeddedEngine]:
    async with embedded_engine(sqlite_url) as engine:
        yield engine


@pytest.fixture
async def store_id(fga: EmbeddedEngine) -> str:
    info = await fga.create_store("security")
    await fga.write_model(info.id, parse_dsl(HTTP_MODEL))
    return info.id


@contextlib.asynccontextmanager
async def served(engine: EmbeddedEngine, **options: Any) -> AsyncIterator[tuple[str, int]]:
    """``create_fga_app(engine, **options)`` on 127.0.0.1: yields (base URL, port)."""
    async with serve_app(create_fga_app(engine, **options)) as url:
        yield url, int(url.rsplit(":", 1)[1])


async def send(
    url: str,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    data: bytes | None = None,
) -> tuple[int, Any]:
    """One request with exactly these headers (no Content-Type unless given): (status, JSON
    body or None)."""
    async with (
        aiohttp.ClientSession(skip_auto_headers=("Content-Type",)) as session,
        session.request(method, url + path, headers=CIMultiDict(headers), data=data) as resp,
    ):
        text = await resp.text()
        if resp.status != 204:
            assert resp.content_type == "application/json", (resp.status, text)
        return resp.status, (json.loads(text) if text else None)


def authorized(**extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", **extra}


def json_headers(**extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **extra}


async def stored(engine: EmbeddedEngine, store_id: str) -> list[TupleKey]:
    return list((await engine.read(store_id)).tuples)


def assert_error(status: int, body: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert isinstance(body, dict) and set(body) == {"code", "message"}, body
    assert body["code"] == code and isinstance(body["message"], str) and body["message"], body


async def raw_http(port: int, request: bytes) -> tuple[int, Any]:
    """Sends ``request`` as is on a new connection (``Connection: close``): (status, the
    body parsed if it is JSON, else its bytes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"\r\ncontent-type: application/json" in head.lower():
        return status, json.loads(payload)
    return status, payload


def assert_refused(status: int, body: Any, expected_status: int, code: str) -> None:
    """Refused by this server's guard (``expected_status`` and its error body), or before it
    by aiohttp's HTTP parser (400 Bad Request, plain text)."""
    if status == 400 and isinstance(body, bytes):
        return
    assert_error(status, body, expected_status, code)


# ------------------------------------------------------------------------------------------
# The bearer token
# ------------------------------------------------------------------------------------------


async def test_missing_bearer_token_is_401(fga: EmbeddedEngine, store_id: str) -> None:
    async with served(fga, token=TOKEN) as (url, _):
        write = f"/stores/{store_id}/write"
        for method, path, data in [
            ("POST", write, WRITE_BODY),
            ("GET", "/stores", None),
            ("GET", f"/stores/{store_id}", None),
            ("DELETE", f"/stores/{store_id}", None),
            ("POST", f"/stores/{store_id}/read", b"{}"),
            ("GET", "/no-such-endpoint", None),
        ]:
            status, body = await send(
                url, method, path, headers={"Content-Type": "application/json"}, data=data
            )
            assert (status, body) == (401, UNAUTHENTICATED), (method, path)
        # Unauthenticated requests learn nothing else, not even that a body is refused.
        status, body = await send(
            url, "POST", write, headers={"Content-Type": "text/plain"}, data=WRITE_BODY
        )
        assert (status, body) == (401, UNAUTHENTICATED)
    assert await stored(fga, store_id) == []
    assert await fga.get_store(store_id) is not None  # the DELETE did not happen


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong-token",
        f"Bearer {TOKEN[:-1]}{chr(ord(TOKEN[-1]) + 1)}",  # differs in the last byte only
        f"Bearer {TOKEN[:-1]}",  # a prefix
        f"Bearer {TOKEN}x",  # an extension
        f"Bearer {TOKEN.upper()}",
        "Bearer ",
        "Bearer",
        TOKEN,  # no scheme
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        f"Bearer{TOKEN}",
        f"Bearer {TOKEN} {TOKEN}",
    ],
)
async def test_wrong_bearer_token_is_401(
    fga: EmbeddedEngine, store_id: str, authorization: str
) -> None:
    async with served(fga, token=TOKEN) as (url, _):
        status, body = await send(
            url,
            "POST",
            f"/stores/{store_id}/write",
            headers={"Authorization": authorization, "Content-Type": "application/json"},
            data=WRITE_BODY,
        )
        assert (status, body) == (401, UNAUTHENTICATED)
        status, body = await send(url, "GET", "/stores", headers={"Authorization": authorization})
        assert (status, body) == (401, UNAUTHENTICATED)
    assert await stored(fga, store_id) == []


async def test_a_second_authorization_header_is_401(fga: EmbeddedEngine, store_id: str) -> None:
    async with served(fga, token=TOKEN) as (url, _):
        for pair in (["Bearer wrong", f"Bearer {TOKEN}"], [f"Bearer {TOKEN}", "Bearer wrong"]):
            headers = [("Authorization", value) for value in pair]
            headers.append(("Content-Type", "application/json"))
            status, body = await send(
                url, "POST", f"/stores/{store_id}/write", headers=headers, data=WRITE_BODY
            )
            assert (status, body) == (401, UNAUTHENTICATED)
    assert await stored(fga, store_id) == []


async def test_non_ascii_authorization_is_401_not_500(fga: EmbeddedEngine, store_id: str) -> None:
    async with served(fga, token=TOKEN) as (_, port):
        for value in (
            b"Bearer \xff\xfe\x80",  # not UTF-8
            b"Bearer " + TOKEN.encode() + "é".encode(),  # UTF-8, the token plus one letter
            b"Bearer " + TOKEN[:-1].encode() + b"\xe9",  # latin-1 in place of the last byte
            "Bearer café-☃".encode(),
        ):
            request = (
                f"POST /stores/{store_id}/write HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(WRITE_BODY)}\r\n"
                "Connection: close\r\n"
            ).encode()
            request += b"Authorization: " + value + b"\r\n\r\n" + WRITE_BODY
            assert await raw_http(port, request) == (401, UNAUTHENTICATED), value
    assert await stored(fga, store_id) == []


async def test_the_right_token_is_accepted(fga: EmbeddedEngine, store_id: str) -> None:
    async with served(fga, token=TOKEN) as (url, _):
        status, body = await send(
            url, "POST", f"/stores/{store_id}/write", headers=json_headers(), data=WRITE_BODY
        )
        assert (status, body) == (200, {})
        # The scheme is case-insensitive (RFC 7235); the token is not.
        status, body = await send(
            url, "GET", "/stores", headers={"Authorization": "bearer " + TOKEN}
        )
        assert status == 200 and [s["id"] for s in body["stores"]] == [store_id]
    assert await stored(fga, store_id) == [TupleKey(**MALLORY)]


def test_an_empty_or_unsendable_token_is_refused(fga: EmbeddedEngine) -> None:
    for token in ("", "   ", "has space", "tab\there", "naïve-token", "line\nbreak"):
        with pytest.raises(ValueError, match="FGA_SERVE_TOKEN"):
            create_fga_app(fga, token=token)


# ------------------------------------------------------------------------------------------
# JSON bodies only
# ------------------------------------------------------------------------------------------

NOT_JSON = [
    None,  # no Content-Type at all
    "text/plain",
    "text/plain; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "text/json",
    "application/jsonx",
    "application/json-patch+json",
    "application/json; charset=latin-1",
    "application/json; charset=utf-16",
    "application/json; boundary=x",
    "application/json, text/plain",
    "",
]


@pytest.mark.parametrize("token", [None, TOKEN], ids=["loopback-unauthenticated", "token"])
@pytest.mark.parametrize("content_type", NOT_JSON)
async def test_bodies_that_are_not_json_are_415(
    fga: EmbeddedEngine, store_id: str, token: str | None, content_type: str | None
) -> None:
    """A browser posts ``text/plain`` and form bodies cross-origin without asking first."""
    headers = authorized() if token else {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    async with served(fga, token=token) as (url, _):
        for path in (f"/stores/{store_id}/write", "/stores", f"/stores/{store_id}/check"):
            body_bytes = WRITE_BODY if path.endswith("/write") else b'{"name": "planted"}'
            status, body = await send(url, "POST", path, headers=headers, data=body_bytes)
            assert_error(status, body, 415, "unsupported_media_type")
        for method in ("PUT", "PATCH"):
            status, body = await send(
                url, method, f"/stores/{store_id}/write", headers=headers, data=WRITE_BODY
            )
            assert_error(status, body, 415, "unsupported_media_type")
    assert await stored(fga, store_id) == []
    assert [s.id for s in await fga.list_stores()] == [store_id]


async def test_two_content_types_are_refused(fga: EmbeddedEngine, store_id: str) -> None:
    async with served(fga, token=TOKEN) as (_, port):
        for pair in (["application/json", "text/plain"], ["text/plain", "application/json"]):
            request = (
                f"POST /stores/{store_id}/write HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {TOKEN}\r\n"
                + "".join(f"Content-Type: {value}\r\n" for value in pair)
                + f"Content-Length: {len(WRITE_BODY)}\r\nConnection: close\r\n\r\n"
            )
            status, body = await raw_http(port, request.encode() + WRITE_BODY)
            assert_refused(status, body, 415, "unsupported_media_type")
    assert await stored(fga, store_id) == []


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON;Charset=UTF-8"],
)
async def test_json_bodies_are_accepted(
    fga: EmbeddedEngine, store_id: str, content_type: str
) -> None:
    async with served(fga, token=TOKEN) as (url, _):
        status, body = await send(
            url,
            "POST",
            f"/stores/{store_id}/write",
            headers=authorized(**{"Content-Type": content_type}),
            data=WRITE_BODY,
        )
        assert (status, body) == (200, {})
    assert await stored(fga, store_id) == [TupleKey(**MALLORY)]


# ------------------------------------------------------------------------------------------
# The Host allow-list (DNS rebinding)
# ------------------------------------------------------------------------------------------


def rebinding_hosts(port: int) -> list[str]:
    return [
        "evil.example:8080",
        "evil.example",
        f"evil.example:{port}",
        f"127.0.0.1.evil.example:{port}",
        f"localhost.evil.example:{port}",
        f"127.0.0.1:{port + 1 if port < 65535 else 1}",  # a loopback name, another port
        "localhost",  # port 80 implied
        f"127.0.0.2:{port}",
        f"[::2]:{port}",
        f"127.0.0.1:{port}:{port}",
        f"127.0.0.1:x{port}",
        f"fga.internal.evil.example:{port}",
        f"user@127.0.0.1:{port}",
        "",
    ]


@pytest.mark.parametrize("token", [None, TOKEN], ids=["loopback-unauthenticated", "token"])
async def test_a_rebinding_host_is_refused(
    fga: EmbeddedEngine, store_id: str, token: str | None
) -> None:
    """A page of evil.example whose name now resolves to 127.0.0.1 talks to the server as
    the same origin, with ``Host: evil.example:...``."""
    async with served(fga, token=token, allowed_hosts=["fga.internal"]) as (url, port):
        for host in rebinding_hosts(port):
            headers = json_headers(Host=host)
            status, body = await send(
                url, "POST", f"/stores/{store_id}/write", headers=headers, data=WRITE_BODY
            )
            assert_error(status, body, 421, "misdirected_request")
            status, body = await send(url, "GET", "/stores", headers=headers)
            assert_error(status, body, 421, "misdirected_request")
    assert await stored(fga, store_id) == []


async def test_a_missing_or_second_host_is_refused(fga: EmbeddedEngine, store_id: str) -> None:
    async with served(fga, token=TOKEN) as (_, port):
        head = (
            f"POST /stores/{store_id}/write HTTP/1.1\r\n"
            f"Authorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(WRITE_BODY)}\r\n"
            "Connection: close\r\n"
        )
        homoglyph = f"l\u043ecalhost:{port}"  # a Cyrillic o, sent as UTF-8
        for hosts in ([], [f"127.0.0.1:{port}", "evil.example"], [homoglyph]):
            request = head + "".join(f"Host: {h}\r\n" for h in hosts) + "\r\n"
            status, body = await raw_http(port, request.encode() + WRITE_BODY)
            assert_refused(status, body, 421, "misdirected_request")
        # HTTP/1.0 without a Host header.
        request = head.replace("HTTP/1.1", "HTTP/1.0") + "\r\n"
        status, body = await raw_http(port, request.encode() + WRITE_BODY)
        assert_error(status, body, 421, "misdirected_request")
    assert await stored(fga, store_id) == []


async def test_loopback_bind_and_allowed_hosts_are_accepted(
    fga: EmbeddedEngine, store_id: str
) -> None:
    options: dict[str, Any] = {
        "token": TOKEN,
        "bind_host": "192.0.2.7",
        "allowed_hosts": ["FGA.internal", "proxy.example:443"],
    }
    async with served(fga, **options) as (url, port):
        accepted = [
            f"127.0.0.1:{port}",
            f"localhost:{port}",
            f"LocalHost:{port}",
            f"[::1]:{port}",
            f"192.0.2.7:{port}",
            f"fga.internal:{port}",
            "fga.internal",
            "fga.internal:8443",
            "proxy.example:443",
        ]
        for host in accepted:
            status, body = await send(url, "GET", "/stores", headers=authorized(Host=host))
            assert status == 200, (host, body)
        for host in ("proxy.example", f"proxy.example:{port}", f"192.0.2.7:{port + 1}"):
            status, body = await send(url, "GET", "/stores", headers=authorized(Host=host))
            assert_error(status, body, 421, "misdirected_request")


def test_a_malformed_allowed_host_is_refused(fga: EmbeddedEngine) -> None:
    for name in ("", "two words", "evil.example/path", "*", "host:port", "a:1:2"):
        with pytest.raises(ValueError, match="allowed host"):
            create_fga_app(fga, allowed_hosts=[name])


# ------------------------------------------------------------------------------------------
# The command line
# ------------------------------------------------------------------------------------------


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO_ROOT),
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
        **extra,
    }


def fga_serve(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot.cli", "fga", "serve", *args]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "fga.example"])
def test_cli_refuses_to_listen_beyond_loopback_without_a_token(tmp_path: Path, host: str) -> None:
    result = subprocess.run(
        fga_serve("--host", host, "--port", "0"),
        env=clean_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "FGA_SERVE_TOKEN" in result.stderr and host in result.stderr
    assert "Traceback" not in result.stderr
    assert "OpenFGA API on" not in result.stdout


@pytest.mark.parametrize(
    ("token", "args", "named"),
    [
        ("", ["--host", "0.0.0.0"], "FGA_SERVE_TOKEN"),
        ("", [], "FGA_SERVE_TOKEN"),  # set but empty is not "unset": no silent fallback
        ("two words", [], "FGA_SERVE_TOKEN"),
        (TOKEN, ["--allowed-host", "fga.internal", "--allowed-host", "a b"], "'a b'"),
    ],
)
def test_cli_refuses_a_bad_token_or_host_name(
    tmp_path: Path, token: str, args: list[str], named: str
) -> None:
    result = subprocess.run(
        fga_serve("--port", "0", *args),
        env=clean_env(tmp_path, FGA_SERVE_TOKEN=token),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "cannot start" in result.stderr and named in result.stderr, result.stderr
    assert "OpenFGA API on" not in result.stdout
    if token:
        assert token not in result.stderr + result.stdout


@contextlib.asynccontextmanager
async def cli_server(
    tmp_path: Path, port: int, *args: str, **env: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``pmbot fga serve --port PORT ARGS`` until it answers on 127.0.0.1; SIGTERM on exit."""
    proc = await asyncio.create_subprocess_exec(
        *fga_serve("--port", str(port), *args),
        env=clean_env(tmp_path, **env),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                if proc.returncode is not None:
                    pytest.fail(f"pmbot fga serve exited with {proc.returncode}")
                try:
                    async with session.get(f"http://127.0.0.1:{port}/stores"):
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("pmbot fga serve did not start")
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 20)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_cli_on_loopback_without_a_token_warns(
    tmp_path: Path, free_socket: socket.socket
) -> None:
    port = free_socket.getsockname()[1]
    free_socket.close()
    async with cli_server(tmp_path, port, "--host", "127.0.0.1") as proc:
        url = f"http://127.0.0.1:{port}"
        status, body = await send(url, "GET", "/stores")
        assert (status, body) == (200, {"stores": [], "continuation_token": ""})
        status, body = await send(url, "GET", "/stores", headers={"Host": f"evil.example:{port}"})
        assert_error(status, body, 421, "misdirected_request")
    assert proc.stderr is not None
    stderr = (await proc.stderr.read()).decode()
    assert proc.returncode == 0, stderr
    assert "unauthenticated" in stderr.lower() and "FGA_SERVE_TOKEN" in stderr
    assert "Traceback" not in stderr


async def test_cli_beyond_loopback_requires_the_token(
    tmp_path: Path, free_socket: socket.socket
) -> None:
    port = free_socket.getsockname()[1]
    free_socket.close()
    args = ("--host", "0.0.0.0", "--allowed-host", "fga.internal")
    async with cli_server(tmp_path, port, *args, FGA_SERVE_TOKEN=TOKEN) as proc:
        url = f"http://127.0.0.1:{port}"
        status, body = await send(url, "GET", "/stores")
        assert (status, body) == (401, UNAUTHENTICATED)
        status, body = await send(url, "GET", "/stores", headers={"Authorization": "Bearer x"})
        assert (status, body) == (401, UNAUTHENTICATED)
        for host in (f"127.0.0.1:{port}", f"fga.internal:{port}", f"0.0.0.0:{port}"):
            status, body = await send(url, "GET", "/stores", headers=authorized(Host=host))
            assert status == 200, (host, body)
        status, body = await send(
            url, "GET", "/stores", headers=authorized(Host=f"evil.example:{port}")
        )
        assert_error(status, body, 421, "misdirected_request")
    assert proc.stderr is not None
    stderr = (await proc.stderr.read()).decode()
    assert proc.returncode == 0, stderr
    assert "unauthenticated" not in stderr.lower()
    assert TOKEN not in stderr
