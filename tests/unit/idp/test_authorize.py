"""/authorize and the login page of the dev identity provider, driven over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from sandbox.idp import DevIdentityProvider, IdpClient, serve
from tests.fakes.idp import (
    CALLBACK,
    authorize_params,
    login,
    make_provider,
    pkce_pair,
    tx_of,
)

Server = tuple[DevIdentityProvider, str]


@pytest.fixture
async def idp() -> AsyncIterator[Server]:
    provider = make_provider()
    async with serve(provider) as base_url:
        yield provider, base_url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe=True: keep cookies for an IP host, like a browser does.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def _authorize(
    http: aiohttp.ClientSession, base_url: str, params: dict[str, str]
) -> tuple[int, str, str | None]:
    async with http.get(f"{base_url}/authorize", params=params, allow_redirects=False) as r:
        return r.status, await r.text(), r.headers.get("Location")


async def test_login_page_lists_seeded_users_and_redirects_with_code(
    idp: Server, http: aiohttp.ClientSession
) -> None:
    _, base_url = idp
    _, challenge = pkce_pair()
    status, html, _ = await _authorize(http, base_url, authorize_params(challenge))
    assert status == 200
    for email in ("alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"):
        assert f"data-testid='login-as-{email}'" in html
    assert "alice-password" in html
    assert "data-testid='login-email'" in html and "data-testid='login-password'" in html

    callback = await login(http, base_url, authorize_params(challenge), email="bob@example.com")
    assert str(callback.with_query(None)) == CALLBACK
    assert callback.query["state"] == "state-123"
    assert len(callback.query["code"]) >= 32
    assert "error" not in callback.query


async def test_wrong_password_shows_error_and_keeps_the_transaction(
    idp: Server, http: aiohttp.ClientSession
) -> None:
    _, base_url = idp
    _, challenge = pkce_pair()
    _, html, _ = await _authorize(http, base_url, authorize_params(challenge))
    tx = tx_of(html)
    form = {"tx": tx, "email": "carol@example.com", "password": "bob-password"}
    async with http.post(f"{base_url}/authorize/login", data=form, allow_redirects=False) as r:
        assert r.status == 401
        assert "data-testid='login-error'" in await r.text()
        assert "Location" not in r.headers
    form["password"] = "carol-password"
    async with http.post(f"{base_url}/authorize/login", data=form, allow_redirects=False) as r:
        assert r.status == 302
        assert "code" in URL(r.headers["Location"]).query
    # The transaction is single-use.
    async with http.post(f"{base_url}/authorize/login", data=form, allow_redirects=False) as r:
        assert r.status == 400
        assert "Location" not in r.headers


async def test_cancel_redirects_with_access_denied(
    idp: Server, http: aiohttp.ClientSession
) -> None:
    _, base_url = idp
    _, challenge = pkce_pair()
    _, html, _ = await _authorize(http, base_url, authorize_params(challenge))
    form = {"tx": tx_of(html), "action": "cancel"}
    async with http.post(f"{base_url}/authorize/login", data=form, allow_redirects=False) as r:
        location = URL(r.headers["Location"])
    assert r.status == 302
    assert location.query["error"] == "access_denied"
    assert location.query["state"] == "state-123"
    assert "code" not in location.query


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"client_id": "nope"}, "Unknown client: nope"),
        ({"redirect_uri": "https://evil.example/cb"}, "not in the list of allowed callback URLs"),
        ({"redirect_uri": CALLBACK + "/extra"}, "not in the list of allowed callback URLs"),
    ],
)
async def test_untrusted_client_or_redirect_gets_an_error_page_not_a_redirect(
    idp: Server, http: aiohttp.ClientSession, override: dict[str, str], needle: str
) -> None:
    _, base_url = idp
    _, challenge = pkce_pair()
    params = {**authorize_params(challenge), **override}
    status, html, location = await _authorize(http, base_url, params)
    assert (status, location) == (400, None)
    assert "data-testid='idp-error'" in html
    assert needle in html


@pytest.mark.parametrize(
    ("override", "error", "needle"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request", "plain"),
        ({"code_challenge_method": ""}, "invalid_request", "code_challenge_method"),
        ({"code_challenge": ""}, "invalid_request", "code_challenge"),
        ({"code_challenge": "short"}, "invalid_request", "code_challenge"),
        ({"response_type": "token"}, "unsupported_response_type", "token"),
        ({"audience": "https://other.example/api"}, "access_denied", "Service not found"),
        ({"prompt": "none"}, "login_required", "Login required"),
    ],
)
async def test_other_errors_redirect_with_error_and_state(
    idp: Server,
    http: aiohttp.ClientSession,
    override: dict[str, str],
    error: str,
    needle: str,
) -> None:
    _, base_url = idp
    _, challenge = pkce_pair()
    params = {**authorize_params(challenge), **override}
    status, _, location = await _authorize(http, base_url, params)
    assert status == 302 and location is not None
    redirect = URL(location)
    assert str(redirect.with_query(None)) == CALLBACK
    assert redirect.query["error"] == error
    assert needle in redirect.query["error_description"]
    assert redirect.query["state"] == "state-123"
    assert "code" not in redirect.query


async def test_prompt_none_uses_the_login_session(idp: Server, http: aiohttp.ClientSession) -> None:
    _, base_url = idp
    _, challenge = pkce_pair()
    await login(http, base_url, authorize_params(challenge), email="carol@example.com")
    status, _, location = await _authorize(
        http, base_url, authorize_params(challenge, prompt="none", state="silent")
    )
    assert status == 302 and location is not None
    redirect = URL(location)
    assert redirect.query["state"] == "silent"
    assert "code" in redirect.query and "error" not in redirect.query


async def test_unauthorized_grant_for_client_is_reported_by_redirect() -> None:
    restricted = DevIdentityProvider(
        issuer=None,
        users=[],
        clients=[
            IdpClient(
                client_id="m2m",
                client_secret="m2m-secret",
                callback_urls=[CALLBACK],
                grant_types=["client_credentials"],
            )
        ],
        audience="https://pmbot.test/api",
    )
    _, challenge = pkce_pair()
    async with (
        serve(restricted) as base_url,
        aiohttp.ClientSession() as session,
        session.get(
            f"{base_url}/authorize",
            params=authorize_params(challenge, client_id="m2m"),
            allow_redirects=False,
        ) as r,
    ):
        assert r.status == 302
        assert URL(r.headers["Location"]).query["error"] == "unauthorized_client"
