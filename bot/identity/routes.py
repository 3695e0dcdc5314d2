"""HTTP routes of the linking flow: /auth/link/{id} (confirm, start) and /auth/callback."""

from __future__ import annotations

import logging

from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import AuthorizationUnavailable, ServiceUnavailable
from bot.identity import pages
from bot.identity.service import IdentityService, LinkFailed

log = logging.getLogger(__name__)

COOKIE_PREFIX = "pmbot_link_"
IDENTITY_KEY = web.AppKey("identity", IdentityService)
SLACK_KEY = web.AppKey("identity_slack", AsyncWebClient)


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")


async def link_page(request: web.Request) -> web.Response:
    identity = request.app[IDENTITY_KEY]
    request_id = request.match_info["request_id"]
    try:
        pending = await identity.describe_request(request_id)
    except LinkFailed as exc:
        return _html(pages.failed_page(pages.reason_text(exc.reason)), status=400)
    return _html(
        pages.confirm_page(
            request_id=request_id, slack_user=f"<@{pending.slack_user_id}>", team=pending.team_id
        )
    )


async def link_start(request: web.Request) -> web.StreamResponse:
    identity = request.app[IDENTITY_KEY]
    request_id = request.match_info["request_id"]
    try:
        start = await identity.begin_login(request_id)
    except LinkFailed as exc:
        return _html(pages.failed_page(pages.reason_text(exc.reason)), status=400)
    response = web.Response(status=303, headers={"Location": start.authorize_url})
    response.set_cookie(
        COOKIE_PREFIX + request_id[:16],
        start.browser_binding,
        max_age=900,
        path="/auth/",
        httponly=True,
        samesite="Lax",
        secure=request.url.scheme == "https" or request.headers.get("X-Forwarded-Proto") == "https",
    )
    return response


async def callback(request: web.Request) -> web.Response:
    identity = request.app[IDENTITY_KEY]
    state = request.query.get("state", "")
    if request.query.get("error"):
        # Auth0 redirects errors here (e.g. the user cancelled); the state stays unusable.
        return _html(pages.failed_page(pages.reason_text("login_cancelled")), status=400)
    code = request.query.get("code", "")
    if not state or not code:
        return _html(pages.failed_page(pages.reason_text("missing_parameters")), status=400)
    binding = request.cookies.get(COOKIE_PREFIX + state[:16])
    try:
        linked = await identity.complete_link(state=state, code=code, browser_binding=binding)
    except LinkFailed as exc:
        log.info("linking refused: %s", exc.reason)
        return _html(pages.failed_page(pages.reason_text(exc.reason)), status=400)
    except ServiceUnavailable as exc:
        return _html(pages.failed_page(pages.UNAVAILABLE.format(service=exc.service)), 503)
    except AuthorizationUnavailable:
        return _html(pages.failed_page(pages.UNAVAILABLE.format(service="Authorization")), 503)
    who = linked.email or linked.name or linked.sub
    await _confirm_in_slack(request.app[SLACK_KEY], linked.slack_user_id, who)
    response = _html(pages.linked_page(who=who))
    response.del_cookie(COOKIE_PREFIX + state[:16], path="/auth/")
    return response


async def _confirm_in_slack(slack: AsyncWebClient, user_id: str, who: str) -> None:
    try:
        opened = await slack.conversations_open(users=user_id)
        channel = opened["channel"]["id"]
        await slack.chat_postMessage(
            channel=channel,
            text=f":white_check_mark: Your Slack account is now linked to *{who}*. "
            "Try `/pm whoami`.",
        )
    except Exception as exc:
        # The link is stored; a missing confirmation DM must not undo it.
        log.warning("could not send the link confirmation DM: %s", type(exc).__name__)


def add_routes(app: web.Application, identity: IdentityService, slack: AsyncWebClient) -> None:
    app[IDENTITY_KEY] = identity
    app[SLACK_KEY] = slack
    app.router.add_get("/auth/link/{request_id}", link_page)
    app.router.add_post("/auth/link/{request_id}", link_start)
    app.router.add_get("/auth/callback", callback)
