"""Direct messages to the bot."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext, AsyncSay

from bot.wiring import Deps
from handlers import blocks
from handlers.gate import linked_or_prompt

# Subtypes that are edits, deletions, joins...: not a person talking to the bot.
_IGNORED_SUBTYPES = {"message_changed", "message_deleted", "bot_message", "channel_join"}


def register(app: AsyncApp, deps: Deps) -> None:
    @app.event("message")
    async def on_message(event: dict[str, Any], say: AsyncSay, context: AsyncBoltContext) -> None:
        if event.get("channel_type") != "im":
            return
        if event.get("bot_id") or event.get("subtype") in _IGNORED_SUBTYPES:
            return
        team_id, user_id = str(context.team_id or ""), str(event.get("user", ""))
        if await linked_or_prompt(deps, team_id, user_id, str(event["channel"])) is None:
            return
        await say(text=blocks.capabilities_reply())
