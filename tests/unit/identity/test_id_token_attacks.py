"""Forged and broken ID tokens against the real linking service.

A small Auth0-shaped token endpoint on 127.0.0.1 hands out whatever ID token the test
forges (the "evil tenant"); the real ``IdentityService`` must refuse each one and write
nothing.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import func, select

from authz.factory import AuthzConfig, open_authorizer
from bot.errors import ServiceUnavailable
from bot.identity.auth0 import Auth0Client
from bot.identity.crypto import TokenCipher
from bot.identity.model import LinkFailed, LinkFailure, Membership
from bot.identity.service import IdentityService
from bot.identity.tokens import JwksCache, TokenVerifier
from bot.storage.db import Database
from bot.storage.models import SlackLink
from tests.support import start_site

CLIENT_ID = "pmbot-client"
AUDIENCE = "https://pmbot.test/api"
KEYS = "k1:" + base64.b64encode(b"x" * 32).decode()


@dataclass
class EvilTenant:
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    kid: str = "good-kid"
    id_token: str = ""
    jwks_hits: int = 0
    token_status: int = 200
    jwks_status: int = 200
    base_url: str = ""

    @property
    def issuer(self) -> str:
        return self.base_url + "/"

    def public_jwk(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="RS256")
        return dict(jwk)

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid, **header})

    def claims(self, expected_nonce: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "iss": self.issuer,
            "sub": "auth0|mallory",
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 600,
            "nonce": expected_nonce,
            "email": "mallory@example.com",
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def app(self) -> web.Application:
        async def jwks(_: web.Request) -> web.Response:
            self.jwks_hits += 1
            if self.jwks_status != 200:
                return web.json_response({"error": "unavailable"}, status=self.jwks_status)
            return web.json_response({"keys": [self.public_jwk()]})

        async def token(_: web.Request) -> web.Response:
            if self.token_status != 200:
                return web.json_response({"error": "server_error"}, status=self.token_status)
            return web.json_response(
                {
                    "access_token": "opaque",
                    "id_token": self.id_token,
                    "expires_in": 3600,
                    "token_type": "Bearer",
                }
            )

        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", jwks)
        app.router.add_post("/oauth/token", token)
        return app


class MembersOnly:
    """Slack's answer for everyone: a full member of the workspace."""

    async def membership(self, team_id: str, slack_user_id: str) -> Membership:
        return Membership.MEMBER


@dataclass
class Setup:
    tenant: EvilTenant
    service: IdentityService
    db: Database


@pytest.fixture
async def setup(sqlite_url: str) -> AsyncIterator[Setup]:
    tenant = EvilTenant()
    runner, url = await start_site(tenant.app())
    tenant.base_url = url
    db = Database(sqlite_url)
    auth0 = Auth0Client(
        domain=url.removeprefix("http://"),
        protocol="http",
        client_id=CLIENT_ID,
        client_secret="s3cret",
        audience=AUDIENCE,
        timeout=5,
    )
    try:
        async with (
            aiohttp.ClientSession() as http,
            open_authorizer(AuthzConfig(), engine=db.engine) as authorizer,
        ):
            verifier = TokenVerifier(
                jwks=JwksCache(jwks_url=f"{url}/.well-known/jwks.json", session=http),
                issuer=tenant.issuer,
                leeway=0,
            )
            service = IdentityService(
                db=db,
                auth0=auth0,
                verifier=verifier,
                cipher=TokenCipher(KEYS),
                authorizer=authorizer,
                directory=MembersOnly(),
                callback_url="http://127.0.0.1:9/auth/callback",
                link_base_url="http://127.0.0.1:9",
                link_ttl=timedelta(minutes=10),
            )
            yield Setup(tenant, service, db)
    finally:
        auth0.close()
        await db.dispose()
        await runner.cleanup()


async def _nonce_and_state(service: IdentityService, user: str = "U0ALICE") -> tuple[str, str, str]:
    url = await service.start_link("T1", user)
    state = url.rsplit("/", 1)[1]
    nonce, binding = await _begin(service, state)
    return state, nonce, binding


async def _begin(service: IdentityService, state: str) -> tuple[str, str]:
    start = await service.begin_login(state)
    query = dict(part.split("=", 1) for part in start.authorize_url.split("?", 1)[1].split("&"))
    assert query["prompt"] == "login"
    return query["nonce"], start.browser_binding


async def _links(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(SlackLink)) or 0)


