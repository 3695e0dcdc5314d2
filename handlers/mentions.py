"""@mentions in channels: answer in the thread of the mention (behind the link gate)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncSay

from bot import messages as words
from bot.wiring import Deps
from handlers.gate import link_gate


def register(app: AsyncApp, deps: Deps) -> None:
    @app.event("app_mention", middleware=[link_gate(deps)])
    async def on_mention(event: dict[str, Any], say: AsyncSay) -> None:
        thread = event.get("thread_ts") or event.get("ts")
        # Everyone in the channel reads this reply: nothing personal in it.
        await say(text=words.capabilities_reply(public=True), thread_ts=thread)
