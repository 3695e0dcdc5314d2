"""Linking in Slack: the DM that asks to confirm a verified login, its buttons, and the
"link another account?" button.

The confirmation is a DM from the bot, so only the person sees it; a click is accepted only
from the Slack user the link request was made for (checked by the service).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot import messages as words
from bot.errors import ServiceUnavailable
from bot.identity.model import LinkFailed, LinkFailure, VerifiedLogin
from bot.wiring import Deps
from handlers import blocks
from handlers.home import publish_home

log = logging.getLogger(__name__)


class SlackLinkNotifier:
    """Asks the person, in a DM, to confirm the login the callback verified."""

    def __init__(self, slack: AsyncWebClient) -> None:
        self._slack = slack

    async def ask_to_confirm(self, verified: VerifiedLogin) -> None:
        try:
            opened = await self._slack.conversations_open(users=verified.slack_user_id)
            await self._slack.chat_postMessage(
                channel=opened["channel"]["id"],
                text=words.confirm_link_text(verified.display, verified.replaces),
                blocks=blocks.confirm_link_blocks(
                    verified.request_id, verified.display, verified.replaces
                ),
            )
        except (SlackApiError, SlackClientError, OSError, TimeoutError) as exc:
            log.warning("could not ask for the link confirmation: %s", type(exc).__name__)
            raise ServiceUnavailable("Slack") from None


def _team_and_user(body: dict[str, Any]) -> tuple[str, str]:
    user = body.get("user") or {}
    team = str((body.get("team") or {}).get("id") or user.get("team_id") or "")
    return team, str(user.get("id") or "")


async def _replace_message(deps: Deps, body: dict[str, Any], text: str) -> None:
    """Turn the confirmation DM into its final state (no buttons left to press)."""
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
    if not channel or not ts:
        return
    await deps.slack.chat_update(channel=str(channel), ts=str(ts), text=text, blocks=[])


async def _retire_prompts(deps: Deps, request_id: str, text: str) -> None:
    """Replace the /pm prompts that showed a link once it is used: no stale link button
    is left in the conversation. Best effort: a response_url lives 30 minutes."""
    for url in await deps.identity.take_prompt_urls(request_id):
        try:
            await AsyncWebhookClient(url, session=deps.http).send(
                text=text, replace_original=True, response_type="ephemeral"
            )
        except (SlackClientError, OSError, TimeoutError) as exc:
            log.info("could not replace a link prompt: %s", type(exc).__name__)


async def _refuse(
    deps: Deps, body: dict[str, Any], respond: AsyncRespond, reason: LinkFailure
) -> None:
    text = words.LINK_REFUSALS.get(reason, words.LINK_REFUSED)
    if reason is LinkFailure.NOT_YOURS:
        # Someone else's click changes nothing, not even the message.
        await respond(text=text, response_type="ephemeral", replace_original=False)
    else:
        await _replace_message(deps, body, text)


def register(app: AsyncApp, deps: Deps) -> None:
    ttl = deps.settings.link_ttl_seconds

    @app.action("link_confirm")
    async def on_confirm(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        team_id, user_id = _team_and_user(body)
        request_id = str((body.get("actions") or [{}])[0].get("value") or "")
        try:
            identity = await deps.identity.confirm_link(
                request_id=request_id, team_id=team_id, slack_user_id=user_id
            )
        except LinkFailed as exc:
            await _refuse(deps, body, respond, exc.reason)
            return
        await deps.projects.apply_pending_grants(team_id, user_id, identity.sub)
        await _replace_message(deps, body, words.linked_text(identity.display))
        await _retire_prompts(deps, request_id, words.prompt_used(identity.display))
        await publish_home(deps, team_id, user_id)

    @app.action("link_cancel")
    async def on_cancel(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        team_id, user_id = _team_and_user(body)
        request_id = str((body.get("actions") or [{}])[0].get("value") or "")
        try:
            await deps.identity.cancel_link(
                request_id=request_id, team_id=team_id, slack_user_id=user_id
            )
        except LinkFailed as exc:
            await _refuse(deps, body, respond, exc.reason)
            return
        await _replace_message(deps, body, words.link_cancelled_text())
        await _retire_prompts(deps, request_id, words.PROMPT_CANCELLED)

    @app.action("link_replace")
    async def on_replace(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        team_id, user_id = _team_and_user(body)
        response_url = body.get("response_url")
        url = await deps.identity.start_link(
            team_id, user_id, prompt_url=response_url if isinstance(response_url, str) else None
        )
        await respond(
            text=words.link_prompt_text(url, ttl),
            blocks=blocks.link_prompt_blocks(url, ttl),
            response_type="ephemeral",
            replace_original=True,
        )
