"""/oauth/token, /oauth/revoke and /userinfo through the real auth0-python SDK."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import pytest
from auth0.authentication import GetToken, RevokeToken, Users
from auth0.authentication.exceptions import Auth0Error

from sandbox.idp import DevIdentityProvider, OAuthError, TokenRequest, serve
from tests.fakes.idp import (
    AUDIENCE,
    CALLBACK,
    NATIVE_CLIENT,
    WEB_CLIENT,
    authorize_params,
    domain_of,
    get_json,
    login,
    make_provider,
    pkce_pair,
)


@dataclass
class Idp:
    provider: DevIdentityProvider
    base_url: str
    http: aiohttp.ClientSession

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    def get_token(
        self, client_id: str = WEB_CLIENT.client_id, secret: str | None = None
    ) -> GetToken:
        if secret is None and client_id == WEB_CLIENT.client_id:
            secret = WEB_CLIENT.client_secret
        return GetToken(domain_of(self.base_url), client_id, secret, protocol="http")

    async def code(self, challenge: str, **kwargs: Any) -> str:
        email = kwargs.pop("email", "alice@example.com")
        params = authorize_params(challenge, **kwargs)
        callback = await login(self.http, self.base_url, params, email=email)
        return callback.query["code"]

    async def exchange(
        self, code: str, verifier: str, *, redirect_uri: str = CALLBACK, **extra: str
    ) -> dict[str, Any]:
        """The confidential client's code exchange: PKCE verifier plus client secret."""
        data = {
            "client_id": WEB_CLIENT.client_id,
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": redirect_uri,
            **extra,
        }
        body: dict[str, Any] = await asyncio.to_thread(
            self.get_token().authenticated_post, self.token_url, data
        )
        return body

    async def login_tokens(self, **kwargs: Any) -> dict[str, Any]:
        verifier, challenge = pkce_pair()
        return await self.exchange(await self.code(challenge, **kwargs), verifier)

    def decode(self, token: str, audience: str) -> dict[str, Any]:
        """Verify a token with PyJWT's JWKS client against the published keys."""
        jwks = jwt.PyJWKClient(f"{self.base_url}/.well-known/jwks.json")
        key = jwks.get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=audience,
            issuer=f"{self.base_url}/",
        )
        return claims


@pytest.fixture
async def idp() -> AsyncIterator[Idp]:
    provider = make_provider()
    async with serve(provider) as base_url, aiohttp.ClientSession() as http:
        yield Idp(provider, base_url, http)


async def _auth0_error(call: Any, *args: Any) -> Auth0Error:
    with pytest.raises(Auth0Error) as raised:
        await asyncio.to_thread(call, *args)
    return raised.value


async def test_code_exchange_returns_auth0_shaped_tokens(idp: Idp) -> None:
    body = await idp.login_tokens(scope="openid profile email offline_access read:projects")
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "openid profile email offline_access read:projects"
    assert body["refresh_token"]

    access = await asyncio.to_thread(idp.decode, body["access_token"], AUDIENCE)
    assert access["sub"] == "auth0|alice"
    assert access["aud"] == [AUDIENCE, f"{idp.base_url}/userinfo"]
    assert access["azp"] == WEB_CLIENT.client_id
    assert access["permissions"] == [
        "read:projects",
        "write:projects",
        "manage:calendar",
        "manage:projects",
    ]
    assert access["exp"] - access["iat"] == 3600

    id_claims = await asyncio.to_thread(idp.decode, body["id_token"], WEB_CLIENT.client_id)
    assert id_claims["aud"] == WEB_CLIENT.client_id
    assert id_claims["nonce"] == "nonce-abc"
    assert id_claims["email"] == "alice@example.com"
    assert id_claims["email_verified"] is True
    assert id_claims["name"] == "Alice Anders"
    assert id_claims["exp"] - id_claims["iat"] == 600


