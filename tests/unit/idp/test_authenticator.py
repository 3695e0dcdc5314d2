"""The authenticator page over HTTP, as a browser drives it (cookies, forms), and as an
attacker would (cross-site posts, missing or foreign anti-forgery tokens, other people's
requests)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.cookies import SimpleCookie

import aiohttp
import pytest

from sandbox.idp import DevIdentityProvider, IdpClient, default_users, serve
from sandbox.idp.ciba import APPROVED, DENIED, PENDING
from tests.fakes.idp import AUDIENCE, WEB_CLIENT

APP = IdpClient(
    client_id=WEB_CLIENT.client_id,
    client_secret=WEB_CLIENT.client_secret,
    callback_urls=[],
    name="pmbot",
)
_CSRF = re.compile(r"name='csrf' value='([^']+)'")


@dataclass
class Browser:
    base_url: str
    http: aiohttp.ClientSession

    async def page(self) -> tuple[int, str]:
        async with self.http.get(f"{self.base_url}/authenticator") as resp:
            return resp.status, await resp.text()

    async def csrf(self) -> str:
        _, html = await self.page()
        match = _CSRF.search(html)
        assert match is not None
        return match.group(1)

    async def post(
        self, form: dict[str, str], *, headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        resp = await self.http.post(
            f"{self.base_url}/authenticator", data=form, headers=headers, allow_redirects=False
        )
        await resp.read()
        return resp

    async def sign_in(self, handle: str) -> None:
        resp = await self.post(
            {
                "csrf": await self.csrf(),
                "action": "sign-in",
                "email": f"{handle}@example.com",
                "password": f"{handle}-password",
            }
        )
        assert resp.status == 303, await resp.text()

    async def act(self, action: str, auth_req_id: str, **headers: str) -> aiohttp.ClientResponse:
        return await self.post(
            {"csrf": await self.csrf(), "action": action, "request": auth_req_id},
            headers=headers or None,
        )


@dataclass
class World:
    provider: DevIdentityProvider
    base_url: str
    alice: Browser
    bob: Browser

    async def start(self, sub: str, message: str = "Confirm code K4X-92") -> str:
        """A pending CIBA request, made at /bc-authorize as the application makes it."""
        hint = json.dumps({"format": "iss_sub", "iss": self.base_url + "/", "sub": sub})
        form = {
            "client_id": APP.client_id,
            "client_secret": APP.client_secret,
            "scope": "openid",
            "login_hint": hint,
            "binding_message": message,
        }
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.base_url}/bc-authorize", data=form) as resp,
        ):
            assert resp.status == 200, await resp.text()
            auth_req_id: str = (await resp.json())["auth_req_id"]
            return auth_req_id

    def status(self, auth_req_id: str) -> str:
        record = self.provider.ciba.get(auth_req_id)
        assert record is not None
        return record.status


@pytest.fixture
async def world() -> AsyncIterator[World]:
    provider = DevIdentityProvider(
        issuer=None, users=default_users(), clients=[APP], audience=AUDIENCE
    )
    async with (
        serve(provider) as base_url,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as alice,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as bob,
    ):
        yield World(
            provider=provider,
            base_url=base_url,
            alice=Browser(base_url, alice),
            bob=Browser(base_url, bob),
        )


def _set_cookies(resp: aiohttp.ClientResponse) -> dict[str, str]:
    """Each Set-Cookie header by cookie name (the raw header, attributes included)."""
    found = {}
    for header in resp.headers.getall("Set-Cookie", []):
        name = next(iter(SimpleCookie(header)))
        found[name] = header
    return found


async def test_sign_in_page_cookies_and_headers(world: World) -> None:
    async with world.alice.http.get(f"{world.base_url}/authenticator") as resp:
        html = await resp.text()
        assert resp.status == 200
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert "form-action 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["Cache-Control"] == "no-store"
        csrf_cookie = _set_cookies(resp)["idp_authenticator_csrf"]
    assert "HttpOnly" in csrf_cookie and "SameSite=Strict" in csrf_cookie
    assert "Domain" not in csrf_cookie
    assert "<script" not in html
    assert "data-testid='auth-sign-in-as-alice@example.com'" in html

    resp = await world.alice.post(
        {
            "csrf": await world.alice.csrf(),
            "action": "sign-in",
            "email": "alice@example.com",
            "password": "alice-password",
        }
    )
    assert resp.status == 303
    session = _set_cookies(resp)["idp_authenticator"]
    assert "HttpOnly" in session and "SameSite=Lax" in session
    assert "Domain" not in session  # host-only
    _, html = await world.alice.page()
    assert "data-testid='auth-signed-in-as'" in html
    assert "Alice Anders" in html
    assert "data-testid='auth-empty'" in html


async def test_wrong_password(world: World) -> None:
    resp = await world.alice.post(
        {
            "csrf": await world.alice.csrf(),
            "action": "sign-in",
            "email": "alice@example.com",
            "password": "bob-password",
        }
    )
    assert resp.status == 401
    _, html = await world.alice.page()
    assert "data-testid='auth-signed-in-as'" not in html


async def test_lists_only_ones_own_pending_requests(world: World) -> None:
    mine = await world.start("auth0|alice", "Confirm code K4X-92")
    await world.start("auth0|bob", "Confirm code BOB-11")
    await world.alice.sign_in("alice")
    _, html = await world.alice.page()
    assert html.count("data-testid='auth-request'") == 1
    assert "Confirm code K4X-92" in html
    assert "Confirm code BOB-11" not in html
    assert "<strong>pmbot</strong> asks you to confirm" in html
    assert mine in html  # the forms name the request they answer


async def test_approve_then_the_grant_is_issued(world: World) -> None:
    auth_req_id = await world.start("auth0|alice")
    await world.alice.sign_in("alice")
    resp = await world.alice.act("approve", auth_req_id)
    assert resp.status == 303
    assert resp.headers["Location"].endswith("/authenticator?done=approved")
    assert world.status(auth_req_id) == APPROVED
    _, html = await world.alice.page()
    assert "data-testid='auth-empty'" in html
    async with world.alice.http.post(
        f"{world.base_url}/oauth/token",
        data={
            "grant_type": "urn:openid:params:grant-type:ciba",
            "auth_req_id": auth_req_id,
            "client_id": APP.client_id,
            "client_secret": APP.client_secret,
        },
    ) as token:
        assert token.status == 200
        assert "id_token" in await token.json()


async def test_deny(world: World) -> None:
    auth_req_id = await world.start("auth0|alice")
    await world.alice.sign_in("alice")
    resp = await world.alice.act("deny", auth_req_id)
    assert resp.headers["Location"].endswith("?done=denied")
    assert world.status(auth_req_id) == DENIED
    # Too late to change one's mind: it stays denied.
    resp = await world.alice.act("approve", auth_req_id)
    assert resp.headers["Location"].endswith("?done=gone")
    assert world.status(auth_req_id) == DENIED


async def test_someone_elses_request_cannot_be_answered(world: World) -> None:
    bobs = await world.start("auth0|bob")
    await world.alice.sign_in("alice")
    for action in ("approve", "deny"):
        resp = await world.alice.act(action, bobs)
        assert resp.headers["Location"].endswith("?done=gone")
        assert world.status(bobs) == PENDING
    # Bob himself can.
    await world.bob.sign_in("bob")
    await world.bob.act("approve", bobs)
    assert world.status(bobs) == APPROVED


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example.com"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_cross_site_posts_are_refused(world: World, headers: dict[str, str]) -> None:
    auth_req_id = await world.start("auth0|alice")
    await world.alice.sign_in("alice")
    resp = await world.alice.act("approve", auth_req_id, **headers)
    assert resp.status == 403
    assert world.status(auth_req_id) == PENDING


async def test_same_origin_post_is_accepted(world: World) -> None:
    auth_req_id = await world.start("auth0|alice")
    await world.alice.sign_in("alice")
    resp = await world.alice.act(
        "approve", auth_req_id, Origin=world.base_url, **{"Sec-Fetch-Site": "same-origin"}
    )
    assert resp.status == 303
    assert world.status(auth_req_id) == APPROVED


async def test_missing_or_foreign_anti_forgery_token_is_refused(world: World) -> None:
    auth_req_id = await world.start("auth0|alice")
    await world.alice.sign_in("alice")
    resp = await world.alice.post({"action": "approve", "request": auth_req_id})
    assert resp.status == 403
    # A token that is valid for another browser (the attacker's own) does not fit
    # alice's cookie.
    resp = await world.alice.post(
        {"csrf": await world.bob.csrf(), "action": "approve", "request": auth_req_id}
    )
    assert resp.status == 403
    assert world.status(auth_req_id) == PENDING


async def test_login_csrf_is_refused(world: World) -> None:
    """Signing a victim in as the attacker needs a token fitting the victim's cookie."""
    resp = await world.alice.post(
        {
            "csrf": await world.bob.csrf(),
            "action": "sign-in",
            "email": "bob@example.com",
            "password": "bob-password",
        }
    )
    assert resp.status == 403
    _, html = await world.alice.page()
    assert "data-testid='auth-signed-in-as'" not in html


