"""The Connected Accounts flow of Auth0's My Account API on the dev identity provider, and
the consent page that stands in for the provider's own authorization screen.

1. ``POST /me/v1/connected-accounts/connect`` (bearer: a My Account API token with
   ``create:me:connected_accounts``) with ``connection``, ``redirect_uri`` (one of the
   application's callback URLs), ``state``, ``scopes`` and a PKCE S256 ``code_challenge``:
   201 with ``auth_session``, ``connect_uri``, ``connect_params.ticket`` and ``expires_in``.
2. The browser opens ``connect_uri?ticket=...``: "Allow pmbot to manage your Google
   Calendar?" for the person the ticket was made for (their Google account is their email,
   their Slack account their Slack user id). *Allow* goes back to ``redirect_uri`` with
   ``connect_code`` and ``state``; *Deny* with ``error=access_denied``.
3. ``POST /me/v1/connected-accounts/complete`` (same person's token) with
   ``auth_session``, ``connect_code``, ``redirect_uri`` and ``code_verifier``: the account
   is connected in the :class:`~sandbox.federation.Federation` (201).

Errors are JSON problem details (``type``, ``title``, ``status``, ``detail``), as the My
Account API answers them. Sessions live in memory for ``SESSION_TTL`` seconds.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web
from yarl import URL

from sandbox.federation import ConnectedAccount
from sandbox.idp.federated import (
    PROVIDER_NAMES,
    ProviderKind,
    TokenVaultGrant,
    my_account_audience,
    provider_account,
)
from sandbox.idp.keys import ALGORITHM
from sandbox.idp.oauth import PKCE_CHALLENGE, PKCE_VERIFIER, s256
from sandbox.idp.templates import consent_page, error_page
from sandbox.idp.tenant import Tenant
from sandbox.people import person_by_email

SESSION_TTL = 300
CONNECT_SCOPE = "create:me:connected_accounts"
#: The scopes each kind of connection is configured with (requested ones are added).
CONFIGURED_SCOPES: dict[ProviderKind, tuple[str, ...]] = {
    ProviderKind.GOOGLE: (
        "https://www.googleapis.com/auth/calendar.events",
        "https://www.googleapis.com/auth/calendar.freebusy",
    ),
    ProviderKind.SLACK: ("chat:write",),
}
_HTML_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
}


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail

    def response(self) -> web.Response:
        return web.json_response(
            {
                "type": f"https://auth0.com/api-errors/A0E-{self.status}-0001",
                "title": self.title,
                "status": self.status,
                "detail": self.detail,
            },
            status=self.status,
            content_type="application/problem+json",
            headers={"Cache-Control": "no-store"},
        )


@dataclass
class ConnectSession:
    auth_session: str
    ticket: str
    client_id: str
    sub: str
    connection: str
    redirect_uri: str
    state: str | None
    scopes: frozenset[str]
    code_challenge: str
    expires_at: float
    connect_code: str | None = None
    decided: bool = False
    completed: bool = False


class ConnectedAccountsEndpoints:
    def __init__(self, tenant: Tenant, vault: TokenVaultGrant) -> None:
        self._tenant = tenant
        self._vault = vault
        self._sessions: dict[str, ConnectSession] = {}

    # -- My Account API --------------------------------------------------------------

    async def connect(self, request: web.Request) -> web.Response:
        try:
            client_id, sub = self._bearer(request)
            body = await self._json(request)
            connection = body.get("connection")
            if not isinstance(connection, str) or connection not in self._vault.connections:
                raise Problem(400, "Bad Request", "Invalid connection")
            redirect_uri = body.get("redirect_uri")
            client = self._tenant.clients.get(client_id)
            if client is None or redirect_uri not in client.callback_urls:
                raise Problem(400, "Bad Request", "redirect_uri is not an allowed callback URL")
            state = body.get("state")
            if state is not None and (not isinstance(state, str) or len(state) > 2048):
                raise Problem(400, "Bad Request", "Invalid state")
            scopes = body.get("scopes") or []
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise Problem(400, "Bad Request", "scopes must be a list of strings")
            challenge = body.get("code_challenge")
            if body.get("code_challenge_method") != "S256" or not isinstance(challenge, str):
                raise Problem(400, "Bad Request", "A PKCE S256 code_challenge is required")
            if not PKCE_CHALLENGE.match(challenge):
                raise Problem(400, "Bad Request", "Invalid code_challenge")
        except Problem as exc:
            return exc.response()
        self._purge()
        kind = self._vault.connections[connection]
        session = ConnectSession(
            auth_session=secrets.token_urlsafe(32),
            ticket=secrets.token_urlsafe(32),
            client_id=client_id,
            sub=sub,
            connection=connection,
            redirect_uri=str(redirect_uri),
            state=state,
            scopes=frozenset(CONFIGURED_SCOPES[kind]) | frozenset(scopes),
            code_challenge=challenge,
            expires_at=time.time() + SESSION_TTL,
        )
        self._sessions[session.auth_session] = session
        issuer = self._tenant.issuer_for(request)
        return web.json_response(
            {
                "auth_session": session.auth_session,
                "connect_uri": issuer + "connected-accounts/connect",
                "connect_params": {"ticket": session.ticket},
                "expires_in": SESSION_TTL,
            },
            status=201,
            headers={"Cache-Control": "no-store"},
        )

    async def complete(self, request: web.Request) -> web.Response:
        try:
            client_id, sub = self._bearer(request)
            body = await self._json(request)
            session = self._sessions.get(str(body.get("auth_session", "")))
            if session is None or session.expires_at < time.time():
                raise Problem(404, "Not Found", "Unknown or expired auth_session")
            if session.sub != sub or session.client_id != client_id:
                raise Problem(403, "Forbidden", "The session belongs to another user")
            code = body.get("connect_code")
            if (
                session.completed
                or session.connect_code is None
                or not isinstance(code, str)
                or not hmac.compare_digest(code.encode(), session.connect_code.encode())
            ):
                raise Problem(400, "Bad Request", "Invalid connect_code")
            # Any redemption attempt burns the code: a wrong verifier cannot be retried.
            session.completed = True
            if body.get("redirect_uri") != session.redirect_uri:
                raise Problem(400, "Bad Request", "redirect_uri does not match")
            verifier = body.get("code_verifier")
            if (
                not isinstance(verifier, str)
                or not PKCE_VERIFIER.match(verifier)
                or not hmac.compare_digest(s256(verifier), session.code_challenge)
            ):
                raise Problem(400, "Bad Request", "Failed to verify code verifier")
        except Problem as exc:
            return exc.response()
        account = self._connect_account(session)
        return web.json_response(
            {
                "id": "cac_" + secrets.token_urlsafe(12),
                "connection": session.connection,
                "access_type": "offline",
                "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "scopes": sorted(account.scopes),
            },
            status=201,
            headers={"Cache-Control": "no-store"},
        )

    def _connect_account(self, session: ConnectSession) -> ConnectedAccount:
        user = self._tenant.users_by_sub[session.sub]
        kind = self._vault.connections[session.connection]
        account_name = provider_account(kind, user.email, user.sub)
        federation = self._vault.federation
        scopes = session.scopes
        existing = federation.account(session.sub, session.connection)
        if existing is not None and existing.account == account_name:
            # Like Google's include_granted_scopes: what was granted before stays granted.
            scopes = scopes | existing.scopes
        account = ConnectedAccount(
            sub=session.sub, connection=session.connection, account=account_name, scopes=scopes
        )
        federation.connect(account)
        return account

    # -- the provider's consent page -------------------------------------------------

    async def consent(self, request: web.Request) -> web.Response:
        session = self._by_ticket(request.query.get("ticket", ""))
        if session is None:
            return self._html(
                error_page(
                    "invalid_request",
                    "This connection request has expired or was already used. "
                    "Start again from the application.",
                ),
                status=400,
            )
        user = self._tenant.users_by_sub[session.sub]
        kind = self._vault.connections[session.connection]
        return self._html(
            consent_page(
                ticket=session.ticket,
                provider=PROVIDER_NAMES[kind],
                slack=kind is ProviderKind.SLACK,
                person=user.name,
                account=_account_shown(kind, user.email, user.sub),
                scopes=sorted(session.scopes),
            )
        )

    async def decide(self, request: web.Request) -> web.Response:
        form = await request.post()
        ticket = form.get("ticket")
        session = self._by_ticket(ticket if isinstance(ticket, str) else "")
        if session is None:
            return self._html(
                error_page("invalid_request", "This connection request was already used."),
                status=400,
            )
        session.decided = True
        params: dict[str, str]
        if form.get("decision") == "allow":
            session.connect_code = secrets.token_urlsafe(24)
            params = {"connect_code": session.connect_code}
        else:
            params = {"error": "access_denied", "error_description": "The user denied access"}
        if session.state is not None:
            params["state"] = session.state
        location = str(URL(session.redirect_uri).update_query(params))
        return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})

    # -- plumbing --------------------------------------------------------------------

    def _by_ticket(self, ticket: str) -> ConnectSession | None:
        if not ticket:
            return None
        for session in self._sessions.values():
            if hmac.compare_digest(session.ticket.encode(), ticket.encode("utf-8", "replace")):
                if session.decided or session.expires_at < time.time():
                    return None
                return session
        return None

    def _bearer(self, request: web.Request) -> tuple[str, str]:
        """The (client id, sub) of a valid My Account API token with the connect scope."""
        issuer = self._tenant.issuer_for(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(401, "Unauthorized", "Missing bearer token")
        token = token.strip()
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._tenant.keys.public_key(kid) if isinstance(kid, str) else None
            if key is None:
                raise Problem(401, "Unauthorized", "Invalid token")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=my_account_audience(issuer),
                issuer=issuer,
            )
        except jwt.PyJWTError:
            raise Problem(401, "Unauthorized", "Invalid token") from None
        if self._tenant.store.access_token_revoked(token):
            raise Problem(401, "Unauthorized", "Invalid token")
        if CONNECT_SCOPE not in str(claims.get("scope", "")).split():
            raise Problem(403, "Forbidden", f"Insufficient scope, expected: {CONNECT_SCOPE}")
        sub, client_id = claims.get("sub"), claims.get("azp")
        if not isinstance(sub, str) or sub not in self._tenant.users_by_sub:
            raise Problem(401, "Unauthorized", "Invalid token")
        return str(client_id), sub

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any]:
        if request.content_type != "application/json":
            raise Problem(400, "Bad Request", "The body must be JSON")
        try:
            body = await request.json()
        except ValueError:
            raise Problem(400, "Bad Request", "Malformed JSON body") from None
        if not isinstance(body, dict):
            raise Problem(400, "Bad Request", "The body must be a JSON object")
        return body

    @staticmethod
    def _html(body: str, status: int = 200) -> web.Response:
        return web.Response(
            text=body, status=status, content_type="text/html", headers=_HTML_HEADERS
        )

    def _purge(self) -> None:
        now = time.time()
        for key in [k for k, s in self._sessions.items() if s.expires_at < now]:
            del self._sessions[key]


def _account_shown(kind: ProviderKind, email: str, sub: str) -> str:
    """The account as the provider's consent screen names it: the Google email, the
    Slack @handle (as Slack shows a person), else the provider's account id."""
    person = person_by_email(email) if kind is ProviderKind.SLACK else None
    return f"@{person.handle}" if person else provider_account(kind, email, sub)
