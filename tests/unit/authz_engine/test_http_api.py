"""The OpenFGA HTTP API over the embedded engine, spoken raw (aiohttp client on 127.0.0.1):
OpenFGA's paths, status codes, JSON shapes and error bodies, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from authz.embedded.engine import EmbeddedEngine
from authz.embedded.model import model_to_json, parse_dsl
from authz.http_api import create_fga_app, serve_fga
from tests.fakes.authz import HTTP_MODEL, embedded_engine, serve_app, tk

ULID = re.compile(r"^[0-9ABCDEFGHJKMNPQRSTVWXYZ]{26}$")
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture
async def fga(database_url: str) -> AsyncIterator[EmbeddedEngine]:
    async with embedded_engine(database_url) as engine:
        yield engine


@pytest.fixture
async def api(fga: EmbeddedEngine) -> AsyncIterator[Api]:
    async with serve_app(create_fga_app(fga)) as url, aiohttp.ClientSession(url) as session:
        yield Api(session)


class Api:
    """A thin raw-HTTP client: returns (status, parsed JSON body or None)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def call(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {}
        if raw is not None:
            kwargs["data"] = raw
            kwargs["headers"] = {"Content-Type": "application/json"}
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, path, **kwargs) as resp:
            text = await resp.text()
            if resp.status != 204:
                assert resp.content_type == "application/json", text
            return resp.status, (await resp.json() if text else None)

    async def store_with_model(self, dsl: str = HTTP_MODEL) -> tuple[str, str]:
        status, store = await self.call("POST", "/stores", {"name": "http-test"})
        assert status == 201
        status, written = await self.call(
            "POST", f"/stores/{store['id']}/authorization-models", model_to_json(parse_dsl(dsl))
        )
        assert status == 201
        return store["id"], written["authorization_model_id"]

    async def write(self, store_id: str, *tuples: dict[str, str]) -> None:
        status, body = await self.call(
            "POST", f"/stores/{store_id}/write", {"writes": {"tuple_keys": list(tuples)}}
        )
        assert (status, body) == (200, {}), body


def _error(status: int, body: Any, expected_status: int, code: str) -> str:
    assert status == expected_status, body
    assert set(body) == {"code", "message"} and body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return str(body["message"])


# ------------------------------------------------------------------------------------------
# Stores
# ------------------------------------------------------------------------------------------


async def test_store_lifecycle(api: Api) -> None:
    status, created = await api.call("POST", "/stores", {"name": "acme"})
    assert status == 201
    assert set(created) == {"id", "name", "created_at", "updated_at"}
    assert ULID.match(created["id"]) and created["name"] == "acme"
    assert RFC3339_UTC.match(created["created_at"]) and RFC3339_UTC.match(created["updated_at"])

    status, got = await api.call("GET", f"/stores/{created['id']}")
    assert (status, got) == (200, created)

    status, second = await api.call("POST", "/stores", {"name": "other"})
    assert status == 201
    status, listed = await api.call("GET", "/stores")
    assert status == 200 and listed["continuation_token"] == ""
    assert [s["id"] for s in listed["stores"]] == [created["id"], second["id"]]

    status, page = await api.call("GET", "/stores?page_size=1")
    assert [s["id"] for s in page["stores"]] == [created["id"]] and page["continuation_token"]
    status, rest = await api.call(
        "GET", f"/stores?page_size=1&continuation_token={page['continuation_token']}"
    )
    assert [s["id"] for s in rest["stores"]] == [second["id"]]
    assert rest["continuation_token"] == ""
    status, named = await api.call("GET", "/stores?name=other")
    assert [s["id"] for s in named["stores"]] == [second["id"]]

    status, body = await api.call("DELETE", f"/stores/{created['id']}")
    assert (status, body) == (204, None)
    status, body = await api.call("GET", f"/stores/{created['id']}")
    _error(status, body, 404, "store_id_not_found")
    # Deleting an absent store succeeds, as in OpenFGA.
    status, body = await api.call("DELETE", f"/stores/{created['id']}")
    assert status == 204


