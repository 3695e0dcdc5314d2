"""``/authorize`` and the login page: validating the request, the login transaction, the
browser session (``prompt=none``) and the authorization code it ends with."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Mapping

from aiohttp import web
from yarl import URL

from sandbox.idp.models import GRANT_AUTHORIZATION_CODE, IdpClient, IdpUser
from sandbox.idp.oauth import OIDC_SCOPES, PKCE_CHALLENGE, TOKEN_HEADERS, split_scope
from sandbox.idp.templates import error_page, login_page
from sandbox.idp.tenant import Tenant

# The provider's logger: one name for all of its log lines.
log = logging.getLogger("sandbox.idp.server")

SESSION_COOKIE = "idp_session"
_HTML_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",  # no-referrer would post "Origin: null"
}


class LoginEndpoints:
    """The handlers of ``GET /authorize`` and ``POST /authorize/login``."""

    def __init__(self, tenant: Tenant) -> None:
        self._tenant = tenant

    @staticmethod
    def _html(body: str, status: int = 200) -> web.Response:
        return web.Response(
            text=body, status=status, content_type="text/html", headers=_HTML_HEADERS
        )

    @staticmethod
    def _redirect(
        redirect_uri: str, params: Mapping[str, str | None], cookie: str | None = None
    ) -> web.Response:
        query = {k: v for k, v in params.items() if v is not None}
        response = web.Response(
            status=302,
            headers={"Location": str(URL(redirect_uri).update_query(query)), **TOKEN_HEADERS},
        )
        if cookie is not None:
            response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="Lax", path="/")
        return response

    async def authorize(self, request: web.Request) -> web.Response:
        self._tenant.issuer_for(request)
        query = request.query
        client = self._tenant.clients.get(query.get("client_id", ""))
        if client is None:
            return self._html(
                error_page("invalid_request", f"Unknown client: {query.get('client_id', '')}"),
                status=400,
            )
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri not in client.callback_urls:
            # Never redirect to a URL the application did not register.
            return self._html(
                error_page(
                    "Callback URL mismatch.",
                    f"{redirect_uri or '(none)'} is not in the list of allowed callback URLs.",
                ),
                status=400,
            )
        state = query.get("state")

        def fail(error: str, description: str) -> web.Response:
            return self._redirect(
                redirect_uri,
                {"error": error, "error_description": description, "state": state},
            )

        response_type = query.get("response_type", "")
        if response_type != "code":
            return fail("unsupported_response_type", f"Unsupported response type: {response_type}")
        if query.get("response_mode", "query") != "query":
            return fail("invalid_request", "Only response_mode=query is supported")
        if not self._tenant.client_may_use(client, GRANT_AUTHORIZATION_CODE):
            return fail(
                "unauthorized_client",
                "Grant type 'authorization_code' not allowed for the client.",
            )
        challenge = query.get("code_challenge", "")
        method = query.get("code_challenge_method", "")
        if not challenge:
            return fail("invalid_request", "Parameter 'code_challenge' is required (PKCE)")
        if method != "S256":
            return fail(
                "invalid_request",
                f"Unsupported code_challenge_method: {method or 'plain'} (use S256)",
            )
        if not PKCE_CHALLENGE.match(challenge):
            return fail("invalid_request", "Invalid code_challenge")
        audience = query.get("audience")
        if audience is not None and audience != self._tenant.audience:
            return fail("access_denied", f"Service not found: {audience}")
        scope = split_scope(query.get("scope")) or ["openid"]
        nonce = query.get("nonce")
        prompts = set(query.get("prompt", "").split())

        if "none" in prompts:
            session = self._tenant.store.session(request.cookies.get(SESSION_COOKIE, ""))
            user = self._tenant.users_by_sub.get(session[0]) if session else None
            if session is None or user is None:
                return fail("login_required", "Login required")
            code = self._new_code(
                client=client,
                user=user,
                scope=scope,
                auth_time=session[1],
                redirect_uri=redirect_uri,
                nonce=nonce,
                code_challenge=challenge,
            )
            return self._redirect(redirect_uri, {"code": code, "state": state})

        tx = self._tenant.store.add_transaction(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            state=state,
            nonce=nonce,
            code_challenge=challenge,
        )
        return self._html(
            login_page(
                tx_id=tx.tx_id, client_id=client.client_id, scope=scope, users=self._tenant.users
            )
        )

    def _new_code(
        self,
        *,
        client: IdpClient,
        user: IdpUser,
        scope: list[str],
        auth_time: int,
        redirect_uri: str,
        nonce: str | None,
        code_challenge: str,
    ) -> str:
        # With RBAC, API scopes are granted only when the user holds the permission.
        granted = [s for s in scope if s in OIDC_SCOPES or s in user.permissions]
        grant = self._tenant.store.add_grant(
            client_id=client.client_id, sub=user.sub, scope=granted, auth_time=auth_time
        )
        record = self._tenant.store.add_code(
            grant=grant, redirect_uri=redirect_uri, nonce=nonce, code_challenge=code_challenge
        )
        return record.code

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()

        def field(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        tx = self._tenant.store.get_transaction(field("tx"))
        if tx is None:
            return self._html(
                error_page(
                    "invalid_request",
                    "This login request has expired or was already used. "
                    "Start again from the application.",
                ),
                status=400,
            )
        if field("action") == "cancel":
            self._tenant.store.consume_transaction(tx.tx_id)
            return self._redirect(
                tx.redirect_uri,
                {
                    "error": "access_denied",
                    "error_description": "The user cancelled the login",
                    "state": tx.state,
                },
            )
        email = field("email")
        user = self._tenant.users_by_email.get(email.strip().lower())
        if user is None or not hmac.compare_digest(
            field("password").encode(), user.password.encode()
        ):
            return self._html(
                login_page(
                    tx_id=tx.tx_id,
                    client_id=tx.client_id,
                    scope=tx.scope,
                    users=self._tenant.users,
                    error="Wrong email or password.",
                    email=email,
                ),
                status=401,
            )
        if self._tenant.store.consume_transaction(tx.tx_id) is None:
            return self._html(
                error_page("invalid_request", "This login request was already used."),
                status=400,
            )
        client = self._tenant.clients[tx.client_id]
        auth_time = int(time.time())
        code = self._new_code(
            client=client,
            user=user,
            scope=tx.scope,
            auth_time=auth_time,
            redirect_uri=tx.redirect_uri,
            nonce=tx.nonce,
            code_challenge=tx.code_challenge,
        )
        log.info("dev login: %s for client %s", user.sub, client.client_id)
        session_id = self._tenant.store.add_session(user.sub, auth_time)
        return self._redirect(tx.redirect_uri, {"code": code, "state": tx.state}, session_id)
