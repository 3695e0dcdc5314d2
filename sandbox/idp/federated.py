"""Token Vault on the dev identity provider: the federated connections it knows, the
token-exchange grant that hands out their access tokens, and the My Account API tokens
(a refresh token used for another audience, as Auth0's multi-resource refresh tokens).

The grant (``urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-
token``) answers as Auth0 documents it: confidential clients only; the subject token is the
user's refresh token (``subject_token_type`` ``urn:ietf:params:oauth:token-type:
refresh_token``) and the answer an access token of the provider account the user connected
(``issued_token_type`` ``http://auth0.com/oauth/token-type/federated-connection-access-
token``, ``expires_in``, ``scope``). No connected account for that connection is 401
``federated_connection_refresh_token_not_found``. Auth0's exchange takes no ``scope``; when
a caller sends one anyway and the account lacks some of it, the answer is 403
``invalid_scope``. Tokens come from the shared :class:`~sandbox.federation.Federation`, the
only issuer the sandbox providers accept.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sandbox.federation import Federation
from sandbox.idp.oauth import OAuthError, TokenRequest, split_scope
from sandbox.idp.store import RefreshTokenRecord
from sandbox.idp.tenant import Tenant
from sandbox.people import person_by_email

GRANT_TOKEN_VAULT = (
    "urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token"  # noqa: S105 - a grant type name
)
SUBJECT_REFRESH_TOKEN = "urn:ietf:params:oauth:token-type:refresh_token"  # noqa: S105
FEDERATED_ACCESS_TOKEN = "http://auth0.com/oauth/token-type/federated-connection-access-token"  # noqa: S105
#: The My Account API scopes a refresh token may be used for (the client's MRRT policy).
MY_ACCOUNT_SCOPES = ("create:me:connected_accounts", "read:me:connected_accounts")


class ProviderKind(enum.StrEnum):
    GOOGLE = "google"
    SLACK = "slack"


#: The connections of the embedded default, as Auth0 names them.
DEFAULT_CONNECTIONS: dict[str, ProviderKind] = {
    "google-oauth2": ProviderKind.GOOGLE,
    "sign-in-with-slack": ProviderKind.SLACK,
}
PROVIDER_NAMES = {ProviderKind.GOOGLE: "Google", ProviderKind.SLACK: "Slack"}


def my_account_audience(issuer: str) -> str:
    """The My Account API's audience: ``https://DOMAIN/me/``."""
    return issuer + "me/"


def provider_account(kind: ProviderKind, email: str, sub: str) -> str:
    """Who a seeded person is at the provider: their email at Google, their Slack user id
    (``sandbox.people``) at Slack."""
    if kind is ProviderKind.GOOGLE:
        return email
    person = person_by_email(email)
    return sub if person is None else person.slack_id


@dataclass
class TokenVaultFaults:
    """Answers the next exchanges give instead of a token (HTTP 429 or 5xx), in order."""

    pending: deque[int] = field(default_factory=deque)

    def add(self, status: int, times: int = 1) -> None:
        if status != 429 and not 500 <= status <= 599:
            raise ValueError("a fault is HTTP 429 or 5xx")
        self.pending.extend([status] * times)


class TokenVaultGrant:
    """The Token Vault exchange at ``/oauth/token`` (registered for confidential clients)."""

    def __init__(
        self, tenant: Tenant, federation: Federation, connections: dict[str, ProviderKind]
    ) -> None:
        self._tenant = tenant
        self.federation = federation
        self.connections = dict(connections)
        self.faults = TokenVaultFaults()
        #: Exchanges answered (successful or not), for tests and benchmarks.
        self.exchanges = 0
        tenant.register_grant(GRANT_TOKEN_VAULT, self.exchange)

    async def exchange(self, req: TokenRequest) -> dict[str, Any]:
        self.exchanges += 1
        if self.faults.pending:
            status = self.faults.pending.popleft()
            if status == 429:
                raise OAuthError(429, "too_many_requests", "Global limit has been reached")
            raise OAuthError(status, "temporarily_unavailable", "Token Vault is unavailable")
        if req.require("subject_token_type") != SUBJECT_REFRESH_TOKEN:
            raise OAuthError(400, "invalid_request", "Unsupported subject_token_type")
        if req.require("requested_token_type") != FEDERATED_ACCESS_TOKEN:
            raise OAuthError(400, "invalid_request", "Unsupported requested_token_type")
        connection = req.require("connection")
        if connection not in self.connections:
            raise OAuthError(400, "invalid_request", f"Unknown connection: {connection}")
        record = self._refresh_record(req)
        account = self.federation.account(record.sub, connection)
        if account is None:
            raise OAuthError(
                401,
                "federated_connection_refresh_token_not_found",
                "Federated connection Refresh Token not found.",
            )
        requested = split_scope(req.params.get("scope"))
        missing = [s for s in requested if s not in account.scopes]
        if missing:
            raise OAuthError(
                403, "invalid_scope", f"Scopes not granted to the account: {' '.join(missing)}"
            )
        kind = self.connections[connection]
        prefix = "xoxp-sandbox-" if kind is ProviderKind.SLACK else "ya29.sandbox-"
        token = self.federation.issue(account, prefix=prefix)
        return {
            "access_token": token,
            "issued_token_type": FEDERATED_ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": self.federation.token_ttl,
            "scope": " ".join(sorted(account.scopes)),
        }

    def _refresh_record(self, req: TokenRequest) -> RefreshTokenRecord:
        record = self._tenant.store.refresh_token(req.require("subject_token"))
        if record is None or record.client_id != req.client.client_id:
            raise OAuthError(403, "invalid_grant", "Unknown or invalid refresh token.")
        if record.sub not in self._tenant.users_by_sub:
            raise OAuthError(403, "invalid_grant", "Unknown or invalid refresh token.")
        return record


def my_account_token(
    tenant: Tenant, record: RefreshTokenRecord, scope: str | None
) -> dict[str, Any]:
    """A refresh token used for the My Account API (``audience`` ``https://DOMAIN/me/``):
    an access token for that audience with the requested My Account scopes."""
    requested = split_scope(scope)
    extra = [s for s in requested if s not in MY_ACCOUNT_SCOPES]
    if extra:
        raise OAuthError(
            403, "invalid_scope", f"Scopes not allowed for this audience: {' '.join(extra)}"
        )
    issuer = tenant.issuer or ""
    now = int(time.time())
    granted = requested or list(MY_ACCOUNT_SCOPES)
    access_token = tenant.keys.sign(
        {
            "iss": issuer,
            "sub": record.sub,
            "aud": my_account_audience(issuer),
            "iat": now,
            "exp": now + tenant.access_token_ttl,
            "azp": record.client_id,
            "scope": " ".join(granted),
        }
    )
    return {
        "access_token": access_token,
        "expires_in": tenant.access_token_ttl,
        "scope": " ".join(granted),
        "token_type": "Bearer",
    }
