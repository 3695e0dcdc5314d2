"""Direct messages to the bot (behind the link gate): a message starts a thread whose
answer only the asker reads (``handlers.ask``). Replies in such a thread are the
assistant's (``handlers.assistant``), with the thread as context."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.knowledge.answers import Conversation
from bot.wiring import Deps
from handlers import agent, ask
from handlers.gate import identity_of, link_gate

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
    async def on_message(event: dict[str, Any], context: AsyncBoltContext) -> None:
        ts = str(event.get("ts") or "")
        thread = event.get("thread_ts")
        where = ask.Where(
            conversation=Conversation(
                team_id=str(context.team_id or ""),
                channel_id=str(event.get("channel") or context.channel_id or ""),
                shared=False,
                thread_ts=str(thread) if thread else None,
                message_ts=ts,
            ),
            asker_user_id=str(context.user_id or ""),
            reply_thread=str(thread or ts),
            notes_inline=not thread,
            bot_user_id=context.bot_user_id,
        )
        asker, text = identity_of(context), str(event.get("text") or "")
        if await agent.act(deps, asker, text, where):
            return
        await ask.answer(deps, asker, text, where)
