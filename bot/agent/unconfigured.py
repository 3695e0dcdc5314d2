"""Stand-ins for the Token Vault, the provider APIs, the connect links and approvals when
pmbot has none configured. Each says so clearly and does nothing: a calendar or Slack tool
answers that the provider is not set up, and a destructive tool answers that approvals are
not set up, so nothing destructive ever runs without one."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot import messages as words
from bot.agent.tool import FailureCode, ToolFailure
from bot.approvals.ports import ApprovalAction, ApprovalTicket
from bot.errors import ServiceUnavailable
from bot.identity.model import Identity
from bot.providers.ports import (
    BusyInterval,
    CalendarEvent,
    PostedMessage,
    ProviderUnavailable,
)
from bot.vault.ports import Connection, ProviderToken


class UnconfiguredVault:
    async def access_token(
        self, identity: Identity, connection: Connection, *, scopes: frozenset[str] = frozenset()
    ) -> ProviderToken:
        raise ToolFailure(FailureCode.UNAVAILABLE, words.not_set_up_text(connection.value))

    def invalidate(self, identity: Identity, connection: Connection) -> None:
        """Nothing is cached."""


class UnconfiguredCalendar:
    async def list_events(
        self, token: ProviderToken, *, time_min: datetime, time_max: datetime
    ) -> list[CalendarEvent]:
        raise ProviderUnavailable("Google Calendar")

    async def free_busy(
        self, token: ProviderToken, *, emails: list[str], time_min: datetime, time_max: datetime
    ) -> dict[str, list[BusyInterval]]:
        raise ProviderUnavailable("Google Calendar")

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
        raise ProviderUnavailable("Google Calendar")


class UnconfiguredSlackAsUser:
    async def post_message(self, token: ProviderToken, *, channel: str, text: str) -> PostedMessage:
        raise ProviderUnavailable("Slack")


class UnconfiguredConnectLinks:
    async def connect_url(
        self,
        identity: Identity,
        connection: Connection,
        *,
        scopes: frozenset[str] = frozenset(),
        resume_id: str | None = None,
    ) -> str:
        raise ServiceUnavailable("Connected accounts")


class UnconfiguredApprovals:
    async def request(
        self,
        asker: Identity,
        action: ApprovalAction,
        arguments: Mapping[str, Any],
        *,
        channel_id: str | None,
    ) -> ApprovalTicket:
        raise ToolFailure(FailureCode.UNAVAILABLE, words.APPROVALS_NOT_SET_UP)
