"""Reading Web API requests as Slack does: parameters from the query string, form and JSON
bodies alike, the bearer token, and cursor pagination."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from aiohttp import web

from .common import JsonDict, SandboxError

T = TypeVar("T")


async def read_params(request: web.Request) -> JsonDict:
    params: JsonDict = dict(request.query)
    if request.method != "POST" or not request.body_exists:
        return params
    if request.content_type == "application/json":
        raw = await request.read()
        if raw.strip():
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise SandboxError("invalid_json") from None
            if not isinstance(body, dict):
                raise SandboxError("invalid_json")
            params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.post()
        except ValueError:
            raise SandboxError("invalid_form_data") from None
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def opt_str(p: JsonDict, key: str) -> str | None:
    value = p.get(key)
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def paginate(
    items: Sequence[T], p: JsonDict, *, key: Callable[[T], str], prefix: str, default: int
) -> tuple[list[T], str]:
    """Slack cursor pagination: ``cursor`` is base64 of ``"{prefix}:{key of first item}"``.

    Returns the page and the next cursor (``""`` on the last page). ``limit`` 0 = everything
    (Slack caps pages at 1000).
    """
    raw_limit = p.get("limit", default)
    try:
        limit = int(raw_limit)
    except (TypeError, ValueError):
        raise SandboxError("invalid_limit") from None
    if limit < 0:
        raise SandboxError("invalid_limit")
    limit = min(limit or 1000, 1000)
    start = 0
    cursor = opt_str(p, "cursor")
    if cursor:
        try:
            decoded = base64.b64decode(cursor.encode(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise SandboxError("invalid_cursor") from None
        tag, _, value = decoded.partition(":")
        keys = [key(i) for i in items]
        if tag != prefix or value not in keys:
            raise SandboxError("invalid_cursor")
        start = keys.index(value)
    page = list(items[start : start + limit])
    nxt = start + limit
    next_cursor = ""
    if nxt < len(items):
        next_cursor = base64.b64encode(f"{prefix}:{key(items[nxt])}".encode()).decode()
    return page, next_cursor
