"""CIBA in the dev identity provider: ``POST /bc-authorize`` and the CIBA grant
(``urn:openid:params:grant-type:ciba``) at ``/oauth/token``, in poll mode, as Auth0 speaks
them (OpenID Connect CIBA Core 1.0).

``/bc-authorize`` authenticates the client (confidential clients only), requires ``openid``
in ``scope``, parses ``login_hint`` strictly as Auth0's ``iss_sub`` JSON whose ``iss`` must
be this tenant's issuer (an unknown ``sub`` is ``unknown_user_id``), checks
``binding_message`` by Auth0's rules (``invalid_binding_message``) and caps
``requested_expiry``. It answers ``auth_req_id``, ``expires_in`` and ``interval``.

The grant answers ``authorization_pending`` until the person approves or denies on the
authenticator page (:mod:`sandbox.idp.authenticator`) or a test does it
(:meth:`CibaRequests.approve` / :meth:`CibaRequests.deny`); ``slow_down`` when polled again
sooner than ``interval`` after the previous poll, and the interval then grows by 5 seconds
(CIBA Core §11); ``access_denied`` once denied; ``expired_token`` after ``expires_in``; on
approval an ID token whose ``sub`` is the approver's and whose ``aud`` is the client, plus
an access token, once (a second redemption is ``invalid_grant``).

State lives in memory like the rest of the provider; every method is synchronous, so a
check-then-update never interleaves with another request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox.idp.models import IdpClient
from sandbox.idp.oauth import (
    OIDC_SCOPES,
    TOKEN_HEADERS,
    OAuthError,
    TokenRequest,
    authenticate_client,
    read_params,
    split_scope,
)
from sandbox.idp.tenant import Tenant
from sandbox.idp.tokens import TokenEndpoint

log = logging.getLogger("sandbox.idp.server")

GRANT_CIBA = "urn:openid:params:grant-type:ciba"
#: Auth0's binding message rules: at most 64 characters, letters, digits, ``+-_.,:#`` and
#: single spaces between them.
BINDING_MESSAGE = re.compile(
    r"^[A-Za-z0-9+\-_.,:#](?:[A-Za-z0-9+\-_.,:# ]{0,62}[A-Za-z0-9+\-_.,:#])?$"
)
#: How much the interval grows after each ``slow_down`` (CIBA Core §11, RFC 8628 §3.5).
SLOW_DOWN_STEP = 5
#: How long an expired request is remembered, so it answers ``expired_token`` (after
#: that it is unknown: ``invalid_grant``).
EXPIRED_MEMORY = 600.0

PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"
REDEEMED = "redeemed"


@dataclass
class BackchannelRequest:
    """One CIBA request. ``approved_sub`` is whose ID token the grant issues (normally
    ``sub``; tests may make it another subject to check the client's comparison)."""

    auth_req_id: str
    client_id: str
    sub: str
    scope: list[str]
    binding_message: str
    created_at: float
    expires_at: float
    interval: int
    status: str = PENDING
    last_poll: float | None = None
    approved_sub: str | None = None
    decided_at: int | None = None

    def expired(self, now: float) -> bool:
        return now >= self.expires_at


class CibaRequests:
    """The tenant's CIBA requests, the two endpoints and the test controls.

    Args:
        tenant: the provider's tenant (users, clients, issuer).
        tokens: the token endpoint (signs the tokens of a granted request).
        interval: seconds a client must wait between polls at first (0: no ``slow_down``).
        default_expiry: ``expires_in`` when no ``requested_expiry`` is sent.
        max_expiry: the cap of ``requested_expiry`` (Auth0: 300 seconds).
    """

    def __init__(
        self,
        tenant: Tenant,
        tokens: TokenEndpoint,
        *,
        interval: int = 5,
        default_expiry: int = 300,
        max_expiry: int = 300,
    ) -> None:
        self._tenant = tenant
        self._tokens = tokens
        self.interval = interval
        self.default_expiry = default_expiry
        self.max_expiry = max_expiry
        self.delay = 0.0
        self._requests: dict[str, BackchannelRequest] = {}
        tenant.register_grant(GRANT_CIBA, self._grant)

    # -- test controls ---------------------------------------------------------------

    def requests(
        self, *, sub: str | None = None, status: str | None = None
    ) -> list[BackchannelRequest]:
        """The known requests, oldest first, optionally of one user or in one status
        (``pending`` lists only requests that have not expired)."""
        now = time.time()
        found = []
        for record in self._requests.values():
            if sub is not None and record.sub != sub:
                continue
            if status is not None:
                if record.status != status:
                    continue
                if status == PENDING and record.expired(now):
                    continue
            found.append(record)
        return sorted(found, key=lambda r: r.created_at)

    def get(self, auth_req_id: str) -> BackchannelRequest | None:
        return self._requests.get(auth_req_id)

    def approve(self, auth_req_id: str, *, as_sub: str | None = None) -> bool:
        """Approve a pending, unexpired request (as its user, or as ``as_sub``: the grant's
        ID token then names that subject). False when it is not pending any more."""
        record = self._pending(auth_req_id)
        if record is None:
            return False
        record.status = APPROVED
        record.approved_sub = as_sub or record.sub
        record.decided_at = int(time.time())
        log.info("CIBA request approved by %s for client %s", record.approved_sub, record.client_id)
        return True

    def deny(self, auth_req_id: str) -> bool:
        """Deny a pending, unexpired request; False when it is not pending any more."""
        record = self._pending(auth_req_id)
        if record is None:
            return False
        record.status = DENIED
        record.decided_at = int(time.time())
        log.info("CIBA request denied by %s for client %s", record.sub, record.client_id)
        return True

    def expire(self, auth_req_id: str) -> None:
        """Make a request expire now (KeyError if unknown)."""
        self._requests[auth_req_id].expires_at = time.time()

    def set_delay(self, seconds: float) -> None:
        """Fault injection: wait this long before answering ``/bc-authorize`` and the CIBA
        grant (a slow provider). Unavailability is ``DevIdentityProvider.set_unavailable``."""
        self.delay = max(0.0, seconds)

    def _pending(self, auth_req_id: str) -> BackchannelRequest | None:
        record = self._requests.get(auth_req_id)
        if record is None or record.status != PENDING or record.expired(time.time()):
            return None
        return record

    def client_name(self, client_id: str) -> str:
        client = self._tenant.clients.get(client_id)
        return (client.name or client.client_id) if client is not None else client_id

    # -- POST /bc-authorize ----------------------------------------------------------

    async def bc_authorize(self, request: web.Request) -> web.Response:
        issuer = self._tenant.issuer_for(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        try:
            params = await read_params(request)
            client = authenticate_client(self._tenant.clients, request, params)
            record = self._create(client, params, issuer)
        except OAuthError as exc:
            return exc.response()
        log.info("CIBA request for %s from client %s", record.sub, record.client_id)
        return web.json_response(
            {
                "auth_req_id": record.auth_req_id,
                "expires_in": int(record.expires_at - record.created_at),
                "interval": record.interval,
            },
            headers=TOKEN_HEADERS,
        )

    def _create(self, client: IdpClient, params: dict[str, str], issuer: str) -> BackchannelRequest:
        if not client.is_confidential or not self._tenant.client_may_use(client, GRANT_CIBA):
            raise OAuthError(
                403, "unauthorized_client", f"Grant type '{GRANT_CIBA}' not allowed for the client."
            )
        scope = split_scope(params.get("scope"))
        if "openid" not in scope:
            raise OAuthError(400, "invalid_request", "The scope must contain openid")
        if "login_hint_token" in params or "id_token_hint" in params:
            raise OAuthError(400, "invalid_request", "Only login_hint is supported")
        hint = params.get("login_hint")
        if hint is None:
            raise OAuthError(400, "invalid_request", "Missing required parameter: login_hint")
        sub = _iss_sub(hint, issuer)
        user = self._tenant.users_by_sub.get(sub)
        if user is None:
            raise OAuthError(400, "unknown_user_id", "The login_hint names no known user")
        message = params.get("binding_message")
        if message is None:
            raise OAuthError(400, "invalid_request", "Missing required parameter: binding_message")
        if len(message) > 64 or not BINDING_MESSAGE.match(message):
            raise OAuthError(
                400,
                "invalid_binding_message",
                "binding_message must be 1 to 64 letters, digits, spaces or +-_.,:#",
            )
        expiry = self.default_expiry
        requested = params.get("requested_expiry")
        if requested is not None:
            if not requested.isascii() or not requested.isdigit() or int(requested) < 1:
                raise OAuthError(
                    400, "invalid_request", "requested_expiry must be a positive integer"
                )
            expiry = min(int(requested), self.max_expiry)
        # RBAC as at /authorize: API scopes only when the user holds the permission.
        granted = [s for s in scope if s in OIDC_SCOPES or s in user.permissions]
        self._purge()
        now = time.time()
        record = BackchannelRequest(
            auth_req_id=secrets.token_urlsafe(32),
            client_id=client.client_id,
            sub=sub,
            scope=granted,
            binding_message=message,
            created_at=now,
            expires_at=now + expiry,
            interval=self.interval,
        )
        self._requests[record.auth_req_id] = record
        return record

    # -- the CIBA grant at /oauth/token -----------------------------------------------

    async def _grant(self, req: TokenRequest) -> dict[str, Any]:
        if self.delay:
            await asyncio.sleep(self.delay)
        auth_req_id = req.require("auth_req_id")
        record = self._requests.get(auth_req_id)
        if record is None or record.client_id != req.client.client_id:
            raise OAuthError(400, "invalid_grant", "Unknown or invalid auth_req_id")
        if record.status == REDEEMED:
            raise OAuthError(400, "invalid_grant", "The auth_req_id was already used")
        now = time.time()
        if record.expired(now) and record.status != DENIED:
            raise OAuthError(400, "expired_token", "The authentication request has expired")
        if record.status == DENIED:
            raise OAuthError(400, "access_denied", "The end-user denied the authorization request")
        if record.status == PENDING:
            previous, record.last_poll = record.last_poll, now
            if previous is not None and now - previous < record.interval:
                record.interval += SLOW_DOWN_STEP
                raise OAuthError(
                    400,
                    "slow_down",
                    f"You are polling faster than allowed. Try again in {record.interval} seconds.",
                )
            raise OAuthError(400, "authorization_pending", "The end-user authorization is pending")
        # Approved: tokens once.
        approver = self._tenant.users_by_sub.get(record.approved_sub or record.sub)
        if approver is None:
            raise OAuthError(400, "invalid_grant", "The approving user no longer exists")
        record.status = REDEEMED
        grant = self._tenant.store.add_grant(
            client_id=record.client_id,
            sub=approver.sub,
            scope=record.scope,
            auth_time=record.decided_at or int(now),
        )
        return self._tokens.issue_user_tokens(
            user=approver,
            client=req.client,
            scope=record.scope,
            grant=grant,
            auth_time=grant.auth_time,
            with_refresh_token="offline_access" in record.scope,
        )

    def _purge(self) -> None:
        cutoff = time.time() - EXPIRED_MEMORY
        for key in [k for k, r in self._requests.items() if r.expires_at < cutoff]:
            del self._requests[key]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def _iss_sub(hint: str, issuer: str) -> str:
    """The ``sub`` of an ``iss_sub`` login hint whose ``iss`` is this tenant, else
    ``invalid_request``: exactly the members format, iss and sub, all strings."""
    try:
        doc = json.loads(hint, object_pairs_hook=_no_duplicates)
    except ValueError:
        raise OAuthError(400, "invalid_request", "login_hint must be a JSON object") from None
    if not isinstance(doc, dict) or set(doc) != {"format", "iss", "sub"}:
        raise OAuthError(400, "invalid_request", "login_hint must have exactly format, iss and sub")
    if doc["format"] != "iss_sub":
        raise OAuthError(400, "invalid_request", "Unsupported login_hint format")
    if not isinstance(doc["iss"], str) or not isinstance(doc["sub"], str) or not doc["sub"]:
        raise OAuthError(400, "invalid_request", "login_hint iss and sub must be strings")
    if doc["iss"] != issuer:
        raise OAuthError(400, "invalid_request", "login_hint iss does not match the issuer")
    return doc["sub"]
