"""Slack's assistant pane, through Bolt's ``AsyncAssistant`` middleware (behind the link
gate): a new thread gets a greeting and suggested prompts; a question gets "is thinking…"
while it is answered (``handlers.ask``, for the asker alone, with the thread's earlier
messages as context) and names the thread.

Bolt routes every reply in a DM thread here (``user_message``); top-level DMs go to
``handlers.messages``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncAssistant, AsyncBoltContext
from slack_bolt.context.set_status.async_set_status import AsyncSetStatus
from slack_bolt.context.set_suggested_prompts.async_set_suggested_prompts import (
    AsyncSetSuggestedPrompts,
)
from slack_bolt.context.set_title.async_set_title import AsyncSetTitle
from slack_bolt.middleware.async_custom_middleware import AsyncCustomMiddleware

from bot import messages as words
from bot.knowledge.answers import Conversation
from bot.wiring import Deps
from handlers import ask
from handlers.gate import identity_of, link_gate

log = logging.getLogger(__name__)


async def _starter_is_the_user(
    context: AsyncBoltContext, body: dict[str, Any], next: Callable[[], Awaitable[None]]
) -> None:
    """``assistant_thread_started`` names its person inside ``assistant_thread``, where
    Bolt does not look: the link gate needs them as the context's user."""
    thread = (body.get("event") or {}).get("assistant_thread") or {}
    if not context.user_id and isinstance(thread.get("user_id"), str):
        context["user_id"] = thread["user_id"]
    await next()


def _listen(
    decorator: Any, listener: Callable[..., Awaitable[None]], *middleware: Callable[..., Any]
) -> None:
    """Registers ``listener`` with Bolt's assistant ``decorator``. Unlike the app's own
    decorators it takes listener middleware only as a list of middleware objects."""
    wrapped = [AsyncCustomMiddleware(app_name="pmbot", func=m) for m in middleware]
    decorator(middleware=wrapped)(listener)


def register(app: AsyncApp, deps: Deps) -> None:
    assistant = AsyncAssistant(logger=logging.getLogger("pmbot.bolt.assistant"))

    async def on_thread_started(
        event: dict[str, Any], set_suggested_prompts: AsyncSetSuggestedPrompts
    ) -> None:
        thread = event.get("assistant_thread") or {}
        await deps.slack.chat_postMessage(
            channel=str(thread.get("channel_id") or ""),
            thread_ts=str(thread.get("thread_ts") or ""),
            text=words.ASSISTANT_GREETING,
        )
        await set_suggested_prompts(
            prompts=[{"title": t, "message": m} for t, m in words.ASSISTANT_PROMPTS],
            title=words.ASSISTANT_PROMPTS_TITLE,
        )

    async def on_question(
        event: dict[str, Any],
        context: AsyncBoltContext,
        set_status: AsyncSetStatus,
        set_title: AsyncSetTitle,
    ) -> None:
        thread = str(event.get("thread_ts") or "")
        where = ask.Where(
            conversation=Conversation(
                team_id=str(context.team_id or ""),
                channel_id=str(event.get("channel") or context.channel_id or ""),
                shared=False,
                thread_ts=thread,
                message_ts=str(event.get("ts") or ""),
            ),
            asker_user_id=str(context.user_id or ""),
            reply_thread=thread,
            bot_user_id=context.bot_user_id,
            thinking=lambda: set_status(words.THINKING_STATUS),
            title=set_title,
        )
        await ask.answer(deps, identity_of(context), str(event.get("text") or ""), where)

    async def on_context_changed() -> None:
        # The channel a person is looking at is not used to answer: nothing to keep.
        return None

    gate = link_gate(deps)
    _listen(assistant.thread_started, on_thread_started, _starter_is_the_user, gate)
    _listen(assistant.user_message, on_question, gate)
    _listen(assistant.thread_context_changed, on_context_changed)
    app.assistant(assistant)
