"""The openfga engine (openfga-sdk's OpenFgaClient) against the embedded engine's OpenFGA HTTP
API on 127.0.0.1, and against small misbehaving servers: every port method, error mapping,
fail-closed behaviour (unreachable, slow, failing servers) and idempotent writes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from authz.cli import fga_check, fga_push
from authz.embedded.engine import EmbeddedEngine
from authz.embedded.model import model_to_json, parse_dsl
from authz.factory import AuthzConfig, open_authorizer
from authz.http_api import create_fga_app
from authz.openfga import OpenFgaAuthorizer, push_model
from authz.ports import (
    Authorizer,
    AuthzEvaluationError,
    AuthzUnavailable,
    AuthzValidationError,
    CheckRequest,
    Consistency,
    ErrorCode,
    TupleKey,
)
from tests.fakes.authz import HTTP_MODEL, embedded_engine, serve_app

VALIDATION_ERROR = ErrorCode.validation_error


def T(user: str, relation: str, object: str) -> TupleKey:
    return TupleKey(user=user, relation=relation, object=object)


@pytest.fixture
async def fga(database_url: str) -> AsyncIterator[EmbeddedEngine]:
    async with embedded_engine(database_url) as engine:
        yield engine


@pytest.fixture
async def fga_url(fga: EmbeddedEngine) -> AsyncIterator[str]:
    async with serve_app(create_fga_app(fga)) as url:
        yield url


@pytest.fixture
async def store(fga: EmbeddedEngine) -> tuple[str, str]:
    info = await fga.create_store("openfga-engine")
    model_id = await fga.write_model(info.id, parse_dsl(HTTP_MODEL))
    return info.id, model_id


@pytest.fixture
async def authz(fga_url: str, store: tuple[str, str]) -> AsyncIterator[OpenFgaAuthorizer]:
    store_id, model_id = store
    async with OpenFgaAuthorizer.open(
        api_url=fga_url, store_id=store_id, model_id=model_id, api_token=None, timeout_ms=5000
    ) as authorizer:
        yield authorizer


# ------------------------------------------------------------------------------------------
# Every method against the embedded engine over HTTP
# ------------------------------------------------------------------------------------------


async def test_implements_the_port(authz: OpenFgaAuthorizer) -> None:
    assert isinstance(authz, Authorizer)


async def test_check_and_writes(authz: OpenFgaAuthorizer, fga: EmbeddedEngine) -> None:
    await authz.write([T("user:anne", "owner", "document:1"), T("user:bob", "member", "team:eng")])
    assert await authz.check("user:anne", "can_view", "document:1") is True
    assert await authz.check("user:bob", "can_view", "document:1") is False
    assert await authz.check(
        "user:bob",
        "can_view",
        "document:1",
        contextual_tuples=[T("team:eng#member", "viewer", "document:1")],
    )
    assert await authz.check(
        "user:anne", "can_view", "document:1", consistency=Consistency.HIGHER_CONSISTENCY
    )

    # Idempotent writes and deletes (OpenFGA would refuse them by default).
    await authz.write(
        [T("user:anne", "owner", "document:1"), T("user:carl", "owner", "document:1")]
    )
    await authz.write([T("user:anne", "owner", "document:1")] * 2)
    await authz.delete([T("user:anne", "owner", "document:1"), T("user:zed", "owner", "doc:9")])
    await authz.delete([T("user:anne", "owner", "document:1")])
    assert await authz.check("user:anne", "can_view", "document:1") is False
    assert await authz.check("user:carl", "can_view", "document:1") is True
    await authz.write([])
    await authz.delete([])

    # More than one Write request's worth of tuples.
    many = [T(f"user:u{i}", "viewer", "document:big") for i in range(230)]
    await authz.write(many)
    assert len(await authz.list_users("document:big", "viewer", ["user"])) == 230
    await authz.delete(many)
    assert await authz.list_users("document:big", "viewer", ["user"]) == []


async def test_batch_check(authz: OpenFgaAuthorizer) -> None:
    await authz.write([T("user:anne", "owner", "document:1")])
    assert await authz.batch_check([]) == []
    requests = [
        CheckRequest("user:anne", "can_view", "document:1", correlation_id="same"),
        CheckRequest("user:bob", "can_view", "document:1", correlation_id="same"),
        CheckRequest(
            "user:bob",
            "can_view",
            "document:1",
            contextual_tuples=(T("user:bob", "viewer", "document:1"),),
            correlation_id="not a valid OpenFGA id!",
        ),
        CheckRequest("user:bob", "nope", "document:1"),
    ]
    results = await authz.batch_check(requests, consistency=Consistency.HIGHER_CONSISTENCY)
    assert [r.request for r in results] == requests
    assert [r.allowed for r in results] == [True, False, True, False]
    assert [r.error is None for r in results] == [True, True, True, False]
    assert results[3].error is not None and "nope" in results[3].error

    # 120 checks: three BatchCheck requests of at most 50, answers in order.
    many = [CheckRequest(f"user:u{i}", "can_view", "document:1") for i in range(120)]
    many[7] = CheckRequest("user:anne", "can_view", "document:1")
    results = await authz.batch_check(many)
    assert [r.request for r in results] == many
    assert [i for i, r in enumerate(results) if r.allowed] == [7]
    assert all(r.error is None for r in results)


async def test_list_objects_and_list_users(authz: OpenFgaAuthorizer) -> None:
    await authz.write(
        [
            T("user:anne", "owner", "document:1"),
            T("user:anne", "viewer", "document:2"),
            T("user:anne", "blocked", "document:2"),
            T("team:eng#member", "viewer", "document:1"),
            T("user:bob", "member", "team:eng"),
            T("user:*", "viewer", "document:3"),
        ]
    )
    assert await authz.list_objects("user:anne", "can_view", "document") == [
        "document:1",
        "document:3",
    ]
    assert await authz.list_objects(
        "user:carl",
        "can_view",
        "document",
        contextual_tuples=[T("user:carl", "member", "team:eng")],
        consistency=Consistency.HIGHER_CONSISTENCY,
    ) == ["document:1", "document:3"]
    assert await authz.list_users("document:1", "viewer", ["user"]) == ["user:anne", "user:bob"]
    assert await authz.list_users("document:1", "viewer", ["team#member"]) == ["team:eng#member"]
    with pytest.raises(AuthzValidationError):  # OpenFGA takes exactly one filter
        await authz.list_users("document:1", "viewer", ["user", "team#member"])
    assert await authz.list_users("document:3", "viewer", ["user"]) == ["user:*"]
    assert await authz.list_users(
        "document:1", "viewer", ["user"], contextual_tuples=[T("user:dan", "owner", "document:1")]
    ) == ["user:anne", "user:bob", "user:dan"]
    with pytest.raises(AuthzValidationError):
        await authz.list_users("document", "viewer", ["user"])


async def test_read_with_pagination(authz: OpenFgaAuthorizer) -> None:
    tuples = [T(f"user:u{i}", "viewer", f"document:{i % 2}") for i in range(5)]
    await authz.write(tuples)
    everything = await authz.read()
    assert sorted(everything.tuples, key=str) == sorted(tuples, key=str)
    assert everything.continuation_token == ""
    assert sorted(t.user for t in (await authz.read(object="document:0")).tuples) == [
        "user:u0",
        "user:u2",
        "user:u4",
    ]
    assert (await authz.read(user="user:u3", object="document:")).tuples == [
        T("user:u3", "viewer", "document:1")
    ]
    seen: list[TupleKey] = []
    page = await authz.read(page_size=2)
    seen.extend(page.tuples)
    while page.continuation_token:
        page = await authz.read(page_size=2, continuation_token=page.continuation_token)
        assert len(page.tuples) <= 2
        seen.extend(page.tuples)
    assert sorted(seen, key=str) == sorted(tuples, key=str)
    with pytest.raises(AuthzValidationError) as bad:
        await authz.read(user="user:u1")
    assert bad.value.code == VALIDATION_ERROR


async def test_validation_errors_carry_openfga_codes(
    authz: OpenFgaAuthorizer, fga_url: str, store: tuple[str, str]
) -> None:
    with pytest.raises(AuthzValidationError) as bad_relation:
        await authz.check("user:anne", "nope", "document:1")
    assert bad_relation.value.code == VALIDATION_ERROR and "nope" in bad_relation.value.message
    with pytest.raises(AuthzValidationError) as bad_tuple:
        await authz.write([T("team:eng#member", "owner", "document:1")])
    assert bad_tuple.value.code == VALIDATION_ERROR
    with pytest.raises(AuthzValidationError) as bad_type:
        await authz.list_objects("user:anne", "can_view", "folder")
    assert bad_type.value.code in {VALIDATION_ERROR, ErrorCode.type_not_found}
    with pytest.raises(AuthzValidationError):
        await authz.check("user:anne", "owner", "document:1", contextual_tuples=[T("x", "y", "z")])

    store_id, _ = store
    unknown_model = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    async with OpenFgaAuthorizer.open(
        api_url=fga_url, store_id=store_id, model_id=unknown_model, api_token=None, timeout_ms=2000
    ) as pinned:
        with pytest.raises(AuthzValidationError) as no_model:
            await pinned.check("user:anne", "owner", "document:1")
    assert no_model.value.code == ErrorCode.authorization_model_not_found


async def test_malformed_configuration_fails_at_open() -> None:
    for bad in (
        {"store_id": "not-a-ulid"},
        {"store_id": STORE, "model_id": "not-a-ulid"},
        {"store_id": STORE, "timeout_ms": -1},
    ):
        kwargs: dict[str, Any] = {"api_url": "http://127.0.0.1:1", "api_token": None}
        kwargs["timeout_ms"] = 1000
        kwargs.update(bad)
        with pytest.raises(ValueError, match="invalid OpenFGA configuration"):
            async with OpenFgaAuthorizer.open(**kwargs):
                pass


async def test_depth_limit_is_an_evaluation_error(authz: OpenFgaAuthorizer) -> None:
    chain = [T(f"team:{i + 1}#member", "member", f"team:{i}") for i in range(30)]
    await authz.write([*chain, T("user:deep", "member", "team:30")])
    with pytest.raises(AuthzEvaluationError):
        await authz.check("user:deep", "member", "team:0")
    results = await authz.batch_check([CheckRequest("user:deep", "member", "team:0")])
    assert results[0].allowed is False and results[0].error is not None
    assert "too_complex" in results[0].error


async def test_latest_model_is_followed_without_a_model_id(
    fga_url: str, fga: EmbeddedEngine
) -> None:
    info = await fga.create_store("latest")
    async with OpenFgaAuthorizer.open(
        api_url=fga_url, store_id=info.id, api_token=None, timeout_ms=2000
    ) as authz:
        with pytest.raises(AuthzValidationError) as none:
            await authz.check("user:anne", "owner", "document:1")
        assert none.value.code == ErrorCode.latest_authorization_model_not_found
        await fga.write_model(info.id, parse_dsl(HTTP_MODEL))
        await authz.write([T("user:anne", "owner", "document:1")])
        assert await authz.check("user:anne", "owner", "document:1")


async def test_unknown_or_deleted_store_is_unavailable(
    authz: OpenFgaAuthorizer, fga: EmbeddedEngine, store: tuple[str, str]
) -> None:
    await fga.delete_store(store[0])
    with pytest.raises(AuthzUnavailable):
        await authz.check("user:anne", "owner", "document:1")
    with pytest.raises(AuthzUnavailable):
        await authz.read()


async def test_push_model(fga_url: str, fga: EmbeddedEngine) -> None:
    info = await fga.create_store("push")
    model = parse_dsl(HTTP_MODEL)
    model_id = await push_model(fga_url, info.id, None, model_to_json(model))
    assert await fga.read_model(info.id) == (model_id, model)
    again = await push_model(fga_url, info.id, None, json.dumps(model_to_json(model)))
    assert again > model_id
    viewer = {"computedUserset": {"relation": "nope"}}
    broken = {
        "schema_version": "1.1",
        "type_definitions": [{"type": "document", "relations": {"viewer": viewer}}],
    }
    with pytest.raises(AuthzValidationError) as invalid:
        await push_model(fga_url, info.id, None, broken)
    assert invalid.value.code == ErrorCode.invalid_authorization_model


# ------------------------------------------------------------------------------------------
# Fail closed: unreachable, slow and failing servers
# ------------------------------------------------------------------------------------------

STORE = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


class FakeServer:
    """A server that answers every request with a fixed status and body (after an optional
    delay), recording the requests it saw."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.delay = 0.0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path, dict(request.headers)))
        if self.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), self.delay)
        return web.Response(status=self.status, body=self.body, content_type=self.content_type)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@contextlib.asynccontextmanager
