"""Runs pmbot: database, Bolt app, web server, scheduler (and the sandbox in dev mode)."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

from aiohttp import web

from bot import messages
from bot.ingress import SlackIngress
from bot.scheduler import build_scheduler
from bot.settings import Mode, Settings
from bot.slack_app import build_bolt_app
from bot.storage.migrate import upgrade_async
from bot.web import create_web_app
from bot.wiring import Deps, open_deps

log = logging.getLogger("pmbot")


def mount_sandbox(app: web.Application, deps: Deps) -> None:
    """Mount the local Slack workspace under /sandbox/ (and send / there) and the dev
    identity provider under /idp/. The workspace is kept in the bot's database, so a
    restart shows the conversations of the previous run."""
    from bot.knowledge.ingest import Ingester
    from sandbox.demo import seed_demo
    from sandbox.idp import DevIdentityProvider, IdpClient, default_users
    from sandbox.slack import SlackSandbox, default_seed

    settings = deps.settings
    sandbox = SlackSandbox(
        seed=default_seed(),
        signing_secret=settings.signing_secret,
        bot_token=settings.bot_token,
        events_url=f"{settings.base_url}/slack/events",
        public_url=f"{settings.base_url}/sandbox",
        engine=deps.db.engine,
    )
    app.add_subapp("/sandbox/", sandbox.app())

    async def to_sandbox(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/sandbox/")

    app.router.add_get("/", to_sandbox)

    async def seed(_app: web.Application) -> None:
        # The demo workspace (projects, tasks, documents) on a first start; its documents
        # are written beside the SQLite file, so citations name files that stay there.
        database = settings.sqlite_path()
        folder = (database.parent if database else Path(tempfile.gettempdir())) / "demo-docs"
        ingester = Ingester(db=deps.db, outbox=deps.outbox)
        if await seed_demo(deps.db, deps.outbox, ingester.ingest, folder=folder):
            log.info("seeded the demo workspace (documents in %s)", folder)

    app.on_startup.append(seed)

    idp = DevIdentityProvider(
        issuer=settings.auth0_issuer,
        users=default_users(),
        clients=[
            IdpClient(
                client_id=settings.auth0_client_id or "",
                client_secret=(
                    settings.auth0_client_secret.get_secret_value()
                    if settings.auth0_client_secret
                    else ""
                ),
                callback_urls=[f"{settings.base_url}/auth/callback"],
                name="pmbot",
            )
        ],
        audience=settings.auth0_audience,
    )
    app.add_subapp("/idp/", idp.app())


async def serve(settings: Settings, *, stop: asyncio.Event, socket_mode: bool = False) -> None:
    if settings.sqlite_path() is not None:
        # The embedded default migrates itself; production runs `pmbot migrate` on deploy.
        await upgrade_async(settings.database_url)
    async with open_deps(settings) as deps:
        ingress = SlackIngress(bolt=build_bolt_app(deps), dedup=deps.dedup, metrics=deps.metrics)
        app = create_web_app(deps, ingress, slack_endpoint=not socket_mode)
        if settings.mode is Mode.SANDBOX:
            mount_sandbox(app, deps)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        scheduler = build_scheduler(deps)
        scheduler.start()
        receiver = None
        if socket_mode:
            from bot.socket_mode import SocketModeReceiver

            assert settings.slack_app_token is not None
            receiver = SocketModeReceiver(
                app_token=settings.slack_app_token.get_secret_value(), ingress=ingress
            )
            await receiver.connect()
        if settings.mode is Mode.SANDBOX:
            print(messages.banner(settings.base_url), flush=True)
        else:
            log.info("pmbot listening on %s:%s", settings.host, settings.port)
        try:
            await stop.wait()
        finally:
            log.info("pmbot stopping")
            if receiver is not None:
                await receiver.close()
            scheduler.shutdown(wait=False)
            await runner.cleanup()
            left = await ingress.drain(within=10)
            if left:
                log.warning("%d listeners were still running at shutdown", left)