async def test_not_a_form_is_refused(world: World) -> None:
    async with world.alice.http.post(
        f"{world.base_url}/authenticator", json={"action": "approve"}
    ) as resp:
        assert resp.status == 415


async def test_answering_needs_a_session(world: World) -> None:
    auth_req_id = await world.start("auth0|alice")
    resp = await world.alice.act("approve", auth_req_id)
    assert resp.status == 401
    assert world.status(auth_req_id) == PENDING


async def test_sign_out_ends_the_session(world: World) -> None:
    auth_req_id = await world.start("auth0|alice")
    await world.alice.sign_in("alice")
    resp = await world.alice.post({"csrf": await world.alice.csrf(), "action": "sign-out"})
    assert resp.headers["Location"].endswith("?done=signed-out")
    resp = await world.alice.act("approve", auth_req_id)
    assert resp.status == 401
    assert world.status(auth_req_id) == PENDING


async def test_escaping_of_the_binding_message_and_app(world: World) -> None:
    """Binding messages are restricted, but the page escapes what it shows anyway."""
    auth_req_id = await world.start("auth0|alice", "A#1")
    record = world.provider.ciba.get(auth_req_id)
    assert record is not None
    record.binding_message = "<img src=x onerror=alert(1)>"
    await world.alice.sign_in("alice")
    _, html = await world.alice.page()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
