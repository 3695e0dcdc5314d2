"""@mentions in channels: answer in the thread of the mention."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext, AsyncSay

from bot.wiring import Deps
from handlers import blocks


def register(app: AsyncApp, deps: Deps) -> None:
    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: AsyncSay, context: AsyncBoltContext) -> None:
        team_id, user_id = str(context.team_id or ""), str(event.get("user", ""))
        thread = event.get("thread_ts") or event.get("ts")
        if await deps.identity.get(team_id, user_id) is None:
            url = await deps.identity.start_link(team_id, user_id)
            await deps.slack.chat_postEphemeral(
                channel=str(event["channel"]),
                user=user_id,
                text=blocks.link_prompt_text(url),
                blocks=blocks.link_prompt_blocks(url),
            )
            return
        await say(text=blocks.capabilities_reply(), thread_ts=thread)
