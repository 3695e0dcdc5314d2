"""The embedded engine over SQL, on SQLite and PostgreSQL: stores, models, writes, reads,
queries and errors."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from authz.embedded.engine import (
    EmbeddedEngine,
    StoreNotFoundError,
    TimedReadResult,
    new_ulid,
)
from authz.embedded.model import AuthorizationModel, parse_dsl
from authz.embedded.tables import fga_changes, fga_tuples
from authz.ports import (
    Authorizer,
    AuthzEvaluationError,
    AuthzValidationError,
    CheckRequest,
    ErrorCode,
    TupleKey,
)
from tests.fakes.authz import MODEL_DSL, T, deep_teams

ULID = re.compile(r"^[0-7][0-9ABCDEFGHJKMNPQRSTVWXYZ]{25}$")


async def _count(db: AsyncEngine, table: str, store_id: str) -> int:
    t = fga_tuples if table == "tuples" else fga_changes
    async with db.connect() as conn:
        value = (
            await conn.execute(select(func.count()).select_from(t).where(t.c.store_id == store_id))
        ).scalar()
    return int(value or 0)


def test_ulids_are_well_formed_and_sort_by_creation() -> None:
    ids = [new_ulid() for _ in range(2000)]
    assert all(ULID.match(i) for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


async def test_stores_lifecycle(engine: EmbeddedEngine) -> None:
    a = await engine.create_store("alpha")
    b = await engine.create_store("beta")
    assert ULID.match(a.id) and a.name == "alpha"
    assert a.created_at.tzinfo is not None and a.updated_at == a.created_at
    assert await engine.get_store(a.id) == a
    assert [s.id for s in await engine.list_stores()] == [a.id, b.id]
    await engine.delete_store(a.id)
    assert await engine.get_store(a.id) is None
    assert [s.id for s in await engine.list_stores()] == [b.id]
    with pytest.raises(StoreNotFoundError):
        await engine.authorizer(a.id).check("user:x", "viewer", "document:1")


async def test_find_or_create_store_reuses_the_oldest(engine: EmbeddedEngine) -> None:
    first, created = await engine.find_or_create_store("pmbot")
    again, created_again = await engine.find_or_create_store("pmbot")
    assert created and not created_again
    assert again.id == first.id
    assert len(await engine.list_stores()) == 1


async def test_models_are_versioned(engine: EmbeddedEngine, model: AuthorizationModel) -> None:
    store = await engine.create_store("models")
    with pytest.raises(AuthzValidationError) as no_model:
        await engine.read_model(store.id)
    assert no_model.value.code == ErrorCode.latest_authorization_model_not_found

    first = await engine.write_model(store.id, model)
    bigger = parse_dsl(MODEL_DSL + "\ntype extra\n")
    second = await engine.write_model(store.id, bigger)
    assert ULID.match(first) and first < second
    assert await engine.read_model(store.id) == (second, bigger)
    assert await engine.read_model(store.id, first) == (first, model)
    assert await engine.list_models(store.id) == [(second, bigger), (first, model)]

    with pytest.raises(AuthzValidationError) as unknown:
        await engine.read_model(store.id, new_ulid())
    assert unknown.value.code == ErrorCode.authorization_model_not_found
    with pytest.raises(StoreNotFoundError):
        await engine.write_model(new_ulid(), model)


async def test_ensure_model_writes_a_model_once(
    engine: EmbeddedEngine, model: AuthorizationModel
) -> None:
    store = await engine.create_store("push")
    model_id, written = await engine.ensure_model(store.id, model)
    same_id, written_again = await engine.ensure_model(store.id, parse_dsl(MODEL_DSL))
    assert written and not written_again and same_id == model_id
    changed_id, changed = await engine.ensure_model(store.id, parse_dsl(MODEL_DSL + "type x\n"))
    assert changed and changed_id != model_id
    assert len(await engine.list_models(store.id)) == 2


async def test_writes_are_idempotent(
    engine: EmbeddedEngine, store_id: str, db_engine: AsyncEngine
) -> None:
    authz = engine.authorizer(store_id)
    t = T("user:anne", "owner", "document:1")
    await authz.write([t])
    await authz.write([t])  # already there: not an error, no second change
    assert (await authz.read(object="document:1")).tuples == [t]
    assert await _count(db_engine, "tuples", store_id) == 1
    assert await _count(db_engine, "changes", store_id) == 1

    await authz.delete([t])
    await authz.delete([t])  # already gone: not an error, no second change
    await authz.delete([T("user:nobody", "owner", "document:9")])
    assert (await authz.read(object="document:1")).tuples == []
    assert await _count(db_engine, "changes", store_id) == 2
    page = await engine.read_changes(store_id)
    assert [(c.operation, c.tuple_key) for c in page.changes] == [("write", t), ("delete", t)]
    # Polling with the returned token yields nothing new, and the same token back.
    again = await engine.read_changes(store_id, continuation_token=page.continuation_token)
    assert again.changes == [] and again.continuation_token == page.continuation_token


async def test_write_and_delete_in_one_request(engine: EmbeddedEngine, store_id: str) -> None:
    old = T("user:anne", "owner", "document:1")
    new = T("user:bob", "owner", "document:1")
    await engine.write_tuples(store_id, None, writes=[old])
    await engine.write_tuples(store_id, None, writes=[new], deletes=[old])
    assert (await engine.read(store_id, object="document:1")).tuples == [new]


async def test_openfga_strict_conflict_modes(engine: EmbeddedEngine, store_id: str) -> None:
    t = T("user:anne", "owner", "document:1")
    await engine.write_tuples(store_id, None, writes=[t])
    with pytest.raises(AuthzValidationError) as dup:
        await engine.write_tuples(
            store_id, None, writes=[T("user:bob", "owner", "document:1"), t], on_duplicate="error"
        )
    assert dup.value.code == ErrorCode.write_failed_due_to_invalid_input
    with pytest.raises(AuthzValidationError) as missing:
        await engine.write_tuples(
            store_id, None, deletes=[T("user:zed", "owner", "document:1")], on_missing="error"
        )
    assert missing.value.code == ErrorCode.write_failed_due_to_invalid_input
    # The refused requests changed nothing.
    assert (await engine.read(store_id, object="document:1")).tuples == [t]


_INVALID_TUPLES = [
    (T("user:anne", "owner", "spaceship:1"), "type 'spaceship' not found"),
    (T("user:anne", "editor", "document:1"), "relation 'document#editor' not found"),
    (T("team:a", "owner", "document:1"), "type 'team' is not an allowed type restriction"),
    (T("user:*", "owner", "document:1"), "typed wildcard"),
    (T("folder:a#viewer", "parent", "document:1"), "tupleset relation"),
    (T("user:anne", "owner", "document"), "invalid 'object' field format"),
]


async def test_write_validation_errors(engine: EmbeddedEngine, store_id: str) -> None:
    authz = engine.authorizer(store_id)
    ok = T("user:anne", "owner", "document:2")
    for tuple_key, reason in _INVALID_TUPLES:
        with pytest.raises(AuthzValidationError) as err:
            await authz.write([ok, tuple_key])
        assert err.value.code == ErrorCode.validation_error, tuple_key
        assert reason in err.value.message, (tuple_key, err.value.message)
    # All or nothing: the valid tuple of the refused requests was never written.
    assert (await authz.read()).tuples == []


async def test_write_request_limits(engine: EmbeddedEngine, store_id: str) -> None:
    t = T("user:anne", "owner", "document:1")
    cases = [
        ({"writes": [], "deletes": []}, ErrorCode.invalid_write_input),
        ({"writes": [t], "deletes": [t]}, ErrorCode.cannot_allow_duplicate_tuples_in_one_request),
        (
            {"writes": [T(f"user:{i}", "owner", "document:1") for i in range(101)]},
            ErrorCode.exceeded_entity_limit,
        ),
    ]
    for kwargs, code in cases:
        with pytest.raises(AuthzValidationError) as err:
            await engine.write_tuples(store_id, None, **kwargs)  # type: ignore[arg-type]
        assert err.value.code == code
    # Exactly 100 is allowed.
    await engine.write_tuples(
        store_id, None, writes=[T(f"user:{i}", "owner", "document:1") for i in range(100)]
    )
    assert len((await engine.read(store_id, object="document:1")).tuples) == 100


async def test_writes_need_a_model(engine: EmbeddedEngine) -> None:
    store = await engine.create_store("empty")
    with pytest.raises(AuthzValidationError) as err:
        await engine.authorizer(store.id).write([T("user:a", "owner", "document:1")])
    assert err.value.code == ErrorCode.latest_authorization_model_not_found


async def test_queries(engine: EmbeddedEngine, store_id: str) -> None:
    authz: Authorizer = engine.authorizer(store_id)
    assert isinstance(authz, Authorizer)
    await authz.write(
        [
            T("folder:f", "parent", "document:1"),
            T("folder:f", "parent", "document:2"),
            T("team:eng#member", "viewer", "folder:f"),
            T("user:anne", "member", "team:eng"),
            T("user:anne", "blocked", "document:2"),
            T("user:bob", "owner", "document:3"),
        ]
    )
    assert await authz.check("user:anne", "can_view", "document:1")
    assert not await authz.check("user:anne", "can_view", "document:2")  # blocked
    assert not await authz.check("user:bob", "can_view", "document:1")
    assert await authz.list_objects("user:anne", "can_view", "document") == ["document:1"]
    assert await authz.list_objects("user:bob", "viewer", "document") == ["document:3"]
    assert await authz.list_users("document:1", "viewer", ["user"]) == ["user:anne"]
    assert await authz.list_users("document:1", "viewer", ["team#member"]) == ["team:eng#member"]
    # Contextual tuples count for this request only.
    carol = T("user:carol", "member", "team:eng")
    assert await authz.check("user:carol", "can_view", "document:1", contextual_tuples=[carol])
    assert not await authz.check("user:carol", "can_view", "document:1")
    results = await authz.batch_check(
        [
            CheckRequest("user:anne", "can_view", "document:1", correlation_id="a"),
            CheckRequest("user:carol", "can_view", "document:1", (carol,), correlation_id="c"),
            CheckRequest("user:bob", "can_view", "document:1", correlation_id="b"),
        ]
    )
    assert [(r.request.correlation_id, r.allowed, r.error) for r in results] == [
        ("a", True, None),
        ("c", True, None),
        ("b", False, None),
    ]


async def test_query_errors(engine: EmbeddedEngine, store_id: str) -> None:
    authz = engine.authorizer(store_id)
    await authz.write(deep_teams(30))
    with pytest.raises(AuthzValidationError) as unknown_relation:
        await authz.check("user:anne", "editor", "document:1")
    assert unknown_relation.value.code == ErrorCode.validation_error
    with pytest.raises(AuthzValidationError):
        await authz.check(
            "user:anne", "viewer", "document:1", contextual_tuples=[T("team:x", "owner", "doc:1")]
        )
    with pytest.raises(AuthzEvaluationError):  # depth limit: an error, never False
        await authz.check("user:deep", "member", "team:0")
    results = await authz.batch_check(
        [
            CheckRequest("user:deep", "member", "team:0"),
            CheckRequest("user:anne", "editor", "document:1"),
            CheckRequest("user:deep", "member", "team:30"),
        ]
    )
    assert [r.allowed for r in results] == [False, False, True]
    assert results[0].denied_by_error and results[1].denied_by_error
    assert results[2].error is None
    with pytest.raises(AuthzValidationError) as no_model:
        await engine.authorizer(store_id, new_ulid()).check("user:a", "viewer", "document:1")
    assert no_model.value.code == ErrorCode.authorization_model_not_found


async def test_authorizer_pinned_to_a_model(
    engine: EmbeddedEngine, store_id: str, model: AuthorizationModel
) -> None:
    pinned_id, _ = await engine.read_model(store_id)
    # A newer model where viewers of a folder no longer see its documents.
    newer = parse_dsl(MODEL_DSL.replace(" or viewer from parent", ""))
    await engine.write_model(store_id, newer)
    await engine.authorizer(store_id).write(
        [T("folder:f", "parent", "document:1"), T("user:anne", "owner", "folder:f")]
    )
    assert await engine.authorizer(store_id, pinned_id).check("user:anne", "viewer", "document:1")
    assert not await engine.authorizer(store_id).check("user:anne", "viewer", "document:1")


async def test_read_filters_and_pagination(engine: EmbeddedEngine, store_id: str) -> None:
    authz = engine.authorizer(store_id)
    tuples = [T(f"user:u{i}", "owner", f"document:{i % 3}") for i in range(7)]
    tuples += [T("user:u1", "viewer", "folder:a"), T("user:u1", "owner", "folder:a")]
    await authz.write(tuples)

    pages: list[list[TupleKey]] = []
    token = ""
    while True:
        result = await authz.read(page_size=3, continuation_token=token)
        pages.append(result.tuples)
        token = result.continuation_token
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 3]
    everything = [t for p in pages for t in p]
    assert sorted(everything, key=lambda t: (t.object, t.relation, t.user)) == everything
    assert set(everything) == set(tuples)

    by_object = await authz.read(object="document:1")
    assert by_object.tuples == [
        T("user:u1", "owner", "document:1"),
        T("user:u4", "owner", "document:1"),
    ]
    assert isinstance(by_object, TimedReadResult)
    assert all(by_object.timestamps[t].tzinfo is not None for t in by_object.tuples)
    by_type_and_user = await authz.read(user="user:u1", object="folder:")
    assert by_type_and_user.tuples == [
        T("user:u1", "owner", "folder:a"),
        T("user:u1", "viewer", "folder:a"),
    ]
    exact = await authz.read(user="user:u1", relation="viewer", object="folder:a")
    assert exact.tuples == [T("user:u1", "viewer", "folder:a")]
    # Type prefixes match exactly (not case-insensitively, not as a LIKE pattern).
    for prefix in ("Folder", "f%", "folde"):
        found = await engine.sql.read_tuples(
            store_id,
            user="user:u1",
            relation=None,
            object_type=prefix,
            object_id=None,
            after=None,
            limit=10,
        )
        assert found == [], prefix

    first = await authz.read(object="document:0", relation="owner", page_size=1)
    assert first.continuation_token
    for kwargs, code in [
        ({"continuation_token": "not-a-token"}, ErrorCode.invalid_continuation_token),
        # A token belongs to its filter.
        (
            {"object": "document:1", "continuation_token": first.continuation_token},
            ErrorCode.invalid_continuation_token,
        ),
        ({"user": "user:u1"}, ErrorCode.validation_error),  # an object (type) is required
        ({"object": "document:"}, ErrorCode.validation_error),  # a type alone needs a user
        ({"object": "spaceship:1"}, ErrorCode.type_not_found),
        ({"object": "document:1", "relation": "editor"}, ErrorCode.relation_not_found),
        ({"page_size": 0}, ErrorCode.validation_error),
        ({"page_size": 101}, ErrorCode.validation_error),
    ]:
        with pytest.raises(AuthzValidationError) as err:
            await authz.read(**kwargs)  # type: ignore[arg-type]
        assert err.value.code == code, kwargs


async def test_read_changes_by_type_and_page(engine: EmbeddedEngine, store_id: str) -> None:
    authz = engine.authorizer(store_id)
    await authz.write([T(f"user:{i}", "owner", "document:1") for i in range(3)])
    await authz.write([T("user:x", "owner", "folder:1")])
    docs = await engine.read_changes(store_id, type="document", page_size=2)
    assert [c.tuple_key.user for c in docs.changes] == ["user:0", "user:1"]
    rest = await engine.read_changes(
        store_id, type="document", continuation_token=docs.continuation_token
    )
    assert [c.tuple_key.user for c in rest.changes] == ["user:2"]
    assert [c.id for c in docs.changes + rest.changes] == sorted(
        c.id for c in docs.changes + rest.changes
    )
    with pytest.raises(AuthzValidationError):
        await engine.read_changes(
            store_id, type="folder", continuation_token=docs.continuation_token
        )
