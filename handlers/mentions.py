"""@mentions in channels: answer in the thread of the mention."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext, AsyncSay

from bot.wiring import Deps
from handlers import blocks
from handlers.gate import linked_or_prompt


def register(app: AsyncApp, deps: Deps) -> None:
    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: AsyncSay, context: AsyncBoltContext) -> None:
        team_id, user_id = str(context.team_id or ""), str(event.get("user", ""))
        thread = event.get("thread_ts") or event.get("ts")
        if await linked_or_prompt(deps, team_id, user_id, str(event["channel"])) is None:
            return
        await say(text=blocks.capabilities_reply(), thread_ts=thread)
