"""Discovery, JWKS, key rotation, issuer and availability of the dev identity provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import jwt
import pytest
from aiohttp import web
from auth0.authentication import GetToken
from auth0.authentication.async_token_verifier import (
    AsyncAsymmetricSignatureVerifier,
    AsyncJwksFetcher,
    AsyncTokenVerifier,
)
from auth0.authentication.exceptions import Auth0Error, TokenValidationError
from auth0.authentication.token_verifier import (
    AsymmetricSignatureVerifier,
    JwksFetcher,
    TokenVerifier,
)

from sandbox.idp import DevIdentityProvider, serve
from tests.fakes.idp import (
    AUDIENCE,
    WEB_CLIENT,
    authorize_params,
    domain_of,
    get_json,
    login,
    make_provider,
    pkce_pair,
)

Server = tuple[DevIdentityProvider, str]


@pytest.fixture
async def idp() -> AsyncIterator[Server]:
    provider = make_provider()
    async with serve(provider) as base_url:
        yield provider, base_url


async def _id_token(http: aiohttp.ClientSession, base_url: str) -> str:
    verifier, challenge = pkce_pair()
    callback = await login(http, base_url, authorize_params(challenge))
    token_api = GetToken(
        domain_of(base_url), WEB_CLIENT.client_id, WEB_CLIENT.client_secret, protocol="http"
    )
    body = await asyncio.to_thread(
        token_api.authenticated_post,
        f"{base_url}/oauth/token",
        {
            "client_id": WEB_CLIENT.client_id,
            "grant_type": "authorization_code",
            "code": callback.query["code"],
            "code_verifier": verifier,
            "redirect_uri": authorize_params(challenge)["redirect_uri"],
        },
    )
    token: str = body["id_token"]
    return token


async def test_discovery_document_matches_issuer_and_endpoints(idp: Server) -> None:
    provider, base_url = idp
    status, doc = await get_json(f"{base_url}/.well-known/openid-configuration")
    assert status == 200
    assert doc["issuer"] == f"{base_url}/" == provider.issuer
    assert doc["authorization_endpoint"] == f"{base_url}/authorize"
    assert doc["token_endpoint"] == f"{base_url}/oauth/token"
    assert doc["jwks_uri"] == f"{base_url}/.well-known/jwks.json"
    assert doc["userinfo_endpoint"] == f"{base_url}/userinfo"
    assert doc["revocation_endpoint"] == f"{base_url}/oauth/revoke"
    assert doc["backchannel_authentication_endpoint"] == f"{base_url}/bc-authorize"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert set(doc["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:openid:params:grant-type:ciba",
    }


async def test_jwks_publishes_rs256_signing_keys(idp: Server) -> None:
    provider, base_url = idp
    _, jwks = await get_json(f"{base_url}/.well-known/jwks.json")
    [key] = jwks["keys"]
    assert key["kid"] == provider.active_kid
    assert (key["kty"], key["use"], key["alg"], key["e"]) == ("RSA", "sig", "RS256", "AQAB")
    assert len(jwt.utils.base64url_decode(key["n"])) == 256  # 2048-bit modulus


async def test_issuer_is_taken_from_the_first_request_when_not_set() -> None:
    provider = make_provider()
    runner = web.AppRunner(provider.app())
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        _, doc = await get_json(f"http://127.0.0.1:{port}/.well-known/openid-configuration")
    finally:
        await runner.cleanup()
    assert doc["issuer"] == f"http://127.0.0.1:{port}/" == provider.issuer


def test_set_issuer_adds_the_trailing_slash() -> None:
    provider = make_provider(issuer="http://idp.local:5556")
    assert provider.issuer == "http://idp.local:5556/"
    provider.set_issuer("http://127.0.0.1:7000")
    assert provider.issuer == "http://127.0.0.1:7000/"


async def test_id_token_verifies_with_auth0_sync_and_async_verifiers(idp: Server) -> None:
    provider, base_url = idp
    jwks_url = f"{base_url}/.well-known/jwks.json"
    async with aiohttp.ClientSession() as http:
        id_token = await _id_token(http, base_url)
        signature = AsyncAsymmetricSignatureVerifier(jwks_url)
        verifier = AsyncTokenVerifier(
            signature_verifier=signature, issuer=f"{base_url}/", audience=WEB_CLIENT.client_id
        )
        verifier.set_session(http)
        claims = await verifier.verify(id_token, nonce="nonce-abc")
    assert claims["sub"] == "auth0|alice"
    sync_verifier = TokenVerifier(
        signature_verifier=AsymmetricSignatureVerifier(jwks_url),
        issuer=f"{base_url}/",
        audience=WEB_CLIENT.client_id,
    )
    sync_claims = await asyncio.to_thread(sync_verifier.verify, id_token, "nonce-abc")
    assert sync_claims == claims
    with pytest.raises(TokenValidationError, match="Nonce"):
        await asyncio.to_thread(sync_verifier.verify, id_token, "another-nonce")
    with pytest.raises(TokenValidationError, match="Issuer"):
        wrong_issuer = TokenVerifier(
            signature_verifier=AsymmetricSignatureVerifier(jwks_url),
            issuer=f"https://{domain_of(base_url)}/",
            audience=WEB_CLIENT.client_id,
        )
        await asyncio.to_thread(wrong_issuer.verify, id_token, "nonce-abc")
    assert provider.issuer == f"{base_url}/"


async def test_key_rotation_keeps_old_kid_until_retired(idp: Server) -> None:
    provider, base_url = idp
    jwks_url = f"{base_url}/.well-known/jwks.json"
    async with aiohttp.ClientSession() as http:
        old_token = await _id_token(http, base_url)
        old_kid = jwt.get_unverified_header(old_token)["kid"]
        new_kid = provider.rotate_keys()
        assert new_kid != old_kid
        new_token = await _id_token(http, base_url)
        assert jwt.get_unverified_header(new_token)["kid"] == new_kid

        # Both keys are published: a verifier that cached only the old key refetches
        # for the new kid, and the old token still verifies.
        fetcher = AsyncJwksFetcher(jwks_url)
        fetcher.set_session(http)
        for token in (old_token, new_token):
            kid = jwt.get_unverified_header(token)["kid"]
            key = await fetcher.get_key(kid)
            jwt.decode(token, key, algorithms=["RS256"], audience=WEB_CLIENT.client_id)

        with pytest.raises(ValueError, match="rotate first"):
            provider.retire_key(new_kid)
        provider.retire_key(old_kid)
        with pytest.raises(KeyError):
            provider.retire_key(old_kid)

        async with http.get(jwks_url) as response:
            kids = [key["kid"] for key in (await response.json())["keys"]]
    assert kids == [new_kid]
    fresh = JwksFetcher(jwks_url)
    with pytest.raises(TokenValidationError, match="was not found"):
        await asyncio.to_thread(fresh.get_key, old_kid)
    key = await asyncio.to_thread(fresh.get_key, new_kid)
    assert jwt.decode(new_token, key, algorithms=["RS256"], audience=WEB_CLIENT.client_id)


async def test_unavailable_provider_answers_503_everywhere(idp: Server) -> None:
    provider, base_url = idp
    provider.set_unavailable(True)
    async with aiohttp.ClientSession() as http:
        for path in ("/.well-known/openid-configuration", "/.well-known/jwks.json", "/authorize"):
            async with http.get(f"{base_url}{path}", allow_redirects=False) as response:
                assert response.status == 503
    token_api = GetToken(
        domain_of(base_url), WEB_CLIENT.client_id, WEB_CLIENT.client_secret, protocol="http"
    )
    with pytest.raises(Auth0Error) as raised:
        await asyncio.to_thread(token_api.client_credentials, AUDIENCE)
    assert (raised.value.status_code, raised.value.error_code) == (503, "temporarily_unavailable")

    provider.set_unavailable(False)
    body = await asyncio.to_thread(token_api.client_credentials, AUDIENCE)
    assert body["token_type"] == "Bearer"


async def test_id_token_lifetime_is_configurable() -> None:
    provider = make_provider(id_token_ttl=-5)  # already expired when issued
    async with serve(provider) as base_url, aiohttp.ClientSession() as http:
        id_token = await _id_token(http, base_url)
        verifier = TokenVerifier(
            signature_verifier=AsymmetricSignatureVerifier(f"{base_url}/.well-known/jwks.json"),
            issuer=f"{base_url}/",
            audience=WEB_CLIENT.client_id,
        )
        with pytest.raises(TokenValidationError, match="Expiration Time"):
            await asyncio.to_thread(verifier.verify, id_token, "nonce-abc")
    claims = jwt.decode(id_token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == -5
