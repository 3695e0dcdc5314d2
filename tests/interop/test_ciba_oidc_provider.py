"""The product's CIBA client (``bot.approvals.ciba.Auth0CibaClient``, unchanged) completes
poll flows against oidc-provider v9 (OpenID-certified, FAPI-CIBA included), run on Node 22.

What the peer shows about the client:
* ``/bc-authorize`` (its ``backchannel_authentication`` route, mapped to Auth0's path)
  accepts auth0-python's form with client_secret_post, the iss_sub login hint and the
  binding message; the answer has no ``interval``, so the client uses CIBA's default of 5.
* The token endpoint accepts only form bodies: auth0-python's own
  ``GetToken.backchannel_login`` (JSON) is refused with ``invalid_request``, which is why
  the client posts the CIBA grant as a form.
* oidc-provider does not emit ``slow_down`` for CIBA (its CIBA grant only answers
  ``authorization_pending``, ``expired_token``, ``access_denied`` and ``invalid_grant``);
  polling faster than the interval is answered ``authorization_pending``. The slow_down
  path is tested against the dev identity provider instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from auth0.authentication import GetToken
from auth0.authentication.exceptions import Auth0Error

from bot.approvals.ciba import DEFAULT_INTERVAL, Auth0CibaClient, CibaFailure, CibaRejected
from bot.approvals.ports import CibaPollState
from bot.identity.auth0 import Auth0Client
from bot.identity.tokens import JwksCache, TokenVerifier
from tests.interop.conftest import OidcPeer

ALICE = "auth0|alice"
BOB = "auth0|bob"


@pytest.fixture
async def client(oidc_peer: OidcPeer) -> AsyncIterator[Auth0CibaClient]:
    auth0 = Auth0Client(
        domain=oidc_peer.domain,
        protocol="http",
        client_id=oidc_peer.client_id,
        client_secret=oidc_peer.client_secret,
        audience="https://pmbot.example.com/api",
        timeout=10,
    )
    async with aiohttp.ClientSession() as http:
        verifier = TokenVerifier(
            jwks=JwksCache(jwks_url=f"{oidc_peer.issuer}.well-known/jwks.json", session=http),
            issuer=oidc_peer.issuer,
            leeway=30,
        )
        ciba = Auth0CibaClient(auth0=auth0, verifier=verifier, issuer=oidc_peer.issuer)
        try:
            yield ciba
        finally:
            ciba.close()
            auth0.close()


async def control(peer: OidcPeer, action: str, auth_req_id: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{peer.control}/{action}", json={"auth_req_id": auth_req_id}) as resp,
    ):
        return resp.status


async def pending(peer: OidcPeer) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{peer.control}/pending") as resp:
        body: list[dict[str, Any]] = await resp.json()
        return body


async def test_pending_then_approved_with_the_sub_checked(
    client: Auth0CibaClient, oidc_peer: OidcPeer
) -> None:
    started = await client.start(
        sub=ALICE, binding_message="Confirm code K4X-92", requested_expiry=120
    )
    assert started.expires_in == 120
    assert started.interval == DEFAULT_INTERVAL  # the peer sends no interval
    waiting = {p["auth_req_id"]: p for p in await pending(oidc_peer)}
    assert waiting[started.auth_req_id]["sub"] == ALICE
    assert waiting[started.auth_req_id]["binding_message"] == "Confirm code K4X-92"

    assert (await client.poll(started.auth_req_id)).state is CibaPollState.PENDING
    assert await control(oidc_peer, "approve", started.auth_req_id) == 200
    granted = await client.poll(started.auth_req_id)
    assert granted.state is CibaPollState.GRANTED
    assert granted.sub == ALICE

    with pytest.raises(CibaRejected) as again:
        await client.poll(started.auth_req_id)
    assert again.value.reason is CibaFailure.GRANT  # consumed: invalid_grant


async def test_denied(client: Auth0CibaClient, oidc_peer: OidcPeer) -> None:
    started = await client.start(sub=BOB, binding_message="Code AB1-23", requested_expiry=60)
    assert (await client.poll(started.auth_req_id)).state is CibaPollState.PENDING
    assert await control(oidc_peer, "deny", started.auth_req_id) == 200
    polled = await client.poll(started.auth_req_id)
    assert polled.state is CibaPollState.DENIED
    assert polled.sub is None


async def test_no_slow_down_from_this_peer(client: Auth0CibaClient) -> None:
    """oidc-provider never answers slow_down to the CIBA grant: three polls in a row,
    far sooner than the 5 s interval, are all authorization_pending."""
    started = await client.start(sub=BOB, binding_message="Code AB1-23", requested_expiry=60)
    states = [(await client.poll(started.auth_req_id)).state for _ in range(3)]
    assert states == [CibaPollState.PENDING] * 3


async def test_expired(client: Auth0CibaClient) -> None:
    started = await client.start(sub=BOB, binding_message="Code AB1-23", requested_expiry=1)
    assert started.expires_in == 1
    await asyncio.sleep(2.2)  # past expires_in: the peer answers expired_token
    assert (await client.poll(started.auth_req_id)).state is CibaPollState.EXPIRED


async def test_unknown_user_and_foreign_issuer(
    client: Auth0CibaClient, oidc_peer: OidcPeer
) -> None:
    with pytest.raises(CibaRejected) as unknown:
        await client.start(sub="auth0|mallory", binding_message="Code AB1-23", requested_expiry=60)
    assert unknown.value.reason is CibaFailure.UNKNOWN_USER
    client._issuer = "https://tenant.example.com/"  # a hint for another tenant
    with pytest.raises(CibaRejected) as foreign:
        await client.start(sub=ALICE, binding_message="Code AB1-23", requested_expiry=60)
    assert foreign.value.reason is CibaFailure.REQUEST


async def test_auth0_pythons_json_token_request_is_refused_by_the_standard_peer(
    client: Auth0CibaClient, oidc_peer: OidcPeer
) -> None:
    """Why the client posts the CIBA grant as a form: the SDK's own call sends JSON."""
    started = await client.start(sub=ALICE, binding_message="Code AB1-23", requested_expiry=60)
    sdk = GetToken(
        oidc_peer.domain,
        oidc_peer.client_id,
        oidc_peer.client_secret,
        protocol="http",
        telemetry=False,
    )
    with pytest.raises(Auth0Error) as refused:
        await asyncio.to_thread(sdk.backchannel_login, started.auth_req_id)
    assert refused.value.status_code == 400
    assert refused.value.error_code == "invalid_request"
    assert "x-www-form-urlencoded" in refused.value.message
    # The same request as a form is answered.
    assert (await client.poll(started.auth_req_id)).state is CibaPollState.PENDING
