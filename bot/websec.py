"""Browser-facing protections for every route of the web server, in one middleware.

* Every state-changing request (POST, PUT, PATCH, DELETE) that a browser marks as coming
  from another site is refused before any handler runs: ``Sec-Fetch-Site: cross-site`` or
  ``same-site`` (another port or subdomain is another application), an ``Origin`` of
  ``null`` (sandboxed frames, some redirects) or an ``Origin`` that is not this server's.
  Server-to-server callers (Slack, SDKs) send neither header and are authenticated by
  their own means (request signatures, client secrets, anti-forgery tokens).
* No page can be framed, content types are not sniffed and no URL leaks through
  ``Referer`` to another site (link URLs are one-time secrets).
* In sandbox mode the ``Host`` must be this machine's: a DNS-rebinding page cannot drive
  the unauthenticated sandbox.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from bot.settings import is_loopback_host

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def cross_site_reason(request: web.Request, own_origins: frozenset[str]) -> str | None:
    """Why a state-changing request is refused as cross-site, or None."""
    if request.method not in UNSAFE_METHODS:
        return None
    fetch_site = request.headers.get("Sec-Fetch-Site", "").lower()
    if fetch_site in {"cross-site", "same-site"}:
        return f"Sec-Fetch-Site {fetch_site}"
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin.strip().lower() == "null":
            return "Origin null"
        here = f"{request.scheme}://{request.host}".lower()
        if origin.strip().lower() not in own_origins | {here}:
            return "foreign Origin"
    return None


def security_middleware(*, public_url: str, sandbox: bool) -> Middleware:
    own_origins = frozenset({origin_of(public_url)})
    public_host = (urlsplit(public_url).hostname or "").lower()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if sandbox:
            host = (urlsplit(f"http://{request.host}").hostname or "").lower()
            if not (is_loopback_host(host) or host == public_host):
                return _refuse(421, "unknown host")
        reason = cross_site_reason(request, own_origins)
        if reason is not None:
            return _refuse(403, "cross-site request refused")
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _harden(exc)
            raise
        _harden(response)
        return response

    return middleware


def _refuse(status: int, error: str) -> web.Response:
    response = web.json_response({"error": error}, status=status)
    _harden(response)
    return response


def _harden(response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # no-referrer would make browsers send "Origin: null" on our own form posts.
    headers.setdefault("Referrer-Policy", "same-origin")
    if "Content-Security-Policy" not in headers:
        headers["Content-Security-Policy"] = "frame-ancestors 'none'"


def page_policy(*, form_targets: list[str]) -> str:
    """The Content-Security-Policy of pmbot's own pages: no scripts, inline styles only,
    forms post only to this server (and the identity provider a form redirects to)."""
    targets = " ".join(["'self'", *form_targets])
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        f"form-action {targets}; frame-ancestors 'none'; base-uri 'none'"
    )
