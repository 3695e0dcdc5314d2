"""One contract for every engine behind the :class:`~authz.ports.Authorizer` port, on the
product model (``authz/model.fga``): the embedded engine called directly, and the openfga
engine (openfga-sdk) over real HTTP to the embedded engine's OpenFGA API. Each test runs on
both engines, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import authz
from authz.embedded.engine import EmbeddedEngine
from authz.embedded.model import parse_dsl
from authz.http_api import create_fga_app
from authz.openfga import OpenFgaAuthorizer
from authz.ports import (
    Authorizer,
    AuthzEvaluationError,
    AuthzValidationError,
    CheckRequest,
    Consistency,
    ErrorCode,
    TupleKey,
)
from tests.fakes.authz import embedded_engine, serve_app

PRODUCT_MODEL = Path(authz.__file__).resolve().parent / "model.fga"


def T(user: str, relation: str, object: str) -> TupleKey:
    return TupleKey(user=user, relation=relation, object=object)


# The world (a part of the one in authz/model.fga.yaml):
#   workspace:T1  admin ada; members bob, eve, olga
#   team:platform bob; team:l1 < l2 < l3 < l4, nia in l1
#   project:apollo (T1)  owner olga, editors ed + team:platform, viewers vic + team:l4,
#                        approver pat
#   project:hermes (T1)  owner cat, visible to every member of T1
#   document:roadmap (apollo)  shared with gus, vic blocked
#   document:handbook (apollo) owner cat, public to T1 members, eve blocked
#   document:secret (apollo)   olga (a project owner) blocked
#   task:t1 (apollo, assignee gus); approval:a1 (apollo, requester ed, approver xavi)
WORLD = [
    T("user:ada", "admin", "workspace:T1"),
    T("user:bob", "member", "workspace:T1"),
    T("user:eve", "member", "workspace:T1"),
    T("user:olga", "member", "workspace:T1"),
    T("user:bob", "member", "team:platform"),
    T("user:nia", "member", "team:l1"),
    T("team:l1#member", "member", "team:l2"),
    T("team:l2#member", "member", "team:l3"),
    T("team:l3#member", "member", "team:l4"),
    T("workspace:T1", "workspace", "project:apollo"),
    T("user:olga", "owner", "project:apollo"),
    T("user:ed", "editor", "project:apollo"),
    T("team:platform#member", "editor", "project:apollo"),
    T("user:vic", "viewer", "project:apollo"),
    T("team:l4#member", "viewer", "project:apollo"),
    T("user:pat", "approver", "project:apollo"),
    T("workspace:T1", "workspace", "project:hermes"),
    T("user:cat", "owner", "project:hermes"),
    T("workspace:T1#member", "viewer", "project:hermes"),
    T("project:apollo", "project", "document:roadmap"),
    T("user:gus", "viewer", "document:roadmap"),
    T("user:vic", "blocked", "document:roadmap"),
    T("project:apollo", "project", "document:handbook"),
    T("user:cat", "owner", "document:handbook"),
    T("workspace:T1#member", "viewer", "document:handbook"),
    T("user:eve", "blocked", "document:handbook"),
    T("project:apollo", "project", "document:secret"),
    T("user:olga", "blocked", "document:secret"),
    T("project:apollo", "project", "task:t1"),
    T("user:gus", "assignee", "task:t1"),
    T("project:apollo", "project", "approval:a1"),
    T("user:ed", "requester", "approval:a1"),
    T("user:xavi", "approver", "approval:a1"),
]

CHECKS = [
    # workspace admins own every project of their workspace, hence its documents
    ("user:ada", "can_view", "document:roadmap", True),
    ("user:ada", "can_delete", "document:roadmap", True),
    # blocked wins over every grant
    ("user:vic", "viewer", "document:roadmap", True),
    ("user:vic", "can_view", "document:roadmap", False),
    ("user:eve", "can_view", "document:handbook", False),
    ("user:olga", "can_view", "document:secret", False),
    ("user:olga", "can_delete", "document:secret", False),
    ("user:olga", "can_delete", "document:roadmap", True),
    # direct shares, teams, nested teams (depth 4), workspace publication
    ("user:gus", "can_view", "document:roadmap", True),
    ("user:bob", "can_edit", "document:roadmap", True),
    ("user:nia", "can_view", "document:roadmap", True),
    ("user:nia", "can_edit", "document:roadmap", False),
    ("user:bob", "can_view", "document:handbook", True),
    ("user:cat", "can_delete", "document:handbook", True),
    ("user:cat", "can_view", "document:roadmap", False),
    ("user:zed", "can_view", "document:roadmap", False),
    ("user:eve", "can_view", "project:hermes", True),
    ("user:eve", "can_view", "project:apollo", False),
    # tasks and approvals
    ("user:gus", "can_view", "task:t1", True),
    ("user:gus", "can_edit", "task:t1", True),
    ("user:gus", "can_assign", "task:t1", False),
    ("user:vic", "can_view", "task:t1", True),
    ("user:zed", "can_view", "task:t1", False),
    ("user:pat", "can_approve", "approval:a1", True),
    ("user:olga", "can_approve", "approval:a1", True),
    ("user:xavi", "can_approve", "approval:a1", True),
    ("user:ed", "can_approve", "approval:a1", False),
    ("user:ed", "can_cancel", "approval:a1", True),
    ("user:ada", "can_administer", "workspace:T1", True),
    ("user:bob", "can_administer", "workspace:T1", False),
    # a userset is related to what its members are related to
    ("team:l1#member", "member", "team:l4", True),
    ("team:l4#member", "member", "team:l1", False),
]


@pytest.fixture(params=["embedded", "openfga"])
async def engine_authz(
    request: pytest.FixtureRequest, database_url: str
) -> AsyncIterator[tuple[Authorizer, EmbeddedEngine, str]]:
    """``(authorizer under test, the embedded engine behind it, store id)`` with the product
    model and :data:`WORLD` loaded."""
    async with embedded_engine(database_url) as engine:
        store = await engine.create_store("contract")
        model_id = await engine.write_model(store.id, parse_dsl(PRODUCT_MODEL.read_text()))
        await engine.authorizer(store.id).write(WORLD)
        if request.param == "embedded":
            yield engine.authorizer(store.id, model_id), engine, store.id
            return
        async with (
            serve_app(create_fga_app(engine)) as url,
            OpenFgaAuthorizer.open(
                api_url=url, store_id=store.id, model_id=model_id, api_token=None, timeout_ms=5000
            ) as client,
        ):
            yield client, engine, store.id


@pytest.fixture
def fga(engine_authz: tuple[Authorizer, EmbeddedEngine, str]) -> Authorizer:
    return engine_authz[0]


async def test_checks(fga: Authorizer) -> None:
    got = [(u, r, o, await fga.check(u, r, o)) for u, r, o, _ in CHECKS]
    assert got == CHECKS


async def test_batch_check_with_a_per_item_error(fga: Authorizer) -> None:
    requests = [CheckRequest(u, r, o) for u, r, o, _ in CHECKS]
    requests.insert(3, CheckRequest("user:ada", "no_such_relation", "document:roadmap"))
    results = await fga.batch_check(requests, consistency=Consistency.HIGHER_CONSISTENCY)
    assert [r.request for r in results] == requests
    bad = results.pop(3)
    assert bad.allowed is False and bad.denied_by_error
    assert bad.error is not None and "no_such_relation" in bad.error
    assert [(r.request.user, r.request.relation, r.request.object, r.allowed) for r in results] == (
        CHECKS
    )
    assert not any(r.denied_by_error for r in results)
    assert await fga.batch_check([]) == []


async def test_list_objects(fga: Authorizer) -> None:
    assert await fga.list_objects("user:nia", "can_view", "document") == [
        "document:handbook",
        "document:roadmap",
        "document:secret",
    ]
    assert await fga.list_objects("user:vic", "can_view", "document") == [
        "document:handbook",
        "document:secret",
    ]
    assert await fga.list_objects("user:eve", "can_view", "document") == []
    assert await fga.list_objects("user:eve", "can_view", "project") == ["project:hermes"]
    assert await fga.list_objects("user:ada", "owner", "project") == [
        "project:apollo",
        "project:hermes",
    ]


async def test_list_users(fga: Authorizer) -> None:
    assert await fga.list_users("document:roadmap", "can_view", ["user"]) == [
        "user:ada",
        "user:bob",
        "user:ed",
        "user:gus",
        "user:nia",
        "user:olga",
    ]
    assert await fga.list_users("team:l4", "member", ["team#member"]) == [
        "team:l1#member",
        "team:l2#member",
        "team:l3#member",
        "team:l4#member",
    ]
    assert await fga.list_users("approval:a1", "can_approve", ["user"]) == [
        "user:ada",
        "user:olga",
        "user:pat",
        "user:xavi",
    ]
    with pytest.raises(AuthzValidationError) as two_filters:
        await fga.list_users("team:platform", "member", ["user", "team#member"])
    assert two_filters.value.code == ErrorCode.validation_error


async def test_contextual_tuples(fga: Authorizer) -> None:
    ctx = [T("user:zed", "member", "team:l1")]
    assert await fga.check("user:zed", "can_view", "document:roadmap", contextual_tuples=ctx)
    assert not await fga.check("user:zed", "can_view", "document:roadmap")
    assert await fga.list_objects("user:zed", "can_view", "document", contextual_tuples=ctx) == [
        "document:handbook",
        "document:roadmap",
        "document:secret",
    ]
    assert "user:zed" in await fga.list_users(
        "document:secret", "can_view", ["user"], contextual_tuples=ctx
    )
    # a contextual block applies too
    block = [T("user:gus", "blocked", "document:roadmap")]
    assert not await fga.check("user:gus", "can_view", "document:roadmap", contextual_tuples=block)
    results = await fga.batch_check(
        [
            CheckRequest("user:zed", "can_view", "document:roadmap", contextual_tuples=tuple(ctx)),
            CheckRequest("user:zed", "can_view", "document:roadmap"),
        ]
    )
    assert [r.allowed for r in results] == [True, False]


async def test_write_and_delete_are_idempotent(fga: Authorizer) -> None:
    grant = T("user:zed", "viewer", "document:secret")
    await fga.write([grant])
    await fga.write([grant])
    await fga.write([grant, T("user:yan", "viewer", "document:secret")])
    assert await fga.check("user:zed", "can_view", "document:secret")
    assert await fga.check(
        "user:yan", "can_view", "document:secret", consistency=Consistency.HIGHER_CONSISTENCY
    )
    await fga.delete([grant])
    await fga.delete([grant])
    await fga.delete([grant, T("user:nobody", "viewer", "document:secret")])
    assert not await fga.check("user:zed", "can_view", "document:secret")
    assert (await fga.read(object="document:secret", relation="viewer")).tuples == [
        T("user:yan", "viewer", "document:secret")
    ]


async def test_validation_errors(fga: Authorizer) -> None:
    with pytest.raises(AuthzValidationError) as relation:
        await fga.check("user:ada", "no_such_relation", "document:roadmap")
    assert relation.value.code == ErrorCode.validation_error
    with pytest.raises(AuthzValidationError) as restricted:
        await fga.write([T("user:ada", "workspace", "project:apollo")])
    assert restricted.value.code == ErrorCode.validation_error
    with pytest.raises(AuthzValidationError) as unknown_type:
        await fga.list_objects("user:ada", "can_view", "spreadsheet")
    assert unknown_type.value.code == ErrorCode.type_not_found
    with pytest.raises(AuthzValidationError) as contextual:
        await fga.check(
            "user:ada",
            "can_view",
            "document:roadmap",
            contextual_tuples=[T("user:ada", "member", "spreadsheet:1")],
        )
    assert contextual.value.code == ErrorCode.invalid_tuple
    # nothing was written by the refused requests
    assert (await fga.read(object="project:apollo", relation="workspace")).tuples == [
        T("workspace:T1", "workspace", "project:apollo")
    ]


async def test_depth_limit_is_an_error_on_both(fga: Authorizer) -> None:
    chain = [T(f"team:c{i + 1}#member", "member", f"team:c{i}") for i in range(30)]
    await fga.write([*chain, T("user:deep", "member", "team:c30")])
    with pytest.raises(AuthzEvaluationError):
        await fga.check("user:deep", "member", "team:c0")
    assert await fga.check("user:deep", "member", "team:c10")
    [result] = await fga.batch_check([CheckRequest("user:deep", "member", "team:c0")])
    assert result.allowed is False and result.denied_by_error


async def test_read(fga: Authorizer) -> None:
    roadmap = (await fga.read(object="document:roadmap")).tuples
    assert sorted(roadmap, key=str) == sorted(
        [t for t in WORLD if t.object == "document:roadmap"], key=str
    )
    assert (await fga.read(user="user:gus", object="document:")).tuples == [
        T("user:gus", "viewer", "document:roadmap")
    ]
    seen: list[TupleKey] = []
    page = await fga.read(page_size=7)
    seen.extend(page.tuples)
    while page.continuation_token:
        page = await fga.read(page_size=7, continuation_token=page.continuation_token)
        assert len(page.tuples) <= 7
        seen.extend(page.tuples)
    assert sorted(seen, key=str) == sorted(WORLD, key=str)
