"""The App Home tab, published when a user opens it and whenever their link changes, and
its link button."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext

from bot.wiring import Deps
from handlers import blocks


async def publish_home(deps: Deps, team_id: str, user_id: str, *, with_link: bool = False) -> None:
    identity = await deps.identity.lookup(team_id, user_id)
    link_url = None
    if identity is None and with_link:
        link_url = await deps.identity.start_link(team_id, user_id)
    linked_as = identity.display if identity else None
    await deps.slack.views_publish(
        user_id=user_id, view=blocks.home_view(user_id, linked_as=linked_as, link_url=link_url)
    )


def register(app: AsyncApp, deps: Deps) -> None:
    @app.event("app_home_opened")
    async def on_home_opened(event: dict[str, Any], context: AsyncBoltContext) -> None:
        if event.get("tab", "home") != "home":
            return
        await publish_home(deps, str(context.team_id or ""), str(event["user"]))

    @app.action("link_account")
    async def on_link_clicked(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        team_id = str((body.get("team") or {}).get("id") or body.get("user", {}).get("team_id"))
        await publish_home(deps, team_id, str(body["user"]["id"]), with_link=True)

    @app.action("open_link_url")
    async def on_link_url_opened(ack: AsyncAck) -> None:
        # A URL button: the browser opens the link; Slack still sends the click.
        await ack()
