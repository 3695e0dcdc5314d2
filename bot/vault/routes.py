"""HTTP routes of the connect flow: ``/connect/{id}`` (page, start) and
``/connect/callback``.

As for linking (``bot.identity.routes``): the page's *Continue* form carries an
anti-forgery token only that page holds (a MAC over the request id and a random value in
a ``SameSite=Strict`` cookie), cross-site submissions are refused before they get here
(``bot.websec``), the flow is bound to the browser that pressed *Continue* with an
HttpOnly cookie, and cookies are ``__Host-`` prefixed and ``Secure`` over https.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from aiohttp import web

from bot import messages as words
from bot.errors import ServiceUnavailable
from bot.identity.crypto import TokenCipher
from bot.identity.slack_directory import WebApiDirectory
from bot.vault import pages
from bot.vault.connect import ConnectFailed, ConnectFailure, ConnectFlows, valid_token_id
from bot.websec import origin_of, page_policy

log = logging.getLogger(__name__)

CSRF_PURPOSE = "connect-page"


@dataclass(frozen=True)
class ConnectRoutes:
    flows: ConnectFlows
    directory: WebApiDirectory
    cipher: TokenCipher
    public_url: str
    auth0_url: str

    @property
    def secure(self) -> bool:
        return self.public_url.startswith("https://")

    def cookie(self, name: str) -> str:
        return f"__Host-pmbot_{name}" if self.secure else f"pmbot_{name}"

    def html(self, text: str, status: int = 200) -> web.Response:
        response = web.Response(text=text, status=status, content_type="text/html")
        # The form's redirect goes to Auth0's connect_uri: form-action covers redirects.
        response.headers["Content-Security-Policy"] = page_policy(
            form_targets=[origin_of(self.auth0_url)]
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    def failed(self, reason: ConnectFailure, status: int = 400) -> web.Response:
        text = words.CONNECT_REASONS.get(reason.value, words.CONNECT_REASONS["unknown"])
        return self.html(pages.failed_page(text), status=status)

    def unavailable(self, service: str) -> web.Response:
        return self.html(pages.failed_page(words.CONNECT_UNAVAILABLE.format(service=service)), 503)


ROUTES_KEY = web.AppKey("connect_routes", ConnectRoutes)


async def connect_page(request: web.Request) -> web.Response:
    routes = request.app[ROUTES_KEY]
    request_id = request.match_info["request_id"]
    try:
        pending = await routes.flows.describe(request_id)
    except ConnectFailed as exc:
        return routes.failed(exc.reason)
    names = await routes.directory.names(pending.team_id, pending.slack_user_id)
    nonce = secrets.token_urlsafe(24)
    token = routes.cipher.sign(f"{request_id}|{nonce}", purpose=CSRF_PURPOSE)
    response = routes.html(
        pages.connect_page(
            request_id=request_id,
            connection=pending.connection.value,
            person=names.person,
            workspace=names.workspace,
            scopes=pending.scopes,
            csrf_token=token,
        )
    )
    response.set_cookie(
        routes.cookie("connect_csrf"),
        nonce,
        max_age=int(routes.flows.ttl.total_seconds()),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=routes.secure,
    )
    return response


async def connect_start(request: web.Request) -> web.StreamResponse:
    routes = request.app[ROUTES_KEY]
    request_id = request.match_info["request_id"]
    if not valid_token_id(request_id):
        return routes.failed(ConnectFailure.UNKNOWN)
    if request.content_type != "application/x-www-form-urlencoded":
        return routes.failed(ConnectFailure.FORGED_REQUEST, status=403)
    form = await request.post()
    token = form.get("csrf")
    nonce = request.cookies.get(routes.cookie("connect_csrf"))
    if (
        not isinstance(token, str)
        or not nonce
        or not routes.cipher.verify(f"{request_id}|{nonce}", token, purpose=CSRF_PURPOSE)
    ):
        log.info("refused a connect start without a valid anti-forgery token")
        return routes.failed(ConnectFailure.FORGED_REQUEST, status=403)
    try:
        start = await routes.flows.begin(request_id)
    except ConnectFailed as exc:
        return routes.failed(exc.reason)
    except ServiceUnavailable as exc:
        return routes.unavailable(exc.service)
    response = web.Response(status=303, headers={"Location": start.browser_url})
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        routes.cookie("connect_" + start.state[:16]),
        start.browser_binding,
        max_age=int(routes.flows.ttl.total_seconds()) + 300,
        path="/",
        httponly=True,
        # Lax: the callback is a top-level navigation back from the provider.
        samesite="Lax",
        secure=routes.secure,
    )
    response.del_cookie(routes.cookie("connect_csrf"), path="/")
    return response


async def connect_callback(request: web.Request) -> web.Response:
    routes = request.app[ROUTES_KEY]
    state = request.query.get("state", "")
    if not state:
        return routes.failed(ConnectFailure.MISSING_PARAMETERS)
    if not valid_token_id(state):
        return routes.failed(ConnectFailure.UNKNOWN)
    cookie_name = routes.cookie("connect_" + state[:16])
    binding = request.cookies.get(cookie_name)
    if request.query.get("error"):
        try:
            await routes.flows.deny(state=state, browser_binding=binding)
        except ConnectFailed as exc:
            return routes.failed(exc.reason)
        response = routes.failed(ConnectFailure.DENIED)
        response.del_cookie(cookie_name, path="/")
        return response
    code = request.query.get("connect_code", "")
    if not code:
        return routes.failed(ConnectFailure.MISSING_PARAMETERS)
    try:
        connected = await routes.flows.complete(
            state=state, connect_code=code, browser_binding=binding
        )
    except ConnectFailed as exc:
        log.info("connecting refused: %s", exc.reason.value)
        return routes.failed(exc.reason)
    except ServiceUnavailable as exc:
        return routes.unavailable(exc.service)
    routes.flows.resume(connected.resume_id)
    response = routes.html(
        pages.connected_page(
            connection=connected.connection.value,
            resumes=connected.resume_id is not None and routes.flows.resume_hook is not None,
        )
    )
    response.del_cookie(cookie_name, path="/")
    return response


def add_routes(app: web.Application, routes: ConnectRoutes) -> None:
    app[ROUTES_KEY] = routes
    # The callback first: "/connect/callback" must not be taken for a request id.
    app.router.add_get("/connect/callback", connect_callback)
    app.router.add_get("/connect/{request_id}", connect_page)
    app.router.add_post("/connect/{request_id}", connect_start)
