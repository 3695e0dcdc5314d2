"""HTTP routes of the linking flow: /auth/link/{id} (page, start) and /auth/callback.

The page's *Continue* form is the one state-changing browser request: it carries an
anti-forgery token that only the page holds (a MAC over the request id and a random value
kept in a ``SameSite=Strict`` cookie, so another site can neither read nor make it), and
cross-site submissions are refused before they get here (``bot.websec``). Cookies are
``__Host-`` prefixed and ``Secure`` when ``PMBOT_PUBLIC_URL`` is https.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from authz.ports import AuthzUnavailable
from bot import messages as words
from bot.errors import ServiceUnavailable
from bot.identity import pages
from bot.identity.model import LinkFailed, LinkFailure, VerifiedLogin, valid_request_id
from bot.identity.service import IdentityService
from bot.identity.slack_directory import WebApiDirectory
from bot.websec import origin_of, page_policy

log = logging.getLogger(__name__)

CSRF_PURPOSE = "link-page"


class LinkNotifier(Protocol):
    """Sends the Slack message that asks the person to confirm a verified login; raises
    ``ServiceUnavailable`` when Slack cannot be reached."""

    async def ask_to_confirm(self, verified: VerifiedLogin) -> None: ...


@dataclass(frozen=True)
class LinkRoutes:
    identity: IdentityService
    directory: WebApiDirectory
    notify: LinkNotifier
    public_url: str
    auth0_url: str

    @property
    def secure(self) -> bool:
        return self.public_url.startswith("https://")

    def cookie(self, name: str) -> str:
        # __Host- cookies must be Secure, have path / and no Domain: no subdomain or
        # plain-http page can set or overwrite them.
        return f"__Host-pmbot_{name}" if self.secure else f"pmbot_{name}"

    def html(self, text: str, status: int = 200) -> web.Response:
        response = web.Response(text=text, status=status, content_type="text/html")
        response.headers["Content-Security-Policy"] = page_policy(
            form_targets=[origin_of(self.auth0_url)]
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    def failed(self, reason: LinkFailure, status: int = 400) -> web.Response:
        return self.html(pages.failed_page(pages.reason_text(reason)), status=status)


ROUTES_KEY = web.AppKey("link_routes", LinkRoutes)


async def link_page(request: web.Request) -> web.Response:
    routes = request.app[ROUTES_KEY]
    request_id = request.match_info["request_id"]
    try:
        pending = await routes.identity.describe_request(request_id)
    except LinkFailed as exc:
        return routes.failed(exc.reason)
    names = await routes.directory.names(pending.team_id, pending.slack_user_id)
    nonce = secrets.token_urlsafe(24)
    token = routes.identity.cipher.sign(f"{request_id}|{nonce}", purpose=CSRF_PURPOSE)
    response = routes.html(
        pages.confirm_page(
            request_id=request_id,
            person=names.person,
            workspace=names.workspace,
            csrf_token=token,
        )
    )
    response.set_cookie(
        routes.cookie("csrf"),
        nonce,
        max_age=int(routes.identity.link_ttl.total_seconds()),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=routes.secure,
    )
    return response


async def link_start(request: web.Request) -> web.StreamResponse:
    routes = request.app[ROUTES_KEY]
    request_id = request.match_info["request_id"]
    if not valid_request_id(request_id):
        return routes.failed(LinkFailure.STATE_UNKNOWN)
    if request.content_type != "application/x-www-form-urlencoded":
        return routes.failed(LinkFailure.FORGED_REQUEST, status=403)
    form = await request.post()
    token = form.get("csrf")
    nonce = request.cookies.get(routes.cookie("csrf"))
    if (
        not isinstance(token, str)
        or not nonce
        or not routes.identity.cipher.verify(f"{request_id}|{nonce}", token, purpose=CSRF_PURPOSE)
    ):
        log.info("refused a link start without a valid anti-forgery token")
        return routes.failed(LinkFailure.FORGED_REQUEST, status=403)
    try:
        start = await routes.identity.begin_login(request_id)
    except LinkFailed as exc:
        return routes.failed(exc.reason)
    response = web.Response(status=303, headers={"Location": start.authorize_url})
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        routes.cookie("link_" + request_id[:16]),
        start.browser_binding,
        max_age=int(routes.identity.link_ttl.total_seconds()) + 300,
        path="/",
        httponly=True,
        # Lax: the callback is a top-level navigation back from the identity provider.
        samesite="Lax",
        secure=routes.secure,
    )
    response.del_cookie(routes.cookie("csrf"), path="/")
    return response


async def callback(request: web.Request) -> web.Response:
    routes = request.app[ROUTES_KEY]
    state = request.query.get("state", "")
    if request.query.get("error"):
        # Auth0 redirects errors here (e.g. the user cancelled); the state stays unusable.
        return routes.failed(LinkFailure.LOGIN_CANCELLED)
    code = request.query.get("code", "")
    if not state or not code:
        return routes.failed(LinkFailure.MISSING_PARAMETERS)
    if not valid_request_id(state):
        return routes.failed(LinkFailure.STATE_UNKNOWN)
    cookie_name = routes.cookie("link_" + state[:16])
    binding = request.cookies.get(cookie_name)
    try:
        verified = await routes.identity.complete_login(
            state=state, code=code, browser_binding=binding
        )
    except LinkFailed as exc:
        log.info("linking refused: %s", exc.reason.value)
        return routes.failed(exc.reason)
    except ServiceUnavailable as exc:
        return routes.html(
            pages.failed_page(words.PAGE_UNAVAILABLE.format(service=exc.service)), 503
        )
    except AuthzUnavailable:
        return routes.html(
            pages.failed_page(words.PAGE_UNAVAILABLE.format(service="Authorization")), 503
        )
    try:
        await routes.notify.ask_to_confirm(verified)
    except ServiceUnavailable:
        return routes.html(pages.failed_page(words.PAGE_SLACK_UNREACHABLE), 503)
    response = routes.html(pages.confirm_in_slack_page(who=verified.display))
    response.del_cookie(cookie_name, path="/")
    return response


def add_routes(app: web.Application, routes: LinkRoutes) -> None:
    app[ROUTES_KEY] = routes
    app.router.add_get("/auth/link/{request_id}", link_page)
    app.router.add_post("/auth/link/{request_id}", link_start)
    app.router.add_get("/auth/callback", callback)