async def test_store_validation(api: Api) -> None:
    status, body = await api.call("POST", "/stores", {"name": ""})
    _error(status, body, 400, "validation_error")
    status, body = await api.call("GET", "/stores/not-a-ulid")
    assert "StoreId" in _error(status, body, 400, "validation_error")
    status, body = await api.call("GET", "/stores?page_size=101")
    _error(status, body, 400, "validation_error")
    status, body = await api.call("GET", "/stores?continuation_token=%%%")
    _error(status, body, 400, "invalid_continuation_token")


# ------------------------------------------------------------------------------------------
# Authorization models
# ------------------------------------------------------------------------------------------


async def test_authorization_models(api: Api) -> None:
    status, store = await api.call("POST", "/stores", {"name": "models"})
    sid = store["id"]
    status, body = await api.call(
        "POST", f"/stores/{sid}/check", {"tuple_key": tk("user:a", "owner", "document:1")}
    )
    _error(status, body, 400, "latest_authorization_model_not_found")

    doc = model_to_json(parse_dsl(HTTP_MODEL))
    status, first = await api.call("POST", f"/stores/{sid}/authorization-models", doc)
    assert status == 201 and set(first) == {"authorization_model_id"}
    status, second = await api.call("POST", f"/stores/{sid}/authorization-models", doc)
    first_id, second_id = first["authorization_model_id"], second["authorization_model_id"]
    assert ULID.match(first_id) and first_id < second_id

    status, listed = await api.call("GET", f"/stores/{sid}/authorization-models")
    assert status == 200 and listed["continuation_token"] == ""
    assert [m["id"] for m in listed["authorization_models"]] == [second_id, first_id]
    model = listed["authorization_models"][0]
    assert model["schema_version"] == "1.1"
    assert [t["type"] for t in model["type_definitions"]] == ["user", "team", "document"]
    document = model["type_definitions"][2]
    assert document["relations"]["can_view"] == {
        "difference": {
            "base": {"computedUserset": {"relation": "viewer"}},
            "subtract": {"computedUserset": {"relation": "blocked"}},
        }
    }
    assert document["metadata"]["relations"]["viewer"]["directly_related_user_types"] == [
        {"type": "user"},
        {"type": "user", "wildcard": {}},
        {"type": "team", "relation": "member"},
    ]

    status, page = await api.call("GET", f"/stores/{sid}/authorization-models?page_size=1")
    assert [m["id"] for m in page["authorization_models"]] == [second_id]
    assert page["continuation_token"]

    status, one = await api.call("GET", f"/stores/{sid}/authorization-models/{first_id}")
    assert status == 200 and one["authorization_model"]["id"] == first_id
    assert one["authorization_model"]["type_definitions"] == model["type_definitions"]

    status, body = await api.call("GET", f"/stores/{sid}/authorization-models/{'0' * 26}")
    _error(status, body, 400, "authorization_model_not_found")
    status, body = await api.call("GET", f"/stores/{sid}/authorization-models/nope")
    _error(status, body, 400, "validation_error")


async def test_invalid_models_are_refused(api: Api) -> None:
    status, store = await api.call("POST", "/stores", {"name": "models"})
    path = f"/stores/{store['id']}/authorization-models"
    status, body = await api.call("POST", path, {"schema_version": "1.1", "type_definitions": []})
    _error(status, body, 400, "validation_error")
    undefined = {
        "schema_version": "1.1",
        "type_definitions": [
            {"type": "user"},
            {
                "type": "document",
                "relations": {"viewer": {"computedUserset": {"relation": "nope"}}},
                "metadata": {"relations": {"viewer": {"directly_related_user_types": []}}},
            },
        ],
    }
    status, body = await api.call("POST", path, undefined)
    _error(status, body, 400, "invalid_authorization_model")
    status, body = await api.call(
        "POST", f"/stores/{'0' * 26}/authorization-models", model_to_json(parse_dsl(HTTP_MODEL))
    )
    _error(status, body, 404, "store_id_not_found")


# ------------------------------------------------------------------------------------------
# Check, BatchCheck, ListObjects, ListUsers
# ------------------------------------------------------------------------------------------


