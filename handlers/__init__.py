"""Slack surfaces: one module per surface, each with ``register(app, deps)``."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.wiring import Deps


def register_all(app: AsyncApp, deps: Deps) -> None:
    from handlers import commands, home, linking, mentions, messages

    for module in (commands, mentions, messages, home, linking):
        module.register(app, deps)
