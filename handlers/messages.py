"""Direct messages to the bot (behind the link gate)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncSay

from bot import messages as words
from bot.wiring import Deps
from handlers.gate import link_gate

# Subtypes that are edits, deletions, joins...: not a person talking to the bot.
_IGNORED_SUBTYPES = {"message_changed", "message_deleted", "bot_message", "channel_join"}


async def _a_person_in_a_dm(event: dict[str, Any]) -> bool:
    return (
        event.get("channel_type") == "im"
        and not event.get("bot_id")
        and event.get("subtype") not in _IGNORED_SUBTYPES
    )


def register(app: AsyncApp, deps: Deps) -> None:
    # The matcher runs before the gate: other messages neither pass it nor get a prompt.
    @app.event("message", matchers=[_a_person_in_a_dm], middleware=[link_gate(deps)])
    async def on_message(say: AsyncSay) -> None:
        await say(text=words.capabilities_reply(public=False))
