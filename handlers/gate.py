"""The link gate, written once as Bolt listener middleware: nothing is answered for a Slack
user who is not linked. Gated listeners find the linked identity with :func:`identity_of`.

An unlinked person gets only a link prompt that only they see: through ``respond`` for a
command (plus the help, for ``/pm help``), as an ephemeral message otherwise. ``/pm link``
and ``/pm unlink`` pass the gate: they are how one gets linked and unlinked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot import messages as words
from bot.identity.model import Identity
from bot.wiring import Deps
from handlers import blocks

IDENTITY = "pmbot_identity"
UNGATED_SUBCOMMANDS = frozenset({"link", "unlink"})

Middleware = Callable[..., Awaitable[BoltResponse | None]]
# Returned without calling next(): Bolt then treats the request as handled (by the gate)
# instead of looking for another listener and warning that nobody handled it.
HANDLED_BY_THE_GATE = BoltResponse(status=200, body="")


def identity_of(context: AsyncBoltContext) -> Identity:
    """The linked identity the gate put in the context of a gated listener."""
    identity = context.get(IDENTITY)
    if not isinstance(identity, Identity):
        raise RuntimeError("this listener is not behind the link gate")
    return identity


def subcommand(text: str) -> str:
    """The first word of ``/pm`` text, lower-cased (``help`` when empty)."""
    head = text.strip().partition(" ")[0]
    return head.lower() or "help"


def link_gate(deps: Deps) -> Middleware:
    async def gate(
        context: AsyncBoltContext, body: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        team_id, user_id = str(context.team_id or ""), str(context.user_id or "")
        command = subcommand(str(body.get("text") or "")) if body.get("command") else None
        if command in UNGATED_SUBCOMMANDS:
            await next()
            return None
        identity = await deps.identity.current(team_id, user_id)
        if identity is not None:
            context[IDENTITY] = identity
            await next()
            return None
        response_url = body.get("response_url") if command is not None else None
        url = await deps.identity.start_link(
            team_id, user_id, prompt_url=response_url if isinstance(response_url, str) else None
        )
        ttl = deps.settings.link_ttl_seconds
        text = words.link_prompt_text(url, ttl)
        prompt = blocks.link_prompt_blocks(url, ttl)
        if command is not None and context.respond is not None:
            if command == "help":
                prompt += blocks.help_blocks()
            await context.respond(text=text, blocks=prompt, response_type="ephemeral")
            return HANDLED_BY_THE_GATE
        channel = context.channel_id
        if channel:
            await deps.slack.chat_postEphemeral(
                channel=channel, user=user_id, text=text, blocks=prompt
            )
        return HANDLED_BY_THE_GATE

    return gate
