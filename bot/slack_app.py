"""The Bolt app: the handlers and the one error mapping. Requests arrive verified, parsed
and de-duplicated from ``bot.ingress``."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.messages import user_message
from bot.wiring import Deps

log = logging.getLogger(__name__)


def build_bolt_app(deps: Deps) -> AsyncApp:
    app = AsyncApp(
        client=deps.slack,
        # pmbot's endpoint (bot/ingress.py) checks every signature and parses every body once;
        # Bolt gets the parsed body, so its own check (over the raw text) is off. Socket
        # Mode requests carry no signature and never went through that check.
        request_verification_enabled=False,
        # pmbot's ingress has already acked and runs this dispatch in a task of its own
        # (bot.ingress): listeners run inside it, so shutdown can wait for them.
        process_before_response=True,
        raise_error_for_unhandled_request=False,
        logger=logging.getLogger("pmbot.bolt"),
    )

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