async def test_api_scopes_are_granted_only_with_the_permission(idp: Idp) -> None:
    body = await idp.login_tokens(
        email="carol@example.com", scope="openid read:projects write:projects"
    )
    assert body["scope"] == "openid read:projects"
    assert "refresh_token" not in body  # no offline_access
    access = await asyncio.to_thread(idp.decode, body["access_token"], AUDIENCE)
    assert access["permissions"] == ["read:projects"]
    assert access["scope"] == "openid read:projects"


async def test_form_encoded_exchange_with_http_basic_client_auth(idp: Idp) -> None:
    verifier, challenge = pkce_pair()
    code = await idp.code(challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": CALLBACK,
    }
    credentials = f"{WEB_CLIENT.client_id}:{WEB_CLIENT.client_secret}".encode()
    basic = {"Authorization": "Basic " + base64.b64encode(credentials).decode()}
    async with idp.http.post(idp.token_url, data=form, headers=basic) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        body = await response.json()
    assert {"access_token", "id_token", "refresh_token"} <= body.keys()


async def test_public_client_uses_authorization_code_pkce_without_secret(idp: Idp) -> None:
    verifier, challenge = pkce_pair()
    code = await idp.code(challenge, client_id=NATIVE_CLIENT.client_id)
    api = idp.get_token(NATIVE_CLIENT.client_id)
    body = await asyncio.to_thread(api.authorization_code_pkce, verifier, code, CALLBACK)
    id_claims = await asyncio.to_thread(idp.decode, body["id_token"], NATIVE_CLIENT.client_id)
    assert id_claims["sub"] == "auth0|alice"


async def test_confidential_client_must_authenticate(idp: Idp) -> None:
    verifier, challenge = pkce_pair()
    code = await idp.code(challenge)
    unauthenticated = idp.get_token()
    error = await _auth0_error(unauthenticated.authorization_code_pkce, verifier, code, CALLBACK)
    assert (error.status_code, error.error_code) == (401, "invalid_client")
    # Client authentication failed before the code was looked at: it still works.
    body = await idp.exchange(code, verifier)
    assert "access_token" in body


async def test_wrong_client_secret_is_access_denied(idp: Idp) -> None:
    verifier, challenge = pkce_pair()
    code = await idp.code(challenge)
    wrong = idp.get_token(WEB_CLIENT.client_id, "not-the-secret")
    error = await _auth0_error(
        wrong.authenticated_post,
        idp.token_url,
        {
            "client_id": WEB_CLIENT.client_id,
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": CALLBACK,
        },
    )
    assert (error.status_code, error.error_code, error.message) == (
        401,
        "access_denied",
        "Unauthorized",
    )
    unknown = idp.get_token("no-such-client", "x")
    error = await _auth0_error(unknown.client_credentials, AUDIENCE)
    assert (error.status_code, error.error_code) == (401, "access_denied")


async def test_wrong_verifier_fails_and_burns_the_code(idp: Idp) -> None:
    verifier, challenge = pkce_pair()
    code = await idp.code(challenge)
    other_verifier, _ = pkce_pair()
    with pytest.raises(Auth0Error) as raised:
        await idp.exchange(code, other_verifier)
    assert (raised.value.status_code, raised.value.error_code) == (403, "invalid_grant")
    assert raised.value.message == "Failed to verify code verifier"
    with pytest.raises(Auth0Error) as raised:
        await idp.exchange(code, verifier)
    assert raised.value.error_code == "invalid_grant"


async def test_missing_verifier_fails(idp: Idp) -> None:
    _, challenge = pkce_pair()
    code = await idp.code(challenge)
    error = await _auth0_error(idp.get_token().authorization_code, code, CALLBACK)
    assert (error.status_code, error.error_code) == (403, "invalid_grant")


async def test_wrong_redirect_uri_fails(idp: Idp) -> None:
    verifier, challenge = pkce_pair()
    code = await idp.code(challenge)
    with pytest.raises(Auth0Error) as raised:
        await idp.exchange(code, verifier, redirect_uri="http://127.0.0.1:9/other")
    assert (raised.value.status_code, raised.value.error_code) == (403, "invalid_grant")
    assert "redirect_uri" in raised.value.message


