"""An Auth0-compatible OpenID Connect provider for local development and tests.

It speaks the wire formats of Auth0's Authentication API (the subset pmbot uses), so
auth0-python (``domain="HOST:PORT", protocol="http"``) and PyJWT work against it
unchanged. State lives in memory; restarting it logs everyone out.

This module is the front: :class:`DevIdentityProvider` (its settings and the aiohttp
application) and :func:`serve`. The endpoints live beside it: discovery and JWKS in
:mod:`sandbox.idp.discovery`, ``/authorize`` and the login page in
:mod:`sandbox.idp.authorize`, ``/oauth/token`` and its grants in :mod:`sandbox.idp.tokens`,
``/userinfo`` and ``/oauth/revoke`` in :mod:`sandbox.idp.userinfo`, ``/bc-authorize`` and
the CIBA grant in :mod:`sandbox.idp.ciba`. What they share is the
:class:`~sandbox.idp.tenant.Tenant`; errors, body parameters, client authentication and
PKCE are in :mod:`sandbox.idp.oauth`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from sandbox.idp.authorize import LoginEndpoints
from sandbox.idp.ciba import CibaRequests
from sandbox.idp.discovery import DiscoveryEndpoints
from sandbox.idp.models import IdpClient, IdpUser
from sandbox.idp.oauth import TOKEN_HEADERS, GrantHandler
from sandbox.idp.store import Grant
from sandbox.idp.tenant import Tenant
from sandbox.idp.tokens import TokenEndpoint
from sandbox.idp.userinfo import UserinfoAndRevocation


class DevIdentityProvider:
    """The dev identity provider: one aiohttp application with relative routes.

    Args:
        issuer: the issuer URL (``http://HOST:PORT/``, trailing slash added if
            missing). ``None`` means "not known yet": call ``set_issuer`` once the
            server is bound; if a request arrives first, the issuer is fixed from that
            request's Host header.
        users: the database-connection users who may log in.
        clients: the registered applications.
        audience: the API identifier; it is also the tenant's default audience, so
            tokens are JWTs for it even when a request names no audience.
        access_token_ttl / id_token_ttl: token lifetimes in seconds.
    """

    def __init__(
        self,
        *,
        issuer: str | None,
        users: list[IdpUser],
        clients: list[IdpClient],
        audience: str,
        access_token_ttl: int = 3600,
        id_token_ttl: int = 600,
        rotate_refresh_tokens: bool = False,
    ) -> None:
        self._tenant = Tenant(
            issuer=issuer,
            users=users,
            clients=clients,
            audience=audience,
            access_token_ttl=access_token_ttl,
            id_token_ttl=id_token_ttl,
            rotate_refresh_tokens=rotate_refresh_tokens,
        )
        self._unavailable = False
        self._discovery = DiscoveryEndpoints(self._tenant)
        self._login = LoginEndpoints(self._tenant)
        self._tokens = TokenEndpoint(self._tenant)
        self._userinfo = UserinfoAndRevocation(self._tenant)
        # CIBA: /bc-authorize, the CIBA grant and their test controls (approve, deny,
        # expire, set_delay); see sandbox.idp.ciba.
        self.ciba = CibaRequests(self._tenant, self._tokens)

    # -- configuration -----------------------------------------------------------

    def set_issuer(self, issuer: str) -> None:
        """Fix the issuer (``http://HOST:PORT/``); a trailing slash is added if missing."""
        self._tenant.set_issuer(issuer)

    @property
    def issuer(self) -> str | None:
        return self._tenant.issuer

    @property
    def audience(self) -> str:
        return self._tenant.audience

    @property
    def rotate_refresh_tokens(self) -> bool:
        """Auth0's "Refresh Token Rotation": each refresh returns a new refresh token and
        the one used stops working."""
        return self._tenant.rotate_refresh_tokens

    @rotate_refresh_tokens.setter
    def rotate_refresh_tokens(self, rotate: bool) -> None:
        self._tenant.rotate_refresh_tokens = rotate

    def rotate_keys(self) -> str:
        """Sign with a new key from now on and return its kid; old keys stay published."""
        return self._tenant.keys.rotate()

    def retire_key(self, kid: str) -> None:
        """Unpublish a key; tokens it signed stop verifying (KeyError if unknown,
        ValueError for the active key)."""
        self._tenant.keys.retire(kid)

    @property
    def active_kid(self) -> str:
        return self._tenant.keys.active.kid

    def revoked_refresh_tokens(self) -> set[str]:
        return self._tenant.store.revoked_refresh_tokens()

    def set_unavailable(self, down: bool) -> None:
        """While True, every endpoint answers 503 (Auth0 unreachable)."""
        self._unavailable = down

    def register_grant(
        self, grant_type: str, handler: GrantHandler, *, public_clients: bool = False
    ) -> None:
        """Answer another ``grant_type`` at ``/oauth/token``.

        The handler receives the request after client authentication. Confidential
        clients may use every registered grant unless their ``grant_types`` says
        otherwise; public clients only when ``public_clients`` is True.
        """
        self._tenant.register_grant(grant_type, handler, public_clients=public_clients)

    def user_by_sub(self, sub: str) -> IdpUser | None:
        return self._tenant.users_by_sub.get(sub)

    def issue_user_tokens(
        self,
        *,
        user: IdpUser,
        client: IdpClient,
        scope: list[str],
        grant: Grant | None,
        nonce: str | None = None,
        auth_time: int | None = None,
        with_refresh_token: bool = False,
    ) -> dict[str, Any]:
        """Sign the tokens of a user grant and return Auth0's token response body (for
        registered grants; see :meth:`TokenEndpoint.issue_user_tokens`)."""
        return self._tokens.issue_user_tokens(
            user=user,
            client=client,
            scope=scope,
            grant=grant,
            nonce=nonce,
            auth_time=auth_time,
            with_refresh_token=with_refresh_token,
        )

    def app(self) -> web.Application:
        """A new aiohttp application serving this provider's (shared) state."""
        app = web.Application(middlewares=[self._availability_middleware])
        app.router.add_get("/.well-known/openid-configuration", self._discovery.discovery)
        app.router.add_get("/.well-known/jwks.json", self._discovery.jwks)
        app.router.add_get("/authorize", self._login.authorize)
        app.router.add_post("/authorize/login", self._login.login)
        app.router.add_post("/oauth/token", self._tokens.token)
        app.router.add_post("/oauth/revoke", self._userinfo.revoke)
        app.router.add_get("/userinfo", self._userinfo.userinfo)
        app.router.add_post("/bc-authorize", self.ciba.bc_authorize)
        return app

    # -- plumbing ----------------------------------------------------------------

    @web.middleware
    async def _availability_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if self._unavailable:
            return web.json_response(
                {
                    "error": "temporarily_unavailable",
                    "error_description": "The identity provider is unavailable",
                },
                status=503,
                headers=TOKEN_HEADERS,
            )
        return await handler(request)


@asynccontextmanager
async def serve(
    provider: DevIdentityProvider, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Run the provider on ``host:port`` (0 = any free port) and yield its base URL
    (``http://HOST:PORT``, no trailing slash). Sets the issuer if none was given."""
    runner = web.AppRunner(provider.app())
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        base_url = f"http://{host}:{bound_port}"
        if provider.issuer is None:
            provider.set_issuer(base_url + "/")
        yield base_url
    finally:
        await runner.cleanup()
