"""The development surfaces of the embedded default (the Slack sandbox's unauthenticated
API, the dev identity provider) against another web page in the same browser: a
cross-site form or fetch, and a DNS-rebinding page that reaches 127.0.0.1 under its own
host name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.support import serving_embedded_default


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    async with serving_embedded_default(f"{tmp_path}/dev.sqlite3") as served:
        yield served


POST_AS_ALICE = {"user": "U0ALICE", "channel": "C0GENERAL", "text": "hello from evil"}


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"},
    ],
    ids=["cross-site", "origin-null", "other-port"],
)
async def test_another_site_cannot_drive_the_sandbox(url: str, headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{url}/sandbox/ui/messages", json=POST_AS_ALICE, headers=headers
        ) as resp:
            assert resp.status == 403
        async with http.post(
            f"{url}/idp/authorize/login",
            data={"tx": "x", "email": "alice@example.com", "password": "alice-password"},
            headers=headers,
        ) as resp:
            assert resp.status == 403
        params = {"channel": "C0GENERAL", "viewer": "U0ALICE"}
        async with http.get(f"{url}/sandbox/ui/messages", params=params) as resp:
            assert resp.status == 200
            assert "hello from evil" not in await resp.text()
        # The sandbox page itself (same origin) still works.
        async with http.post(
            f"{url}/sandbox/ui/messages",
            json=POST_AS_ALICE,
            headers={"Origin": url, "Sec-Fetch-Site": "same-origin"},
        ) as resp:
            assert resp.status == 200, await resp.text()


async def test_a_rebinding_host_name_gets_nothing(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/sandbox/", "/sandbox/ui/workspace", "/idp/.well-known/jwks.json"):
            async with http.get(url + path, headers={"Host": "rebind.evil.example"}) as resp:
                assert resp.status == 421
        async with http.get(url + "/sandbox/", headers={"Host": "localhost"}) as resp:
            assert resp.status == 200


async def test_every_page_refuses_to_be_framed(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/sandbox/", "/healthz", "/idp/.well-known/openid-configuration"):
            async with http.get(url + path) as resp:
                assert resp.headers["X-Frame-Options"] == "DENY"
                assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
