"""OpenFGA's response bodies for the HTTP API (:mod:`authz.http_api`).

The JSON shapes of stores, models, tuples and ListUsers results, OpenFGA's error body
``{"code": "<OpenFGA error code name>", "message": "..."}`` (:class:`ApiError`), and
:func:`error_middleware`, which answers the engine's errors as OpenFGA does:
``AuthzValidationError`` -> 400 with the code's name (404 ``store_id_not_found`` for an
unknown store), the depth limit -> 400 ``authorization_model_resolution_too_complex``,
another ``AuthzEvaluationError`` -> 500 ``internal_error``, ``AuthzUnavailable`` -> 503
``unavailable``, an unknown path -> 404 ``undefined_endpoint``, a known path with the wrong
method -> 405.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from authz.embedded.model import model_to_json
from authz.embedded.sqlstore import StoreNotFoundError
from authz.ports import (
    AuthzEvaluationError,
    AuthzUnavailable,
    AuthzValidationError,
    ErrorCode,
    TupleKey,
)

# The API's logger: records keep the name they have always had.
log = logging.getLogger("authz.http_api")

TOO_COMPLEX: Final = ErrorCode.authorization_model_resolution_too_complex

Json = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An error answered with OpenFGA's error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def invalid(message: str, code: ErrorCode = ErrorCode.validation_error) -> ApiError:
    return ApiError(400, code.name, message)


def store_not_found() -> ApiError:
    return ApiError(404, ErrorCode.store_id_not_found.name, "store ID not found")


def json_response(body: Json, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def error_response(status: int, code: str, message: str) -> web.Response:
    return json_response({"code": code, "message": message}, status)


def timestamp(value: datetime | None) -> str:
    """RFC 3339 in UTC with a ``Z``, as protobuf's JSON mapping writes timestamps."""
    if value is None:
        value = datetime.now(UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def store_json(info: Any) -> Json:
    return {
        "id": info.id,
        "name": info.name,
        "created_at": timestamp(info.created_at),
        "updated_at": timestamp(getattr(info, "updated_at", None) or info.created_at),
    }


def model_json(model_id: str, model: Any) -> Json:
    doc = model_to_json(model)
    return {
        "id": model_id,
        "schema_version": doc["schema_version"],
        "type_definitions": doc["type_definitions"],
        "conditions": {},
    }


def tuple_key_json(t: TupleKey) -> Json:
    return {"user": t.user, "relation": t.relation, "object": t.object}


def user_json(user: str) -> Json:
    """A ListUsers result: an object, a typed wildcard or a userset."""
    obj, sep, relation = user.partition("#")
    type_, _, ident = obj.partition(":")
    if sep:
        return {"userset": {"type": type_, "id": ident, "relation": relation}}
    if ident == "*":
        return {"wildcard": {"type": type_}}
    return {"object": {"type": type_, "id": ident}}


def check_error_json(exc: Exception) -> Json:
    """The ``CheckError`` of one BatchCheck item (OpenFGA's ``input_error`` for invalid input
    and the depth limit, ``internal_error`` otherwise)."""
    if isinstance(exc, AuthzValidationError):
        return {
            "input_error": ErrorCode.input_error_numbered(exc.code).name,
            "message": exc.message,
        }
    if isinstance(exc, AuthzEvaluationError) and is_too_complex(exc):
        return {"input_error": TOO_COMPLEX.name, "message": str(exc)}
    return {"internal_error": "internal_error", "message": str(exc) or "internal error"}


def is_too_complex(exc: AuthzEvaluationError) -> bool:
    return getattr(exc, "code", None) == TOO_COMPLEX


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answers :class:`ApiError`, the engine's errors and aiohttp's routing errors with
    OpenFGA's error bodies (see the module docstring)."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except AuthzValidationError as exc:
        if isinstance(exc, StoreNotFoundError) or exc.code == ErrorCode.store_id_not_found:
            missing = store_not_found()
            return error_response(missing.status, missing.code, missing.message)
        return error_response(400, ErrorCode.input_error_numbered(exc.code).name, exc.message)
    except AuthzEvaluationError as exc:
        if is_too_complex(exc):
            return error_response(400, TOO_COMPLEX.name, str(exc))
        log.warning("fga api: evaluation failed: %s", exc)
        return error_response(500, "internal_error", str(exc) or "Internal Server Error")
    except AuthzUnavailable as exc:
        log.warning("fga api: engine unavailable: %s", exc)
        return error_response(503, "unavailable", str(exc) or "Service Unavailable")
    except web.HTTPNotFound:
        return error_response(404, "undefined_endpoint", "Not Found")
    except web.HTTPMethodNotAllowed:
        return error_response(405, "undefined_endpoint", "Method Not Allowed")
