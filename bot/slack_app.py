"""The Bolt app: delivery de-duplication, handlers, error mapping (requests arrive verified)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.dedup import DedupUnavailable, delivery_key
from bot.messages import user_message
from bot.wiring import Deps

log = logging.getLogger(__name__)


def build_bolt_app(deps: Deps) -> AsyncApp:
    app = AsyncApp(
        client=deps.slack,
        # pmbot's endpoint (bot/web.py) checks every signature and parses every body once;
        # Bolt gets the parsed body, so its own check (over the raw text) is off. Socket
        # Mode requests carry no signature and never went through that check.
        request_verification_enabled=False,
        # Ack first, work after: listeners run after the HTTP response is sent.
        process_before_response=False,
        raise_error_for_unhandled_request=False,
        logger=logging.getLogger("pmbot.bolt"),
    )

    @app.middleware
    async def deduplicate(
        req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        found = delivery_key(req.body)
        if found is not None:
            kind, key = found
            try:
                fresh = await deps.dedup.claim(kind, key)
            except DedupUnavailable:
                # Losing the delivery would be worse than the small chance of a duplicate:
                # redeliveries to this process are still caught in memory.
                deps.metrics.errors.inc("dedup")
                log.error("could not record delivery %s; handling it anyway", key)
                fresh = True
            if not fresh:
                deps.metrics.duplicates.inc(kind)
                log.info("ignored a redelivery of %s", key)
                return BoltResponse(status=200, body="")
        return await next()

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], context: AsyncBoltContext) -> None:
        deps.metrics.errors.inc("listener")
        log.error("listener failed: %s", type(error).__name__, exc_info=error)
        text = user_message(error)
        try:
            if context.response_url and context.respond is not None:
                await context.respond(text=text, response_type="ephemeral", replace_original=False)
            elif context.channel_id and context.user_id:
                await deps.slack.chat_postEphemeral(
                    channel=context.channel_id, user=context.user_id, text=text
                )
        except Exception as notify_error:
            # Telling the user failed too; the error is already logged, keep serving.
            log.warning("could not tell the user about an error: %s", notify_error)

    from handlers import register_all

    register_all(app, deps)

    # Registered last, so it only sees events no handler claimed: acknowledged and ignored.
    @app.event(re.compile(".*"))
    async def ignore_other_events() -> None:
        return None

    return app


def _is_listener_task(task: asyncio.Task[object]) -> bool:
    if task.get_name() == "pmbot-event-dispatch":
        return True
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", "")
    # Bolt runs each listener after the ack in a task of this coroutine.
    return "run_ack_function_asynchronously" in name or "AsyncioListenerRunner" in name


async def drain_listeners(within: float = 10.0) -> int:
    """Wait for listeners still running after their ack (graceful shutdown).

    Returns how many were still running when ``within`` seconds ran out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        pending = [t for t in asyncio.all_tasks() if not t.done() and _is_listener_task(t)]
        if not pending or loop.time() >= deadline:
            return len(pending)
        await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