async def test_code_is_bound_to_its_client(idp: Idp) -> None:
    verifier, challenge = pkce_pair()
    code = await idp.code(challenge)
    native = idp.get_token(NATIVE_CLIENT.client_id)
    error = await _auth0_error(native.authorization_code_pkce, verifier, code, CALLBACK)
    assert (error.status_code, error.error_code) == (403, "invalid_grant")
    assert "access_token" in await idp.exchange(code, verifier)


async def test_replayed_code_fails_and_revokes_what_it_issued(idp: Idp) -> None:
    verifier, challenge = pkce_pair()
    code = await idp.code(challenge)
    first = await idp.exchange(code, verifier)
    users = Users(domain_of(idp.base_url), protocol="http")
    assert (await asyncio.to_thread(users.userinfo, first["access_token"]))["sub"] == "auth0|alice"

    with pytest.raises(Auth0Error) as raised:
        await idp.exchange(code, verifier)
    assert (raised.value.status_code, raised.value.error_code) == (403, "invalid_grant")

    assert first["refresh_token"] in idp.provider.revoked_refresh_tokens()
    error = await _auth0_error(idp.get_token().refresh_token, first["refresh_token"])
    assert error.error_code == "invalid_grant"
    error = await _auth0_error(users.userinfo, first["access_token"])
    assert error.status_code == 401


async def test_refresh_then_revoke(idp: Idp) -> None:
    tokens = await idp.login_tokens()
    api = idp.get_token()
    refreshed = await asyncio.to_thread(api.refresh_token, tokens["refresh_token"])
    assert "refresh_token" not in refreshed  # non-rotating
    assert refreshed["scope"] == tokens["scope"]
    claims = await asyncio.to_thread(idp.decode, refreshed["id_token"], WEB_CLIENT.client_id)
    assert claims["sub"] == "auth0|alice" and "nonce" not in claims

    narrowed = await asyncio.to_thread(api.refresh_token, tokens["refresh_token"], "openid")
    assert narrowed["scope"] == "openid"
    error = await _auth0_error(api.refresh_token, tokens["refresh_token"], "openid delete:all")
    assert error.error_code == "invalid_scope"

    # Another client cannot use (or revoke) it.
    native = idp.get_token(NATIVE_CLIENT.client_id)
    error = await _auth0_error(native.refresh_token, tokens["refresh_token"])
    assert (error.status_code, error.error_code) == (403, "invalid_grant")

    revoker = RevokeToken(
        domain_of(idp.base_url), WEB_CLIENT.client_id, WEB_CLIENT.client_secret, protocol="http"
    )
    assert await asyncio.to_thread(revoker.revoke_refresh_token, tokens["refresh_token"]) == ""
    assert tokens["refresh_token"] in idp.provider.revoked_refresh_tokens()
    error = await _auth0_error(api.refresh_token, tokens["refresh_token"])
    assert (error.status_code, error.error_code) == (403, "invalid_grant")
    assert error.message == "Unknown or invalid refresh token."


async def test_revoke_requires_client_authentication(idp: Idp) -> None:
    tokens = await idp.login_tokens()
    wrong = RevokeToken(domain_of(idp.base_url), WEB_CLIENT.client_id, "bad", protocol="http")
    error = await _auth0_error(wrong.revoke_refresh_token, tokens["refresh_token"])
    assert error.status_code == 401
    native = RevokeToken(domain_of(idp.base_url), NATIVE_CLIENT.client_id, protocol="http")
    await asyncio.to_thread(native.revoke_refresh_token, tokens["refresh_token"])  # 200, no-op
    assert idp.provider.revoked_refresh_tokens() == set()
    refreshed = await asyncio.to_thread(idp.get_token().refresh_token, tokens["refresh_token"])
    assert "access_token" in refreshed


