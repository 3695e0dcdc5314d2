"""Requests of the OpenFGA HTTP API (:mod:`authz.http_api`), parsed and validated into the
port's types.

Validation is OpenFGA's API layer's: the identifier patterns of openfga/api
(:mod:`authz.validation`), at most 100 contextual tuples, 1 to 50 checks per BatchCheck with
unique correlation ids, exactly one ListUsers filter, page sizes 1 to 100; a violation is a
400 :class:`~authz.http_responses.ApiError` with OpenFGA's message. Conditions (``condition``
on tuples) are refused with ``validation_error``: the embedded engine does not evaluate them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from aiohttp import web

from authz.http_guard import is_json_content_type, unsupported_media_type
from authz.http_responses import Json, invalid
from authz.ports import CheckRequest, Consistency, ErrorCode, TupleKey
from authz.validation import (
    CORRELATION_ID,
    OBJECT,
    OBJECT_ID,
    RELATION,
    STORE_NAME,
    TYPE,
    ULID,
    USER,
)

# OpenFGA's server defaults.
MAX_CONTEXTUAL_TUPLES: Final = 100
MAX_CHECKS_PER_BATCH_CHECK: Final = 50
DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 100

# Field patterns of openfga/api (protoc-gen-validate rules, see authz.validation).
_PATTERNS: Final[dict[str, re.Pattern[str]]] = {
    p: re.compile(p)
    for p in (ULID, TYPE, RELATION, OBJECT, USER, OBJECT_ID, CORRELATION_ID, STORE_NAME)
}

_CONSISTENCY: Final[Mapping[object, Consistency]] = {
    None: Consistency.MINIMIZE_LATENCY,
    "": Consistency.MINIMIZE_LATENCY,
    "UNSPECIFIED": Consistency.MINIMIZE_LATENCY,
    0: Consistency.MINIMIZE_LATENCY,
    "MINIMIZE_LATENCY": Consistency.MINIMIZE_LATENCY,
    100: Consistency.MINIMIZE_LATENCY,
    "HIGHER_CONSISTENCY": Consistency.HIGHER_CONSISTENCY,
    200: Consistency.HIGHER_CONSISTENCY,
}


def match_pattern(value: Any, pattern: str, field: str) -> str:
    if not isinstance(value, str) or not _PATTERNS[pattern].match(value):
        raise invalid(f'invalid {field}: value does not match regex pattern "{pattern}"')
    return value


async def parse_body(request: web.Request) -> Json:
    if not is_json_content_type(request):  # the guard refused it already; never parse it
        raise unsupported_media_type()
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"invalid JSON request body: {exc}") from None
    if not isinstance(doc, dict):
        raise invalid("the request body must be a JSON object")
    return doc


def object_field(body: Mapping[str, Any], name: str, where: str) -> Json | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(f"invalid {where}.{camel(name)}: must be an object")
    return value


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head[:1].upper() + head[1:] + "".join(p[:1].upper() + p[1:] for p in rest)


def parse_tuple_key(doc: Any, message: str) -> TupleKey:
    """A ``TupleKey`` message (user, relation, object; conditions refused)."""
    if not isinstance(doc, dict):
        raise invalid(f"invalid {message}: must be an object")
    if doc.get("condition"):
        raise invalid("conditions are not supported by the embedded engine")
    return TupleKey(
        user=match_pattern(doc.get("user", ""), USER, f"{message}.User"),
        relation=match_pattern(doc.get("relation", ""), RELATION, f"{message}.Relation"),
        object=match_pattern(doc.get("object", ""), OBJECT, f"{message}.Object"),
    )


def parse_contextual_tuples(value: Any, request: str, *, wrapped: bool) -> tuple[TupleKey, ...]:
    """``contextual_tuples``: ``{"tuple_keys": [...]}`` (Check, BatchCheck, ListObjects) or a
    bare list (ListUsers)."""
    if value is None:
        return ()
    items: Any = value
    where = f"{request}.ContextualTuples"
    if wrapped:
        if not isinstance(value, dict):
            raise invalid(f"invalid {where}: must be an object")
        items = value.get("tuple_keys") or []
        where = "ContextualTupleKeys.TupleKeys"
    if not isinstance(items, list):
        raise invalid(f"invalid {where}: must be a list")
    if len(items) > MAX_CONTEXTUAL_TUPLES:
        raise invalid(
            f"invalid {where}: value must contain no more than {MAX_CONTEXTUAL_TUPLES} item(s)"
        )
    return tuple(parse_tuple_key(item, "TupleKey") for item in items)


def parse_consistency(body: Mapping[str, Any], request: str) -> Consistency:
    value = body.get("consistency")
    try:
        return _CONSISTENCY[value]
    except (KeyError, TypeError):
        raise invalid(
            f"invalid {request}.Consistency: value must be one of the defined enum values"
        ) from None


def parse_model_id(body: Mapping[str, Any], request: str) -> str | None:
    value = body.get("authorization_model_id")
    if value in (None, ""):
        return None
    return match_pattern(value, ULID, f"{request}.AuthorizationModelId")


def parse_page(query: Mapping[str, str], body: Mapping[str, Any], request: str) -> tuple[int, str]:
    raw_size: Any = body.get("page_size", query.get("page_size"))
    token: Any = body.get("continuation_token", query.get("continuation_token", ""))
    if raw_size in (None, "", 0):
        size = DEFAULT_PAGE_SIZE
    else:
        try:
            size = int(raw_size)
        except (TypeError, ValueError):
            raise invalid(f"invalid {request}.PageSize: value must be an integer") from None
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise invalid(
                f"invalid {request}.PageSize: value must be inside range [1, {MAX_PAGE_SIZE}]"
            )
    if token is None:
        token = ""
    if not isinstance(token, str):
        raise invalid(f"invalid {request}.ContinuationToken: must be a string")
    return size, token


def _encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _decode_offset(token: str) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["o"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise invalid("Invalid continuation token", ErrorCode.invalid_continuation_token) from None
    if not isinstance(offset, int) or offset < 0:
        raise invalid("Invalid continuation token", ErrorCode.invalid_continuation_token)
    return offset


def paginate(items: Sequence[Any], size: int, token: str) -> tuple[Sequence[Any], str]:
    offset = _decode_offset(token)
    page = items[offset : offset + size]
    rest = offset + size < len(items)
    return page, _encode_offset(offset + size) if rest else ""


def parse_store_id(request: web.Request, message: str) -> str:
    return match_pattern(request.match_info["store_id"], ULID, f"{message}.StoreId")


def parse_write_part(
    doc: Json | None, option: str, message: str
) -> tuple[tuple[TupleKey, ...], Literal["ignore", "error"]]:
    """The tuples of ``writes``/``deletes`` and the conflict option (``error``/``ignore``)."""
    if doc is None:
        return (), "error"
    items = doc.get("tuple_keys")
    if not isinstance(items, list) or not items:
        raise invalid(f"invalid {message}.TupleKeys: value must contain at least 1 item(s)")
    mode = doc.get(option) or "error"
    if mode == "error":
        return tuple(parse_tuple_key(item, "TupleKey") for item in items), "error"
    if mode == "ignore":
        return tuple(parse_tuple_key(item, "TupleKey") for item in items), "ignore"
    raise invalid(f"invalid {message}.{camel(option)}: value must be in list [ignore error]")


def parse_batch_checks(body: Mapping[str, Any]) -> list[CheckRequest]:
    """The ``checks`` of a BatchCheck request, at most 50, correlation ids unique."""
    checks = body.get("checks")
    if not isinstance(checks, list) or not checks:
        raise invalid("invalid BatchCheckRequest.Checks: value must contain at least 1 item(s)")
    if len(checks) > MAX_CHECKS_PER_BATCH_CHECK:
        raise invalid(
            f"batchCheck received {len(checks)} checks, the maximum allowed is "
            f"{MAX_CHECKS_PER_BATCH_CHECK}"
        )
    requests: list[CheckRequest] = []
    seen: set[str] = set()
    for item in checks:
        if not isinstance(item, dict):
            raise invalid("invalid BatchCheckRequest.Checks: items must be objects")
        correlation_id = match_pattern(
            item.get("correlation_id", ""), CORRELATION_ID, "BatchCheckItem.CorrelationId"
        )
        if correlation_id in seen:
            raise invalid(f"duplicate correlation_id provided: {correlation_id}")
        seen.add(correlation_id)
        key = parse_tuple_key(item.get("tuple_key"), "CheckRequestTupleKey")
        requests.append(
            CheckRequest(
                user=key.user,
                relation=key.relation,
                object=key.object,
                contextual_tuples=parse_contextual_tuples(
                    item.get("contextual_tuples"), "BatchCheckItem", wrapped=True
                ),
                correlation_id=correlation_id,
            )
        )
    return requests


def parse_user_filters(body: Mapping[str, Any]) -> list[str]:
    """The ``user_filters`` of a ListUsers request (exactly one): ``type`` or
    ``type#relation``."""
    filters = body.get("user_filters")
    if not isinstance(filters, list) or len(filters) != 1:
        raise invalid("invalid ListUsersRequest.UserFilters: value must contain exactly 1 item(s)")
    user_filters: list[str] = []
    for f in filters:
        if not isinstance(f, dict):
            raise invalid("invalid ListUsersRequest.UserFilters: items must be objects")
        f_type = match_pattern(f.get("type", ""), TYPE, "UserTypeFilter.Type")
        f_rel = f.get("relation") or ""
        if f_rel:
            match_pattern(f_rel, RELATION, "UserTypeFilter.Relation")
        user_filters.append(f"{f_type}#{f_rel}" if f_rel else f_type)
    return user_filters


def parse_read_key(body: Mapping[str, Any]) -> dict[str, str | None]:
    """The optional ``tuple_key`` filter of a Read request: ``user``, ``relation`` and
    ``object``, each a string or None."""
    key = object_field(body, "tuple_key", "ReadRequest") or {}
    fields: dict[str, str | None] = {}
    for name in ("user", "relation", "object"):
        value = key.get(name) or None
        if value is not None and not isinstance(value, str):
            raise invalid(f"invalid ReadRequestTupleKey.{camel(name)}: must be a string")
        fields[name] = value
    return fields
