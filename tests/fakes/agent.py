"""Small explicit in-process stand-ins for the ports whose real implementations live
elsewhere (Token Vault, Google Calendar, Slack as the person, connect links, approvals):
each does exactly what its docstring says, records what it was asked, and holds tokens the
tests then look for in every output to prove none leaked."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.approvals.ports import ApprovalAction, ApprovalTicket
from bot.identity.model import Identity
from bot.providers.ports import (
    BusyInterval,
    CalendarEvent,
    PostedMessage,
    ProviderRateLimited,
    ProviderUnavailable,
)
from bot.vault.ports import Connection, ConnectionRequired, ProviderToken
from sandbox.slack import SlackSandbox


@dataclass
class StaticVault:
    """Gives a token to people who connected (``connected``: (sub, connection)); raises
    ConnectionRequired for everyone else. ``issued`` keeps every token handed out."""

    connected: set[tuple[str, Connection]] = field(default_factory=set)
    issued: list[str] = field(default_factory=list)

    async def access_token(
        self, identity: Identity, connection: Connection, *, scopes: frozenset[str] = frozenset()
    ) -> ProviderToken:
        if (identity.sub, connection) not in self.connected:
            raise ConnectionRequired(connection)
        token = f"ya29.vault-{secrets.token_hex(12)}"
        self.issued.append(token)
        return ProviderToken(
            access_token=token, expires_at=datetime.now(UTC) + timedelta(hours=1), scopes=scopes
        )

    def invalidate(self, identity: Identity, connection: Connection) -> None:
        """Nothing is cached."""


@dataclass
class MemoryCalendar:
    """One calendar per token owner, in memory; ``fail`` makes the next call answer 429
    (``"rate"``) or 5xx (``"down"``)."""

    events: list[CalendarEvent] = field(default_factory=list)
    inserted: list[dict[str, Any]] = field(default_factory=list)
    busy: dict[str, list[BusyInterval]] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    fail: str | None = None

    def _check(self, token: ProviderToken) -> None:
        self.tokens.append(token.access_token)
        fail, self.fail = self.fail, None
        if fail == "rate":
            raise ProviderRateLimited("Google Calendar", 30)
        if fail == "down":
            raise ProviderUnavailable("Google Calendar")

    async def list_events(
        self, token: ProviderToken, *, time_min: datetime, time_max: datetime
    ) -> list[CalendarEvent]:
        self._check(token)
        return [e for e in self.events if time_min <= e.start < time_max]

    async def free_busy(
        self, token: ProviderToken, *, emails: list[str], time_min: datetime, time_max: datetime
    ) -> dict[str, list[BusyInterval]]:
        self._check(token)
        return {email: self.busy.get(email, []) for email in emails}

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
        self._check(token)
        event = CalendarEvent(
            id=f"evt{len(self.inserted) + 1}",
            summary=summary,
            start=start,
            end=end,
            html_link=f"https://calendar.example.test/event?eid=evt{len(self.inserted) + 1}",
            description=description,
            attendees=tuple(attendees),
        )
        self.inserted.append(
            {
                "summary": summary,
                "start": start,
                "end": end,
                "attendees": attendees,
                "description": description,
            }
        )
        self.events.append(event)
        return event


@dataclass
class SandboxSlackAsUser:
    """Posts as the person into the sandbox workspace (as a user token would)."""

    sandbox: SlackSandbox
    owners: dict[str, str] = field(default_factory=dict)  # token -> Slack user id
    tokens: list[str] = field(default_factory=list)

    async def post_message(self, token: ProviderToken, *, channel: str, text: str) -> PostedMessage:
        self.tokens.append(token.access_token)
        user = self.owners[token.access_token]
        posted = await self.sandbox.post_message(user, channel, text, wait=False)
        return PostedMessage(channel=channel, ts=str(posted["ts"]), permalink=None)


@dataclass
class SlackVault(StaticVault):
    """A :class:`StaticVault` whose Slack tokens are known to a :class:`SandboxSlackAsUser`."""

    slack: SandboxSlackAsUser | None = None

    async def access_token(
        self, identity: Identity, connection: Connection, *, scopes: frozenset[str] = frozenset()
    ) -> ProviderToken:
        token = await super().access_token(identity, connection, scopes=scopes)
        if self.slack is not None:
            self.slack.owners[token.access_token] = identity.slack_user_id
        return token


@dataclass
class StaticConnectLinks:
    base_url: str = "https://pmbot.test/connect"
    asked: list[tuple[str, Connection, str | None]] = field(default_factory=list)

    async def connect_url(
        self,
        identity: Identity,
        connection: Connection,
        *,
        scopes: frozenset[str] = frozenset(),
        resume_id: str | None = None,
    ) -> str:
        self.asked.append((identity.sub, connection, resume_id))
        return f"{self.base_url}/{connection.value}?resume={resume_id}"


@dataclass
class RecordingApprovals:
    """Creates an approval (the given approvers, one day) and records it; never acts."""

    approvers: tuple[str, ...] = ("U0ALICE",)
    requests: list[tuple[str, ApprovalAction, dict[str, Any], str | None]] = field(
        default_factory=list
    )

    async def request(
        self,
        asker: Identity,
        action: ApprovalAction,
        arguments: Mapping[str, Any],
        *,
        channel_id: str | None,
    ) -> ApprovalTicket:
        self.requests.append((asker.sub, action, dict(arguments), channel_id))
        target = (
            f"project {arguments['project']}"
            if action is ApprovalAction.DELETE_PROJECT
            else "all your projects"
        )
        return ApprovalTicket(
            approval_id=f"apr{len(self.requests)}",
            action=action,
            target=target,
            approvers=self.approvers,
            expires_at=datetime.now(UTC) + timedelta(days=1),
            created=True,
        )
