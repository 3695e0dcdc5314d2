"""What issued tokens are good for afterwards: ``/userinfo`` (the user of an access token)
and ``/oauth/revoke`` (refresh tokens)."""

from __future__ import annotations

from typing import Any

import jwt
from aiohttp import web

from sandbox.idp.keys import ALGORITHM
from sandbox.idp.oauth import TOKEN_HEADERS, OAuthError, authenticate_client, read_params
from sandbox.idp.tenant import Tenant


class UserinfoAndRevocation:
    """The handlers of ``GET /userinfo`` and ``POST /oauth/revoke``."""

    def __init__(self, tenant: Tenant) -> None:
        self._tenant = tenant

    async def revoke(self, request: web.Request) -> web.Response:
        try:
            params = await read_params(request)
            client = authenticate_client(self._tenant.clients, request, params)
            token = params.get("token")
            if token is None:
                raise OAuthError(400, "invalid_request", "Missing required parameter: token")
        except OAuthError as exc:
            return exc.response()
        record = self._tenant.store.refresh_token(token)
        # Unknown tokens and other clients' tokens get the same 200 (RFC 7009 §2.2).
        if record is not None and record.client_id == client.client_id:
            self._tenant.store.revoke_refresh_tokens_like(record)
        return web.Response(status=200, headers=TOKEN_HEADERS)

    async def userinfo(self, request: web.Request) -> web.Response:
        issuer = self._tenant.issuer_for(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        claims: dict[str, Any] | None = None
        if scheme.lower() == "bearer" and token:
            claims = self._verify_access_token(token.strip(), issuer)
        user = self._tenant.users_by_sub.get(str(claims.get("sub"))) if claims else None
        if user is None:
            return web.Response(
                status=401,
                text="Unauthorized",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return web.json_response(
            {
                "sub": user.sub,
                "name": user.name,
                "nickname": user.email.split("@", 1)[0],
                "email": user.email,
                "email_verified": user.email_verified,
            }
        )

    def _verify_access_token(self, token: str, issuer: str) -> dict[str, Any] | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._tenant.keys.public_key(kid) if isinstance(kid, str) else None
            if key is None:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=issuer + "userinfo",
                issuer=issuer,
            )
        except jwt.PyJWTError:
            return None
        if self._tenant.store.access_token_revoked(token):
            return None
        return claims
