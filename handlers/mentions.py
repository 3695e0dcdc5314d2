"""@mentions in channels: answer in the thread of the mention."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncSay

from bot.wiring import Deps
from handlers import blocks


def register(app: AsyncApp, deps: Deps) -> None:
    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: AsyncSay) -> None:
        thread = event.get("thread_ts") or event.get("ts")
        await say(text=blocks.capabilities_reply(), thread_ts=thread)
