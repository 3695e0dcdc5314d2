"""Channels named in requests (``#apollo``, ``<#C…|apollo>``, ``C…``), resolved through
Slack's Web API with the bot token (``conversations.list``, ``conversations.info``), and
whether a person is a member of one (``conversations.members``).

A channel the bot cannot see is answered as one that does not exist.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import ChannelNotFound, ServiceUnavailable

log = logging.getLogger(__name__)

_LINK = re.compile(r"<#([CG][A-Z0-9]{1,31})(?:\|[^>]*)?>")
_ID = re.compile(r"[CG][A-Z0-9]{2,31}")
_NAME = re.compile(r"#?([a-z0-9][a-z0-9._-]{0,79})")
_SLACK_ERRORS = (SlackApiError, SlackClientError, OSError, TimeoutError)
MAX_MEMBER_PAGES = 50


@dataclass(frozen=True)
class Channel:
    id: str
    name: str


class SlackChannels:
    """Channel look-ups; the channel list is kept ``list_ttl`` seconds (it is rate limited)
    and a name not in it refreshes it at most every few seconds."""

    def __init__(self, slack: AsyncWebClient, *, list_ttl: float = 60.0) -> None:
        self._slack = slack
        self._list_ttl = list_ttl
        self._channels: list[dict[str, Any]] = []
        self._listed_at = float("-inf")

    async def resolve(self, reference: str) -> Channel:
        """The channel ``reference`` names; :class:`ChannelNotFound` or
        :class:`ServiceUnavailable`."""
        text = reference.strip()
        link = _LINK.fullmatch(text)
        wanted_id = link.group(1) if link else (text if _ID.fullmatch(text) else None)
        if wanted_id is not None:
            return await self._by_id(wanted_id, reference)
        named = _NAME.fullmatch(text.lower())
        if named is None:
            raise ChannelNotFound(reference)
        name = named.group(1)
        found = await self._named(name, refresh=False) or await self._named(name, refresh=True)
        if found is None:
            raise ChannelNotFound(reference)
        return found

    async def _by_id(self, channel_id: str, reference: str) -> Channel:
        try:
            response = await self._slack.conversations_info(channel=channel_id)
        except SlackApiError as exc:
            if exc.response.get("error") in {"channel_not_found", "not_in_channel"}:
                raise ChannelNotFound(reference) from None
            log.warning("conversations.info failed: %s", exc.response.get("error"))
            raise ServiceUnavailable("Slack") from None
        except _SLACK_ERRORS as exc:
            log.warning("conversations.info failed: %s", type(exc).__name__)
            raise ServiceUnavailable("Slack") from None
        channel = response.get("channel") or {}
        if not isinstance(channel, dict) or channel.get("is_im") or not channel.get("name"):
            raise ChannelNotFound(reference)
        return Channel(id=str(channel["id"]), name=str(channel["name"]))

    async def _named(self, name: str, *, refresh: bool) -> Channel | None:
        now = time.monotonic()
        stale = now - self._listed_at > self._list_ttl
        if stale or (refresh and now - self._listed_at > 5.0):
            self._channels = await self._list()
            self._listed_at = time.monotonic()
        for channel in self._channels:
            if str(channel.get("name") or "").lower() == name and not channel.get("is_archived"):
                return Channel(id=str(channel["id"]), name=str(channel["name"]))
        return None

    async def _list(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        try:
            for _ in range(MAX_MEMBER_PAGES):
                response = await self._slack.conversations_list(
                    limit=200, cursor=cursor, exclude_archived=True
                )
                found += [c for c in response.get("channels") or [] if isinstance(c, dict)]
                cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    break
        except _SLACK_ERRORS as exc:
            log.warning("conversations.list failed: %s", type(exc).__name__)
            raise ServiceUnavailable("Slack") from None
        return found

    async def is_member(self, channel_id: str, slack_user_id: str) -> bool:
        """Whether the person is a member of the channel now (read afresh every time)."""
        cursor: str | None = None
        try:
            for _ in range(MAX_MEMBER_PAGES):
                response = await self._slack.conversations_members(
                    channel=channel_id, limit=200, cursor=cursor
                )
                if slack_user_id in (response.get("members") or []):
                    return True
                cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    return False
        except _SLACK_ERRORS as exc:
            log.warning("conversations.members failed: %s", type(exc).__name__)
            raise ServiceUnavailable("Slack") from None
        return False
