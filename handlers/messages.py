"""Direct messages to the bot."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncSay

from bot.wiring import Deps
from handlers import blocks

# Subtypes that are edits, deletions, joins...: not a person talking to the bot.
_IGNORED_SUBTYPES = {"message_changed", "message_deleted", "bot_message", "channel_join"}


def register(app: AsyncApp, deps: Deps) -> None:
    @app.event("message")
    async def on_message(event: dict[str, Any], say: AsyncSay) -> None:
        if event.get("channel_type") != "im":
            return
        if event.get("bot_id") or event.get("subtype") in _IGNORED_SUBTYPES:
            return
        await say(text=blocks.capabilities_reply())