async def fake_server(fake: FakeServer) -> AsyncIterator[str]:
    async with serve_app(fake.app()) as url:
        try:
            yield url
        finally:
            fake.release.set()  # let held requests finish so that the server stops at once


async def _every_call_raises(
    authz: OpenFgaAuthorizer, error: type[Exception], *, writes: bool = True
) -> None:
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: authz.check("user:a", "viewer", "document:1"),
        lambda: authz.batch_check([CheckRequest("user:a", "viewer", "document:1")]),
        lambda: authz.list_objects("user:a", "viewer", "document"),
        lambda: authz.list_users("document:1", "viewer", ["user"]),
        lambda: authz.read(),
    ]
    if writes:
        calls.append(lambda: authz.write([T("user:a", "viewer", "document:1")]))
        calls.append(lambda: authz.delete([T("user:a", "viewer", "document:1")]))
    for call in calls:
        with pytest.raises(error):
            await call()


async def test_unreachable_server_is_unavailable_quickly() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    async with OpenFgaAuthorizer.open(
        api_url=f"http://127.0.0.1:{port}", store_id=STORE, api_token=None, timeout_ms=5000
    ) as authz:
        await _every_call_raises(authz, AuthzUnavailable)
    assert time.monotonic() - started < 2.0


async def test_slow_server_times_out_as_unavailable() -> None:
    fake = FakeServer(200, b'{"allowed": true}')
    fake.delay = 10.0
    async with (
        fake_server(fake) as url,
        OpenFgaAuthorizer.open(
            api_url=url, store_id=STORE, api_token=None, timeout_ms=200
        ) as authz,
    ):
        started = time.monotonic()
        with pytest.raises(AuthzUnavailable):
            await authz.check("user:a", "viewer", "document:1")
        with pytest.raises(AuthzUnavailable):
            await authz.batch_check([CheckRequest("user:a", "viewer", "document:1")])
        assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (500, b'{"code": "internal_error", "message": "boom"}', "application/json"),
        (503, b'{"code": "unavailable", "message": "down"}', "application/json"),
        (502, b"<html><body>Bad Gateway</body></html>", "text/html"),
        (429, b'{"code": "rate_limit_exceeded", "message": "slow down"}', "application/json"),
        (401, b'{"code": "unauthenticated", "message": "no"}', "application/json"),
        (403, b'{"code": "forbidden", "message": "no"}', "application/json"),
        (
            404,
            b'{"code": "store_id_not_found", "message": "store ID not found"}',
            "application/json",
        ),
        (200, b"this is not JSON", "application/json"),
    ],
)
async def test_failing_server_is_unavailable(status: int, body: bytes, content_type: str) -> None:
    fake = FakeServer(status, body, content_type)
    async with (
        fake_server(fake) as url,
        OpenFgaAuthorizer.open(
            api_url=url, store_id=STORE, api_token=None, timeout_ms=2000, max_retries=1
        ) as authz,
    ):
        # A Write answered 200 succeeded, whatever its body says.
        await _every_call_raises(authz, AuthzUnavailable, writes=status != 200)
    if status in (429, 500, 503, 502):
        # The SDK's retry of 429/5xx answers: one retry per call.
        assert len(fake.requests) >= 2 * 7


