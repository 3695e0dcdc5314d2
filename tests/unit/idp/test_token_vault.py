"""The dev identity provider's Token Vault exchange and My Account API, on port 0, called
as Auth0 documents them (auth0-python for the exchange, plain HTTP for the API)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from auth0.authentication import GetToken
from auth0.authentication.exceptions import Auth0Error
from yarl import URL

from sandbox.federation import ConnectedAccount
from sandbox.idp import DevIdentityProvider, serve
from tests.fakes.idp import (
    CALLBACK,
    NATIVE_CLIENT,
    WEB_CLIENT,
    authorize_params,
    domain_of,
    login,
    make_provider,
    pkce_pair,
)

SUBJECT = "urn:ietf:params:oauth:token-type:refresh_token"
REQUESTED = "http://auth0.com/oauth/token-type/federated-connection-access-token"


@dataclass
class Idp:
    provider: DevIdentityProvider
    base_url: str

    def get_token(
        self, client_id: str = WEB_CLIENT.client_id, secret: str | None = None
    ) -> GetToken:
        return GetToken(
            domain_of(self.base_url),
            client_id,
            client_secret=WEB_CLIENT.client_secret if secret is None else secret,
            protocol="http",
            telemetry=False,
        )

    async def refresh_token(self, client_id: str = WEB_CLIENT.client_id) -> str:
        verifier, challenge = pkce_pair()
        async with aiohttp.ClientSession() as http:
            callback = await login(
                http,
                self.base_url,
                authorize_params(
                    challenge,
                    client_id=client_id,
                    scope="openid offline_access",
                ),
            )
        code = callback.query["code"]
        client = self.get_token(client_id, "" if client_id != WEB_CLIENT.client_id else None)
        data = {
            "client_id": client_id,
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": CALLBACK,
        }
        post = client.authenticated_post if client_id == WEB_CLIENT.client_id else client.post
        doc = await asyncio.to_thread(post, f"{self.base_url}/oauth/token", data)
        return str(doc["refresh_token"])

    async def exchange(self, refresh: str, connection: str = "google-oauth2") -> Any:
        return await asyncio.to_thread(
            self.get_token().access_token_for_connection,
            subject_token_type=SUBJECT,
            subject_token=refresh,
            requested_token_type=REQUESTED,
            connection=connection,
        )

    async def my_account_token(self, refresh: str, scope: str) -> str:
        doc = await asyncio.to_thread(
            self.get_token().authenticated_post,
            f"{self.base_url}/oauth/token",
            {
                "client_id": WEB_CLIENT.client_id,
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "audience": f"{self.base_url}/me/",
                "scope": scope,
            },
        )
        return str(doc["access_token"])


@pytest.fixture
async def idp() -> AsyncIterator[Idp]:
    provider = make_provider()
    async with serve(provider) as base_url:
        yield Idp(provider, base_url)


def connect_alice(idp: Idp, scopes: set[str]) -> None:
    idp.provider.federation.connect(
        ConnectedAccount("auth0|alice", "google-oauth2", "alice@example.com", frozenset(scopes))
    )


async def test_the_exchange_answers_a_provider_token(idp: Idp) -> None:
    connect_alice(idp, {"https://www.googleapis.com/auth/calendar.events"})
    doc = await idp.exchange(await idp.refresh_token())
    assert doc["issued_token_type"] == REQUESTED
    assert doc["token_type"] == "Bearer"
    assert doc["expires_in"] == idp.provider.federation.token_ttl
    assert doc["scope"] == "https://www.googleapis.com/auth/calendar.events"
    account = idp.provider.federation.resolve(doc["access_token"])
    assert account is not None and account.account == "alice@example.com"


async def test_not_connected_is_401_as_auth0_answers(idp: Idp) -> None:
    with pytest.raises(Auth0Error) as caught:
        await idp.exchange(await idp.refresh_token())
    assert caught.value.status_code == 401
    assert caught.value.error_code == "federated_connection_refresh_token_not_found"


async def test_a_scope_the_account_lacks_is_403_invalid_scope(idp: Idp) -> None:
    connect_alice(idp, {"a"})
    refresh = await idp.refresh_token()
    with pytest.raises(Auth0Error) as caught:
        await asyncio.to_thread(
            idp.get_token().authenticated_post,
            f"{idp.base_url}/oauth/token",
            {
                "client_id": WEB_CLIENT.client_id,
                "grant_type": "urn:auth0:params:oauth:grant-type:token-exchange:"
                "federated-connection-access-token",
                "subject_token_type": SUBJECT,
                "subject_token": refresh,
                "requested_token_type": REQUESTED,
                "connection": "google-oauth2",
                "scope": "a b",
            },
        )
    assert (caught.value.status_code, caught.value.error_code) == (403, "invalid_scope")


async def test_public_clients_and_bad_subjects_are_refused(idp: Idp) -> None:
    connect_alice(idp, {"a"})
    with pytest.raises(Auth0Error) as public:
        await asyncio.to_thread(
            GetToken(
                domain_of(idp.base_url), NATIVE_CLIENT.client_id, protocol="http", telemetry=False
            ).access_token_for_connection,
            subject_token_type=SUBJECT,
            subject_token=await idp.refresh_token(NATIVE_CLIENT.client_id),
            requested_token_type=REQUESTED,
            connection="google-oauth2",
        )
    assert public.value.status_code == 403
    assert public.value.error_code == "unauthorized_client"
    with pytest.raises(Auth0Error) as unknown:
        await idp.exchange("not-a-refresh-token")
    assert (unknown.value.status_code, unknown.value.error_code) == (403, "invalid_grant")
    with pytest.raises(Auth0Error) as connection:
        await idp.exchange(await idp.refresh_token(), connection="github")
    assert connection.value.status_code == 400


async def test_faults_answer_429_and_5xx(idp: Idp) -> None:
    connect_alice(idp, {"a"})
    refresh = await idp.refresh_token()
    idp.provider.token_vault.faults.add(429)
    idp.provider.token_vault.faults.add(502)
    for status in (429, 502):
        with pytest.raises(Auth0Error) as caught:
            await idp.exchange(refresh)
        assert caught.value.status_code == status
    assert (await idp.exchange(refresh))["access_token"]


async def test_my_account_tokens_come_from_the_refresh_token_for_that_audience_only(
    idp: Idp,
) -> None:
    refresh = await idp.refresh_token()
    assert await idp.my_account_token(refresh, "create:me:connected_accounts")
    with pytest.raises(Auth0Error) as scope:
        await idp.my_account_token(refresh, "delete:me:everything")
    assert scope.value.error_code == "invalid_scope"
    with pytest.raises(Auth0Error) as audience:
        await asyncio.to_thread(
            idp.get_token().authenticated_post,
            f"{idp.base_url}/oauth/token",
            {
                "client_id": WEB_CLIENT.client_id,
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "audience": "https://elsewhere.example/",
            },
        )
    assert audience.value.error_code == "access_denied"


async def post(url: str, token: str | None, body: object) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def test_the_connected_accounts_flow_checks_bearer_redirect_and_pkce(idp: Idp) -> None:
    refresh = await idp.refresh_token()
    token = await idp.my_account_token(refresh, "create:me:connected_accounts")
    api = f"{idp.base_url}/me/v1/connected-accounts"
    verifier, challenge = pkce_pair()
    request = {
        "connection": "google-oauth2",
        "redirect_uri": CALLBACK,
        "state": "s-1",
        "scopes": ["https://www.googleapis.com/auth/calendar.readonly"],
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    assert (await post(f"{api}/connect", None, request))[0] == 401
    read_only = await idp.my_account_token(refresh, "read:me:connected_accounts")
    assert (await post(f"{api}/connect", read_only, request))[0] == 403
    status, problem = await post(
        f"{api}/connect", token, {**request, "redirect_uri": "https://evil.example/cb"}
    )
    assert status == 400 and problem["title"] == "Bad Request"
    status, started = await post(f"{api}/connect", token, request)
    assert status == 201, started
    assert started["connect_uri"] == f"{idp.base_url}/connected-accounts/connect"
    assert started["expires_in"] > 0
    ticket = started["connect_params"]["ticket"]
    async with aiohttp.ClientSession() as http:
        async with http.get(started["connect_uri"], params={"ticket": ticket}) as page:
            html = await page.text()
        assert "Allow pmbot to manage your Google Calendar?" in html
        assert "alice@example.com" in html
        async with http.post(
            started["connect_uri"],
            data={"ticket": ticket, "decision": "allow"},
            allow_redirects=False,
        ) as allowed:
            back = URL(allowed.headers["Location"])
        async with http.get(started["connect_uri"], params={"ticket": ticket}) as reused:
            assert reused.status == 400  # a ticket is good for one answer
    assert back.query["state"] == "s-1"
    completion = {
        "auth_session": started["auth_session"],
        "connect_code": back.query["connect_code"],
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
    }
    # Bob cannot complete Alice's session.
    bob_refresh = await bob_refresh_token(idp)
    bob = await idp.my_account_token(bob_refresh, "create:me:connected_accounts")
    assert (await post(f"{api}/complete", bob, completion))[0] == 403
    # A wrong verifier burns the code.
    status, _ = await post(f"{api}/complete", token, {**completion, "code_verifier": "x" * 43})
    assert status == 400
    status, _ = await post(f"{api}/complete", token, completion)
    assert status == 400
    assert idp.provider.federation.account("auth0|alice", "google-oauth2") is None


async def bob_refresh_token(idp: Idp) -> str:
    verifier, challenge = pkce_pair()
    async with aiohttp.ClientSession() as http:
        callback = await login(
            http,
            idp.base_url,
            authorize_params(challenge, scope="openid offline_access"),
            email="bob@example.com",
        )
    doc = await asyncio.to_thread(
        idp.get_token().authenticated_post,
        f"{idp.base_url}/oauth/token",
        {
            "client_id": WEB_CLIENT.client_id,
            "grant_type": "authorization_code",
            "code": callback.query["code"],
            "code_verifier": verifier,
            "redirect_uri": CALLBACK,
        },
    )
    return str(doc["refresh_token"])


async def test_completing_connects_the_account_with_its_scopes(idp: Idp) -> None:
    refresh = await idp.refresh_token()
    token = await idp.my_account_token(refresh, "create:me:connected_accounts")
    api = f"{idp.base_url}/me/v1/connected-accounts"
    verifier, challenge = pkce_pair()
    _, started = await post(
        f"{api}/connect",
        token,
        {
            "connection": "sign-in-with-slack",
            "redirect_uri": CALLBACK,
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    async with aiohttp.ClientSession() as http:
        async with http.get(
            started["connect_uri"], params={"ticket": started["connect_params"]["ticket"]}
        ) as page:
            assert "Allow pmbot to post to Slack as you?" in await page.text()
        async with http.post(
            started["connect_uri"],
            data={"ticket": started["connect_params"]["ticket"], "decision": "allow"},
            allow_redirects=False,
        ) as allowed:
            back = URL(allowed.headers["Location"])
    status, done = await post(
        f"{api}/complete",
        token,
        {
            "auth_session": started["auth_session"],
            "connect_code": back.query["connect_code"],
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        },
    )
    assert status == 201, done
    assert done["connection"] == "sign-in-with-slack" and "chat:write" in done["scopes"]
    account = idp.provider.federation.account("auth0|alice", "sign-in-with-slack")
    assert account is not None and account.account == "U0ALICE"
    issued = await idp.exchange(refresh, connection="sign-in-with-slack")
    assert issued["access_token"].startswith("xoxp-")
