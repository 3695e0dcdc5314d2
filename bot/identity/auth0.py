"""Auth0 Authentication API calls, made with auth0-python.

auth0-python is blocking (requests), so every call runs in a small, bounded thread pool and
never on the event loop. ``authorization_code_pkce`` sends no client secret, which a
confidential (regular web) application needs, so the code exchange posts the PKCE verifier
through ``authenticated_post``, which adds the client credentials.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from auth0.authentication import GetToken, RevokeToken
from auth0.authentication.exceptions import Auth0Error

from bot.errors import ServiceUnavailable

LOGIN_SCOPES = "openid profile email offline_access"


@dataclass(frozen=True)
class TokenSet:
    """What Auth0's token endpoint returned (fields it did not send are None)."""

    access_token: str | None
    id_token: str | None
    refresh_token: str | None
    expires_in: int

    @classmethod
    def from_response(cls, doc: object) -> TokenSet:
        if not isinstance(doc, dict):
            raise ServiceUnavailable("Auth0")

        def text(name: str) -> str | None:
            value = doc.get(name)
            return value if isinstance(value, str) and value else None

        try:
            expires_in = int(doc.get("expires_in") or 300)
        except (TypeError, ValueError):
            expires_in = 300
        return cls(
            access_token=text("access_token"),
            id_token=text("id_token"),
            refresh_token=text("refresh_token"),
            expires_in=expires_in,
        )

    def __repr__(self) -> str:
        # Never print a token, whatever logs or tracebacks do with this object.
        present = [n for n in ("access_token", "id_token", "refresh_token") if getattr(self, n)]
        return f"TokenSet(present={present}, expires_in={self.expires_in})"


class Auth0Rejected(Exception):
    """Auth0 answered with an OAuth error (``error`` code is kept, the description too)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(error)
        self.error = error
        self.description = description


def s256_challenge(verifier: str) -> str:
    """The PKCE S256 code challenge of ``verifier``."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    """A random code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    return verifier, s256_challenge(verifier)


class Auth0Client:
    def __init__(
        self,
        *,
        domain: str,
        protocol: str,
        client_id: str,
        client_secret: str,
        audience: str,
        timeout: float,
        max_workers: int = 4,
    ) -> None:
        self.domain = domain
        self.protocol = protocol
        self._client_id = client_id
        self._audience = audience
        self._secret = client_secret
        self._timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="auth0")

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def audience(self) -> str:
        return self._audience

    @property
    def base_url(self) -> str:
        return f"{self.protocol}://{self.domain}"

    def authorize_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_challenge: str
    ) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": LOGIN_SCOPES,
                "audience": self.audience,
                "state": state,
                "nonce": nonce,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
                # Never finish silently on an existing Auth0 session: the person must sign
                # in on this page, so a link started by someone else cannot ride on it.
                "prompt": "login",
            }
        )
        return f"{self.base_url}/authorize?{query}"

    def sdk_args(self) -> dict[str, Any]:
        """The keyword arguments of auth0-python's Authentication API classes (domain,
        credentials, protocol, timeout) for collaborators that call other endpoints."""
        return self._client_args()

    def _client_args(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "client_id": self.client_id,
            "client_secret": self._secret,
            "protocol": self.protocol,
            "timeout": self._timeout,
            "telemetry": False,
        }

    def _get_token(self) -> GetToken:
        return GetToken(**self._client_args())

    async def _call(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn, *args)
        except Auth0Error as exc:
            if exc.status_code >= 500 or exc.status_code == 429:
                raise ServiceUnavailable("Auth0") from None
            raise Auth0Rejected(str(exc.error_code), str(exc.message)) from None
        except requests.RequestException:
            raise ServiceUnavailable("Auth0") from None

    async def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> TokenSet:
        client = self._get_token()
        doc = await self._call(
            client.authenticated_post,
            f"{self.base_url}/oauth/token",
            {
                "client_id": self.client_id,
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": code_verifier,
                "redirect_uri": redirect_uri,
            },
        )
        return TokenSet.from_response(doc)

    async def refresh(self, refresh_token: str) -> TokenSet:
        client = self._get_token()
        return TokenSet.from_response(await self._call(client.refresh_token, refresh_token))

    async def revoke(self, refresh_token: str) -> None:
        client = RevokeToken(**self._client_args())
        await self._call(client.revoke_refresh_token, refresh_token)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
