"""The dev identity provider's CIBA on the wire: ``/bc-authorize`` and the CIBA grant,
including requests the product's client never sends (malformed hints, foreign issuers,
other clients' ids, public clients)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import pytest

from sandbox.idp import DevIdentityProvider, IdpClient, default_users, serve
from tests.fakes.idp import AUDIENCE, NATIVE_CLIENT, WEB_CLIENT

OTHER_CLIENT = IdpClient(client_id="other-app", client_secret="other-secret", callback_urls=[])
CIBA = "urn:openid:params:grant-type:ciba"


@dataclass
class Wire:
    provider: DevIdentityProvider
    base_url: str
    http: aiohttp.ClientSession

    @property
    def issuer(self) -> str:
        return self.base_url + "/"

    def hint(self, sub: str = "auth0|alice", **override: Any) -> str:
        doc: dict[str, Any] = {"format": "iss_sub", "iss": self.issuer, "sub": sub}
        doc.update(override)
        return json.dumps(doc)

    async def post(
        self, path: str, data: dict[str, str], *, as_json: bool = False
    ) -> tuple[int, dict[str, Any]]:
        kwargs: dict[str, Any] = {"json": data} if as_json else {"data": data}
        async with self.http.post(self.base_url + path, **kwargs) as resp:
            return resp.status, await resp.json()

    async def bc_authorize(
        self, client: IdpClient = WEB_CLIENT, **params: str
    ) -> tuple[int, dict[str, Any]]:
        data = {
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "scope": "openid",
            "login_hint": self.hint(),
            "binding_message": "Code AB1-23",
        }
        data.update(params)
        return await self.post("/bc-authorize", {k: v for k, v in data.items() if v != ""})

    async def poll(self, auth_req_id: str, client: IdpClient = WEB_CLIENT) -> tuple[int, Any]:
        return await self.post(
            "/oauth/token",
            {
                "grant_type": CIBA,
                "auth_req_id": auth_req_id,
                "client_id": client.client_id,
                "client_secret": client.client_secret,
            },
        )


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    provider = DevIdentityProvider(
        issuer=None,
        users=default_users(),
        clients=[WEB_CLIENT, NATIVE_CLIENT, OTHER_CLIENT],
        audience=AUDIENCE,
    )
    provider.ciba.interval = 0
    async with serve(provider) as base_url, aiohttp.ClientSession() as http:
        yield Wire(provider=provider, base_url=base_url, http=http)


async def test_answers_auth_req_id_expires_in_and_interval(wire: Wire) -> None:
    wire.provider.ciba.interval = 5
    status, body = await wire.bc_authorize(requested_expiry="90")
    assert status == 200, body
    assert set(body) == {"auth_req_id", "expires_in", "interval"}
    assert body["expires_in"] == 90
    assert body["interval"] == 5
    status, body = await wire.bc_authorize(requested_expiry="100000")
    assert body["expires_in"] == 300  # capped
    status, body = await wire.bc_authorize()
    assert body["expires_in"] == 300  # the default


async def test_json_body_is_accepted_like_auth0(wire: Wire) -> None:
    status, body = await wire.post(
        "/bc-authorize",
        {
            "client_id": WEB_CLIENT.client_id,
            "client_secret": WEB_CLIENT.client_secret,
            "scope": "openid",
            "login_hint": wire.hint(),
            "binding_message": "Code AB1-23",
        },
        as_json=True,
    )
    assert status == 200, body


@pytest.mark.parametrize(
    ("hint", "why"),
    [
        ("auth0|alice", "not JSON"),
        ("[1, 2]", "not an object"),
        ('{"format": "iss_sub", "sub": "auth0|alice"}', "no iss"),
        ("EXTRA", "an extra member"),
        ("DUPLICATE", "a duplicated member"),
        ("EMAIL", "another format"),
        ("NUMBER", "sub is a number"),
        ("FOREIGN", "another tenant's issuer"),
        ("NO_SLASH", "issuer without its trailing slash"),
    ],
)
async def test_login_hint_is_parsed_strictly(wire: Wire, hint: str, why: str) -> None:
    hints = {
        "EXTRA": wire.hint(extra="x"),
        "DUPLICATE": (
            f'{{"format": "iss_sub", "iss": "{wire.issuer}", "sub": "auth0|dave", '
            '"sub": "auth0|alice"}'
        ),
        "EMAIL": wire.hint(format="email"),
        "NUMBER": wire.hint(sub=7),
        "FOREIGN": wire.hint(iss="https://tenant.example.com/"),
        "NO_SLASH": wire.hint(iss=wire.base_url),
    }
    status, body = await wire.bc_authorize(login_hint=hints.get(hint, hint))
    assert (status, body["error"]) == (400, "invalid_request"), why
    assert wire.provider.ciba.requests() == []


async def test_unknown_user_id(wire: Wire) -> None:
    status, body = await wire.bc_authorize(login_hint=wire.hint(sub="auth0|mallory"))
    assert (status, body["error"]) == (400, "unknown_user_id")


@pytest.mark.parametrize("message", ["x" * 65, "a<b", "tab\there", "", " x", "ümlaut"])
async def test_binding_message_rules(wire: Wire, message: str) -> None:
    status, body = await wire.bc_authorize(binding_message=message)
    expected = "invalid_request" if message == "" else "invalid_binding_message"
    assert (status, body["error"]) == (400, expected)


@pytest.mark.parametrize("expiry", ["0", "-5", "ten", "1.5", "٣"])
async def test_requested_expiry_must_be_a_positive_integer(wire: Wire, expiry: str) -> None:
    status, body = await wire.bc_authorize(requested_expiry=expiry)
    assert (status, body["error"]) == (400, "invalid_request")


async def test_scope_needs_openid(wire: Wire) -> None:
    status, body = await wire.bc_authorize(scope="profile email")
    assert (status, body["error"]) == (400, "invalid_request")


async def test_client_authentication(wire: Wire) -> None:
    status, body = await wire.post(
        "/bc-authorize",
        {
            "client_id": WEB_CLIENT.client_id,
            "scope": "openid",
            "login_hint": wire.hint(),
            "binding_message": "Code AB1-23",
        },
    )
    assert (status, body["error"]) == (401, "invalid_client")
    wrong = IdpClient(client_id=WEB_CLIENT.client_id, client_secret="nope", callback_urls=[])
    status, body = await wire.bc_authorize(client=wrong)
    assert (status, body["error"]) == (401, "access_denied")
    status, body = await wire.bc_authorize(client=NATIVE_CLIENT)
    assert (status, body["error"]) == (403, "unauthorized_client")


async def test_another_clients_auth_req_id_is_invalid_grant(wire: Wire) -> None:
    _, started = await wire.bc_authorize()
    wire.provider.ciba.approve(started["auth_req_id"])
    status, body = await wire.poll(started["auth_req_id"], client=OTHER_CLIENT)
    assert (status, body["error"]) == (400, "invalid_grant")
    status, body = await wire.poll("made-up")
    assert (status, body["error"]) == (400, "invalid_grant")
    # The rightful client still gets its grant.
    status, body = await wire.poll(started["auth_req_id"])
    assert status == 200


async def test_grant_tokens(wire: Wire) -> None:
    _, started = await wire.bc_authorize(
        login_hint=wire.hint(sub="auth0|carol"), scope="openid email read:projects"
    )
    status, body = await wire.poll(started["auth_req_id"])
    assert (status, body["error"]) == (400, "authorization_pending")
    assert [
        r.auth_req_id for r in wire.provider.ciba.requests(sub="auth0|carol", status="pending")
    ] == [started["auth_req_id"]]
    assert wire.provider.ciba.approve(started["auth_req_id"])
    status, body = await wire.poll(started["auth_req_id"])
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert claims["sub"] == "auth0|carol"
    assert claims["aud"] == WEB_CLIENT.client_id
    assert claims["iss"] == wire.issuer
    assert claims["email"] == "carol@example.com"
    access = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert access["sub"] == "auth0|carol"
    assert access["permissions"] == ["read:projects"]
    assert "refresh_token" not in body


async def test_slow_down_then_the_grown_interval_is_honoured(wire: Wire) -> None:
    wire.provider.ciba.interval = 5
    _, started = await wire.bc_authorize()
    auth_req_id = started["auth_req_id"]
    assert (await wire.poll(auth_req_id))[1]["error"] == "authorization_pending"
    status, body = await wire.poll(auth_req_id)
    assert (status, body["error"]) == (400, "slow_down")
    record = wire.provider.ciba.get(auth_req_id)
    assert record is not None and record.interval == 10
    # A client that waited the grown interval is answered normally.
    assert record.last_poll is not None
    record.last_poll -= 10
    assert (await wire.poll(auth_req_id))[1]["error"] == "authorization_pending"
    assert record.interval == 10


async def test_denied_and_expired(wire: Wire) -> None:
    _, first = await wire.bc_authorize()
    _, second = await wire.bc_authorize()
    assert wire.provider.ciba.deny(first["auth_req_id"])
    wire.provider.ciba.expire(second["auth_req_id"])
    assert (await wire.poll(first["auth_req_id"]))[1]["error"] == "access_denied"
    assert (await wire.poll(second["auth_req_id"]))[1]["error"] == "expired_token"
    assert wire.provider.ciba.requests(status="pending") == []


async def test_discovery_names_the_endpoint_and_grant(wire: Wire) -> None:
    async with wire.http.get(wire.base_url + "/.well-known/openid-configuration") as resp:
        doc = await resp.json()
    assert doc["backchannel_authentication_endpoint"] == wire.issuer + "bc-authorize"
    assert CIBA in doc["grant_types_supported"]
    assert doc["backchannel_token_delivery_modes_supported"] == ["poll"]
