"""OpenID Connect discovery (``/.well-known/openid-configuration``) and the published
signing keys (``/.well-known/jwks.json``)."""

from __future__ import annotations

from aiohttp import web

from sandbox.idp.keys import ALGORITHM
from sandbox.idp.oauth import OIDC_SCOPES
from sandbox.idp.tenant import Tenant


class DiscoveryEndpoints:
    """The handlers of the two discovery documents."""

    def __init__(self, tenant: Tenant) -> None:
        self._tenant = tenant

    async def discovery(self, request: web.Request) -> web.Response:
        issuer = self._tenant.issuer_for(request)
        scopes = list(OIDC_SCOPES)
        for user in self._tenant.users:
            scopes.extend(p for p in user.permissions if p not in scopes)
        return web.json_response(
            {
                "issuer": issuer,
                "authorization_endpoint": issuer + "authorize",
                "token_endpoint": issuer + "oauth/token",
                "userinfo_endpoint": issuer + "userinfo",
                "jwks_uri": issuer + ".well-known/jwks.json",
                "revocation_endpoint": issuer + "oauth/revoke",
                "backchannel_authentication_endpoint": issuer + "bc-authorize",
                "backchannel_token_delivery_modes_supported": ["poll"],
                "scopes_supported": scopes,
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": list(self._tenant.grants),
                "code_challenge_methods_supported": ["S256"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": [ALGORITHM],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                    "none",
                ],
                "claims_supported": [
                    "aud",
                    "auth_time",
                    "email",
                    "email_verified",
                    "exp",
                    "iat",
                    "iss",
                    "name",
                    "nickname",
                    "nonce",
                    "sub",
                ],
                "request_uri_parameter_supported": False,
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response(self._tenant.keys.jwks(), headers={"Cache-Control": "max-age=15"})