async def test_client_credentials(idp: Idp) -> None:
    body = await asyncio.to_thread(idp.get_token().client_credentials, AUDIENCE)
    claims = await asyncio.to_thread(idp.decode, body["access_token"], AUDIENCE)
    assert claims["sub"] == f"{WEB_CLIENT.client_id}@clients"
    assert claims["gty"] == "client-credentials"
    assert "id_token" not in body and "refresh_token" not in body

    error = await _auth0_error(idp.get_token().client_credentials, "https://other.example/")
    assert (error.status_code, error.error_code) == (403, "access_denied")
    native = idp.get_token(NATIVE_CLIENT.client_id)
    error = await _auth0_error(native.client_credentials, AUDIENCE)
    assert (error.status_code, error.error_code) == (403, "unauthorized_client")


async def test_userinfo(idp: Idp) -> None:
    tokens = await idp.login_tokens(email="bob@example.com")
    users = Users(domain_of(idp.base_url), protocol="http")
    info = await asyncio.to_thread(users.userinfo, tokens["access_token"])
    assert info == {
        "sub": "auth0|bob",
        "name": "Bob Brown",
        "nickname": "bob",
        "email": "bob@example.com",
        "email_verified": True,
    }
    error = await _auth0_error(users.userinfo, tokens["id_token"])  # wrong audience
    assert error.status_code == 401
    m2m = await asyncio.to_thread(idp.get_token().client_credentials, AUDIENCE)
    error = await _auth0_error(users.userinfo, m2m["access_token"])
    assert error.status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"client_id": "pmbot-web", "client_secret": "web-secret"}, 400, "invalid_request"),
        ({"grant_type": "password", "client_id": "pmbot-web"}, 400, "unsupported_grant_type"),
        ({"grant_type": "authorization_code"}, 400, "invalid_request"),
        (
            {"grant_type": "authorization_code", "client_id": "pmbot-web", "client_secret": "x"},
            401,
            "access_denied",
        ),
        (
            {
                "grant_type": "authorization_code",
                "client_id": "pmbot-web",
                "client_secret": "web-secret",
            },
            400,
            "invalid_request",
        ),
        (
            {
                "grant_type": "authorization_code",
                "client_id": "pmbot-web",
                "client_secret": "web-secret",
                "code": "made-up",
            },
            403,
            "invalid_grant",
        ),
        ({"grant_type": ["authorization_code"]}, 400, "invalid_request"),
    ],
)
async def test_token_endpoint_errors(
    idp: Idp, body: dict[str, Any], status: int, error: str
) -> None:
    async with idp.http.post(idp.token_url, json=body) as response:
        payload = await response.json()
    assert response.status == status
    assert payload["error"] == error
    assert isinstance(payload["error_description"], str) and payload["error_description"]


async def test_registered_grant_is_dispatched_and_advertised(idp: Idp) -> None:
    grant_type = "urn:example:params:grant-type:test"

    async def handler(req: TokenRequest) -> dict[str, Any]:
        if req.params.get("ok") != "yes":
            raise OAuthError(400, "invalid_request", "ok must be yes")
        return {"client": req.client.client_id}

    idp.provider.register_grant(grant_type, handler)
    _, doc = await get_json(f"{idp.base_url}/.well-known/openid-configuration")
    assert grant_type in doc["grant_types_supported"]
    api = idp.get_token()
    data = {"client_id": WEB_CLIENT.client_id, "grant_type": grant_type}
    assert await asyncio.to_thread(
        api.authenticated_post, idp.token_url, {**data, "ok": "yes"}
    ) == {"client": WEB_CLIENT.client_id}
    error = await _auth0_error(api.authenticated_post, idp.token_url, data)
    assert error.message == "ok must be yes"
    native = idp.get_token(NATIVE_CLIENT.client_id)
    error = await _auth0_error(
        native.post, idp.token_url, {"client_id": NATIVE_CLIENT.client_id, "grant_type": grant_type}
    )
    assert error.error_code == "unauthorized_client"
