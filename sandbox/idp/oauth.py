"""OAuth 2.0 on the wire, as Auth0 speaks it: errors, body parameters, client authentication
and PKCE.

Client authentication: confidential clients (non-empty secret) must send
``client_secret`` in the body (client_secret_post) or use HTTP Basic. Note that
auth0-python's ``GetToken.authorization_code_pkce`` sends no secret (it targets public
clients); a confidential client redeems a PKCE code with
``GetToken.authenticated_post(token_url, data={"client_id", "code", "code_verifier",
"grant_type": "authorization_code", "redirect_uri"})``, which adds the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from sandbox.idp.models import IdpClient

OIDC_SCOPES = ("openid", "profile", "email", "offline_access")
PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")
TOKEN_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An error answered as Auth0 does: ``{"error": ..., "error_description": ...}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def response(self) -> web.Response:
        return web.json_response(
            {"error": self.error, "error_description": self.description},
            status=self.status,
            headers=TOKEN_HEADERS,
        )


def _unauthorized_client() -> OAuthError:
    # Auth0's answer to an unknown client or a wrong secret.
    return OAuthError(401, "access_denied", "Unauthorized")


@dataclass(frozen=True)
class TokenRequest:
    """A ``/oauth/token`` request after parsing and client authentication."""

    params: Mapping[str, str]
    client: IdpClient
    request: web.Request

    def require(self, name: str) -> str:
        value = self.params.get(name)
        if value is None:
            raise OAuthError(400, "invalid_request", f"Missing required parameter: {name}")
        return value


#: Answers one grant type: returns the JSON body of a successful token response or
#: raises OAuthError.
GrantHandler = Callable[[TokenRequest], Awaitable[dict[str, Any]]]


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge of a verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def split_scope(scope: str | None) -> list[str]:
    return list(dict.fromkeys((scope or "").split()))


async def read_params(request: web.Request) -> dict[str, str]:
    """Body parameters, JSON or form encoded (Auth0 accepts both).

    Null and empty values count as absent (auth0-python sends ``"scope": ""`` and
    ``"organization": null``).
    """
    items: list[tuple[str, object]]
    if request.content_type == "application/json":
        try:
            raw = await request.json()
        except ValueError:
            raise OAuthError(400, "invalid_request", "Malformed JSON body") from None
        if not isinstance(raw, dict):
            raise OAuthError(400, "invalid_request", "The body must be a JSON object")
        items = list(raw.items())
    else:
        items = list((await request.post()).items())
    params: dict[str, str] = {}
    for key, value in items:
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise OAuthError(400, "invalid_request", f"Invalid value for parameter: {key}")
        if key in params:
            raise OAuthError(400, "invalid_request", f"Duplicate parameter: {key}")
        params[key] = value
    return params


def _basic_credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(400, "invalid_request", "Malformed Authorization header") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError(400, "invalid_request", "Malformed Authorization header")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before joining.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def authenticate_client(
    clients: Mapping[str, IdpClient], request: web.Request, params: Mapping[str, str]
) -> IdpClient:
    """The registered client the request authenticates as (see the module docstring)."""
    body_id = params.get("client_id")
    body_secret = params.get("client_secret")
    if "client_assertion" in params:
        raise OAuthError(
            400, "invalid_request", "client_assertion is not supported by this provider"
        )
    basic = _basic_credentials(request)
    client_id: str | None
    secret: str | None
    if basic is not None:
        if body_secret is not None:
            raise OAuthError(400, "invalid_request", "Use only one client authentication method")
        if body_id is not None and body_id != basic[0]:
            raise OAuthError(
                400, "invalid_request", "client_id does not match the Authorization header"
            )
        client_id, secret = basic[0], basic[1] or None
    else:
        client_id, secret = body_id, body_secret
    if client_id is None:
        raise OAuthError(400, "invalid_request", "Missing required parameter: client_id")
    client = clients.get(client_id)
    if client is None:
        raise _unauthorized_client()
    if client.is_confidential:
        if secret is None:
            raise OAuthError(401, "invalid_client", "Client authentication is required")
        if not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
            raise _unauthorized_client()
    return client