async def test_api_token_is_sent_as_bearer() -> None:
    fake = FakeServer(200, b'{"allowed": false, "resolution": ""}')
    async with (
        fake_server(fake) as url,
        OpenFgaAuthorizer.open(
            api_url=url + "/", store_id=STORE, api_token="s3cret", timeout_ms=2000
        ) as authz,
    ):
        assert await authz.check("user:a", "viewer", "document:1") is False
    method, path, headers = fake.requests[0]
    assert (method, path) == ("POST", f"/stores/{STORE}/check")
    assert headers["Authorization"] == "Bearer s3cret"


# ------------------------------------------------------------------------------------------
# A token-protected ``pmbot fga serve``: FGA_SERVE_TOKEN there, FGA_API_TOKEN here
# ------------------------------------------------------------------------------------------

SERVE_TOKEN = "serve-token-for-the-sdk-9d2e7b1c"


@pytest.fixture
async def guarded_url(fga: EmbeddedEngine) -> AsyncIterator[str]:
    async with serve_app(create_fga_app(fga, token=SERVE_TOKEN)) as url:
        yield url


def _sdk_config(url: str, store: tuple[str, str], token: str | None, tmp_path: Path) -> AuthzConfig:
    """What ``authz_config`` builds from AUTHZ_ENGINE=openfga, FGA_API_URL, FGA_STORE_ID,
    FGA_MODEL_ID and FGA_API_TOKEN (the model file is the store's model)."""
    model_path = tmp_path / "model.fga"
    model_path.write_text(HTTP_MODEL, encoding="utf-8")
    store_id, model_id = store
    return AuthzConfig(
        engine="openfga",
        model_path=model_path,
        fga_api_url=url,
        fga_store_id=store_id,
        fga_model_id=model_id,
        fga_api_token=token,
        timeout_ms=5000,
    )


