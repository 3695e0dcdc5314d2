"""Fixtures for the embedded engine service: a database (SQLite and PostgreSQL), engines on
it and a store with a small model (helpers and test doubles are in :mod:`tests.fakes.authz`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from authz.embedded.engine import EmbeddedEngine
from authz.embedded.model import AuthorizationModel, parse_dsl
from bot.storage.db import Database
from tests.fakes.authz import MODEL_DSL


@pytest.fixture
def model() -> AuthorizationModel:
    return parse_dsl(MODEL_DSL)


@pytest.fixture
async def db_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The application's engine configuration (bot.storage.db) on each dialect."""
    db = Database(database_url)
    try:
        yield db.engine
    finally:
        await db.dispose()


@pytest.fixture
async def engine(db_engine: AsyncEngine) -> AsyncIterator[EmbeddedEngine]:
    """A started engine whose background catch-up is too slow to interfere with a test."""
    eng = EmbeddedEngine(engine=db_engine, sync_interval=60.0)
    await eng.start()
    try:
        yield eng
    finally:
        await eng.close()


@pytest.fixture
async def store_id(engine: EmbeddedEngine, model: AuthorizationModel) -> str:
    info = await engine.create_store("test")
    await engine.write_model(info.id, model)
    return info.id