async def test_check(api: Api) -> None:
    sid, model_id = await api.store_with_model()
    await api.write(
        sid,
        tk("user:anne", "owner", "document:1"),
        tk("user:bob", "member", "team:eng"),
        tk("team:eng#member", "viewer", "document:2"),
        tk("user:bob", "blocked", "document:2"),
        tk("user:*", "viewer", "document:public"),
    )
    path = f"/stores/{sid}/check"
    cases = [
        (tk("user:anne", "can_view", "document:1"), True),
        (tk("user:bob", "can_view", "document:1"), False),
        (tk("user:bob", "viewer", "document:2"), True),
        (tk("user:bob", "can_view", "document:2"), False),
        (tk("user:zoe", "can_view", "document:public"), True),
    ]
    for key, expected in cases:
        status, body = await api.call("POST", path, {"tuple_key": key})
        assert (status, body) == (200, {"allowed": expected, "resolution": ""}), key

    # Pinned to a model, with contextual tuples and an explicit consistency.
    status, body = await api.call(
        "POST",
        path,
        {
            "tuple_key": tk("user:carl", "can_view", "document:2"),
            "authorization_model_id": model_id,
            "consistency": "HIGHER_CONSISTENCY",
            "contextual_tuples": {"tuple_keys": [tk("user:carl", "member", "team:eng")]},
        },
    )
    assert (status, body["allowed"]) == (200, True)
    status, body = await api.call(
        "POST", path, {"tuple_key": tk("user:carl", "can_view", "document:2")}
    )
    assert body["allowed"] is False  # contextual tuples are not stored

    status, body = await api.call(
        "POST", path, {"tuple_key": tk("user:a", "owner", "document:1"), "consistency": "FAST"}
    )
    _error(status, body, 400, "validation_error")
    status, body = await api.call(
        "POST",
        path,
        {"tuple_key": tk("user:a", "owner", "document:1"), "authorization_model_id": "0" * 26},
    )
    _error(status, body, 400, "authorization_model_not_found")
    status, body = await api.call("POST", path, {"tuple_key": tk("user:a", "nope", "document:1")})
    assert status == 400 and body["code"] in {"validation_error", "relation_not_found"}
    status, body = await api.call("POST", path, {"tuple_key": {"user": "user:a"}})
    assert "CheckRequestTupleKey.Relation" in _error(status, body, 400, "validation_error")
    too_many = {"tuple_keys": [tk(f"user:{i}", "member", "team:eng") for i in range(101)]}
    status, body = await api.call(
        "POST",
        path,
        {"tuple_key": tk("user:a", "owner", "document:1"), "contextual_tuples": too_many},
    )
    assert "no more than 100" in _error(status, body, 400, "validation_error")
    status, body = await api.call(
        "POST",
        f"/stores/{'0' * 26}/check",
        {"tuple_key": tk("user:a", "owner", "document:1")},
    )
    _error(status, body, 404, "store_id_not_found")


async def test_depth_limit_is_an_error_not_a_denial(api: Api) -> None:
    sid, _ = await api.store_with_model()
    chain = [tk(f"team:{i + 1}#member", "member", f"team:{i}") for i in range(30)]
    chain.append(tk("user:deep", "member", "team:30"))
    for start in range(0, len(chain), 50):
        await api.write(sid, *chain[start : start + 50])
    status, body = await api.call(
        "POST", f"/stores/{sid}/check", {"tuple_key": tk("user:deep", "member", "team:0")}
    )
    _error(status, body, 400, "authorization_model_resolution_too_complex")
    status, body = await api.call(
        "POST",
        f"/stores/{sid}/batch-check",
        {
            "checks": [
                {"tuple_key": tk("user:deep", "member", "team:0"), "correlation_id": "deep"},
                {"tuple_key": tk("user:deep", "member", "team:30"), "correlation_id": "near"},
            ]
        },
    )
    assert status == 200
    assert body["result"]["near"] == {"allowed": True}
    deep = body["result"]["deep"]
    assert deep["allowed"] is False
    assert deep["error"]["input_error"] == "authorization_model_resolution_too_complex"


