"""The guards every request to the OpenFGA HTTP API (:mod:`authz.http_api`) passes first.

In this order, before any handler runs or any body is read:

1. **Host allow-list** (DNS rebinding). The ``Host`` header must be exactly one of
   ``127.0.0.1``, ``localhost``, ``[::1]`` or the bind host, each with the port the request
   arrived on, or one of ``allowed_hosts`` (``NAME`` on any port, ``NAME:PORT`` on that
   port only). Anything else, a missing ``Host`` or two of them: 421 ``misdirected_request``.
2. **Bearer token**, when ``token`` is given: exactly one ``Authorization: Bearer <token>``
   header, compared in constant time on bytes (the scheme is case-insensitive, the token is
   not). Anything else: 401 ``{"code": "unauthenticated", "message": "unauthenticated"}``
   (OpenFGA's answer) with ``WWW-Authenticate: Bearer``.
3. **JSON bodies only**: a POST, PUT or PATCH must carry exactly one ``Content-Type:
   application/json`` (a ``charset=utf-8`` parameter allowed, nothing else): otherwise 415
   ``unsupported_media_type`` and the body is never read. A browser can send ``text/plain``
   and form bodies to any address without asking first; it must ask (a CORS preflight, which
   this server never grants) before it sends ``application/json``.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from collections.abc import Sequence
from typing import Final

from aiohttp import hdrs, web

from authz.http_responses import ApiError, Handler, error_response

# The API's logger: records keep the name they have always had.
log = logging.getLogger("authz.http_api")

#: Host names always accepted (with the port the request arrived on).
LOOPBACK_HOST_NAMES: Final = ("127.0.0.1", "localhost", "::1")
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_HOST_NAME: Final = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_PORT: Final = re.compile(r"[0-9]{1,5}")
# Visible ASCII: what an Authorization header carries unchanged.
_TOKEN: Final = re.compile(r"[\x21-\x7e]+")
_JSON_CHARSETS: Final = frozenset({"utf-8", "utf8"})


def _parse_host(value: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a ``Host`` value (``name``, ``name:port``, ``[ipv6]:port``),
    lower-case, IPv6 without brackets in its compressed form; ``None`` when malformed."""
    if not value.isascii():
        return None
    text = value.lower()
    if text.startswith("["):
        inner, sep, tail = text[1:].partition("]")
        if not sep:
            return None
        try:
            name = ipaddress.IPv6Address(inner).compressed
        except ValueError:
            return None
    else:
        name, _, _ = text.partition(":")
        tail = text[len(name) :]
        if not _HOST_NAME.fullmatch(name):
            return None
    if not tail:
        return name, None
    if tail[0] != ":" or not _PORT.fullmatch(tail[1:]) or not 0 < int(tail[1:]) < 65536:
        return None
    return name, int(tail[1:])


def serve_problems(token: str | None, allowed_hosts: Sequence[str] = ()) -> list[str]:
    """What is wrong with a server token and ``--allowed-host`` names (empty when fine)."""
    problems: list[str] = []
    if token is not None and not _TOKEN.fullmatch(token):
        problems.append(
            "FGA_SERVE_TOKEN must be non-empty printable ASCII without spaces (it travels in "
            "an HTTP Authorization header)"
        )
    for name in allowed_hosts:
        if _parse_host(name) is None:
            problems.append(
                f"invalid allowed host {name!r} (--allowed-host): expected NAME or NAME:PORT "
                "(an IPv6 address in brackets), without wildcards"
            )
    return problems


def is_json_content_type(request: web.Request) -> bool:
    """Exactly one ``Content-Type: application/json`` (``charset=utf-8`` allowed)."""
    values = request.headers.getall(hdrs.CONTENT_TYPE, [])
    if len(values) != 1:
        return False
    media_type, *params = values[0].split(";")
    if media_type.strip().lower() != "application/json":
        return False
    for param in params:
        if not param.strip():
            continue
        key, sep, value = param.partition("=")
        charset = value.strip().strip('"').lower()
        if not sep or key.strip().lower() != "charset" or charset not in _JSON_CHARSETS:
            return False
    return True


def unsupported_media_type() -> ApiError:
    return ApiError(
        415,
        "unsupported_media_type",
        "the request body must be JSON (Content-Type: application/json)",
    )


def _served_port(request: web.Request) -> int | None:
    """The local port this request arrived on."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2 and isinstance(sockname[1], int):
        return sockname[1]
    return None


class RequestGuard:
    """The three checks every request passes before its handler (see module docstring)."""

    def __init__(
        self, token: str | None, bind_host: str | None, allowed_hosts: Sequence[str]
    ) -> None:
        problems = serve_problems(token, allowed_hosts)
        if problems:
            raise ValueError("; ".join(problems))
        self._token = token.encode("ascii") if token is not None else None
        served = set(LOOPBACK_HOST_NAMES)
        if bind_host:
            bracketed = f"[{bind_host}]" if ":" in bind_host and "[" not in bind_host else bind_host
            bound = _parse_host(bracketed)
            if bound is not None:
                served.add(bound[0])
        self._served_names = frozenset(served)
        any_port: set[str] = set()
        exact: set[tuple[str, int]] = set()
        for entry in allowed_hosts:
            parsed = _parse_host(entry)
            assert parsed is not None  # checked by serve_problems
            name, port = parsed
            if port is None:
                any_port.add(name)
            else:
                exact.add((name, port))
        self._any_port = frozenset(any_port)
        self._exact = frozenset(exact)

    def host_allowed(self, request: web.Request) -> bool:
        values = request.headers.getall(hdrs.HOST, [])
        parsed = _parse_host(values[0]) if len(values) == 1 else None
        if parsed is None:
            return False
        name, port = parsed
        if name in self._any_port:
            return True
        effective = 80 if port is None else port
        if (name, effective) in self._exact:
            return True
        return name in self._served_names and effective == _served_port(request)

    def authenticated(self, request: web.Request) -> bool:
        if self._token is None:
            return True
        # The raw bytes: a header that is not ASCII is a wrong token, not an encoding error.
        values = [v for k, v in request.raw_headers if k.lower() == b"authorization"]
        if len(values) != 1:
            return False
        scheme, sep, credentials = values[0].partition(b" ")
        if not sep or scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(credentials.lstrip(b" "), self._token)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.host_allowed(request):
            log.info(
                "fga api: refused %s %s: Host %r is not allowed",
                request.method,
                request.path,
                request.headers.get(hdrs.HOST, "")[:100],
            )
            return error_response(
                421,
                "misdirected_request",
                "this server does not answer for the requested Host (allow a name with "
                "--allowed-host)",
            )
        if not self.authenticated(request):
            log.info("fga api: refused %s %s: unauthenticated", request.method, request.path)
            response = error_response(401, "unauthenticated", "unauthenticated")
            response.headers[hdrs.WWW_AUTHENTICATE] = "Bearer"
            return response
        if request.method in _BODY_METHODS and not is_json_content_type(request):
            error = unsupported_media_type()
            return error_response(error.status, error.code, error.message)
        return await handler(request)
