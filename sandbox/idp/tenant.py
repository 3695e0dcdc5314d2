"""What every endpoint of the dev identity provider shares: the tenant.

As in Auth0, a tenant holds the users who may log in, the registered applications, the
API (audience) and its token lifetimes, the signing keys and what was issued (the store);
here also the grant types ``/oauth/token`` answers.
"""

from __future__ import annotations

from aiohttp import web

from sandbox.idp.keys import KeyRing
from sandbox.idp.models import IdpClient, IdpUser
from sandbox.idp.oauth import GrantHandler
from sandbox.idp.store import IdpStore


def _normalize_issuer(issuer: str) -> str:
    return issuer if issuer.endswith("/") else issuer + "/"


class Tenant:
    """The provider's configuration and state (see :class:`DevIdentityProvider` for the
    arguments)."""

    def __init__(
        self,
        *,
        issuer: str | None,
        users: list[IdpUser],
        clients: list[IdpClient],
        audience: str,
        access_token_ttl: int,
        id_token_ttl: int,
        rotate_refresh_tokens: bool,
    ) -> None:
        self.issuer = _normalize_issuer(issuer) if issuer is not None else None
        self.users = list(users)
        self.users_by_sub = {user.sub: user for user in users}
        self.users_by_email = {user.email.lower(): user for user in users}
        self.clients = {client.client_id: client for client in clients}
        self.audience = audience
        self.access_token_ttl = access_token_ttl
        self.id_token_ttl = id_token_ttl
        self.keys = KeyRing()
        self.store = IdpStore()
        # Auth0's "Refresh Token Rotation": each refresh returns a new refresh token and
        # the one used stops working.
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.grants: dict[str, GrantHandler] = {}
        self.public_grants: set[str] = set()

    def set_issuer(self, issuer: str) -> None:
        """Fix the issuer (``http://HOST:PORT/``); a trailing slash is added if missing."""
        self.issuer = _normalize_issuer(issuer)

    def issuer_for(self, request: web.Request) -> str:
        """The issuer, fixed from this request's Host header if it is not known yet."""
        if self.issuer is None:
            self.issuer = f"{request.scheme}://{request.host}/"
        return self.issuer

    def register_grant(
        self, grant_type: str, handler: GrantHandler, *, public_clients: bool = False
    ) -> None:
        self.grants[grant_type] = handler
        if public_clients:
            self.public_grants.add(grant_type)

    def client_may_use(self, client: IdpClient, grant_type: str) -> bool:
        if client.grant_types is not None:
            return grant_type in client.grant_types
        return client.is_confidential or grant_type in self.public_grants
