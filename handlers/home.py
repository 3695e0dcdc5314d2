"""The App Home tab, published when a user opens it and whenever their link changes, and
its link button."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext

from bot import messages as words
from bot.wiring import Deps
from handlers import blocks


async def publish_home(deps: Deps, team_id: str, user_id: str, *, with_link: bool = False) -> None:
    identity = await deps.identity.lookup(team_id, user_id)
    link_url = None
    if identity is None and with_link:
        link_url = await deps.identity.start_link(team_id, user_id)
    linked_as = identity.display if identity else None
    listed: list[blocks.Block] = []
    if identity is not None:
        listed = await approvals_on_home(deps, team_id, user_id)
    await deps.slack.views_publish(
        user_id=user_id,
        view=blocks.home_view(user_id, linked_as=linked_as, link_url=link_url, approvals=listed),
    )


async def approvals_on_home(deps: Deps, team_id: str, user_id: str) -> list[blocks.Block]:
    """The open approvals this person may approve, and those they asked for."""
    found = await deps.approvals.pending_for(team_id, user_id)
    return blocks.home_approvals_blocks(
        [
            words.approval_home_line(
                i.action.value, i.target, i.requester_slack_id, i.expires_at, mine=False
            )
            for i in found.to_approve
        ],
        [
            words.approval_home_line(
                i.action.value,
                i.target,
                i.requester_slack_id,
                i.expires_at,
                mine=True,
                approvers=i.approver_slack_ids,
            )
            for i in found.requested
        ],
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
