"""Token Vault as the tools see it: a provider access token for the asker, or a reason why
not. The token itself never leaves the code that calls the provider (never logged, never
sent to Slack or the model)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.identity.model import Identity


class Connection(enum.StrEnum):
    """Which provider account (``connection`` names come from settings)."""

    GOOGLE_CALENDAR = "calendar"
    SLACK = "slack"


@dataclass(frozen=True)
class ProviderToken:
    access_token: str
    expires_at: datetime
    scopes: frozenset[str]

    def __repr__(self) -> str:
        # Never print the token, whatever logs or tracebacks do with this object.
        scopes = sorted(self.scopes)
        return f"ProviderToken(expires_at={self.expires_at.isoformat()}, scopes={scopes})"


class ConnectionRequired(Exception):
    """The asker has not connected this account (the exchange answered 401), or the
    connected account lacks ``missing_scopes``. The person is offered a Connect button;
    the request resumes once they have connected."""

    def __init__(
        self, connection: Connection, missing_scopes: frozenset[str] = frozenset()
    ) -> None:
        super().__init__(connection.value)
        self.connection = connection
        self.missing_scopes = missing_scopes


class TokenVault(Protocol):
    async def access_token(
        self, identity: Identity, connection: Connection, *, scopes: frozenset[str] = frozenset()
    ) -> ProviderToken:
        """A provider token for ``identity`` (cached in memory until shortly before it
        expires); :class:`ConnectionRequired` or ``bot.errors.ServiceUnavailable``."""
        ...

    def invalidate(self, identity: Identity, connection: Connection) -> None:
        """Forget the cached token: the provider answered 401, it is not good any more."""
        ...


class ConnectLinks(Protocol):
    async def connect_url(
        self,
        identity: Identity,
        connection: Connection,
        *,
        scopes: frozenset[str] = frozenset(),
        resume_id: str | None = None,
    ) -> str:
        """A pmbot page (bound to this Slack user) that starts Auth0's Connected Accounts
        flow for ``connection``; once the account is connected, the request ``resume_id``
        (if any) is resumed through the hook given to the connect flows."""
        ...


class ResumeHook(Protocol):
    async def __call__(self, resume_id: str) -> None:
        """Run again the request that waited for a connected account."""
        ...
