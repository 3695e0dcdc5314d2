"""The ``/pm`` slash command: parse the subcommand, call one service, render."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.errors import InputTooLong, UnknownCommand
from bot.messages import user_message
from bot.wiring import Deps
from handlers import blocks
from handlers.home import publish_home

MAX_COMMAND_TEXT = 4000


def parse(text: str) -> tuple[str, str]:
    """Split ``/pm`` text into (subcommand, rest); empty text means help."""
    stripped = text.strip()
    if not stripped:
        return "help", ""
    head, _, rest = stripped.partition(" ")
    return head.lower(), rest.strip()


def register(app: AsyncApp, deps: Deps) -> None:
    @app.command("/pm")
    async def pm_command(ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]) -> None:
        # Ack at once (Slack's 3 s budget); every answer goes through response_url.
        await ack()
        text = str(command.get("text") or "")
        team_id, user_id = str(command.get("team_id", "")), str(command.get("user_id", ""))
        if len(text) > MAX_COMMAND_TEXT:
            await respond(user_message(InputTooLong(len(text), MAX_COMMAND_TEXT)))
            return
        sub, _rest = parse(text)
        identity = deps.identity
        ttl = deps.settings.link_ttl_seconds
        if sub == "unlink":
            removed = await identity.unlink(team_id, user_id)
            await respond(
                "Your account is unlinked and pmbot's access was revoked."
                if removed
                else "Your account was not linked."
            )
            if removed:
                await publish_home(deps, team_id, user_id)
            return
        linked = await identity.get(team_id, user_id)
        if sub == "link" and linked is not None:
            # Ask before replacing a link: a stray /pm link must not cost the current one.
            await respond(
                text=blocks.relink_question_text(linked.display),
                blocks=blocks.relink_question_blocks(linked.display),
            )
            return
        if linked is None or sub == "link":
            url = await identity.start_link(team_id, user_id)
            prompt = blocks.link_prompt_blocks(url, ttl)
            if sub == "help":
                prompt += blocks.help_blocks()
            await respond(text=blocks.link_prompt_text(url, ttl), blocks=prompt)
            return
        if sub == "whoami":
            await respond(
                blocks.whoami_text(
                    linked.display,
                    linked.sub,
                    sorted(linked.permissions),
                    needs_relink=linked.needs_relink,
                    membership=linked.membership.value,
                )
            )
            return
        if sub == "help":
            await respond(text=blocks.help_text(), blocks=blocks.help_blocks())
            return
        intro = user_message(UnknownCommand(sub))
        await respond(text=intro, blocks=blocks.help_blocks(intro))