async def test_batch_check(api: Api) -> None:
    sid, model_id = await api.store_with_model()
    await api.write(sid, tk("user:anne", "owner", "document:1"))
    path = f"/stores/{sid}/batch-check"
    status, body = await api.call(
        "POST",
        path,
        {
            "authorization_model_id": model_id,
            "consistency": "MINIMIZE_LATENCY",
            "checks": [
                {"tuple_key": tk("user:anne", "can_view", "document:1"), "correlation_id": "a-1"},
                {"tuple_key": tk("user:bob", "can_view", "document:1"), "correlation_id": "b"},
                {
                    "tuple_key": tk("user:bob", "can_view", "document:1"),
                    "correlation_id": "ctx",
                    "contextual_tuples": {"tuple_keys": [tk("user:bob", "viewer", "document:1")]},
                },
                {"tuple_key": tk("user:bob", "nope", "document:1"), "correlation_id": "bad"},
            ],
        },
    )
    assert status == 200 and set(body) == {"result"}
    result = body["result"]
    assert result["a-1"] == {"allowed": True}
    assert result["b"] == {"allowed": False}
    assert result["ctx"] == {"allowed": True}
    assert result["bad"]["allowed"] is False
    assert result["bad"]["error"]["input_error"] in {"validation_error", "relation_not_found"}
    assert result["bad"]["error"]["message"]

    one = {"tuple_key": tk("user:anne", "can_view", "document:1"), "correlation_id": "x"}
    status, body = await api.call("POST", path, {"checks": [one, one]})
    assert "duplicate correlation_id" in _error(status, body, 400, "validation_error")
    status, body = await api.call(
        "POST", path, {"checks": [{**one, "correlation_id": f"c{i}"} for i in range(51)]}
    )
    assert "maximum allowed is 50" in _error(status, body, 400, "validation_error")
    status, body = await api.call("POST", path, {"checks": [{**one, "correlation_id": "a b"}]})
    assert "CorrelationId" in _error(status, body, 400, "validation_error")
    status, body = await api.call("POST", path, {"checks": []})
    _error(status, body, 400, "validation_error")


async def test_list_objects_and_list_users(api: Api) -> None:
    sid, _ = await api.store_with_model()
    await api.write(
        sid,
        tk("user:anne", "owner", "document:1"),
        tk("user:anne", "viewer", "document:2"),
        tk("user:anne", "blocked", "document:2"),
        tk("team:eng#member", "viewer", "document:1"),
        tk("user:bob", "member", "team:eng"),
        tk("user:*", "viewer", "document:3"),
    )
    status, body = await api.call(
        "POST",
        f"/stores/{sid}/list-objects",
        {"user": "user:anne", "relation": "can_view", "type": "document"},
    )
    assert status == 200 and set(body) == {"objects"}
    assert sorted(body["objects"]) == ["document:1", "document:3"]
    status, body = await api.call(
        "POST",
        f"/stores/{sid}/list-objects",
        {
            "user": "user:carl",
            "relation": "can_view",
            "type": "document",
            "contextual_tuples": {"tuple_keys": [tk("user:carl", "member", "team:eng")]},
            "consistency": "HIGHER_CONSISTENCY",
        },
    )
    assert sorted(body["objects"]) == ["document:1", "document:3"]
    status, body = await api.call(
        "POST", f"/stores/{sid}/list-objects", {"user": "user:anne", "relation": "can_view"}
    )
    assert "ListObjectsRequest.Type" in _error(status, body, 400, "validation_error")
    status, body = await api.call(
        "POST",
        f"/stores/{sid}/list-objects",
        {"user": "user:anne", "relation": "can_view", "type": "folder"},
    )
    assert status == 400 and body["code"] in {"type_not_found", "validation_error"}

    path = f"/stores/{sid}/list-users"
    request: dict[str, Any] = {
        "object": {"type": "document", "id": "1"},
        "relation": "viewer",
        "user_filters": [{"type": "user"}],
    }
    status, body = await api.call("POST", path, request)
    assert status == 200 and set(body) == {"users"}
    assert sorted(u["object"]["id"] for u in body["users"]) == ["anne", "bob"]
    assert all(u == {"object": {"type": "user", "id": u["object"]["id"]}} for u in body["users"])
    status, body = await api.call(
        "POST", path, {**request, "user_filters": [{"type": "team", "relation": "member"}]}
    )
    assert body["users"] == [{"userset": {"type": "team", "id": "eng", "relation": "member"}}]
    status, body = await api.call(
        "POST", path, {**request, "object": {"type": "document", "id": "3"}}
    )
    assert body["users"] == [{"wildcard": {"type": "user"}}]
    status, body = await api.call(
        "POST",
        path,
        {**request, "contextual_tuples": [tk("user:dan", "viewer", "document:1")]},
    )
    assert sorted(u["object"]["id"] for u in body["users"]) == ["anne", "bob", "dan"]
    two = [{"type": "user"}, {"type": "team", "relation": "member"}]
    status, body = await api.call("POST", path, {**request, "user_filters": two})
    assert "exactly 1 item" in _error(status, body, 400, "validation_error")
    status, body = await api.call("POST", path, {**request, "object": {"type": "document"}})
    _error(status, body, 400, "validation_error")


