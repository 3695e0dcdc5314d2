"""Auth0's My Account API, the two calls of the Connected Accounts flow (aiohttp).

``POST /me/v1/connected-accounts/connect`` starts it (201: ``auth_session``,
``connect_uri``, ``connect_params.ticket``, ``expires_in``); the browser goes to
``connect_uri?ticket=...`` and comes back to ``redirect_uri`` with ``connect_code`` and
``state``; ``POST /me/v1/connected-accounts/complete`` (``auth_session``,
``connect_code``, ``redirect_uri``, ``code_verifier``) ends it (201). Both take a bearer
token for the ``https://DOMAIN/me/`` audience with ``create:me:connected_accounts``.
Errors are problem details (``title``, ``detail``, ``status``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp

from bot.errors import ServiceUnavailable

log = logging.getLogger(__name__)

CONNECT_SCOPE = "create:me:connected_accounts"


class MyAccountRejected(Exception):
    """The My Account API refused the call (4xx other than 429); ``title`` is its short
    problem title (never the request)."""

    def __init__(self, status: int, title: str) -> None:
        super().__init__(f"{status} {title}")
        self.status = status
        self.title = title


@dataclass(frozen=True)
class ConnectTicket:
    auth_session: str
    connect_uri: str
    ticket: str
    expires_in: int

    @property
    def browser_url(self) -> str:
        """Where the browser goes: ``connect_uri?ticket=...``."""
        return f"{self.connect_uri}?{urlencode({'ticket': self.ticket})}"

    def __repr__(self) -> str:
        return f"ConnectTicket(connect_uri={self.connect_uri!r}, expires_in={self.expires_in})"


class MyAccountApi:
    def __init__(self, *, base_url: str, http: aiohttp.ClientSession, timeout: float) -> None:
        """``base_url`` is the API's audience, ``https://DOMAIN/me/``."""
        self._base = base_url.rstrip("/") + "/v1/connected-accounts/"
        self._http = http
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def connect(
        self,
        access_token: str,
        *,
        connection: str,
        redirect_uri: str,
        state: str,
        scopes: list[str],
        code_challenge: str,
    ) -> ConnectTicket:
        doc = await self._post(
            access_token,
            "connect",
            {
                "connection": connection,
                "redirect_uri": redirect_uri,
                "state": state,
                "scopes": scopes,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            },
        )
        params = doc.get("connect_params")
        ticket = params.get("ticket") if isinstance(params, dict) else None
        auth_session, connect_uri = doc.get("auth_session"), doc.get("connect_uri")
        if not (
            isinstance(ticket, str)
            and isinstance(auth_session, str)
            and isinstance(connect_uri, str)
            and urlsplit(connect_uri).scheme in {"https", "http"}
        ):
            log.warning("the My Account API answered connect without a usable ticket")
            raise ServiceUnavailable("Auth0")
        try:
            expires_in = int(doc.get("expires_in") or 300)
        except (TypeError, ValueError):
            expires_in = 300
        return ConnectTicket(auth_session, connect_uri, ticket, expires_in)

    async def complete(
        self,
        access_token: str,
        *,
        auth_session: str,
        connect_code: str,
        redirect_uri: str,
        code_verifier: str,
    ) -> frozenset[str]:
        """The scopes of the connected account."""
        doc = await self._post(
            access_token,
            "complete",
            {
                "auth_session": auth_session,
                "connect_code": connect_code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            },
        )
        scopes = doc.get("scopes")
        if isinstance(scopes, list):
            return frozenset(s for s in scopes if isinstance(s, str))
        return frozenset()

    async def _post(self, access_token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._http.post(
                self._base + path,
                json=body,
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=self._timeout,
            ) as response:
                status = response.status
                try:
                    doc = await response.json(content_type=None)
                except ValueError:
                    doc = None
        except (TimeoutError, aiohttp.ClientError):
            raise ServiceUnavailable("Auth0") from None
        if status == 429 or status >= 500:
            raise ServiceUnavailable("Auth0")
        if status >= 400 or not isinstance(doc, dict):
            title = doc.get("title") if isinstance(doc, dict) else None
            log.info("the My Account API refused %s: HTTP %s", path, status)
            raise MyAccountRejected(status, str(title or "rejected")[:80])
        return doc
