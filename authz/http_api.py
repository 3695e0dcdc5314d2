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
import logging
from collections.abc import Sequence

from aiohttp import web

from authz.embedded.engine import EmbeddedEngine
from authz.embedded.model import model_from_json
from authz.http_guard import (
    RequestGuard,
    serve_problems,
)
from authz.http_requests import (
    match_pattern,
    object_field,
    paginate,
    parse_batch_checks,
    parse_body,
    parse_consistency,
    parse_contextual_tuples,
    parse_model_id,
    parse_page,
    parse_read_key,
    parse_store_id,
    parse_tuple_key,
    parse_user_filters,
    parse_write_part,
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
    ErrorCode,
)
from authz.validation import (
    OBJECT_ID,
    RELATION,
    STORE_NAME,
    TYPE,
    ULID,
    USER,
)

__all__ = ["create_fga_app", "serve_fga", "serve_problems"]

log = logging.getLogger(__name__)


class _FgaApi:
    """Request handlers over one :class:`EmbeddedEngine`."""

    def __init__(self, engine: EmbeddedEngine) -> None:
        self.engine = engine

    # -- stores --------------------------------------------------------------------------

    async def create_store(self, request: web.Request) -> web.Response:
        body = await parse_body(request)
        name = match_pattern(body.get("name", ""), STORE_NAME, "CreateStoreRequest.Name")
        info = await self.engine.create_store(name)
        return json_response(store_json(info), 201)

    async def list_stores(self, request: web.Request) -> web.Response:
        size, token = parse_page(request.query, {}, "ListStoresRequest")
        name = request.query.get("name")
        stores = await self.engine.list_stores()
        if name:
            stores = [s for s in stores if s.name == name]
        page, next_token = paginate(stores, size, token)
        return json_response(
            {"stores": [store_json(s) for s in page], "continuation_token": next_token}
        )

    async def get_store(self, request: web.Request) -> web.Response:
        store_id = parse_store_id(request, "GetStoreRequest")
        info = await self.engine.get_store(store_id)
        if info is None:
            raise store_not_found()
        return json_response(store_json(info))

    async def delete_store(self, request: web.Request) -> web.Response:
        # Deleting an absent store succeeds, as in OpenFGA.
        await self.engine.delete_store(parse_store_id(request, "DeleteStoreRequest"))
        return web.Response(status=204)

    # -- authorization models ------------------------------------------------------------

    async def write_model(self, request: web.Request) -> web.Response:
        store_id = parse_store_id(request, "WriteAuthorizationModelRequest")
        body = await parse_body(request)
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
        store_id = parse_store_id(request, "ReadAuthorizationModelsRequest")
        size, token = parse_page(request.query, {}, "ReadAuthorizationModelsRequest")
        models = await self.engine.list_models(store_id)  # newest first, as in OpenFGA
        page, next_token = paginate(models, size, token)
        return json_response(
            {
                "authorization_models": [model_json(mid, m) for mid, m in page],
                "continuation_token": next_token,
            }
        )

    async def read_model(self, request: web.Request) -> web.Response:
        store_id = parse_store_id(request, "ReadAuthorizationModelRequest")
        model_id = match_pattern(
            request.match_info["model_id"], ULID, "ReadAuthorizationModelRequest.Id"
        )
        resolved_id, model = await self.engine.read_model(store_id, model_id)
        return json_response({"authorization_model": model_json(resolved_id, model)})

    # -- queries -------------------------------------------------------------------------

    async def check(self, request: web.Request) -> web.Response:
        store_id = parse_store_id(request, "CheckRequest")
        body = await parse_body(request)
        key = parse_tuple_key(body.get("tuple_key"), "CheckRequestTupleKey")
        contextual = parse_contextual_tuples(
            body.get("contextual_tuples"), "CheckRequest", wrapped=True
        )
        consistency = parse_consistency(body, "CheckRequest")
        authorizer = self.engine.authorizer(store_id, parse_model_id(body, "CheckRequest"))
        allowed = await authorizer.check(
            key.user,
            key.relation,
            key.object,
            contextual_tuples=contextual,
            consistency=consistency,
        )
        return json_response({"allowed": allowed, "resolution": ""})

    async def batch_check(self, request: web.Request) -> web.Response:
        store_id = parse_store_id(request, "BatchCheckRequest")
        body = await parse_body(request)
        requests = parse_batch_checks(body)
        consistency = parse_consistency(body, "BatchCheckRequest")
        authorizer = self.engine.authorizer(store_id, parse_model_id(body, "BatchCheckRequest"))
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
        store_id = parse_store_id(request, "ListObjectsRequest")
        body = await parse_body(request)
        type_ = match_pattern(body.get("type", ""), TYPE, "ListObjectsRequest.Type")
        relation = match_pattern(body.get("relation", ""), RELATION, "ListObjectsRequest.Relation")
        user = match_pattern(body.get("user", ""), USER, "ListObjectsRequest.User")
        contextual = parse_contextual_tuples(
            body.get("contextual_tuples"), "ListObjectsRequest", wrapped=True
        )
        consistency = parse_consistency(body, "ListObjectsRequest")
        authorizer = self.engine.authorizer(store_id, parse_model_id(body, "ListObjectsRequest"))
        objects = await authorizer.list_objects(
            user, relation, type_, contextual_tuples=contextual, consistency=consistency
        )
        return json_response({"objects": list(objects)})

    async def list_users(self, request: web.Request) -> web.Response:
        store_id = parse_store_id(request, "ListUsersRequest")
        body = await parse_body(request)
        obj = object_field(body, "object", "ListUsersRequest")
        if obj is None:
            raise invalid("invalid ListUsersRequest.Object: value is required")
        obj_type = match_pattern(obj.get("type", ""), TYPE, "Object.Type")
        obj_id = match_pattern(obj.get("id", ""), OBJECT_ID, "Object.Id")
        relation = match_pattern(body.get("relation", ""), RELATION, "ListUsersRequest.Relation")
        user_filters = parse_user_filters(body)
        contextual = parse_contextual_tuples(
            body.get("contextual_tuples"), "ListUsersRequest", wrapped=False
        )
        consistency = parse_consistency(body, "ListUsersRequest")
        authorizer = self.engine.authorizer(store_id, parse_model_id(body, "ListUsersRequest"))
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
        store_id = parse_store_id(request, "WriteRequest")
        body = await parse_body(request)
        writes, on_duplicate = parse_write_part(
            object_field(body, "writes", "WriteRequest"), "on_duplicate", "WriteRequestWrites"
        )
        deletes, on_missing = parse_write_part(
            object_field(body, "deletes", "WriteRequest"), "on_missing", "WriteRequestDeletes"
        )
        # The engine applies OpenFGA's remaining rules (at least one and at most 100 tuples,
        # no tuple twice, tuples fit the model) and the conflict modes, in one transaction.
        await self.engine.write_tuples(
            store_id,
            parse_model_id(body, "WriteRequest"),
            writes,
            deletes,
            on_duplicate=on_duplicate,
            on_missing=on_missing,
        )
        return json_response({})

    async def read(self, request: web.Request) -> web.Response:
        store_id = parse_store_id(request, "ReadRequest")
        body = await parse_body(request)
        size, token = parse_page({}, body, "ReadRequest")
        fields = parse_read_key(body)
        parse_consistency(body, "ReadRequest")  # validated; reads always come from the database
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
