"""Opens the configured authorization engine behind the decision cache.

``embedded``: the engine runs in this process over the application's database; the store
named ``store_name`` is found or created and the model in ``model_path`` is written to it
when the store's latest model differs. ``openfga``: openfga-sdk against ``fga_api_url``.
Either way the caller gets a :class:`~authz.cache.DecisionCache` pinned to one model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from authz.cache import DecisionCache
from authz.embedded.engine import EmbeddedEngine
from authz.embedded.model import AuthorizationModel, parse_dsl

log = logging.getLogger(__name__)

DEFAULT_MODEL_PATH: Final = Path(__file__).parent / "model.fga"
ENGINES: Final = ("embedded", "openfga")


@dataclass(frozen=True)
class AuthzConfig:
    """How to reach the authorization engine (built from the settings by the caller)."""

    engine: str = "embedded"  # or "openfga"
    store_name: str = "pmbot"
    model_path: Path = DEFAULT_MODEL_PATH
    fga_api_url: str | None = None
    fga_store_id: str | None = None
    fga_model_id: str | None = None
    fga_api_token: str | None = None
    timeout_ms: int = 2000
    cache_ttl: float = 10.0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown authorization engine {self.engine!r} (expected {ENGINES})")


async def load_model(path: Path) -> AuthorizationModel:
    """Parses the DSL model at ``path`` (raises ``AuthzValidationError`` if it is invalid)."""
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    return parse_dsl(text)


def openfga_target(config: AuthzConfig) -> tuple[str, str]:
    """``(api_url, store_id)`` of the configured OpenFGA server; ValueError if missing."""
    if not config.fga_api_url:
        raise ValueError("the openfga engine needs fga_api_url (FGA_API_URL)")
    if not config.fga_store_id:
        raise ValueError("the openfga engine needs fga_store_id (FGA_STORE_ID)")
    return config.fga_api_url, config.fga_store_id


@asynccontextmanager
async def open_embedded(
    config: AuthzConfig, *, engine: AsyncEngine
) -> AsyncIterator[tuple[EmbeddedEngine, str, str]]:
    """The started embedded engine with the configured store and model in place:
    ``(engine, store_id, model_id)``. Closed on exit."""
    model = await load_model(config.model_path)
    embedded = EmbeddedEngine(engine=engine)
    await embedded.start()
    try:
        store, created = await embedded.find_or_create_store(config.store_name)
        model_id, written = await embedded.ensure_model(store.id, model)
        if created or written:
            log.info(
                "authorization store %s (%s): model %s %s",
                store.name,
                store.id,
                model_id,
                "written" if written else "unchanged",
            )
        yield embedded, store.id, model_id
    finally:
        await embedded.close()


@asynccontextmanager
async def open_authorizer(
    config: AuthzConfig, *, engine: AsyncEngine
) -> AsyncIterator[DecisionCache]:
    """The configured engine behind a :class:`DecisionCache` (TTL ``cache_ttl``).

    ``engine`` is the application's database; the embedded engine uses it, the openfga
    engine ignores it. Everything opened here is closed on exit.
    """
    if config.engine == "openfga":
        api_url, store_id = openfga_target(config)
        # Imported here: the SDK is only needed when this engine is chosen.
        from authz.openfga import OpenFgaAuthorizer

        async with OpenFgaAuthorizer.open(
            api_url=api_url,
            store_id=store_id,
            model_id=config.fga_model_id,
            api_token=config.fga_api_token,
            timeout_ms=config.timeout_ms,
        ) as inner:
            cache = DecisionCache(inner, ttl=config.cache_ttl)
            try:
                yield cache
            finally:
                await cache.aclose()
        return
    async with open_embedded(config, engine=engine) as (embedded, store_id, model_id):
        cache = DecisionCache(embedded.authorizer(store_id, model_id), ttl=config.cache_ttl)
        try:
            yield cache
        finally:
            await cache.aclose()