async def test_sdk_with_the_serve_token_works(
    guarded_url: str,
    store: tuple[str, str],
    fga: EmbeddedEngine,
    db_engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    store_id, model_id = store
    anne = T("user:anne", "owner", "document:1")
    async with OpenFgaAuthorizer.open(
        api_url=guarded_url,
        store_id=store_id,
        model_id=model_id,
        api_token=SERVE_TOKEN,
        timeout_ms=5000,
    ) as authz:
        await authz.write([anne])
        assert await authz.check("user:anne", "can_view", "document:1") is True
        [item] = await authz.batch_check([CheckRequest("user:bob", "can_view", "document:1")])
        assert (item.allowed, item.error) == (False, None)
        assert await authz.list_objects("user:anne", "can_view", "document") == ["document:1"]
        assert (await authz.read(object="document:1")).tuples == [anne]

    # The product's path: the factory and the fga commands pass FGA_API_TOKEN to the SDK.
    config = _sdk_config(guarded_url, store, SERVE_TOKEN, tmp_path)
    bob = T("user:bob", "owner", "document:2")
    async with open_authorizer(config, engine=db_engine) as cache:
        assert await cache.check("user:anne", "can_view", "document:1") is True
        await cache.write([bob])
        assert await cache.check("user:bob", "can_view", "document:2") is True
    assert await fga_push(config, engine=db_engine) == model_id  # the same model: unchanged
    assert await fga_check(
        config, engine=db_engine, user="user:bob", relation="can_view", object="document:2"
    )
    assert sorted((await fga.read(store_id)).tuples, key=str) == sorted([anne, bob], key=str)


@pytest.mark.parametrize(
    "token",
    [None, "wrong-token", SERVE_TOKEN[:-1] + "x", SERVE_TOKEN.upper()],
    ids=["none", "wrong", "last-byte", "upper-case"],
)
async def test_sdk_with_a_wrong_serve_token_fails_closed(
    guarded_url: str,
    store: tuple[str, str],
    fga: EmbeddedEngine,
    db_engine: AsyncEngine,
    tmp_path: Path,
    token: str | None,
) -> None:
    """Refused credentials are an error naming the cause, never a decision: anne, who may
    view document:1, is neither allowed nor silently denied, and nothing is written."""
    store_id, model_id = store
    anne = T("user:anne", "owner", "document:1")
    await fga.authorizer(store_id, model_id).write([anne])
    async with OpenFgaAuthorizer.open(
        api_url=guarded_url, store_id=store_id, model_id=model_id, api_token=token, timeout_ms=5000
    ) as authz:
        with pytest.raises(AuthzUnavailable, match=r"HTTP 401 .*FGA_API_TOKEN"):
            await authz.check("user:anne", "can_view", "document:1")
        await _every_call_raises(authz, AuthzUnavailable)

    config = _sdk_config(guarded_url, store, token, tmp_path)
    async with open_authorizer(config, engine=db_engine) as cache:
        with pytest.raises(AuthzUnavailable, match="HTTP 401"):
            await cache.check("user:anne", "can_view", "document:1")
        [item] = await cache.batch_check([CheckRequest("user:anne", "can_view", "document:1")])
        assert (item.allowed, item.denied_by_error) == (False, True)
        with pytest.raises(AuthzUnavailable, match="HTTP 401"):
            await cache.write([T("user:mallory", "owner", "document:1")])
    with pytest.raises(AuthzUnavailable, match="Unauthorized"):
        await fga_push(config, engine=db_engine)
    with pytest.raises(AuthzUnavailable):
        await fga_check(
            config, engine=db_engine, user="user:anne", relation="can_view", object="document:1"
        )
    assert (await fga.read(store_id)).tuples == [anne]
    assert [m[0] for m in await fga.list_models(store_id)] == [model_id]


# ------------------------------------------------------------------------------------------
# Idempotent writes against a server without on_duplicate / on_missing
# ------------------------------------------------------------------------------------------


def _without_conflict_options(target: str, session: aiohttp.ClientSession) -> web.Application:
    """The FGA API as an OpenFGA server older than 1.10 behaves: the ``on_duplicate`` and
    ``on_missing`` fields are unknown to it (dropped), so conflicts fail the request."""

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path.endswith("/write") and body:
            doc = json.loads(body)
            for part, option in (("writes", "on_duplicate"), ("deletes", "on_missing")):
                if isinstance(doc.get(part), dict):
                    doc[part].pop(option, None)
            body = json.dumps(doc).encode()
        async with session.request(
            request.method,
            target + request.path_qs,
            data=body or None,
            headers={"Content-Type": "application/json"},
        ) as resp:
            return web.Response(
                status=resp.status, body=await resp.read(), content_type="application/json"
            )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def test_writes_stay_idempotent_without_server_conflict_options(
    fga: EmbeddedEngine, store: tuple[str, str]
) -> None:
    store_id, model_id = store
    async with serve_app(create_fga_app(fga)) as target, aiohttp.ClientSession() as session:
        proxy = _without_conflict_options(target, session)
        async with (
            serve_app(proxy) as url,
            OpenFgaAuthorizer.open(
                api_url=url, store_id=store_id, model_id=model_id, api_token=None, timeout_ms=2000
            ) as authz,
        ):
            anne = T("user:anne", "owner", "document:1")
            bob = T("user:bob", "owner", "document:1")
            await authz.write([anne])
            await authz.write([anne, bob])  # anne exists: the server refuses the batch
            assert sorted((await authz.read(object="document:1")).tuples, key=str) == [anne, bob]
            await authz.delete([anne, T("user:zed", "owner", "document:1")])
            assert (await authz.read(object="document:1")).tuples == [bob]
            with pytest.raises(AuthzValidationError):
                await authz.write([T("team:x#member", "owner", "document:1")])
