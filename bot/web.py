"""The aiohttp server: Slack endpoint, linking pages, health, metrics (and the sandbox in
dev mode, mounted by ``bot.server``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.identity.routes import LinkRoutes
from bot.identity.routes import add_routes as add_auth_routes
from bot.ingress import SlackIngress, add_slack_routes
from bot.settings import Mode
from bot.vault.routes import ConnectRoutes
from bot.vault.routes import add_routes as add_connect_routes
from bot.websec import security_middleware
from bot.wiring import Deps

log = logging.getLogger(__name__)

DEPS_KEY = web.AppKey("deps", Deps)


async def healthz(request: web.Request) -> web.Response:
    deps = request.app[DEPS_KEY]
    if await deps.db.ping():
        return web.json_response({"status": "ok", "database": "ok"})
    return web.json_response({"status": "unavailable", "database": "down"}, status=503)


async def metrics(request: web.Request) -> web.Response:
    deps = request.app[DEPS_KEY]
    return web.Response(text=deps.metrics.render(), content_type="text/plain", charset="utf-8")


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """No traceback ever reaches a client; unexpected errors are logged and counted."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        request.app[DEPS_KEY].metrics.errors.inc("web")
        return web.json_response({"error": "internal error"}, status=500)


def create_web_app(
    deps: Deps, ingress: SlackIngress, *, slack_endpoint: bool = True
) -> web.Application:
    app = web.Application(
        client_max_size=deps.settings.max_body_bytes,
        middlewares=[
            security_middleware(
                public_url=deps.settings.base_url, sandbox=deps.settings.mode is Mode.SANDBOX
            ),
            error_middleware,
        ],
    )
    app[DEPS_KEY] = deps
    if slack_endpoint:
        add_slack_routes(app, ingress=ingress, settings=deps.settings, metrics=deps.metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    from handlers.linking import SlackLinkNotifier

    add_auth_routes(
        app,
        LinkRoutes(
            identity=deps.identity,
            directory=deps.directory,
            notify=SlackLinkNotifier(deps.slack),
            public_url=deps.settings.base_url,
            auth0_url=deps.auth0.base_url,
        ),
    )
    add_connect_routes(
        app,
        ConnectRoutes(
            flows=deps.connect,
            directory=deps.directory,
            cipher=deps.identity.cipher,
            public_url=deps.settings.base_url,
            auth0_url=deps.auth0.base_url,
        ),
    )
    return app