def _forge(tenant: EvilTenant, case: str, nonce: str) -> str:
    if case == "wrong_iss":
        return tenant.sign(tenant.claims(nonce, iss="https://evil.example.com/"))
    if case == "iss_without_slash":
        return tenant.sign(tenant.claims(nonce, iss=tenant.issuer.rstrip("/")))
    if case == "wrong_aud":
        return tenant.sign(tenant.claims(nonce, aud="someone-else"))
    if case == "wrong_nonce":
        return tenant.sign(tenant.claims("not-the-nonce"))
    if case == "missing_nonce":
        return tenant.sign(tenant.claims(nonce, nonce=None))
    if case == "expired":
        return tenant.sign(
            tenant.claims(nonce, exp=int(time.time()) - 10, iat=int(time.time()) - 700)
        )
    if case == "alg_none":
        header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": tenant.kid}).encode())
        body = base64.urlsafe_b64encode(json.dumps(tenant.claims(nonce)).encode())
        return f"{header.decode().rstrip('=')}.{body.decode().rstrip('=')}."
    if case == "hs256_with_public_key":
        pem = tenant.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return _hs256(tenant.claims(nonce), pem, tenant.kid)
    if case == "tampered_signature":
        token = tenant.sign(tenant.claims(nonce))
        head, body, sig = token.split(".")
        flipped = "A" if sig[10] != "A" else "B"
        return f"{head}.{body}.{sig[:10]}{flipped}{sig[11:]}"
    if case == "tampered_claims":
        token = tenant.sign(tenant.claims(nonce))
        head, _, sig = token.split(".")
        forged = tenant.claims(nonce, sub="auth0|alice")
        body = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
        return f"{head}.{body}.{sig}"
    if case == "unknown_kid":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(tenant.claims(nonce), other, algorithm="RS256", headers={"kid": "rogue"})
    if case == "other_key_same_kid":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(
            tenant.claims(nonce), other, algorithm="RS256", headers={"kid": tenant.kid}
        )
    if case == "garbage":
        return "not.a.jwt"
    raise AssertionError(case)


def _hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


ATTACKS = [
    "wrong_iss",
    "iss_without_slash",
    "wrong_aud",
    "wrong_nonce",
    "missing_nonce",
    "expired",
    "alg_none",
    "hs256_with_public_key",
    "tampered_signature",
    "tampered_claims",
    "unknown_kid",
    "other_key_same_kid",
    "garbage",
]


@pytest.mark.parametrize("case", ATTACKS)
async def test_forged_id_tokens_are_refused_and_nothing_is_linked(setup: Setup, case: str) -> None:
    state, nonce, binding = await _nonce_and_state(setup.service)
    setup.tenant.id_token = _forge(setup.tenant, case, nonce)
    with pytest.raises(LinkFailed) as info:
        await setup.service.complete_login(state=state, code="c", browser_binding=binding)
    assert info.value.reason is LinkFailure.ID_TOKEN_INVALID
    assert await _links(setup.db) == 0
    assert await setup.service.lookup("T1", "U0ALICE") is None


async def test_a_valid_token_links(setup: Setup) -> None:
    state, nonce, binding = await _nonce_and_state(setup.service)
    setup.tenant.id_token = setup.tenant.sign(setup.tenant.claims(nonce))
    verified = await setup.service.complete_login(state=state, code="c", browser_binding=binding)
    assert verified.sub == "auth0|mallory"
    assert await _links(setup.db) == 0  # nothing is linked before the Slack confirmation
    identity = await setup.service.confirm_link(
        request_id=state, team_id="T1", slack_user_id="U0ALICE"
    )
    assert identity.sub == "auth0|mallory"
    assert await _links(setup.db) == 1


async def test_unknown_kids_refetch_the_jwks_at_most_once_a_minute(setup: Setup) -> None:
    for _ in range(3):
        state, nonce, binding = await _nonce_and_state(setup.service)
        setup.tenant.id_token = _forge(setup.tenant, "unknown_kid", nonce)
        with pytest.raises(LinkFailed):
            await setup.service.complete_login(state=state, code="c", browser_binding=binding)
    assert setup.tenant.jwks_hits == 1


async def test_auth0_down_at_the_exchange_writes_nothing(setup: Setup) -> None:
    state, _nonce, binding = await _nonce_and_state(setup.service)
    setup.tenant.token_status = 503
    with pytest.raises(ServiceUnavailable):
        await setup.service.complete_login(state=state, code="c", browser_binding=binding)
    assert await _links(setup.db) == 0


async def test_a_jwks_outage_reads_as_an_outage_and_does_not_burn_the_link(setup: Setup) -> None:
    """While Auth0's JWKS is down a valid login is "Auth0 unavailable", not a forged token;
    the same link can be opened again, and works as soon as the JWKS is back (a failed
    fetch does not hold back the next one for a minute)."""
    state, nonce, binding = await _nonce_and_state(setup.service)
    setup.tenant.id_token = setup.tenant.sign(setup.tenant.claims(nonce))
    setup.tenant.jwks_status = 503
    with pytest.raises(ServiceUnavailable):
        await setup.service.complete_login(state=state, code="c", browser_binding=binding)
    setup.tenant.jwks_status = 200
    new_nonce, new_binding = await _begin(setup.service, state)
    assert new_nonce != nonce and new_binding != binding
    setup.tenant.id_token = setup.tenant.sign(setup.tenant.claims(new_nonce))
    verified = await setup.service.complete_login(
        state=state, code="c", browser_binding=new_binding
    )
    assert verified.sub == "auth0|mallory"
    assert setup.tenant.jwks_hits == 2


async def test_the_old_nonce_is_refused_after_an_outage(setup: Setup) -> None:
    state, nonce, binding = await _nonce_and_state(setup.service)
    setup.tenant.token_status = 503
    with pytest.raises(ServiceUnavailable):
        await setup.service.complete_login(state=state, code="c", browser_binding=binding)
    setup.tenant.token_status = 200
    _new_nonce, new_binding = await _begin(setup.service, state)
    setup.tenant.id_token = setup.tenant.sign(setup.tenant.claims(nonce))
    with pytest.raises(LinkFailed) as info:
        await setup.service.complete_login(state=state, code="c", browser_binding=new_binding)
    assert info.value.reason is LinkFailure.ID_TOKEN_INVALID
