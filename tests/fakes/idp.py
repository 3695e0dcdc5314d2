"""Shared helpers for the dev identity provider tests: clients, PKCE, a browser-like login."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from sandbox.idp import DevIdentityProvider, IdpClient, default_users, s256

AUDIENCE = "https://pmbot.test/api"
CALLBACK = "http://127.0.0.1:9/auth/callback"
WEB_CLIENT = IdpClient(client_id="pmbot-web", client_secret="web-secret", callback_urls=[CALLBACK])
NATIVE_CLIENT = IdpClient(client_id="pmbot-native", client_secret="", callback_urls=[CALLBACK])

_TX = re.compile(r"name='tx' value='([^']+)'")


def make_provider(*, issuer: str | None = None, id_token_ttl: int = 600) -> DevIdentityProvider:
    return DevIdentityProvider(
        issuer=issuer,
        users=default_users(),
        clients=[WEB_CLIENT, NATIVE_CLIENT],
        audience=AUDIENCE,
        id_token_ttl=id_token_ttl,
    )


def domain_of(base_url: str) -> str:
    """auth0-python's ``domain`` for a base URL (it adds ``protocol://`` itself)."""
    return base_url.removeprefix("http://")


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)


def tx_of(html: str) -> str:
    match = _TX.search(html)
    assert match is not None, "the login page carries a transaction id"
    return match.group(1)


def authorize_params(
    challenge: str,
    *,
    client_id: str = WEB_CLIENT.client_id,
    scope: str = "openid profile email offline_access read:projects",
    state: str = "state-123",
    nonce: str | None = "nonce-abc",
    **extra: str,
) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "audience": AUDIENCE,
    }
    if nonce is not None:
        params["nonce"] = nonce
    params.update(extra)
    return params


async def login(
    http: aiohttp.ClientSession,
    base_url: str,
    params: Mapping[str, str],
    *,
    email: str = "alice@example.com",
    password: str | None = None,
) -> URL:
    """Drive the login page like a browser and return the callback redirect, unfollowed."""
    async with http.get(f"{base_url}/authorize", params=params, allow_redirects=False) as page:
        assert page.status == 200, await page.text()
        html = await page.text()
    assert f"data-testid='login-as-{email}'" in html
    handle = email.split("@", 1)[0]
    form = {"tx": tx_of(html), "email": email, "password": password or f"{handle}-password"}
    async with http.post(
        f"{base_url}/authorize/login", data=form, allow_redirects=False
    ) as response:
        assert response.status == 302, await response.text()
        return URL(response.headers["Location"])


async def get_json(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()
