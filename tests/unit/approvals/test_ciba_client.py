"""The CIBA client (``bot.approvals.ciba``) against the dev identity provider over HTTP:
the real auth0-python calls, the provider's real ``/bc-authorize`` and CIBA grant."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from bot.approvals.ciba import (
    MAX_REQUESTED_EXPIRY,
    Auth0CibaClient,
    CibaFailure,
    CibaRejected,
    login_hint,
    valid_binding_message,
)
from bot.approvals.ports import CibaPollState
from bot.errors import ServiceUnavailable
from bot.identity.auth0 import Auth0Client
from bot.identity.tokens import JwksCache, TokenVerifier
from sandbox.idp import DevIdentityProvider, serve
from tests.fakes.idp import AUDIENCE, WEB_CLIENT, domain_of, make_provider
from tests.support import start_site

ALICE = "auth0|alice"
BOB = "auth0|bob"


@asynccontextmanager
async def site(app: web.Application) -> AsyncIterator[str]:
    runner, base_url = await start_site(app)
    try:
        yield base_url
    finally:
        await runner.cleanup()


@dataclass
class Ciba:
    provider: DevIdentityProvider
    base_url: str
    client: Auth0CibaClient
    jwks: JwksCache


def build_client(
    base_url: str, http: aiohttp.ClientSession, *, secret: str = WEB_CLIENT.client_secret
) -> tuple[Auth0CibaClient, JwksCache, Auth0Client]:
    auth0 = Auth0Client(
        domain=domain_of(base_url),
        protocol="http",
        client_id=WEB_CLIENT.client_id,
        client_secret=secret,
        audience=AUDIENCE,
        timeout=5,
    )
    jwks = JwksCache(jwks_url=f"{base_url}/.well-known/jwks.json", session=http)
    verifier = TokenVerifier(jwks=jwks, issuer=base_url + "/", leeway=30)
    return Auth0CibaClient(auth0=auth0, verifier=verifier, issuer=base_url + "/"), jwks, auth0


@pytest.fixture
async def ciba() -> AsyncIterator[Ciba]:
    provider = make_provider()
    provider.ciba.interval = 0  # no slow_down unless a test asks for it
    async with serve(provider) as base_url, aiohttp.ClientSession() as http:
        client, jwks, auth0 = build_client(base_url, http)
        try:
            yield Ciba(provider=provider, base_url=base_url, client=client, jwks=jwks)
        finally:
            client.close()
            auth0.close()


async def test_happy_path_pending_then_granted_with_the_approvers_sub(ciba: Ciba) -> None:
    started = await ciba.client.start(
        sub=ALICE, binding_message="Confirm code K4X-92", requested_expiry=120
    )
    assert started.expires_in == 120
    assert started.interval == 1  # the provider says 0: never poll in a tight loop
    record = ciba.provider.ciba.get(started.auth_req_id)
    assert record is not None
    assert record.sub == ALICE
    assert record.binding_message == "Confirm code K4X-92"

    first = await ciba.client.poll(started.auth_req_id)
    assert first.state is CibaPollState.PENDING
    assert first.sub is None

    assert ciba.provider.ciba.approve(started.auth_req_id)
    granted = await ciba.client.poll(started.auth_req_id)
    assert granted.state is CibaPollState.GRANTED
    assert granted.sub == ALICE

    # A grant is redeemed once: the same auth_req_id is refused afterwards.
    with pytest.raises(CibaRejected) as again:
        await ciba.client.poll(started.auth_req_id)
    assert again.value.reason is CibaFailure.GRANT
    assert again.value.error == "invalid_grant"


async def test_denial_is_a_state(ciba: Ciba) -> None:
    started = await ciba.client.start(sub=BOB, binding_message="Code AB1-23", requested_expiry=60)
    assert ciba.provider.ciba.deny(started.auth_req_id)
    assert not ciba.provider.ciba.approve(started.auth_req_id), "a denied request stays denied"
    polled = await ciba.client.poll(started.auth_req_id)
    assert polled.state is CibaPollState.DENIED
    assert polled.sub is None


async def test_expiry_is_a_state(ciba: Ciba) -> None:
    started = await ciba.client.start(sub=BOB, binding_message="Code AB1-23", requested_expiry=60)
    ciba.provider.ciba.expire(started.auth_req_id)
    assert not ciba.provider.ciba.approve(started.auth_req_id), "too late to approve"
    polled = await ciba.client.poll(started.auth_req_id)
    assert polled.state is CibaPollState.EXPIRED


async def test_requested_expiry_is_capped_at_auth0s_limit(ciba: Ciba) -> None:
    started = await ciba.client.start(
        sub=BOB, binding_message="Code AB1-23", requested_expiry=10 * 60
    )
    assert started.expires_in == MAX_REQUESTED_EXPIRY


async def test_slow_down_grows_the_interval_by_five_seconds(ciba: Ciba) -> None:
    ciba.provider.ciba.interval = 5
    started = await ciba.client.start(sub=BOB, binding_message="Code AB1-23", requested_expiry=60)
    assert started.interval == 5
    assert (await ciba.client.poll(started.auth_req_id)).state is CibaPollState.PENDING
    # Polled again at once, sooner than the interval: slow_down, and the interval grows.
    assert (await ciba.client.poll(started.auth_req_id)).state is CibaPollState.SLOW_DOWN
    record = ciba.provider.ciba.get(started.auth_req_id)
    assert record is not None
    assert record.interval == 10
    assert (await ciba.client.poll(started.auth_req_id)).state is CibaPollState.SLOW_DOWN
    assert record.interval == 15


async def test_an_id_token_for_another_sub_is_reported_with_that_sub(ciba: Ciba) -> None:
    """The provider grants with a token for bob on a request made for alice: the client
    reports bob, and the approvals service (which compares) refuses it."""
    started = await ciba.client.start(sub=ALICE, binding_message="Code AB1-23", requested_expiry=60)
    assert ciba.provider.ciba.approve(started.auth_req_id, as_sub=BOB)
    polled = await ciba.client.poll(started.auth_req_id)
    assert polled.state is CibaPollState.GRANTED
    assert polled.sub == BOB


async def test_unknown_user_is_refused(ciba: Ciba) -> None:
    with pytest.raises(CibaRejected) as refused:
        await ciba.client.start(
            sub="auth0|nobody", binding_message="Code AB1-23", requested_expiry=60
        )
    assert refused.value.reason is CibaFailure.UNKNOWN_USER
    assert refused.value.error == "unknown_user_id"
    assert ciba.provider.ciba.requests() == []


async def test_wrong_issuer_in_the_login_hint_is_refused(ciba: Ciba) -> None:
    async with aiohttp.ClientSession() as http:
        client, _, auth0 = build_client(ciba.base_url, http)
        client._issuer = "https://evil.example.com/"  # a client configured for another tenant
        try:
            with pytest.raises(CibaRejected) as refused:
                await client.start(sub=ALICE, binding_message="Code AB1-23", requested_expiry=60)
        finally:
            client.close()
            auth0.close()
    assert refused.value.reason is CibaFailure.REQUEST
    assert refused.value.error == "invalid_request"
    assert ciba.provider.ciba.requests() == []


@pytest.mark.parametrize(
    "message",
    [
        "x" * 65,
        "Approve <script>",
        "Code: K4X-92 ✓",
        "line\nbreak",
        " leading space",
        "trailing space ",
        "",
        "semi;colon",
    ],
)
async def test_bad_binding_messages_are_refused_before_sending(ciba: Ciba, message: str) -> None:
    assert not valid_binding_message(message)
    with pytest.raises(CibaRejected) as refused:
        await ciba.client.start(sub=ALICE, binding_message=message, requested_expiry=60)
    assert refused.value.reason is CibaFailure.BINDING_MESSAGE
    assert ciba.provider.ciba.requests() == []


@pytest.mark.parametrize(
    "message", ["x" * 64, "Confirm code K4X-92", "Delete project Apollo #12, ok: +1_a.b"]
)
def test_good_binding_messages(message: str) -> None:
    assert valid_binding_message(message)


async def test_scope_without_openid_is_refused(ciba: Ciba) -> None:
    with pytest.raises(CibaRejected) as refused:
        await ciba.client.start(
            sub=ALICE, binding_message="Code AB1-23", requested_expiry=60, scope="profile"
        )
    assert refused.value.reason is CibaFailure.REQUEST


async def test_login_hint_is_json_whatever_the_sub() -> None:
    import json

    hint = login_hint(issuer="https://t.example.com/", sub='auth0|a"b\\c')
    assert json.loads(hint) == {
        "format": "iss_sub",
        "iss": "https://t.example.com/",
        "sub": 'auth0|a"b\\c',
    }


async def test_provider_down_is_service_unavailable(ciba: Ciba) -> None:
    started = await ciba.client.start(sub=BOB, binding_message="Code AB1-23", requested_expiry=60)
    ciba.provider.set_unavailable(True)
    with pytest.raises(ServiceUnavailable):
        await ciba.client.start(sub=BOB, binding_message="Code AB1-23", requested_expiry=60)
    with pytest.raises(ServiceUnavailable):
        await ciba.client.poll(started.auth_req_id)
    ciba.provider.set_unavailable(False)
    assert (await ciba.client.poll(started.auth_req_id)).state is CibaPollState.PENDING


async def test_provider_unreachable_is_service_unavailable() -> None:
    # A port that was bound a moment ago and is closed now: nothing listens there.
    provider = make_provider()
    async with serve(provider) as base_url:
        pass
    async with aiohttp.ClientSession() as http:
        client, _, auth0 = build_client(base_url, http)
        try:
            with pytest.raises(ServiceUnavailable):
                await client.start(sub=BOB, binding_message="Code AB1-23", requested_expiry=60)
            with pytest.raises(ServiceUnavailable):
                await client.poll("some-auth-req-id")
        finally:
            client.close()
            auth0.close()


async def test_rate_limited_without_a_ciba_error_is_service_unavailable() -> None:
    async def too_many(_request: web.Request) -> web.Response:
        return web.json_response({"error": "too_many_requests"}, status=429)

    app = web.Application()
    app.router.add_post("/bc-authorize", too_many)
    app.router.add_post("/oauth/token", too_many)
    async with site(app) as base_url, aiohttp.ClientSession() as http:
        client, _, auth0 = build_client(base_url, http)
        try:
            with pytest.raises(ServiceUnavailable):
                await client.start(sub=BOB, binding_message="Code AB1-23", requested_expiry=60)
            with pytest.raises(ServiceUnavailable):
                await client.poll("some-auth-req-id")
        finally:
            client.close()
            auth0.close()


async def test_slow_provider_still_answers(ciba: Ciba) -> None:
    ciba.provider.ciba.set_delay(0.2)
    started = await ciba.client.start(sub=BOB, binding_message="Code AB1-23", requested_expiry=60)
    assert (await ciba.client.poll(started.auth_req_id)).state is CibaPollState.PENDING


async def test_wrong_client_secret_is_a_client_error_not_a_denial(ciba: Ciba) -> None:
    started = await ciba.client.start(sub=BOB, binding_message="Code AB1-23", requested_expiry=60)
    async with aiohttp.ClientSession() as http:
        client, _, auth0 = build_client(ciba.base_url, http, secret="wrong")
        try:
            with pytest.raises(CibaRejected) as at_start:
                await client.start(sub=BOB, binding_message="Code AB1-23", requested_expiry=60)
            with pytest.raises(CibaRejected) as at_poll:
                await client.poll(started.auth_req_id)
        finally:
            client.close()
            auth0.close()
    assert at_start.value.reason is CibaFailure.CLIENT
    assert at_poll.value.reason is CibaFailure.CLIENT


async def test_a_forged_id_token_is_refused() -> None:
    """A token endpoint that grants with an ID token signed by a key the JWKS does not
    publish: the client refuses the grant instead of reporting its sub."""
    forger = make_provider()
    honest = make_provider()
    async with serve(forger) as forged_url, serve(honest) as base_url:
        honest_issuer = base_url + "/"
        forger.set_issuer(honest_issuer)  # the forged token claims the honest issuer
        forger.ciba.interval = 0

        async def relay_jwks(_request: web.Request) -> web.Response:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{base_url}/.well-known/jwks.json") as resp,
            ):
                return web.json_response(await resp.json())

        # The client talks to the forger for everything but the JWKS, which is the honest
        # tenant's: the forger's signing key is not in it.
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", relay_jwks)
        async with site(app) as jwks_url, aiohttp.ClientSession() as http:
            auth0 = Auth0Client(
                domain=domain_of(forged_url),
                protocol="http",
                client_id=WEB_CLIENT.client_id,
                client_secret=WEB_CLIENT.client_secret,
                audience=AUDIENCE,
                timeout=5,
            )
            verifier = TokenVerifier(
                jwks=JwksCache(jwks_url=f"{jwks_url}/.well-known/jwks.json", session=http),
                issuer=honest_issuer,
                leeway=30,
            )
            client = Auth0CibaClient(auth0=auth0, verifier=verifier, issuer=honest_issuer)
            try:
                started = await client.start(
                    sub=ALICE, binding_message="Code AB1-23", requested_expiry=60
                )
                assert forger.ciba.approve(started.auth_req_id)
                with pytest.raises(CibaRejected) as refused:
                    await client.poll(started.auth_req_id)
            finally:
                client.close()
                auth0.close()
    assert refused.value.reason is CibaFailure.ID_TOKEN
    assert refused.value.error == "unknown_kid"


async def test_nothing_of_the_tokens_is_logged(
    ciba: Ciba, caplog: pytest.LogCaptureFixture
) -> None:
    """Every log record of the client, the SDK, requests/urllib3 and the provider, at
    DEBUG: no JWT (every token the provider signs is one) and no auth_req_id."""
    caplog.set_level(logging.DEBUG)
    started = await ciba.client.start(sub=ALICE, binding_message="Code AB1-23", requested_expiry=60)
    await ciba.client.poll(started.auth_req_id)
    assert ciba.provider.ciba.approve(started.auth_req_id)
    polled = await ciba.client.poll(started.auth_req_id)
    assert polled.state is CibaPollState.GRANTED
    assert caplog.records, "the run logged something to look at"
    text = caplog.text + repr(polled)
    assert "eyJ" not in text  # the start of every JWT's header
    assert started.auth_req_id not in text
