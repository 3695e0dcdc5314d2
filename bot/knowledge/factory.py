"""Builds the configured retriever and the authorized retriever over it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Final

from authz.ports import Authorizer
from bot.knowledge.authorized import FgaAuthorizedRetriever
from bot.knowledge.embeddings import OpenAIEmbedder
from bot.knowledge.memory import MemoryRetriever
from bot.knowledge.postgres import PostgresRetriever
from bot.settings import AuthzEngine, RetrievalBackend, Settings
from bot.storage.db import Database

# OPENFGA_LIST_OBJECTS_MAX_RESULTS's default: a listing that long may be truncated.
OPENFGA_LIST_OBJECTS_LIMIT: Final = 1000


def build_embedder(settings: Settings) -> OpenAIEmbedder | None:
    """The embeddings client, when ``EMBEDDINGS_MODEL`` is configured."""
    if not settings.embeddings_model:
        return None
    key = settings.openai_api_key
    return OpenAIEmbedder(
        model=settings.embeddings_model,
        base_url=settings.openai_base_url,
        api_key=key.get_secret_value() if key is not None else None,
    )


@asynccontextmanager
async def open_knowledge(
    settings: Settings, *, db: Database, authorizer: Authorizer
) -> AsyncIterator[FgaAuthorizedRetriever]:
    """The :class:`~bot.knowledge.ports.AuthorizedRetriever` of ``RETRIEVAL_BACKEND``, its
    index loaded (memory) or its database checked (postgres); closed on exit."""
    async with AsyncExitStack() as stack:
        retriever: MemoryRetriever | PostgresRetriever
        if settings.retrieval_backend is RetrievalBackend.POSTGRES:
            retriever = PostgresRetriever(db=db)
        else:
            embedder = build_embedder(settings)
            if embedder is not None:
                stack.push_async_callback(embedder.aclose)
            retriever = MemoryRetriever(
                db=db,
                embedder=embedder,
                refresh_interval=settings.retrieval_refresh_seconds,
                min_similarity=settings.embeddings_min_similarity,
            )
        await retriever.start()
        stack.push_async_callback(retriever.aclose)
        yield FgaAuthorizedRetriever(
            retriever=retriever,
            authorizer=authorizer,
            list_objects_limit=(
                OPENFGA_LIST_OBJECTS_LIMIT if settings.authz_engine is AuthzEngine.OPENFGA else None
            ),
        )
