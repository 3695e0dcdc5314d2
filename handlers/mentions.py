"""@mentions in channels: the question is answered in the mention's thread (behind the
link gate), from what everyone in the channel may view (``handlers.ask``)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.knowledge.answers import Conversation
from bot.wiring import Deps
from handlers import agent, ask
from handlers.gate import identity_of, link_gate


def register(app: AsyncApp, deps: Deps) -> None:
    @app.event("app_mention", middleware=[link_gate(deps)])
    async def on_mention(event: dict[str, Any], context: AsyncBoltContext) -> None:
        ts = str(event.get("ts") or "")
        thread = event.get("thread_ts")
        where = ask.Where(
            conversation=Conversation(
                team_id=str(context.team_id or ""),
                channel_id=str(event.get("channel") or context.channel_id or ""),
                shared=True,
                thread_ts=str(thread) if thread else None,
                message_ts=ts,
            ),
            asker_user_id=str(context.user_id or ""),
            reply_thread=str(thread or ts),
            bot_user_id=context.bot_user_id,
        )
        question = ask.strip_mentions(str(event.get("text") or ""), context.bot_user_id)
        asker = identity_of(context)
        if await agent.act(deps, asker, question, where):
            return
        await ask.answer(deps, asker, question, where)
