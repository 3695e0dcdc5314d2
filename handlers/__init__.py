"""Slack surfaces: one module per surface, each with ``register(app, deps)``."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.wiring import Deps


def register_all(app: AsyncApp, deps: Deps) -> None:
    from handlers import (
        agent,
        approvals,
        ask,
        assistant,
        commands,
        home,
        linking,
        mentions,
        messages,
    )

    # The assistant first: it is app middleware that takes the DM thread replies.
    for module in (assistant, commands, mentions, messages, home, linking, ask, agent):
        module.register(app, deps)
    approvals.register(app, deps)
