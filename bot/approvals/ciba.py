"""The CIBA client (OpenID Connect Client-Initiated Backchannel Authentication, poll mode),
made with auth0-python.

* ``start`` calls ``/bc-authorize`` with ``BackChannelLogin.back_channel_login``: client
  credentials, ``scope`` (must hold ``openid``), ``login_hint`` in Auth0's ``iss_sub``
  format built with ``json.dumps`` (``iss`` is the tenant's issuer, ``https://DOMAIN/``),
  a validated ``binding_message`` and ``requested_expiry``. The SDK posts it as a form.
* ``poll`` redeems the ``auth_req_id`` with the CIBA grant
  (``urn:openid:params:grant-type:ciba``) at ``/oauth/token``. auth0-python's
  ``GetToken.backchannel_login`` posts that request as JSON, which Auth0 accepts but the
  standard (RFC 6749 §4.1.3, CIBA Core §10.1) does not: certified providers such as
  oidc-provider answer 400 ``invalid_request``. The same parameters are therefore posted as
  ``application/x-www-form-urlencoded`` through the SDK's ``authenticated_post`` (which adds
  the client credentials), a body that Auth0 and every standard provider accept.
* The endpoint paths are Auth0's (``/bc-authorize``, ``/oauth/token``), as auth0-python
  builds them from ``domain``; a provider with other route names is configured to serve
  Auth0's paths (see ``tests/interop/provider.mjs`` for oidc-provider's ``routes``).

auth0-python is blocking (requests), so every call runs in a bounded thread pool off the
event loop. A granted ID token is verified (RS256 signature from the JWKS, ``iss``, ``aud``
= this client, ``exp``) and only its ``sub`` leaves this module: the tokens are neither
kept nor logged, and the ``auth_req_id`` (half of what redeems a grant) is not logged
either.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import requests
from auth0.authentication import GetToken
from auth0.authentication.back_channel_login import BackChannelLogin
from auth0.authentication.exceptions import Auth0Error

from bot.approvals.ports import CibaPoll, CibaPollState, CibaStarted
from bot.errors import ServiceUnavailable
from bot.identity.auth0 import Auth0Client
from bot.identity.tokens import JwksUnavailable, TokenInvalid, TokenVerifier

log = logging.getLogger(__name__)

CIBA_GRANT_TYPE = "urn:openid:params:grant-type:ciba"
#: Auth0's rules for ``binding_message``: required, at most 64 characters, letters,
#: digits and ``+-_.,:#``; single spaces between words are accepted too (Auth0's own
#: examples use them). No leading or trailing space.
BINDING_MESSAGE = re.compile(
    r"^[A-Za-z0-9+\-_.,:#](?:[A-Za-z0-9+\-_.,:# ]{0,62}[A-Za-z0-9+\-_.,:#])?$"
)
BINDING_MESSAGE_MAX = 64
#: Auth0 accepts a ``requested_expiry`` between 1 and 300 seconds; longer requests are
#: shortened to that, so the approval's own expiry can stay longer.
MAX_REQUESTED_EXPIRY = 300
#: CIBA Core §7.3: the client waits 5 seconds between polls when no ``interval`` is given.
DEFAULT_INTERVAL = 5
#: An ``auth_req_id`` is opaque, but one we send back must look like one (printable ASCII,
#: no spaces, bounded), so nothing else ends up in the request body.
AUTH_REQ_ID = re.compile(r"^[\x21-\x7e]{1,512}$")

_POLL_STATES = {
    "authorization_pending": CibaPollState.PENDING,
    "slow_down": CibaPollState.SLOW_DOWN,
    "access_denied": CibaPollState.DENIED,
    "expired_token": CibaPollState.EXPIRED,
}

T = TypeVar("T")


class CibaFailure(enum.StrEnum):
    """Why a CIBA call failed for a reason other than the provider being unreachable."""

    BINDING_MESSAGE = "binding_message"  # refused before sending (or by the provider)
    REQUEST = "request"  # scope without openid, bad requested_expiry or auth_req_id
    UNKNOWN_USER = "unknown_user"  # the provider knows no such sub
    CLIENT = "client"  # the client is not allowed to use CIBA, or failed to authenticate
    GRANT = "grant"  # invalid_grant: unknown, consumed or foreign auth_req_id
    ID_TOKEN = "id_token"  # noqa: S105 - the granted ID token failed verification or was missing
    RESPONSE = "response"  # the provider's answer was not a CIBA answer
    REFUSED = "refused"  # any other OAuth error


class CibaRejected(Exception):
    """The provider (or this client, before sending) refused the CIBA call.

    ``reason`` is what the caller acts on; ``error`` is the OAuth error code received (or
    a short code of the local check), safe to log: it never holds a token.
    """

    def __init__(self, reason: CibaFailure, error: str) -> None:
        super().__init__(f"{reason.value}: {error}")
        self.reason = reason
        self.error = error


def valid_binding_message(message: str) -> bool:
    """True when ``message`` follows Auth0's binding message rules (see
    :data:`BINDING_MESSAGE`)."""
    return len(message) <= BINDING_MESSAGE_MAX and BINDING_MESSAGE.match(message) is not None


def login_hint(*, issuer: str, sub: str) -> str:
    """Auth0's ``iss_sub`` login hint, built with ``json.dumps`` so any ``sub`` (quotes,
    backslashes, ``|``) stays one JSON string."""
    return json.dumps({"format": "iss_sub", "iss": issuer, "sub": sub})


_REJECTIONS = {
    "invalid_binding_message": CibaFailure.BINDING_MESSAGE,
    "unknown_user_id": CibaFailure.UNKNOWN_USER,
    "invalid_client": CibaFailure.CLIENT,
    "unauthorized_client": CibaFailure.CLIENT,
    "invalid_grant": CibaFailure.GRANT,
    "invalid_request": CibaFailure.REQUEST,
    "invalid_scope": CibaFailure.REQUEST,
}


def _rejection(error: str) -> CibaRejected:
    return CibaRejected(_REJECTIONS.get(error, CibaFailure.REFUSED), error)


class Auth0CibaClient:
    """:class:`bot.approvals.ports.CibaClient` on auth0-python (see the module docstring).

    Args:
        auth0: whose credentials, domain, protocol and timeout the calls use.
        verifier: verifies the granted ID token against the tenant's JWKS.
        issuer: the tenant's issuer (``https://DOMAIN/``), the ``iss`` of the login hint.
        max_workers: the size of the thread pool (at most that many calls in flight).
    """

    def __init__(
        self,
        *,
        auth0: Auth0Client,
        verifier: TokenVerifier,
        issuer: str,
        max_workers: int = 8,
    ) -> None:
        self._auth0 = auth0
        self._verifier = verifier
        self._issuer = issuer
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ciba")

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn)

    async def start(
        self, *, sub: str, binding_message: str, requested_expiry: int, scope: str = "openid"
    ) -> CibaStarted:
        """``/bc-authorize`` for ``sub``. ``CibaRejected`` for a binding message that breaks
        Auth0's rules, a scope without ``openid``, a ``requested_expiry`` below 1 (longer
        than :data:`MAX_REQUESTED_EXPIRY` is shortened) and every OAuth error;
        ``ServiceUnavailable`` when the provider is unreachable, answers 5xx or 429."""
        if not valid_binding_message(binding_message):
            raise CibaRejected(CibaFailure.BINDING_MESSAGE, "invalid_binding_message")
        if "openid" not in scope.split():
            raise CibaRejected(CibaFailure.REQUEST, "openid_scope_required")
        if isinstance(requested_expiry, bool) or requested_expiry < 1:
            raise CibaRejected(CibaFailure.REQUEST, "invalid_requested_expiry")
        if not sub or len(sub) > 512:
            raise CibaRejected(CibaFailure.REQUEST, "invalid_sub")
        client = BackChannelLogin(**self._auth0.sdk_args())
        hint = login_hint(issuer=self._issuer, sub=sub)
        expiry = min(int(requested_expiry), MAX_REQUESTED_EXPIRY)

        def call() -> Any:
            return client.back_channel_login(
                binding_message=binding_message,
                login_hint=hint,
                scope=scope,
                requested_expiry=expiry,
            )

        doc = await self._send(call)
        return _started(doc)

    async def poll(self, auth_req_id: str) -> CibaPoll:
        """One poll of the CIBA grant. Pending, slow down, denied and expired are states;
        a grant is returned with the verified ``sub`` of its ID token (the caller checks
        it is the approver's). ``CibaRejected`` for ``invalid_grant`` (unknown, already
        redeemed or another client's ``auth_req_id``), a missing or failing ID token and
        other OAuth errors; ``ServiceUnavailable`` when the provider is unreachable, answers
        5xx or 429 without a CIBA error, or its JWKS cannot be fetched."""
        if not AUTH_REQ_ID.match(auth_req_id):
            raise CibaRejected(CibaFailure.REQUEST, "invalid_auth_req_id")
        client = GetToken(**self._auth0.sdk_args())
        url = f"{self._auth0.base_url}/oauth/token"

        def call() -> Any:
            return client.authenticated_post(
                url,
                data={
                    "client_id": self._auth0.client_id,
                    "auth_req_id": auth_req_id,
                    "grant_type": CIBA_GRANT_TYPE,
                },
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )

        try:
            doc = await self._send(call, poll=True)
        except _PollState as state:
            return CibaPoll(state=state.state)
        id_token = doc.get("id_token") if isinstance(doc, dict) else None
        if not isinstance(id_token, str) or not id_token:
            raise CibaRejected(CibaFailure.ID_TOKEN, "missing_id_token")
        try:
            claims = await self._verifier.verify_backchannel_id_token(
                id_token, client_id=self._auth0.client_id
            )
        except TokenInvalid as exc:
            log.warning("CIBA grant refused: its ID token failed verification (%s)", exc.reason)
            raise CibaRejected(CibaFailure.ID_TOKEN, exc.reason) from None
        except JwksUnavailable:
            raise ServiceUnavailable("Auth0") from None
        return CibaPoll(state=CibaPollState.GRANTED, sub=claims.sub)

    async def _send(self, call: Callable[[], Any], *, poll: bool = False) -> Any:
        try:
            return await self._run(call)
        except Auth0Error as exc:
            error = str(exc.error_code or "")
            state = _POLL_STATES.get(error) if poll else None
            if state is CibaPollState.DENIED and exc.status_code == 401:
                # Auth0 answers a failed client authentication with 401 access_denied:
                # that is this client's fault, not the person's answer.
                state = None
            if state is not None:
                # slow_down may come with 429 (Auth0) or 400 (the standard): the error
                # code decides, not the status.
                raise _PollState(state) from None
            if exc.status_code >= 500 or (exc.status_code == 429 and error != "slow_down"):
                raise ServiceUnavailable("Auth0") from None
            if error == "access_denied":
                raise CibaRejected(CibaFailure.CLIENT, error) from None
            raise _rejection(error or f"http_{exc.status_code}") from None
        except requests.RequestException:
            raise ServiceUnavailable("Auth0") from None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _PollState(Exception):
    """A CIBA error that is a poll state (internal: turned into ``CibaPoll``)."""

    def __init__(self, state: CibaPollState) -> None:
        super().__init__(state.value)
        self.state = state


def _started(doc: object) -> CibaStarted:
    if not isinstance(doc, dict):
        raise CibaRejected(CibaFailure.RESPONSE, "not_an_object")
    auth_req_id = doc.get("auth_req_id")
    if not isinstance(auth_req_id, str) or not AUTH_REQ_ID.match(auth_req_id):
        raise CibaRejected(CibaFailure.RESPONSE, "auth_req_id")
    expires_in = doc.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 1:
        raise CibaRejected(CibaFailure.RESPONSE, "expires_in")
    interval = doc.get("interval", DEFAULT_INTERVAL)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 0:
        raise CibaRejected(CibaFailure.RESPONSE, "interval")
    return CibaStarted(auth_req_id=auth_req_id, expires_in=expires_in, interval=max(interval, 1))
