"""The authenticator page (``/authenticator``): the dev identity provider's stand-in for a
phone authenticator app. A seeded person signs in, sees the CIBA requests waiting for them
(binding message, requesting application) and approves or denies each.

Browser safety, on the page itself so it holds wherever the provider runs (standalone in
tests, under pmbot's ``bot.websec`` middleware in the sandbox):

* Every POST must be a form (``application/x-www-form-urlencoded``), must not be
  cross-site (``Sec-Fetch-Site``/``Origin``, as ``bot.websec`` decides) and must carry an
  anti-forgery token: an HMAC, under a key only this provider knows, of a random value kept
  in an HttpOnly ``SameSite=Strict`` cookie. Another site can neither read the token nor
  make the cookie travel, so it cannot sign a person in as someone else, nor approve.
* The session cookie is host-only (no ``Domain``), HttpOnly and ``SameSite=Lax``.
* A person only ever sees and answers their own requests; another person's ``auth_req_id``
  is answered exactly like an unknown one.
* Pages cannot be framed (``X-Frame-Options: DENY``, CSP ``frame-ancestors 'none'``), run
  no script and post forms only to themselves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time

from aiohttp import web

from bot.websec import cross_site_reason
from sandbox.idp.authenticator_pages import (
    FLASHES,
    PendingView,
    refused_page,
    requests_page,
    sign_in_page,
)
from sandbox.idp.ciba import PENDING, CibaRequests
from sandbox.idp.models import IdpUser
from sandbox.idp.tenant import Tenant

log = logging.getLogger("sandbox.idp.server")

SESSION_COOKIE = "idp_authenticator"
CSRF_COOKIE = "idp_authenticator_csrf"
SESSION_TTL = 8 * 3600.0
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "same-origin",  # no-referrer would post "Origin: null"
}


class AuthenticatorPage:
    """``GET`` and ``POST /authenticator`` (``action`` = sign-in, sign-out, approve, deny)."""

    def __init__(self, tenant: Tenant, ciba: CibaRequests) -> None:
        self._tenant = tenant
        self._ciba = ciba
        self._key = secrets.token_bytes(32)
        self._sessions: dict[str, tuple[str, float]] = {}

    # -- cookies and tokens ----------------------------------------------------------

    def _csrf_token(self, nonce: str) -> str:
        mac = hmac.new(self._key, b"authenticator|" + nonce.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def _user(self, request: web.Request) -> IdpUser | None:
        entry = self._sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if entry is None or entry[1] < time.time():
            return None
        return self._tenant.users_by_sub.get(entry[0])

    @staticmethod
    def _cookie(
        response: web.StreamResponse,
        request: web.Request,
        name: str,
        value: str,
        *,
        samesite: str,
        max_age: int | None = None,
    ) -> None:
        # No Domain: host-only. Secure whenever the page itself is served over https.
        response.set_cookie(
            name,
            value,
            path="/",
            httponly=True,
            samesite=samesite,
            secure=request.secure,
            max_age=max_age,
        )

    def _html(self, request: web.Request, body: str, status: int = 200) -> web.Response:
        return web.Response(text=body, status=status, content_type="text/html", headers=_HEADERS)

    def _with_csrf(self, request: web.Request) -> tuple[str, str | None]:
        """The anti-forgery token for this browser and the new nonce to set (if any)."""
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if len(nonce) < 32:
            fresh = secrets.token_urlsafe(32)
            return self._csrf_token(fresh), fresh
        return self._csrf_token(nonce), None

    def _render(
        self,
        request: web.Request,
        *,
        flash: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> web.Response:
        token, fresh = self._with_csrf(request)
        user = self._user(request)
        if user is None:
            body = sign_in_page(csrf=token, users=self._tenant.users, error=error, flash=flash)
        else:
            pending = [
                PendingView(
                    auth_req_id=r.auth_req_id,
                    app=self._ciba.client_name(r.client_id),
                    binding_message=r.binding_message,
                    scope=" ".join(r.scope),
                    expires_at=r.expires_at,
                )
                for r in self._ciba.requests(sub=user.sub, status=PENDING)
            ]
            body = requests_page(csrf=token, user=user, pending=pending, flash=flash)
        response = self._html(request, body, status)
        if fresh is not None:
            self._cookie(response, request, CSRF_COOKIE, fresh, samesite="Strict")
        return response

    # -- handlers --------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        self._tenant.issuer_for(request)
        done = request.query.get("done")
        return self._render(request, flash=done if done in FLASHES else None)

    async def act(self, request: web.Request) -> web.StreamResponse:
        if cross_site_reason(request, frozenset()) is not None:
            log.info("authenticator: refused a cross-site request")
            return self._html(request, refused_page("Cross-site requests are refused."), 403)
        if request.content_type != "application/x-www-form-urlencoded":
            return self._html(request, refused_page("Unsupported request."), 415)
        form = await request.post()

        def field(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        nonce = request.cookies.get(CSRF_COOKIE, "")
        if len(nonce) < 32 or not hmac.compare_digest(field("csrf"), self._csrf_token(nonce)):
            log.info("authenticator: refused a request without a valid anti-forgery token")
            return self._html(
                request,
                refused_page("This form expired or did not come from this page. Try again."),
                403,
            )
        action = field("action")
        if action == "sign-in":
            return self._sign_in(request, field("email"), field("password"))
        if action == "sign-out":
            self._sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
            response = self._back(request, "signed-out")
            response.del_cookie(SESSION_COOKIE, path="/")
            return response
        user = self._user(request)
        if user is None:
            return self._render(request, error="Sign in first.", status=401)
        if action not in {"approve", "deny"}:
            return self._html(request, refused_page("Unknown action."), 400)
        auth_req_id = field("request")
        record = self._ciba.get(auth_req_id) if 0 < len(auth_req_id) <= 128 else None
        # Someone else's request is answered exactly like an unknown one.
        if record is None or record.sub != user.sub:
            return self._back(request, "gone")
        done = (
            self._ciba.approve(auth_req_id) if action == "approve" else self._ciba.deny(auth_req_id)
        )
        return self._back(
            request, ("approved" if action == "approve" else "denied") if done else "gone"
        )

    def _sign_in(self, request: web.Request, email: str, password: str) -> web.StreamResponse:
        user = self._tenant.users_by_email.get(email.strip().lower())
        if user is None or not hmac.compare_digest(password.encode(), user.password.encode()):
            return self._render(request, error="Wrong email or password.", status=401)
        self._purge()
        # A new session id on every sign-in (no fixation on an id planted earlier).
        self._sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = (user.sub, time.time() + SESSION_TTL)
        log.info("authenticator: %s signed in", user.sub)
        response = self._back(request, None)
        self._cookie(
            response, request, SESSION_COOKIE, session_id, samesite="Lax", max_age=int(SESSION_TTL)
        )
        return response

    @staticmethod
    def _back(request: web.Request, done: str | None) -> web.Response:
        # Post/redirect/get back to the page itself, wherever the provider is mounted.
        location = request.path + (f"?done={done}" if done else "")
        return web.Response(status=303, headers={"Location": location, **_HEADERS})

    def _purge(self) -> None:
        now = time.time()
        for sid in [k for k, v in self._sessions.items() if v[1] < now]:
            del self._sessions[sid]
