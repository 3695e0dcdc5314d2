"""Third-party APIs called as the person, with a Token Vault token: the Google Calendar v3
subset the calendar tools need and Slack's ``chat.postMessage`` with a user token."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.vault.ports import ProviderToken


class ProviderUnavailable(Exception):
    """The provider did not answer usefully (timeout, connection error, 5xx)."""

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self.provider = provider


class ProviderRateLimited(Exception):
    """The provider answered 429; ``retry_after`` seconds if it said."""

    def __init__(self, provider: str, retry_after: float | None = None) -> None:
        super().__init__(provider)
        self.provider = provider
        self.retry_after = retry_after


class ProviderRejected(Exception):
    """The provider refused the call: ``reason`` is its short error code (never its text,
    which may echo the request). 401 means the token is not good (any more)."""

    def __init__(self, provider: str, status: int, reason: str) -> None:
        super().__init__(f"{provider}: {status} {reason}")
        self.provider = provider
        self.status = status
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class CalendarEvent:
    id: str
    summary: str
    start: datetime
    end: datetime
    html_link: str | None = None
    description: str = ""
    attendees: tuple[str, ...] = field(default_factory=tuple)
    organizer: str | None = None


@dataclass(frozen=True, kw_only=True)
class BusyInterval:
    start: datetime
    end: datetime


class CalendarApi(Protocol):
    async def list_events(
        self, token: ProviderToken, *, time_min: datetime, time_max: datetime
    ) -> list[CalendarEvent]:
        """events.list on the primary calendar, single events ordered by start time."""
        ...

    async def free_busy(
        self, token: ProviderToken, *, emails: list[str], time_min: datetime, time_max: datetime
    ) -> dict[str, list[BusyInterval]]:
        """freeBusy.query for each email's primary calendar."""
        ...

    async def insert_event(
        self,
        token: ProviderToken,
        *,
        summary: str,
        start: datetime,
        end: datetime,
        attendees: list[str],
        description: str = "",
        request_id: str = "",
    ) -> CalendarEvent:
        """events.insert with attendees (``sendUpdates=all``)."""
        ...


@dataclass(frozen=True, kw_only=True)
class PostedMessage:
    channel: str
    ts: str
    permalink: str | None = None


class SlackAsUser(Protocol):
    async def post_message(self, token: ProviderToken, *, channel: str, text: str) -> PostedMessage:
        """``chat.postMessage`` with the person's user token (``xoxp-``)."""
        ...
