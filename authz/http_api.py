"""The OpenFGA HTTP API over the embedded engine: the subset that openfga-sdk uses.

:func:`create_fga_app` serves, with OpenFGA's paths, JSON shapes and error bodies:

==========================================================  ==================================
``POST /stores``, ``GET /stores``                           CreateStore (201), ListStores
``GET /stores/{id}``, ``DELETE /stores/{id}``               GetStore, DeleteStore (204)
``POST /stores/{id}/authorization-models``                  WriteAuthorizationModel (201)
``GET /stores/{id}/authorization-models[/{model_id}]``      ReadAuthorizationModels / Model
``POST /stores/{id}/check``                                 Check
``POST /stores/{id}/batch-check``                           BatchCheck (OpenFGA >= 1.8)
``POST /stores/{id}/list-objects``                          ListObjects
``POST /stores/{id}/list-users``                            ListUsers
``POST /stores/{id}/write``                                 Write (``on_duplicate``/``on_missing``)
``POST /stores/{id}/read``                                  Read
==========================================================  ==================================

Errors are ``{"code": "<OpenFGA error code name>", "message": "..."}``: 400 for invalid
requests (``validation_error``, ``type_not_found``, ``authorization_model_not_found``,
``write_failed_due_to_invalid_input``...), 404 ``store_id_not_found`` for an unknown store and
``undefined_endpoint`` for an unknown path, 405 for a known path with the wrong method, 500
``internal_error`` when the engine cannot decide for another reason than the depth limit.

Requests are validated like OpenFGA's API layer does (identifier patterns, at most 100
contextual tuples, 50 checks per batch, exactly one ListUsers filter; the engine adds the
Write rules: 1 to 100 tuples, none twice), so a client that works here does not meet new
validation errors against a real OpenFGA server. Errors of the engine map as follows:
``AuthzValidationError`` -> 400 with the code's name, the depth limit -> 400
``authorization_model_resolution_too_complex``, another ``AuthzEvaluationError`` -> 500
``internal_error``, ``AuthzUnavailable`` (database down) -> 503 ``unavailable``.

Conditions (``condition`` on tuples) are refused with ``validation_error``: the embedded
engine does not evaluate them. ``consistency`` is passed to the engine
(``HIGHER_CONSISTENCY`` makes it catch up with writes from other replicas first).

Every request passes three guards first, before any handler runs or any body is read
(:mod:`authz.http_guard`): a ``Host`` allow-list against DNS rebinding (421
``misdirected_request``), the bearer token when one is set (401 ``unauthenticated``) and
JSON bodies only (415 ``unsupported_media_type``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from aiohttp import web

from authz.embedded.engine import EmbeddedEngine
from authz.embedded.model import model_from_json
from authz.http_guard import (
    RequestGuard,
    is_json_content_type,
    serve_problems,
    unsupported_media_type,
)
from authz.http_responses import (
    Json,
    check_error_json,
    error_middleware,
    invalid,
    json_response,
    model_json,
    store_json,
    store_not_found,
    timestamp,
    tuple_key_json,
    user_json,
)
from authz.ports import (
    AuthzEvaluationError,
    AuthzValidationError,
    CheckRequest,
    Consistency,
    ErrorCode,
    TupleKey,
)
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

__all__ = ["create_fga_app", "serve_fga", "serve_problems"]

log = logging.getLogger(__name__)

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

# ------------------------------------------------------------------------------------------
# Request parsing
# ------------------------------------------------------------------------------------------


def _match(value: Any, pattern: str, field: str) -> str:
    if not isinstance(value, str) or not _PATTERNS[pattern].match(value):
        raise invalid(f'invalid {field}: value does not match regex pattern "{pattern}"')
    return value


async def _body(request: web.Request) -> Json:
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


def _object_field(body: Mapping[str, Any], name: str, where: str) -> Json | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(f"invalid {where}.{_camel(name)}: must be an object")
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head[:1].upper() + head[1:] + "".join(p[:1].upper() + p[1:] for p in rest)


def _tuple_key(doc: Any, message: str) -> TupleKey:
    """A ``TupleKey`` message (user, relation, object; conditions refused)."""
    if not isinstance(doc, dict):
        raise invalid(f"invalid {message}: must be an object")
    if doc.get("condition"):
        raise invalid("conditions are not supported by the embedded engine")
    return TupleKey(
        user=_match(doc.get("user", ""), USER, f"{message}.User"),
        relation=_match(doc.get("relation", ""), RELATION, f"{message}.Relation"),
        object=_match(doc.get("object", ""), OBJECT, f"{message}.Object"),
    )


def _contextual_tuples(value: Any, request: str, *, wrapped: bool) -> tuple[TupleKey, ...]:
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
    return tuple(_tuple_key(item, "TupleKey") for item in items)


def _consistency(body: Mapping[str, Any], request: str) -> Consistency:
    value = body.get("consistency")
    try:
        return _CONSISTENCY[value]
    except (KeyError, TypeError):
        raise invalid(
            f"invalid {request}.Consistency: value must be one of the defined enum values"
        ) from None


def _model_id(body: Mapping[str, Any], request: str) -> str | None:
    value = body.get("authorization_model_id")
    if value in (None, ""):
        return None
    return _match(value, ULID, f"{request}.AuthorizationModelId")


def _page(query: Mapping[str, str], body: Mapping[str, Any], request: str) -> tuple[int, str]:
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


def _paginate(items: Sequence[Any], size: int, token: str) -> tuple[Sequence[Any], str]:
    offset = _decode_offset(token)
    page = items[offset : offset + size]
    rest = offset + size < len(items)
    return page, _encode_offset(offset + size) if rest else ""


# ------------------------------------------------------------------------------------------
# The application
# ------------------------------------------------------------------------------------------


class _FgaApi:
    """Request handlers over one :class:`EmbeddedEngine`."""

    def __init__(self, engine: EmbeddedEngine) -> None:
        self.engine = engine

    # -- stores --------------------------------------------------------------------------

    async def create_store(self, request: web.Request) -> web.Response:
        body = await _body(request)
        name = _match(body.get("name", ""), STORE_NAME, "CreateStoreRequest.Name")
        info = await self.engine.create_store(name)
        return json_response(store_json(info), 201)

    async def list_stores(self, request: web.Request) -> web.Response:
        size, token = _page(request.query, {}, "ListStoresRequest")
        name = request.query.get("name")
        stores = await self.engine.list_stores()
        if name:
            stores = [s for s in stores if s.name == name]
        page, next_token = _paginate(stores, size, token)
        return json_response(
            {"stores": [store_json(s) for s in page], "continuation_token": next_token}
        )

    async def get_store(self, request: web.Request) -> web.Response:
        store_id = _store_id(request, "GetStoreRequest")
        info = await self.engine.get_store(store_id)
        if info is None:
            raise store_not_found()
        return json_response(store_json(info))

    async def delete_store(self, request: web.Request) -> web.Response:
        # Deleting an absent store succeeds, as in OpenFGA.
        await self.engine.delete_store(_store_id(request, "DeleteStoreRequest"))
        return web.Response(status=204)

    # -- authorization models ------------------------------------------------------------

    async def write_model(self, request: web.Request) -> web.Response:
        store_id = _store_id(request, "WriteAuthorizationModelRequest")
        body = await _body(request)
        if not body.get("type_definitions"):
            raise invalid(
                "invalid WriteAuthorizationModelRequest.TypeDefinitions: "
                "value must contain at least 1 item(s)"
            )
        try:
            model = model_from_json(body)
        except AuthzValidationError as exc:
            # Every model that fails the type system's rules is OpenFGA's
            # invalid_authorization_model, whatever detail the parser reports.
            raise invalid(exc.message, ErrorCode.invalid_authorization_model) from None
        model_id = await self.engine.write_model(store_id, model)
        return json_response({"authorization_model_id": model_id}, 201)

    async def read_models(self, request: web.Request) -> web.Response:
        store_id = _store_id(request, "ReadAuthorizationModelsRequest")
        size, token = _page(request.query, {}, "ReadAuthorizationModelsRequest")
        models = await self.engine.list_models(store_id)  # newest first, as in OpenFGA
        page, next_token = _paginate(models, size, token)
        return json_response(
            {
                "authorization_models": [model_json(mid, m) for mid, m in page],
                "continuation_token": next_token,
            }
        )

    async def read_model(self, request: web.Request) -> web.Response:
        store_id = _store_id(request, "ReadAuthorizationModelRequest")
        model_id = _match(request.match_info["model_id"], ULID, "ReadAuthorizationModelRequest.Id")
        resolved_id, model = await self.engine.read_model(store_id, model_id)
        return json_response({"authorization_model": model_json(resolved_id, model)})

    # -- queries -------------------------------------------------------------------------

    async def check(self, request: web.Request) -> web.Response:
        store_id = _store_id(request, "CheckRequest")
        body = await _body(request)
        key = _tuple_key(body.get("tuple_key"), "CheckRequestTupleKey")
        contextual = _contextual_tuples(body.get("contextual_tuples"), "CheckRequest", wrapped=True)
        consistency = _consistency(body, "CheckRequest")
        authorizer = self.engine.authorizer(store_id, _model_id(body, "CheckRequest"))
        allowed = await authorizer.check(
            key.user,
            key.relation,
            key.object,
            contextual_tuples=contextual,
            consistency=consistency,
        )
        return json_response({"allowed": allowed, "resolution": ""})

    async def batch_check(self, request: web.Request) -> web.Response:
        store_id = _store_id(request, "BatchCheckRequest")
        body = await _body(request)
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
            correlation_id = _match(
                item.get("correlation_id", ""), CORRELATION_ID, "BatchCheckItem.CorrelationId"
            )
            if correlation_id in seen:
                raise invalid(f"duplicate correlation_id provided: {correlation_id}")
            seen.add(correlation_id)
            key = _tuple_key(item.get("tuple_key"), "CheckRequestTupleKey")
            requests.append(
                CheckRequest(
                    user=key.user,
                    relation=key.relation,
                    object=key.object,
                    contextual_tuples=_contextual_tuples(
                        item.get("contextual_tuples"), "BatchCheckItem", wrapped=True
                    ),
                    correlation_id=correlation_id,
                )
            )
        consistency = _consistency(body, "BatchCheckRequest")
        authorizer = self.engine.authorizer(store_id, _model_id(body, "BatchCheckRequest"))
        results = await authorizer.batch_check(requests, consistency=consistency)
        out: Json = {}
        for req, res in zip(requests, results, strict=True):
            if res.error is None:
                out[req.correlation_id] = {"allowed": res.allowed}
                continue
            # The port reports an item's error as text; ask again for this item alone to
            # answer with OpenFGA's error code (errors are rare, so this costs little).
            try:
                allowed = await authorizer.check(
                    req.user,
                    req.relation,
                    req.object,
                    contextual_tuples=req.contextual_tuples,
                    consistency=consistency,
                )
            except (AuthzValidationError, AuthzEvaluationError) as exc:
                out[req.correlation_id] = {"allowed": False, "error": check_error_json(exc)}
            else:
                out[req.correlation_id] = {"allowed": allowed}
        return json_response({"result": out})

    async def list_objects(self, request: web.Request) -> web.Response:
        store_id = _store_id(request, "ListObjectsRequest")
        body = await _body(request)
        type_ = _match(body.get("type", ""), TYPE, "ListObjectsRequest.Type")
        relation = _match(body.get("relation", ""), RELATION, "ListObjectsRequest.Relation")
        user = _match(body.get("user", ""), USER, "ListObjectsRequest.User")
        contextual = _contextual_tuples(
            body.get("contextual_tuples"), "ListObjectsRequest", wrapped=True
        )
        consistency = _consistency(body, "ListObjectsRequest")
        authorizer = self.engine.authorizer(store_id, _model_id(body, "ListObjectsRequest"))
        objects = await authorizer.list_objects(
            user, relation, type_, contextual_tuples=contextual, consistency=consistency
        )
        return json_response({"objects": list(objects)})

    async def list_users(self, request: web.Request) -> web.Response:
        store_id = _store_id(request, "ListUsersRequest")
        body = await _body(request)
        obj = _object_field(body, "object", "ListUsersRequest")
        if obj is None:
            raise invalid("invalid ListUsersRequest.Object: value is required")
        obj_type = _match(obj.get("type", ""), TYPE, "Object.Type")
        obj_id = _match(obj.get("id", ""), OBJECT_ID, "Object.Id")
        relation = _match(body.get("relation", ""), RELATION, "ListUsersRequest.Relation")
        filters = body.get("user_filters")
        if not isinstance(filters, list) or len(filters) != 1:
            raise invalid(
                "invalid ListUsersRequest.UserFilters: value must contain exactly 1 item(s)"
            )
        user_filters: list[str] = []
        for f in filters:
            if not isinstance(f, dict):
                raise invalid("invalid ListUsersRequest.UserFilters: items must be objects")
            f_type = _match(f.get("type", ""), TYPE, "UserTypeFilter.Type")
            f_rel = f.get("relation") or ""
            if f_rel:
                _match(f_rel, RELATION, "UserTypeFilter.Relation")
            user_filters.append(f"{f_type}#{f_rel}" if f_rel else f_type)
        contextual = _contextual_tuples(
            body.get("contextual_tuples"), "ListUsersRequest", wrapped=False
        )
        consistency = _consistency(body, "ListUsersRequest")
        authorizer = self.engine.authorizer(store_id, _model_id(body, "ListUsersRequest"))
        users = await authorizer.list_users(
            f"{obj_type}:{obj_id}",
            relation,
            user_filters,
            contextual_tuples=contextual,
            consistency=consistency,
        )
        return json_response({"users": [user_json(u) for u in users]})

    # -- tuples --------------------------------------------------------------------------

    async def write(self, request: web.Request) -> web.Response:
        store_id = _store_id(request, "WriteRequest")
        body = await _body(request)
        writes, on_duplicate = _write_part(
            _object_field(body, "writes", "WriteRequest"), "on_duplicate", "WriteRequestWrites"
        )
        deletes, on_missing = _write_part(
            _object_field(body, "deletes", "WriteRequest"), "on_missing", "WriteRequestDeletes"
        )
        # The engine applies OpenFGA's remaining rules (at least one and at most 100 tuples,
        # no tuple twice, tuples fit the model) and the conflict modes, in one transaction.
        await self.engine.write_tuples(
            store_id,
            _model_id(body, "WriteRequest"),
            writes,
            deletes,
            on_duplicate=on_duplicate,
            on_missing=on_missing,
        )
        return json_response({})

    async def read(self, request: web.Request) -> web.Response:
        store_id = _store_id(request, "ReadRequest")
        body = await _body(request)
        size, token = _page({}, body, "ReadRequest")
        key = _object_field(body, "tuple_key", "ReadRequest") or {}
        fields: dict[str, str | None] = {}
        for name in ("user", "relation", "object"):
            value = key.get(name) or None
            if value is not None and not isinstance(value, str):
                raise invalid(f"invalid ReadRequestTupleKey.{_camel(name)}: must be a string")
            fields[name] = value
        _consistency(body, "ReadRequest")  # validated; reads always come from the database
        result = await self.engine.read(
            store_id,
            None,
            user=fields["user"],
            relation=fields["relation"],
            object=fields["object"],
            page_size=size,
            continuation_token=token,
        )
        return json_response(
            {
                "tuples": [
                    {"key": tuple_key_json(t), "timestamp": timestamp(result.timestamps.get(t))}
                    for t in result.tuples
                ],
                "continuation_token": result.continuation_token,
            }
        )


def _store_id(request: web.Request, message: str) -> str:
    return _match(request.match_info["store_id"], ULID, f"{message}.StoreId")


def _write_part(
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
        return tuple(_tuple_key(item, "TupleKey") for item in items), "error"
    if mode == "ignore":
        return tuple(_tuple_key(item, "TupleKey") for item in items), "ignore"
    raise invalid(f"invalid {message}.{_camel(option)}: value must be in list [ignore error]")


def create_fga_app(
    engine: EmbeddedEngine,
    *,
    token: str | None = None,
    bind_host: str | None = None,
    allowed_hosts: Sequence[str] = (),
) -> web.Application:
    """An aiohttp application serving the OpenFGA HTTP API over ``engine`` (see the module
    docstring). The caller owns ``engine`` (starts and closes it).

    ``token``: the bearer token every request must carry (``None``: no authentication, for
    loopback only). ``bind_host``: the address served, accepted as ``Host`` like the loopback
    names. ``allowed_hosts``: more accepted ``Host`` names. ``ValueError`` if the token or a
    name is malformed (see :func:`serve_problems`)."""
    guard = RequestGuard(token, bind_host, allowed_hosts)
    api = _FgaApi(engine)
    app = web.Application(
        middlewares=[guard.middleware, error_middleware], client_max_size=4 * 1024 * 1024
    )
    s = "/stores/{store_id}"
    app.router.add_post("/stores", api.create_store)
    app.router.add_get("/stores", api.list_stores)
    app.router.add_get(s, api.get_store)
    app.router.add_delete(s, api.delete_store)
    app.router.add_post(f"{s}/authorization-models", api.write_model)
    app.router.add_get(f"{s}/authorization-models", api.read_models)
    app.router.add_get(s + "/authorization-models/{model_id}", api.read_model)
    app.router.add_post(f"{s}/check", api.check)
    app.router.add_post(f"{s}/batch-check", api.batch_check)
    app.router.add_post(f"{s}/list-objects", api.list_objects)
    app.router.add_post(f"{s}/list-users", api.list_users)
    app.router.add_post(f"{s}/write", api.write)
    app.router.add_post(f"{s}/read", api.read)
    return app


async def serve_fga(
    engine: EmbeddedEngine,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    token: str | None = None,
    allowed_hosts: Sequence[str] = (),
) -> None:
    """Serves :func:`create_fga_app` on ``host:port`` until ``stop`` is set (``token`` and
    ``allowed_hosts`` as there; whether ``host`` may be served without a token is the
    caller's decision)."""
    app = create_fga_app(engine, token=token, bind_host=host, allowed_hosts=allowed_hosts)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        log.info("OpenFGA API listening on http://%s:%d", host, port)
        await stop.wait()
    finally:
        await runner.cleanup()
