"""The link gate shared by the surfaces: nothing is answered for an unlinked user."""

from __future__ import annotations

from bot.identity.service import Identity
from bot.wiring import Deps
from handlers import blocks


async def linked_or_prompt(deps: Deps, team_id: str, user_id: str, channel: str) -> Identity | None:
    """The user's identity, or None after sending them (only them) a link prompt."""
    identity = await deps.identity.get(team_id, user_id)
    if identity is not None:
        return identity
    url = await deps.identity.start_link(team_id, user_id)
    await deps.slack.chat_postEphemeral(
        channel=channel,
        user=user_id,
        text=blocks.link_prompt_text(url, deps.settings.link_ttl_seconds),
        blocks=blocks.link_prompt_blocks(url, deps.settings.link_ttl_seconds),
    )
    return None