# ------------------------------------------------------------------------------------------
# Write and Read
# ------------------------------------------------------------------------------------------


async def test_write_conflicts_and_limits(api: Api) -> None:
    sid, model_id = await api.store_with_model()
    path = f"/stores/{sid}/write"
    anne = tk("user:anne", "owner", "document:1")
    await api.write(sid, anne)

    # OpenFGA's default: a duplicate write or a missing delete fails the whole request.
    status, body = await api.call("POST", path, {"writes": {"tuple_keys": [anne]}})
    assert "already exists" in _error(status, body, 400, "write_failed_due_to_invalid_input")
    missing = tk("user:nobody", "owner", "document:1")
    status, body = await api.call("POST", path, {"deletes": {"tuple_keys": [missing]}})
    assert "does not exist" in _error(status, body, 400, "write_failed_due_to_invalid_input")
    status, body = await api.call(
        "POST",
        path,
        {
            "writes": {"tuple_keys": [anne], "on_duplicate": "ignore"},
            "deletes": {"tuple_keys": [missing], "on_missing": "ignore"},
            "authorization_model_id": model_id,
        },
    )
    assert (status, body) == (200, {})

    # Writes and deletes in one request are one transaction.
    bob = tk("user:bob", "owner", "document:1")
    status, body = await api.call(
        "POST",
        path,
        {"writes": {"tuple_keys": [bob]}, "deletes": {"tuple_keys": [anne, missing]}},
    )
    _error(status, body, 400, "write_failed_due_to_invalid_input")
    status, read = await api.call("POST", f"/stores/{sid}/read", {})
    assert [t["key"] for t in read["tuples"]] == [anne]

    status, body = await api.call("POST", path, {})
    _error(status, body, 400, "invalid_write_input")
    status, body = await api.call("POST", path, {"writes": {"tuple_keys": [bob, bob]}})
    _error(status, body, 400, "cannot_allow_duplicate_tuples_in_one_request")
    many = [tk(f"user:u{i}", "owner", "document:1") for i in range(101)]
    status, body = await api.call("POST", path, {"writes": {"tuple_keys": many}})
    _error(status, body, 400, "exceeded_entity_limit")
    status, body = await api.call(
        "POST", path, {"writes": {"tuple_keys": [tk("team:eng#member", "owner", "document:1")]}}
    )
    assert "Invalid tuple" in _error(status, body, 400, "validation_error")
    status, body = await api.call(
        "POST", path, {"writes": {"tuple_keys": [tk("user:a", "owner", "folder:1")]}}
    )
    assert status == 400
    conditioned = {**bob, "condition": {"name": "in_office_hours"}}
    status, body = await api.call("POST", path, {"writes": {"tuple_keys": [conditioned]}})
    assert "conditions" in _error(status, body, 400, "validation_error")
    status, body = await api.call(
        "POST", path, {"writes": {"tuple_keys": [bob], "on_duplicate": "maybe"}}
    )
    _error(status, body, 400, "validation_error")


