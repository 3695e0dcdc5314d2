"""The ``/pm`` slash command: parse the subcommand, call one service, render."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.errors import InputTooLong, UnknownCommand
from bot.messages import user_message
from bot.wiring import Deps
from handlers import blocks

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
    async def pm_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        text = str(command.get("text") or "")
        if len(text) > MAX_COMMAND_TEXT:
            err = InputTooLong(len(text), MAX_COMMAND_TEXT)
            await ack(response_type="ephemeral", text=user_message(err))
            return
        sub, _rest = parse(text)
        if sub == "help":
            await ack(
                response_type="ephemeral", text=blocks.help_text(), blocks=blocks.help_blocks()
            )
            return
        intro = user_message(UnknownCommand(sub))
        await ack(
            response_type="ephemeral",
            text=intro,
            blocks=blocks.help_blocks(intro),
        )
