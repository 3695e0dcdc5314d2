"""Slack as the person: ``chat.postMessage`` with their user token (``xoxp-``), so the
message is theirs (their name, no app badge), the :class:`~bot.providers.ports.SlackAsUser`
the ``post_as_me`` tool uses.

One ``AsyncWebClient`` without a token is shared; the person's token is given per call
(slack_sdk sends it as the ``Authorization`` header, never in the body or a log). It has no
retry handlers: a rate limit is raised as :class:`ProviderRateLimited` with its
``Retry-After`` for the caller to decide, and a post is never sent twice behind its back.
Exceptions carry Slack's error code only.
"""

from __future__ import annotations

import logging
import re

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.providers.ports import (
    PostedMessage,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from bot.vault.ports import ProviderToken

log = logging.getLogger(__name__)

PROVIDER = "slack"
#: The user-token scope ``chat.postMessage`` needs.
POST_SCOPE = "chat:write"
_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
# The token is not good (any more): the person must connect Slack again.
_BAD_TOKEN = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)
_NOT_FOUND = frozenset({"channel_not_found"})
_FORBIDDEN = frozenset(
    {
        "not_in_channel",
        "is_archived",
        "missing_scope",
        "not_allowed_token_type",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "ekm_access_denied",
        "team_access_not_granted",
        "access_denied",
    }
)
_TRANSIENT = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}
)
MAX_RETRY_AFTER = 3600.0


class SlackUserClient:
    """``SlackAsUser`` against ``base_url`` (``SLACK_API_URL``); ``bot`` (the bot's own
    client) finds permalinks, and may be None (then messages have none)."""

    def __init__(
        self,
        *,
        base_url: str,
        session: aiohttp.ClientSession | None,
        timeout: float,
        bot: AsyncWebClient | None = None,
    ) -> None:
        self._client = AsyncWebClient(
            token=None, base_url=base_url, session=session, timeout=int(max(1, timeout))
        )
        self._client.retry_handlers = []  # see the module docstring
        self._bot = bot

    async def post_message(self, token: ProviderToken, *, channel: str, text: str) -> PostedMessage:
        try:
            response = await self._client.chat_postMessage(
                token=token.access_token, channel=channel, text=text
            )
        except SlackApiError as exc:
            raise _mapped(exc) from None
        except (TimeoutError, aiohttp.ClientError, SlackClientError):
            raise ProviderUnavailable(PROVIDER) from None
        posted_channel = response.get("channel")
        ts = response.get("ts")
        if not isinstance(posted_channel, str) or not isinstance(ts, str):
            raise ProviderUnavailable(PROVIDER)
        return PostedMessage(
            channel=posted_channel, ts=ts, permalink=await self._permalink(posted_channel, ts)
        )

    async def _permalink(self, channel: str, ts: str) -> str | None:
        if self._bot is None:
            return None
        try:
            found = await self._bot.chat_getPermalink(channel=channel, message_ts=ts)
        except (SlackApiError, SlackClientError, TimeoutError, aiohttp.ClientError) as exc:
            # The post itself succeeded; a missing link only makes the answer shorter.
            log.info("no permalink for a message posted as a person: %s", type(exc).__name__)
            return None
        link = found.get("permalink")
        return link if isinstance(link, str) and link.startswith(("https://", "http://")) else None


def _mapped(exc: SlackApiError) -> Exception:
    """The provider exception for a Slack error answer (its code only, never its text)."""
    response = exc.response
    status = int(getattr(response, "status_code", 200) or 200)
    data = getattr(response, "data", None)
    raw = data.get("error") if isinstance(data, dict) else None
    code = raw if isinstance(raw, str) and _CODE.fullmatch(raw) else "unknown_error"
    if status == 429 or code in ("ratelimited", "rate_limited"):
        headers = getattr(response, "headers", None) or {}
        return ProviderRateLimited(PROVIDER, _retry_after(headers.get("Retry-After")))
    if status >= 500 or code in _TRANSIENT:
        return ProviderUnavailable(PROVIDER)
    if code in _BAD_TOKEN:
        return ProviderRejected(PROVIDER, 401, code)
    if code in _NOT_FOUND:
        return ProviderRejected(PROVIDER, 404, code)
    if code in _FORBIDDEN:
        return ProviderRejected(PROVIDER, 403, code)
    return ProviderRejected(PROVIDER, 400, code)


def _retry_after(value: object) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(str(value))
    except ValueError:
        return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