async def test_read(api: Api) -> None:
    sid, _ = await api.store_with_model()
    tuples = [tk(f"user:u{i}", "viewer", f"document:{i % 2}") for i in range(5)]
    await api.write(sid, *tuples)
    path = f"/stores/{sid}/read"
    status, body = await api.call("POST", path, {})
    assert status == 200 and set(body) == {"tuples", "continuation_token"}
    assert body["continuation_token"] == ""
    assert sorted(t["key"]["user"] for t in body["tuples"]) == [f"user:u{i}" for i in range(5)]
    for t in body["tuples"]:
        assert set(t) == {"key", "timestamp"} and RFC3339_UTC.match(t["timestamp"])
        datetime.fromisoformat(t["timestamp"].replace("Z", "+00:00"))

    status, body = await api.call("POST", path, {"tuple_key": {"object": "document:0"}})
    assert sorted(t["key"]["user"] for t in body["tuples"]) == ["user:u0", "user:u2", "user:u4"]
    status, body = await api.call(
        "POST", path, {"tuple_key": {"object": "document:", "user": "user:u3"}}
    )
    assert [t["key"] for t in body["tuples"]] == [tk("user:u3", "viewer", "document:1")]

    seen: list[str] = []
    token = ""
    for _ in range(5):
        status, body = await api.call("POST", path, {"page_size": 2, "continuation_token": token})
        assert status == 200 and len(body["tuples"]) <= 2
        seen.extend(t["key"]["user"] for t in body["tuples"])
        token = body["continuation_token"]
        if not token:
            break
    assert sorted(seen) == [f"user:u{i}" for i in range(5)]

    status, body = await api.call("POST", path, {"tuple_key": {"user": "user:u1"}})
    _error(status, body, 400, "validation_error")
    status, body = await api.call("POST", path, {"tuple_key": {"object": "folder:1"}})
    assert status == 400 and body["code"] in {"type_not_found", "validation_error"}
    status, body = await api.call("POST", path, {"page_size": 500})
    _error(status, body, 400, "validation_error")
    status, body = await api.call("POST", path, {"continuation_token": "garbage"})
    _error(status, body, 400, "invalid_continuation_token")


# ------------------------------------------------------------------------------------------
# Routing, malformed requests, the CLI server
# ------------------------------------------------------------------------------------------


async def test_unknown_routes_methods_and_bodies(api: Api) -> None:
    sid, _ = await api.store_with_model()
    status, body = await api.call("GET", "/nope")
    _error(status, body, 404, "undefined_endpoint")
    status, body = await api.call("POST", f"/stores/{sid}/expand-everything", {})
    _error(status, body, 404, "undefined_endpoint")
    status, body = await api.call("GET", f"/stores/{sid}/check")
    assert status == 405 and set(body) == {"code", "message"}
    status, body = await api.call("POST", f"/stores/{sid}/check", raw=b"{not json")
    assert "JSON" in _error(status, body, 400, "validation_error")
    status, body = await api.call("POST", f"/stores/{sid}/check", raw=b"[1, 2]")
    _error(status, body, 400, "validation_error")


async def test_serve_fga_until_stopped(fga: EmbeddedEngine, free_socket: socket.socket) -> None:
    port = free_socket.getsockname()[1]
    free_socket.close()
    stop = asyncio.Event()
    server = asyncio.create_task(serve_fga(fga, "127.0.0.1", port, stop))
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/stores") as resp:
                        assert resp.status == 200
                        assert (await resp.json())["stores"] == []
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.02)
            else:
                pytest.fail("the FGA API did not start")
    finally:
        stop.set()
        await asyncio.wait_for(server, 5)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_database_down_is_503_unavailable() -> None:
    """A database that cannot be reached answers 503 ``unavailable``, never a decision."""
    db = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    engine = EmbeddedEngine(engine=db, sync_interval=0, db_timeout=2.0)
    try:
        async with serve_app(create_fga_app(engine)) as url, aiohttp.ClientSession(url) as s:
            status, body = await Api(s).call(
                "POST", f"/stores/{'0' * 26}/check", {"tuple_key": tk("user:a", "owner", "doc:1")}
            )
            _error(status, body, 503, "unavailable")
    finally:
        await engine.close()
        await db.dispose()
