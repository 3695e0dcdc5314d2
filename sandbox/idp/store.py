"""In-memory state of the dev identity provider: login transactions, codes, grants.

Every method is synchronous, so a check-then-update never interleaves with another
request on the event loop (single-use codes and transactions rely on this).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field

#: How long a login page may wait for the user, and how long a code may wait for
#: its exchange (Auth0 codes are short-lived as well).
TRANSACTION_TTL = 900.0
CODE_TTL = 300.0
SESSION_TTL = 8 * 3600.0


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class LoginTransaction:
    """A validated ``/authorize`` request waiting for the user to log in."""

    tx_id: str
    client_id: str
    redirect_uri: str
    scope: list[str]
    state: str | None
    nonce: str | None
    code_challenge: str
    expires_at: float


@dataclass
class Grant:
    """What a user consented to for one client; tokens issued under it hang off it."""

    grant_id: str
    client_id: str
    sub: str
    scope: list[str]
    auth_time: int
    refresh_tokens: set[str] = field(default_factory=set)
    access_token_hashes: set[str] = field(default_factory=set)


@dataclass
class AuthorizationCode:
    code: str
    grant_id: str
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str
    expires_at: float
    used: bool = False


@dataclass
class RefreshTokenRecord:
    token: str
    grant_id: str
    client_id: str
    sub: str
    scope: list[str]
    revoked: bool = False


class IdpStore:
    def __init__(self) -> None:
        self._transactions: dict[str, LoginTransaction] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._grants: dict[str, Grant] = {}
        self._refresh_tokens: dict[str, RefreshTokenRecord] = {}
        self._sessions: dict[str, tuple[str, int, float]] = {}
        self._revoked_refresh_tokens: set[str] = set()
        self._revoked_access_hashes: set[str] = set()

    # -- login transactions ------------------------------------------------------

    def add_transaction(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        scope: list[str],
        state: str | None,
        nonce: str | None,
        code_challenge: str,
    ) -> LoginTransaction:
        self._purge()
        tx = LoginTransaction(
            tx_id=secrets.token_urlsafe(24),
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            state=state,
            nonce=nonce,
            code_challenge=code_challenge,
            expires_at=time.time() + TRANSACTION_TTL,
        )
        self._transactions[tx.tx_id] = tx
        return tx

    def get_transaction(self, tx_id: str) -> LoginTransaction | None:
        tx = self._transactions.get(tx_id)
        if tx is None or tx.expires_at < time.time():
            return None
        return tx

    def consume_transaction(self, tx_id: str) -> LoginTransaction | None:
        tx = self.get_transaction(tx_id)
        self._transactions.pop(tx_id, None)
        return tx

    # -- browser sessions (for prompt=none) --------------------------------------

    def add_session(self, sub: str, auth_time: int) -> str:
        session_id = secrets.token_urlsafe(24)
        self._sessions[session_id] = (sub, auth_time, time.time() + SESSION_TTL)
        return session_id

    def session(self, session_id: str) -> tuple[str, int] | None:
        entry = self._sessions.get(session_id)
        if entry is None or entry[2] < time.time():
            return None
        return entry[0], entry[1]

    # -- grants and codes --------------------------------------------------------

    def add_grant(self, *, client_id: str, sub: str, scope: list[str], auth_time: int) -> Grant:
        grant = Grant(
            grant_id=secrets.token_urlsafe(16),
            client_id=client_id,
            sub=sub,
            scope=scope,
            auth_time=auth_time,
        )
        self._grants[grant.grant_id] = grant
        return grant

    def grant(self, grant_id: str) -> Grant | None:
        return self._grants.get(grant_id)

    def add_code(
        self,
        *,
        grant: Grant,
        redirect_uri: str,
        nonce: str | None,
        code_challenge: str,
    ) -> AuthorizationCode:
        self._purge()
        code = AuthorizationCode(
            code=secrets.token_urlsafe(32),
            grant_id=grant.grant_id,
            client_id=grant.client_id,
            redirect_uri=redirect_uri,
            nonce=nonce,
            code_challenge=code_challenge,
            expires_at=time.time() + CODE_TTL,
        )
        self._codes[code.code] = code
        return code

    def code(self, code: str) -> AuthorizationCode | None:
        """The code record, used or not; None when unknown or expired."""
        record = self._codes.get(code)
        if record is None or record.expires_at < time.time():
            return None
        return record

    def revoke_grant(self, grant_id: str) -> None:
        """Revoke every token issued under a grant (authorization code replay)."""
        grant = self._grants.get(grant_id)
        if grant is None:
            return
        for token in grant.refresh_tokens:
            self._revoke_refresh(token)
        self._revoked_access_hashes |= grant.access_token_hashes

    # -- tokens ------------------------------------------------------------------

    def record_access_token(self, grant: Grant | None, token: str) -> None:
        if grant is not None:
            grant.access_token_hashes.add(_token_hash(token))

    def access_token_revoked(self, token: str) -> bool:
        return _token_hash(token) in self._revoked_access_hashes

    def add_refresh_token(self, grant: Grant) -> str:
        token = secrets.token_urlsafe(48)
        self._refresh_tokens[token] = RefreshTokenRecord(
            token=token,
            grant_id=grant.grant_id,
            client_id=grant.client_id,
            sub=grant.sub,
            scope=list(grant.scope),
        )
        grant.refresh_tokens.add(token)
        return token

    def refresh_token(self, token: str) -> RefreshTokenRecord | None:
        """The record of a live (not revoked) refresh token."""
        record = self._refresh_tokens.get(token)
        if record is None or record.revoked:
            return None
        return record

    def revoke_refresh_tokens_like(self, record: RefreshTokenRecord) -> None:
        """Revoke all refresh tokens of the same user and application, as Auth0 does."""
        for other in self._refresh_tokens.values():
            if other.sub == record.sub and other.client_id == record.client_id:
                self._revoke_refresh(other.token)

    def retire_refresh_token(self, token: str) -> None:
        """Stop one refresh token working (it was rotated), leaving its siblings alone."""
        self._revoke_refresh(token)

    def revoked_refresh_tokens(self) -> set[str]:
        return set(self._revoked_refresh_tokens)

    def _revoke_refresh(self, token: str) -> None:
        record = self._refresh_tokens.get(token)
        if record is not None:
            record.revoked = True
        self._revoked_refresh_tokens.add(token)

    def _purge(self) -> None:
        now = time.time()
        for tx_id in [k for k, v in self._transactions.items() if v.expires_at < now]:
            del self._transactions[tx_id]
        for code in [k for k, v in self._codes.items() if v.expires_at < now]:
            del self._codes[code]
        for sid in [k for k, v in self._sessions.items() if v[2] < now]:
            del self._sessions[sid]
