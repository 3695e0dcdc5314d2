"""People named in commands: ``<@U…>``, ``<@U…|name>`` or ``@name`` (a Slack username or
display name), resolved through Slack's Web API (``users.info``, ``users.list``), and each
person's own calendar day (their Slack time zone).

Apps, bots and deactivated accounts are not people one can share with or assign to.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import AmbiguousPerson, NotAPerson, PersonNotFound, ServiceUnavailable
from bot.projects.values import Person

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@([UW][A-Z0-9]{1,31})(?:\|[^>]*)?>")
_HANDLE = re.compile(r"@([^\s@<>|]{1,80})")
_SLACK_ERRORS = (SlackApiError, SlackClientError, OSError, TimeoutError)


@dataclass(frozen=True)
class PersonRef:
    """How a command named somebody: by Slack id or by name (exactly one is set)."""

    text: str
    slack_user_id: str | None = None
    name: str | None = None


def parse_person(token: str) -> PersonRef | None:
    """A reference to a person, or None when ``token`` does not name one."""
    token = token.strip()
    mention = _MENTION.fullmatch(token)
    if mention:
        return PersonRef(text=token, slack_user_id=mention.group(1))
    handle = _HANDLE.fullmatch(token)
    if handle:
        return PersonRef(text=token, name=handle.group(1))
    return None


class PeopleDirectory(Protocol):
    """Who a reference names, and what day it is for a person."""

    async def resolve(self, ref: PersonRef) -> Person: ...

    async def today(self, slack_user_id: str, now: datetime) -> date: ...


def _usable(user: dict[str, Any]) -> bool:
    return not (user.get("deleted") or user.get("is_bot") or user.get("id") == "USLACKBOT")


def _names(user: dict[str, Any]) -> set[str]:
    profile = user.get("profile") or {}
    found = {
        user.get("name"),
        profile.get("display_name"),
        profile.get("display_name_normalized"),
    }
    return {str(n).casefold() for n in found if n}


def _label(user: dict[str, Any]) -> str:
    profile = user.get("profile") or {}
    return str(profile.get("display_name") or user.get("name") or user.get("id"))


class SlackPeople:
    """:class:`PeopleDirectory` over the Web API. The member list is kept ``list_ttl``
    seconds (``users.list`` is rate limited); a name not in it refreshes it once."""

    def __init__(self, slack: AsyncWebClient, *, list_ttl: float = 60.0) -> None:
        self._slack = slack
        self._list_ttl = list_ttl
        self._members: list[dict[str, Any]] = []
        self._members_at = float("-inf")
        self._zones: dict[str, tuple[float, timezone | ZoneInfo]] = {}

    async def resolve(self, ref: PersonRef) -> Person:
        if ref.slack_user_id is not None:
            user = await self._user(ref.slack_user_id)
            if user is None:
                raise PersonNotFound(ref.text)
            if not _usable(user):
                raise NotAPerson(ref.text)
            return Person(slack_user_id=str(user["id"]), name=_label(user))
        assert ref.name is not None
        matches = await self._named(ref.name, refresh=False)
        if not matches:
            matches = await self._named(ref.name, refresh=True)
        people = [u for u in matches if _usable(u)]
        if not people:
            raise NotAPerson(ref.text) if matches else PersonNotFound(ref.text)
        if len(people) > 1:
            raise AmbiguousPerson(ref.text, len(people))
        return Person(slack_user_id=str(people[0]["id"]), name=_label(people[0]))

    async def _user(self, slack_user_id: str) -> dict[str, Any] | None:
        try:
            response = await self._slack.users_info(user=slack_user_id)
        except SlackApiError as exc:
            if exc.response.get("error") in {"user_not_found", "user_not_visible"}:
                return None
            log.warning("users.info failed: %s", exc.response.get("error"))
            raise ServiceUnavailable("Slack") from None
        except _SLACK_ERRORS as exc:
            log.warning("users.info failed: %s", type(exc).__name__)
            raise ServiceUnavailable("Slack") from None
        user = response.get("user")
        return user if isinstance(user, dict) else None

    async def _named(self, name: str, *, refresh: bool) -> list[dict[str, Any]]:
        now = time.monotonic()
        stale = now - self._members_at > self._list_ttl
        # A refresh on a miss at most every few seconds: a stream of unknown names must not
        # turn into a stream of users.list calls.
        if stale or (refresh and now - self._members_at > 5.0):
            self._members = await self._list_members()
            self._members_at = time.monotonic()
        wanted = name.casefold()
        return [u for u in self._members if wanted in _names(u)]

    async def _list_members(self) -> list[dict[str, Any]]:
        members: list[dict[str, Any]] = []
        cursor: str | None = None
        try:
            while True:
                response = await self._slack.users_list(limit=200, cursor=cursor)
                members += [m for m in response.get("members") or [] if isinstance(m, dict)]
                cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    return members
        except _SLACK_ERRORS as exc:
            log.warning("users.list failed: %s", type(exc).__name__)
            raise ServiceUnavailable("Slack") from None

    async def today(self, slack_user_id: str, now: datetime) -> date:
        """The person's calendar day at ``now`` (UTC when Slack cannot say)."""
        return now.astimezone(await self._zone(slack_user_id)).date()

    async def _zone(self, slack_user_id: str) -> timezone | ZoneInfo:
        cached = self._zones.get(slack_user_id)
        if cached is not None and time.monotonic() - cached[0] < 600:
            return cached[1]
        zone: timezone | ZoneInfo = UTC
        try:
            user = await self._user(slack_user_id)
        except ServiceUnavailable:
            return UTC
        if user is not None:
            zone = _zone_of(user)
        self._zones[slack_user_id] = (time.monotonic(), zone)
        return zone

    # -- what the agent's calendar tools need ----------------------------------------------

    async def zone(self, slack_user_id: str) -> timezone | ZoneInfo:
        """The person's time zone from Slack (UTC when Slack cannot say)."""
        return await self._zone(slack_user_id)

    async def email(self, slack_user_id: str) -> str | None:
        """The email Slack has for a person (``users:read.email``), or None."""
        user = await self._user(slack_user_id)
        if user is None:
            return None
        found = (user.get("profile") or {}).get("email")
        return found if isinstance(found, str) and "@" in found else None


def _zone_of(user: dict[str, Any]) -> timezone | ZoneInfo:
    name = user.get("tz")
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    offset = user.get("tz_offset")
    if isinstance(offset, int) and abs(offset) < 24 * 3600:
        return timezone(timedelta(seconds=offset))
    return UTC
