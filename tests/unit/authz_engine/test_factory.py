"""Opening the configured engine, and the ``pmbot fga`` functions (push, check,
conformance), for the embedded engine and for openfga-sdk over the OpenFGA HTTP API."""

from __future__ import annotations

import io
import textwrap
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from authz.cache import DecisionCache
from authz.cli import fga_check, fga_conformance, fga_push
from authz.embedded.authorizer import EmbeddedAuthorizer
from authz.embedded.engine import EmbeddedEngine
from authz.embedded.model import parse_dsl
from authz.factory import DEFAULT_MODEL_PATH, AuthzConfig, open_authorizer
from authz.http_api import create_fga_app
from authz.ports import AuthzValidationError
from bot.storage.db import Database
from tests.fakes.authz import T


@pytest.fixture
def config() -> AuthzConfig:
    return AuthzConfig(store_name="pmbot-test", cache_ttl=5.0)


def _pinned(cache: DecisionCache) -> EmbeddedAuthorizer:
    assert isinstance(cache.inner, EmbeddedAuthorizer)
    return cache.inner


async def test_embedded_store_and_model_are_set_up_once(
    db_engine: AsyncEngine, config: AuthzConfig, tmp_path: Path
) -> None:
    async with open_authorizer(config, engine=db_engine) as first:
        assert isinstance(first, DecisionCache) and first.ttl == 5.0
        store_id, model_id = _pinned(first).store_id, _pinned(first).model_id
    async with open_authorizer(config, engine=db_engine) as again:
        assert (_pinned(again).store_id, _pinned(again).model_id) == (store_id, model_id)

    changed = tmp_path / "model.fga"
    changed.write_text(DEFAULT_MODEL_PATH.read_text(encoding="utf-8") + "\ntype extra\n")
    async with open_authorizer(replace(config, model_path=changed), engine=db_engine) as newer:
        assert _pinned(newer).store_id == store_id
        newer_id = _pinned(newer).model_id
        assert newer_id is not None and newer_id != model_id

    engine = EmbeddedEngine(engine=db_engine)
    stores = await engine.list_stores()
    assert [(s.id, s.name) for s in stores] == [(store_id, "pmbot-test")]
    models = await engine.list_models(store_id)
    assert [m[0] for m in models] == [newer_id, model_id]
    assert models[1][1] == parse_dsl(DEFAULT_MODEL_PATH.read_text(encoding="utf-8"))


async def test_the_product_model_answers_through_the_cache(
    db_engine: AsyncEngine, config: AuthzConfig
) -> None:
    async with open_authorizer(config, engine=db_engine) as authz:
        assert not await authz.check("user:ann", "can_view", "project:p1")
        await authz.write(
            [T("workspace:w1", "workspace", "project:p1"), T("user:ann", "member", "workspace:w1")]
        )
        assert not await authz.check("user:ann", "can_edit", "project:p1")
        await authz.write([T("user:ann", "admin", "workspace:w1")])
        assert await authz.check("user:ann", "can_edit", "project:p1")
        assert await authz.list_objects("user:ann", "can_delete", "project") == ["project:p1"]


async def test_push_and_check_commands(db_engine: AsyncEngine, config: AuthzConfig) -> None:
    with pytest.raises(AuthzValidationError, match="pmbot fga push"):
        await fga_check(
            config, engine=db_engine, user="user:a", relation="admin", object="workspace:w"
        )
    model_id = await fga_push(config, engine=db_engine)
    assert await fga_push(config, engine=db_engine) == model_id  # unchanged: no new model
    assert not await fga_check(
        config, engine=db_engine, user="user:a", relation="admin", object="workspace:w"
    )
    async with open_authorizer(config, engine=db_engine) as authz:
        assert _pinned(authz).model_id == model_id
        await authz.write([T("user:a", "admin", "workspace:w")])
    assert await fga_check(
        config, engine=db_engine, user="user:a", relation="admin", object="workspace:w"
    )


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown authorization engine"):
        AuthzConfig(engine="spicedb")


async def test_openfga_needs_a_server_and_a_store(db_engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="fga_api_url"):
        async with open_authorizer(AuthzConfig(engine="openfga"), engine=db_engine):
            pass
    with pytest.raises(ValueError, match="fga_store_id"):
        await fga_push(
            AuthzConfig(engine="openfga", fga_api_url="http://127.0.0.1:9"), engine=db_engine
        )


def test_conformance_command(tmp_path: Path) -> None:
    path = tmp_path / "tests.yaml"
    path.write_text(
        textwrap.dedent(
            """
            tests:
              - name: direct
                stages:
                  - model: |
                      model
                        schema 1.1
                      type user
                      type document
                        relations
                          define viewer: [user]
                    tuples:
                      - {object: "document:1", relation: viewer, user: "user:a"}
                    checkAssertions:
                      - tuple: {object: "document:1", relation: viewer, user: "user:a"}
                        expectation: true
                      - tuple: {object: "document:1", relation: viewer, user: "user:b"}
                        expectation: EXPECTED
            """
        ).replace("EXPECTED", "false")
    )
    out = io.StringIO()
    assert fga_conformance(path, out) == 0
    assert out.getvalue().strip().splitlines()[-1] == "2 passed, 0 failed"
    path.write_text(path.read_text().replace("expectation: false", "expectation: true"))
    out = io.StringIO()
    assert fga_conformance(path, out) == 1
    assert out.getvalue().strip().splitlines()[-1] == "1 passed, 1 failed"


# --------------------------------------------------------------------------------------------
# openfga: openfga-sdk against the OpenFGA HTTP API served on loopback
# --------------------------------------------------------------------------------------------


@pytest.fixture
async def fga_server(sqlite_url: str) -> AsyncIterator[tuple[str, EmbeddedEngine, AsyncEngine]]:
    """An OpenFGA-compatible server on 127.0.0.1 (the embedded engine behind the HTTP API)."""
    db = Database(sqlite_url)
    engine = EmbeddedEngine(engine=db.engine, sync_interval=60)
    await engine.start()
    runner = web.AppRunner(create_fga_app(engine), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", engine, db.engine
    finally:
        await runner.cleanup()
        await engine.close()
        await db.dispose()


async def test_openfga_engine_push_open_and_check(
    fga_server: tuple[str, EmbeddedEngine, AsyncEngine],
) -> None:
    url, server_engine, db = fga_server
    store = await server_engine.create_store("remote")
    config = AuthzConfig(engine="openfga", fga_api_url=url, fga_store_id=store.id)

    model_id = await fga_push(config, engine=db)
    assert await fga_push(config, engine=db) == model_id  # unchanged: no new model
    assert [m[0] for m in await server_engine.list_models(store.id)] == [model_id]

    pinned = replace(config, fga_model_id=model_id)
    async with open_authorizer(pinned, engine=db) as authz:
        assert isinstance(authz, DecisionCache)
        assert not await authz.check("user:bo", "can_administer", "workspace:w")
        await authz.write([T("user:bo", "admin", "workspace:w")])
        assert await authz.check("user:bo", "can_administer", "workspace:w")
    assert await fga_check(
        pinned, engine=db, user="user:bo", relation="can_administer", object="workspace:w"
    )
