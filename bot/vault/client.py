"""Token Vault: provider access tokens for the asker, from Auth0's token exchange.

The subject of the exchange is the person's stored refresh token (decrypted for the
exchange only, never logged); ``connection`` names the provider account
(``TOKEN_VAULT_CALENDAR_CONNECTION``, ``TOKEN_VAULT_SLACK_CONNECTION``). Tokens are kept
in this process's memory per (team, Slack user, sub, connection) until
``TOKEN_VAULT_EXPIRY_MARGIN`` seconds before they expire, never stored; concurrent misses
for one key make one exchange.

What the exchange answers becomes:

* 401 (``federated_connection_refresh_token_not_found``: the account is not connected),
  or any other refusal that is not about the person's grant: :class:`ConnectionRequired`;
* a token without the scopes asked for (Auth0 names the granted scopes in ``scope``), or
  403 ``invalid_scope``: :class:`ConnectionRequired` with ``missing_scopes``;
* 403 ``invalid_grant`` (the refresh token itself is revoked or unknown), or no usable
  stored refresh token: ``RelinkRequired`` (connecting an account cannot help);
* 429, 5xx, unreachable: ``ServiceUnavailable``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Protocol

from bot.errors import RelinkRequired
from bot.identity.auth0 import Auth0Rejected, FederatedToken
from bot.identity.grants import Grants
from bot.identity.model import Identity, utcnow
from bot.storage.db import Database
from bot.storage.models import SlackLink
from bot.vault.ports import Connection, ConnectionRequired, ProviderToken

log = logging.getLogger(__name__)

CacheKey = tuple[str, str, str, Connection]


class TokenExchange(Protocol):
    """Auth0's Token Vault exchange (``Auth0Client.access_token_for_connection``)."""

    async def access_token_for_connection(
        self, refresh_token: str, connection: str
    ) -> FederatedToken: ...


class VaultClient:
    """The :class:`~bot.vault.ports.TokenVault` of pmbot."""

    def __init__(
        self,
        *,
        db: Database,
        grants: Grants,
        exchange: TokenExchange,
        connections: Mapping[Connection, str],
        default_scopes: Mapping[Connection, frozenset[str]],
        expiry_margin: timedelta,
    ) -> None:
        self._db = db
        self._grants = grants
        self._exchange = exchange
        self._connections = dict(connections)
        self._default_scopes = dict(default_scopes)
        self._margin = expiry_margin
        self._cache: dict[CacheKey, ProviderToken] = {}
        self._locks: dict[CacheKey, asyncio.Lock] = {}

    def connection_name(self, connection: Connection) -> str:
        """The Auth0 connection behind ``connection`` (from settings)."""
        return self._connections[connection]

    def scopes_for(self, connection: Connection, scopes: frozenset[str]) -> frozenset[str]:
        """The scopes a caller needs: those it names, else the connection's defaults."""
        return scopes or self._default_scopes.get(connection, frozenset())

    async def access_token(
        self, identity: Identity, connection: Connection, *, scopes: frozenset[str] = frozenset()
    ) -> ProviderToken:
        """A provider token for ``identity`` with at least ``scopes`` (default: the
        connection's scopes from settings). See the module docstring for the errors."""
        required = self.scopes_for(connection, scopes)
        key = _key(identity, connection)
        cached = self._fresh(key, required)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            # Whoever held the lock may have fetched it meanwhile.
            cached = self._fresh(key, required)
            if cached is not None:
                return cached
            token = await self._exchange_for(identity, connection, required)
            if token.expires_at - self._margin > utcnow():
                self._cache[key] = token
            return token

    def invalidate(self, identity: Identity, connection: Connection) -> None:
        """Forget the cached token (the provider answered 401: it is not good any more)."""
        self.forget(identity.team_id, identity.slack_user_id, identity.sub, connection)

    def forget(self, team_id: str, slack_user_id: str, sub: str, connection: Connection) -> None:
        """Forget the cached token of that person and connection (e.g. once they connected
        the account again, with other scopes)."""
        self._cache.pop((team_id, slack_user_id, sub, connection), None)

    def cached(self, identity: Identity, connection: Connection) -> bool:
        """Whether a token is cached (and not about to expire) for this person."""
        return self._fresh(_key(identity, connection), frozenset()) is not None

    def _fresh(self, key: CacheKey, required: frozenset[str]) -> ProviderToken | None:
        token = self._cache.get(key)
        if token is None:
            return None
        if token.expires_at - self._margin <= utcnow():
            del self._cache[key]
            return None
        if not required <= token.scopes:
            # The account may have been connected again with more scopes: ask Auth0.
            return None
        return token

    async def _exchange_for(
        self, identity: Identity, connection: Connection, required: frozenset[str]
    ) -> ProviderToken:
        refresh = await self._refresh_token(identity)
        name = self._connections[connection]
        try:
            federated = await self._exchange.access_token_for_connection(refresh, name)
        except Auth0Rejected as exc:
            log.info(
                "Token Vault refused a %s token: %s (HTTP %s)",
                connection.value,
                exc.error,
                exc.status,
            )
            if exc.status == 403 and exc.error == "invalid_grant":
                raise RelinkRequired() from None
            if exc.error == "invalid_scope":
                raise ConnectionRequired(connection, required) from None
            raise ConnectionRequired(connection) from None
        granted = federated.scopes if federated.scopes is not None else required
        missing = required - granted
        if missing:
            log.info("a connected %s account lacks %d scopes", connection.value, len(missing))
            raise ConnectionRequired(connection, frozenset(missing))
        return ProviderToken(
            access_token=federated.access_token,
            expires_at=utcnow() + timedelta(seconds=max(0, federated.expires_in)),
            scopes=granted,
        )

    async def _refresh_token(self, identity: Identity) -> str:
        async with self._db.session() as session:
            link = await session.get(SlackLink, (identity.team_id, identity.slack_user_id))
        if link is None or link.sub != identity.sub:
            raise RelinkRequired()
        refresh = self._grants.open(link.refresh_token_enc, link.team_id, link.slack_user_id)
        if refresh is None:
            raise RelinkRequired()
        return refresh


def _key(identity: Identity, connection: Connection) -> CacheKey:
    return (identity.team_id, identity.slack_user_id, identity.sub, connection)
