"""``/oauth/token``: dispatching to the grant types, the built-in grants (authorization
code with PKCE, refresh token, client credentials) and signing the tokens they issue."""

from __future__ import annotations

import hmac
import time
from typing import Any

from aiohttp import web

from sandbox.idp.federated import my_account_audience, my_account_token
from sandbox.idp.models import (
    GRANT_AUTHORIZATION_CODE,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_REFRESH_TOKEN,
    IdpClient,
    IdpUser,
)
from sandbox.idp.oauth import (
    PKCE_VERIFIER,
    TOKEN_HEADERS,
    OAuthError,
    TokenRequest,
    authenticate_client,
    read_params,
    s256,
    split_scope,
)
from sandbox.idp.store import Grant
from sandbox.idp.tenant import Tenant


class TokenEndpoint:
    """The handler of ``POST /oauth/token``; registers the built-in grants with the tenant."""

    def __init__(self, tenant: Tenant) -> None:
        self._tenant = tenant
        tenant.register_grant(
            GRANT_AUTHORIZATION_CODE, self._grant_authorization_code, public_clients=True
        )
        tenant.register_grant(GRANT_REFRESH_TOKEN, self._grant_refresh_token, public_clients=True)
        tenant.register_grant(GRANT_CLIENT_CREDENTIALS, self._grant_client_credentials)

    async def token(self, request: web.Request) -> web.Response:
        self._tenant.issuer_for(request)
        try:
            params = await read_params(request)
            grant_type = params.get("grant_type")
            if grant_type is None:
                raise OAuthError(400, "invalid_request", "Missing required parameter: grant_type")
            handler = self._tenant.grants.get(grant_type)
            if handler is None:
                raise OAuthError(
                    400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}"
                )
            client = authenticate_client(self._tenant.clients, request, params)
            if not self._tenant.client_may_use(client, grant_type):
                raise OAuthError(
                    403,
                    "unauthorized_client",
                    f"Grant type '{grant_type}' not allowed for the client.",
                )
            body = await handler(TokenRequest(params=params, client=client, request=request))
        except OAuthError as exc:
            return exc.response()
        return web.json_response(body, headers=TOKEN_HEADERS)

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
        """Sign the tokens of a user grant and return Auth0's token response body.

        The access token carries ``permissions`` (Auth0 RBAC) and, when ``openid`` is
        in scope, the userinfo audience. The ID token is issued only for ``openid``;
        ``email``/``email_verified`` need the ``email`` scope and ``name``/``nickname``
        the ``profile`` scope, as in Auth0.
        """
        issuer = self._tenant.issuer or ""
        now = int(time.time())
        access_aud: str | list[str] = (
            [self._tenant.audience, issuer + "userinfo"]
            if "openid" in scope
            else self._tenant.audience
        )
        access_token = self._tenant.keys.sign(
            {
                "iss": issuer,
                "sub": user.sub,
                "aud": access_aud,
                "iat": now,
                "exp": now + self._tenant.access_token_ttl,
                "azp": client.client_id,
                "scope": " ".join(scope),
                "permissions": list(user.permissions),
            }
        )
        self._tenant.store.record_access_token(grant, access_token)
        body: dict[str, Any] = {
            "access_token": access_token,
            "expires_in": self._tenant.access_token_ttl,
            "scope": " ".join(scope),
            "token_type": "Bearer",
        }
        if "openid" in scope:
            id_claims: dict[str, Any] = {
                "iss": issuer,
                "sub": user.sub,
                "aud": client.client_id,
                "iat": now,
                "exp": now + self._tenant.id_token_ttl,
                "auth_time": auth_time if auth_time is not None else now,
            }
            if nonce is not None:
                id_claims["nonce"] = nonce
            if "email" in scope:
                id_claims["email"] = user.email
                id_claims["email_verified"] = user.email_verified
            if "profile" in scope:
                id_claims["name"] = user.name
                id_claims["nickname"] = user.email.split("@", 1)[0]
            body["id_token"] = self._tenant.keys.sign(id_claims)
        if with_refresh_token and grant is not None:
            body["refresh_token"] = self._tenant.store.add_refresh_token(grant)
        return body

    async def _grant_authorization_code(self, req: TokenRequest) -> dict[str, Any]:
        code_value = req.require("code")
        record = self._tenant.store.code(code_value)
        if record is None or record.client_id != req.client.client_id:
            raise OAuthError(403, "invalid_grant", "Invalid authorization code")
        if record.used:
            # RFC 6749 §4.1.2: a replayed code revokes what it already yielded.
            self._tenant.store.revoke_grant(record.grant_id)
            raise OAuthError(403, "invalid_grant", "Invalid authorization code")
        # Any redemption attempt by the right client burns the code, so a wrong
        # verifier cannot be retried against it.
        record.used = True
        if req.params.get("redirect_uri") != record.redirect_uri:
            raise OAuthError(
                403,
                "invalid_grant",
                "redirect_uri does not match the one used in the authorization request",
            )
        verifier = req.params.get("code_verifier")
        if (
            verifier is None
            or not PKCE_VERIFIER.match(verifier)
            or not hmac.compare_digest(s256(verifier), record.code_challenge)
        ):
            raise OAuthError(403, "invalid_grant", "Failed to verify code verifier")
        grant = self._tenant.store.grant(record.grant_id)
        user = self._tenant.users_by_sub.get(grant.sub) if grant else None
        if grant is None or user is None:
            raise OAuthError(403, "invalid_grant", "Invalid authorization code")
        return self.issue_user_tokens(
            user=user,
            client=req.client,
            scope=grant.scope,
            grant=grant,
            nonce=record.nonce,
            auth_time=grant.auth_time,
            with_refresh_token="offline_access" in grant.scope
            and self._tenant.client_may_use(req.client, GRANT_REFRESH_TOKEN),
        )

    async def _grant_refresh_token(self, req: TokenRequest) -> dict[str, Any]:
        record = self._tenant.store.refresh_token(req.require("refresh_token"))
        if record is None or record.client_id != req.client.client_id:
            raise OAuthError(403, "invalid_grant", "Unknown or invalid refresh token.")
        user = self._tenant.users_by_sub.get(record.sub)
        grant = self._tenant.store.grant(record.grant_id)
        if user is None or grant is None:
            raise OAuthError(403, "invalid_grant", "Unknown or invalid refresh token.")
        audience = req.params.get("audience")
        if audience is not None and audience != self._tenant.audience:
            # Multi-resource refresh tokens: the client's policy lets its refresh tokens
            # get My Account API tokens, and nothing else.
            if audience == my_account_audience(self._tenant.issuer or ""):
                return my_account_token(self._tenant, record, req.params.get("scope"))
            raise OAuthError(403, "access_denied", f"Service not enabled within domain: {audience}")
        scope = record.scope
        requested = split_scope(req.params.get("scope"))
        if requested:
            extra = [s for s in requested if s not in record.scope]
            if extra:
                raise OAuthError(
                    403, "invalid_scope", f"Scopes not granted to this token: {' '.join(extra)}"
                )
            scope = requested
        if self._tenant.rotate_refresh_tokens:
            self._tenant.store.retire_refresh_token(record.token)
        # Non-rotating refresh tokens: the response carries no new refresh_token.
        return self.issue_user_tokens(
            user=user,
            client=req.client,
            scope=scope,
            grant=grant,
            auth_time=grant.auth_time,
            with_refresh_token=self._tenant.rotate_refresh_tokens,
        )

    async def _grant_client_credentials(self, req: TokenRequest) -> dict[str, Any]:
        audience = req.params.get("audience", self._tenant.audience)
        if audience != self._tenant.audience:
            raise OAuthError(403, "access_denied", f"Service not enabled within domain: {audience}")
        now = int(time.time())
        access_token = self._tenant.keys.sign(
            {
                "iss": self._tenant.issuer or "",
                "sub": f"{req.client.client_id}@clients",
                "aud": audience,
                "iat": now,
                "exp": now + self._tenant.access_token_ttl,
                "azp": req.client.client_id,
                "gty": "client-credentials",
                "permissions": [],
            }
        )
        return {
            "access_token": access_token,
            "expires_in": self._tenant.access_token_ttl,
            "token_type": "Bearer",
        }
