"""Provider accounts people connected through the dev identity provider, and the access
tokens it hands out for them (Token Vault's federated-connection tokens).

Shared by the dev identity provider (which connects accounts and issues tokens) and the
sandbox providers (the calendar service and the Slack Web API emulator), which accept only
tokens issued here: the sandbox's stand-in for Google's and Slack's own token checks.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass(frozen=True)
class ConnectedAccount:
    """``sub`` connected ``connection`` as ``account`` (an email for Google, a Slack user
    id for Slack) with ``scopes``."""

    sub: str
    connection: str
    account: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class IssuedToken:
    account: ConnectedAccount
    expires_at: float


@dataclass
class Federation:
    token_ttl: int = 3600
    _accounts: dict[tuple[str, str], ConnectedAccount] = field(default_factory=dict)
    _tokens: dict[str, IssuedToken] = field(default_factory=dict)

    def connect(self, account: ConnectedAccount) -> None:
        self._accounts[(account.sub, account.connection)] = account

    def disconnect(self, sub: str, connection: str) -> None:
        self._accounts.pop((sub, connection), None)
        for token, issued in list(self._tokens.items()):
            if issued.account.sub == sub and issued.account.connection == connection:
                del self._tokens[token]

    def account(self, sub: str, connection: str) -> ConnectedAccount | None:
        return self._accounts.get((sub, connection))

    def issue(self, account: ConnectedAccount, *, prefix: str = "ya29.sandbox-") -> str:
        """A new access token for ``account`` (Slack user tokens use ``xoxp-``)."""
        token = prefix + secrets.token_urlsafe(24)
        self._tokens[token] = IssuedToken(account=account, expires_at=time.time() + self.token_ttl)
        return token

    def issued(self) -> list[str]:
        """Every access token handed out and not yet dropped (tests look for them in
        every output to prove none leaked)."""
        return list(self._tokens)

    def resolve(self, token: str) -> ConnectedAccount | None:
        """The account a live token was issued for, or None (unknown or expired)."""
        issued = self._tokens.get(token)
        if issued is None or issued.expires_at <= time.time():
            return None
        return issued.account


#: Where the server that mounts the sandbox keeps its one federation (bot/server.py).
FEDERATION_KEY: web.AppKey[Federation] = web.AppKey("federation", Federation)
