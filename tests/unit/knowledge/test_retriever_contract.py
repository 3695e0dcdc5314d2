"""One contract for every retrieval backend: in-process BM25 (alone and fused with dense
vectors from an embeddings endpoint) on SQLite and PostgreSQL, and PostgreSQL full-text
search. Same corpus, same queries, same expectations on the ranking's properties."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from authz.factory import AuthzConfig, open_authorizer
from bot.knowledge import memory as memory_module
from bot.knowledge.embeddings import OpenAIEmbedder
from bot.knowledge.ingest import Ingester, find_project
from bot.knowledge.memory import MemoryRetriever
from bot.knowledge.ports import Passage, Retriever
from bot.knowledge.postgres import PostgresRetriever
from bot.knowledge.text import Tokenizer
from bot.projects.models import Project
from bot.storage.db import Database
from bot.storage.outbox import Outbox
from tests.fakes.embeddings import EmbeddingsServer, embeddings_server
from tests.unit.knowledge.helpers import create_project

FILES = {
    "launch.md": "# Launch\n\nApollo launch: the launch checklist and the launch date.\n",
    "notes.md": "# Notes\n\nApollo notes mention the launch once, among words about weather.\n",
    "garden.md": "# Garden\n\nGardening and cooking, nothing else.\n",
    "budget-a.md": "# Review\n\nQuarterly budget review for Zeus.\n",
    "budget-b.md": "# Review\n\nQuarterly budget review for Zeus.\n",
    "cars.md": "# Fleet\n\nThe car pool and its automobile insurance.\n",
    "long.md": "# Long\n\n"
    + "\n\n".join(
        f"## Part {i}\n\nApollo part {i} discusses topic {i} with filler words {'x' * i}."
        for i in range(12)
    ),
}
QUERIES = ["apollo launch", "apollo", "quarterly budget zeus", "gardening", "launch weather"]
BACKENDS = ["memory", "memory+dense", "postgres"]
# The postgres backend needs PostgreSQL; dense vectors do not depend on the database.
SKIP = {("postgres", "sqlite"), ("memory+dense", "postgresql")}


@dataclass
class Corpus:
    retriever: Retriever
    db: Database
    project: Project
    ingester: Ingester
    folder: Path
    embeddings: EmbeddingsServer | None

    async def ingest(self, **files: str) -> None:
        for name, text in files.items():
            (self.folder / name).write_text(text)
        paths = [self.folder / name for name in files]
        report = await self.ingester.ingest(self.project, paths)
        assert report.ok, report.skipped


@contextlib.asynccontextmanager
async def open_corpus(
    backend: str, database_url: str, folder: Path, **options: float
) -> AsyncIterator[Corpus]:
    db = Database(database_url)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(db.dispose)
        await create_project(db, "Apollo")
        project = await find_project(db, team_id="T0SANDBOX", name="Apollo")
        authz = await stack.enter_async_context(open_authorizer(AuthzConfig(), engine=db.engine))
        embeddings: EmbeddingsServer | None = None
        retriever: MemoryRetriever | PostgresRetriever
        if backend == "postgres":
            retriever = PostgresRetriever(db=db)
        else:
            embedder = None
            if backend == "memory+dense":
                embeddings = await stack.enter_async_context(embeddings_server())
                embedder = OpenAIEmbedder(
                    model="fake-embed", base_url=embeddings.base_url, api_key="k", max_retries=0
                )
                stack.push_async_callback(embedder.aclose)
            retriever = MemoryRetriever(
                db=db,
                embedder=embedder,
                refresh_interval=options.get("refresh_interval", 0),
                min_similarity=0.5,
            )
        ingester = Ingester(
            db=db,
            outbox=Outbox(db=db, authorizer=authz),
            chunk_chars=300,
            overlap_chars=40,
            on_change=retriever.refresh,
        )
        await asyncio.to_thread(folder.mkdir, exist_ok=True)
        corpus = Corpus(retriever, db, project, ingester, folder, embeddings)
        await corpus.ingest(**FILES)
        await retriever.start()
        stack.push_async_callback(retriever.aclose)
        yield corpus


# Each test taking ``c`` runs on each backend, with each database it works with.
on_every_backend = pytest.mark.parametrize(
    ("backend", "database_url"),
    [(b, d) for b in BACKENDS for d in ("sqlite", "postgresql") if (b, d) not in SKIP],
    indirect=["database_url"],
)


@pytest.fixture(name="c")
async def corpus(backend: str, database_url: str, tmp_path: Path) -> AsyncIterator[Corpus]:
    async with open_corpus(backend, database_url, tmp_path / "files") as c:
        yield c


def name(p: Passage) -> str:
    return Path(p.source).name


def lexical(passage: Passage, query: str) -> bool:
    tokenize = Tokenizer()
    return bool(set(tokenize(query)) & set(tokenize(passage.heading + " " + passage.text)))


async def everything(retriever: Retriever, query: str) -> list[Passage]:
    return await retriever.search(query, k=1000)


def dense(c: Corpus) -> bool:
    return c.embeddings is not None


@on_every_backend
async def test_the_best_match_comes_first_and_every_match_has_a_query_term(c: Corpus) -> None:
    top = await c.retriever.search("apollo launch", k=3)
    assert name(top[0]) == "launch.md"
    garden = await c.retriever.search("gardening", k=5)
    assert name(garden[0]) == "garden.md"
    if not dense(c):
        assert name(top[1]) == "notes.md"
        for query in QUERIES:
            assert all(lexical(p, query) for p in await everything(c.retriever, query))
        assert [name(p) for p in garden] == ["garden.md"]


@on_every_backend
async def test_the_order_is_total_ties_by_chunk_id(c: Corpus) -> None:
    for query in QUERIES:
        ranked = await everything(c.retriever, query)
        assert ranked
        for a, b in itertools.pairwise(ranked):
            assert (a.score, -a.chunk_id) > (b.score, -b.chunk_id), query
        assert len({p.chunk_id for p in ranked}) == len(ranked)
    tie = await c.retriever.search("quarterly budget zeus", k=2)
    assert sorted(name(p) for p in tie) == ["budget-a.md", "budget-b.md"]
    assert tie[0].score == tie[1].score
    assert tie[0].chunk_id < tie[1].chunk_id


@on_every_backend
async def test_pages_are_slices_of_one_ranking(c: Corpus) -> None:
    for query in QUERIES:
        ranked = await everything(c.retriever, query)
        for offset in range(0, len(ranked) + 2):
            page = await c.retriever.search(query, k=3, offset=offset)
            assert page == ranked[offset : offset + 3]
        assert await c.retriever.search(query, k=len(ranked) + 5) == ranked


@on_every_backend
async def test_search_documents_is_search_filtered(c: Corpus) -> None:
    for query in QUERIES:
        ranked = await everything(c.retriever, query)
        ids = sorted({p.document_id for p in ranked})
        subsets = [ids, ids[:1], ids[1::2], ids[-2:], [*ids[:2], "unknown-document"]]
        for subset in subsets:
            for k in (1, 3, 100):
                expected = [p for p in ranked if p.document_id in subset][:k]
                got = await c.retriever.search_documents(query, document_ids=subset, k=k)
                assert got == expected, (query, subset, k)
        assert await c.retriever.search_documents(query, document_ids=[], k=5) == []


@on_every_backend
async def test_nothing_to_search_for(c: Corpus) -> None:
    for query in ("", "   ", "the of and"):
        assert await c.retriever.search(query, k=5) == []
    assert await c.retriever.search("apollo", k=0) == []
    if not dense(c):
        assert await c.retriever.search("zzzunknownword", k=5) == []


@on_every_backend
async def test_passages_carry_what_a_citation_needs(c: Corpus) -> None:
    (top,) = await c.retriever.search("checklist", k=1)
    assert top.title == "Launch"
    assert top.heading == "Launch"
    assert top.project_id == c.project.id
    assert top.source.endswith("launch.md") and Path(top.source).is_absolute()
    assert "checklist" in top.text
    part = await c.retriever.search("topic 7", k=1)
    assert part[0].heading == "Long > Part 7"


@on_every_backend
async def test_reingested_and_new_documents_are_searched(c: Corpus) -> None:
    await c.ingest(**{"launch.md": "# Launch\n\nThe launch moved to Jupiter.\n"})
    await c.ingest(**{"extra.md": "# Extra\n\nSaturn is a new word here.\n"})
    assert [name(p) for p in await c.retriever.search("saturn", k=5)][:1] == ["extra.md"]
    assert [name(p) for p in await c.retriever.search("jupiter", k=5)][:1] == ["launch.md"]
    if not dense(c):
        assert await c.retriever.search("checklist", k=5) == []


async def test_the_memory_index_follows_another_process(sqlite_url: str, tmp_path: Path) -> None:
    """Ingestion elsewhere (no ``on_change`` here) reaches the index by its poll."""
    async with open_corpus("memory", sqlite_url, tmp_path / "f", refresh_interval=0.05) as c:
        assert isinstance(c.retriever, MemoryRetriever)
        c.ingester._on_change = None  # as if `pmbot ingest` ran in another process
        rebuilds = c.retriever.rebuilds
        await c.ingest(**{"later.md": "# Later\n\nNeptune appears.\n"})
        for _ in range(100):
            if await c.retriever.search("neptune", k=1):
                break
            await asyncio.sleep(0.05)
        assert [name(p) for p in await c.retriever.search("neptune", k=1)] == ["later.md"]
        assert c.retriever.rebuilds == rebuilds + 1
        await asyncio.sleep(0.3)  # nothing changed: no rebuild
        assert c.retriever.rebuilds == rebuilds + 1
        assert not await c.retriever.refresh()


async def test_dense_vectors_find_what_shares_no_word(sqlite_url: str, tmp_path: Path) -> None:
    async with open_corpus("memory+dense", sqlite_url, tmp_path / "f") as c:
        assert c.embeddings is not None
        embedded = len(c.embeddings.inputs)
        top = await c.retriever.search("vehicle", k=3)  # "car" and "automobile" mean vehicle
        assert name(top[0]) == "cars.md"
        # Each chunk was embedded once; one request for the query, then its ranking is kept.
        requests = c.embeddings.requests
        await c.retriever.search("vehicle", k=3, offset=3)
        assert c.embeddings.requests == requests
        # A rebuild embeds only the new chunks.
        await c.ingest(**{"bus.md": "# Bus\n\nA bus is no automobile.\n"})
        assert len(c.embeddings.inputs) == embedded + 1 + 1  # the query, then bus.md's chunk


async def test_an_embeddings_outage_falls_back_to_bm25(sqlite_url: str, tmp_path: Path) -> None:
    async with open_corpus("memory+dense", sqlite_url, tmp_path / "f") as c:
        assert c.embeddings is not None
        c.embeddings.down = True
        ranked = await c.retriever.search("apollo launch", k=50)
        assert ranked and all(lexical(p, "apollo launch") for p in ranked)
        assert await c.retriever.search("vehicle", k=3) == []


async def test_vectors_missing_at_build_are_fetched_later(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_corpus("memory+dense", sqlite_url, tmp_path / "f") as c:
        assert c.embeddings is not None and isinstance(c.retriever, MemoryRetriever)
        c.embeddings.down = True
        await c.ingest(**{"fleet.md": "# Fleet 2\n\nAnother automobile.\n"})  # rebuilt: no vectors
        assert await c.retriever.search("vehicle", k=3) == []
        assert not await c.retriever.refresh()  # too early to try again
        monkeypatch.setattr(memory_module, "_DENSE_RETRY_SECONDS", 0.0)
        c.embeddings.down = False
        await c.ingest(**{"x.md": "# X\n\nnothing\n"})  # a rebuild with the endpoint back
        c.embeddings.down = True
        await c.ingest(**{"y.md": "# Y\n\nnothing either\n"})  # and down again
        c.embeddings.down = False
        assert await c.retriever.refresh()  # only the vectors are fetched
        assert name((await c.retriever.search("vehicle", k=3))[0]) in {"cars.md", "fleet.md"}


async def test_the_postgres_full_text_index_serves_the_backend_query(database_url: str) -> None:
    """Migration 0015's index has the expression the PostgreSQL backend ranks by, so the
    planner can use it instead of reading every chunk."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the full-text index exists on PostgreSQL only")
    from sqlalchemy import text

    from bot.knowledge.postgres import DOCUMENT_VECTOR
    from bot.storage.db import Database

    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:
            await conn.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(
                str(row[0])
                for row in await conn.execute(
                    text(
                        # A constant of the backend, not input: the expression under test.
                        f"EXPLAIN SELECT id FROM chunks WHERE {DOCUMENT_VECTOR} "  # noqa: S608
                        "@@ plainto_tsquery('english', 'launch')"
                    )
                )
            )
    finally:
        await db.dispose()
    assert "ix_chunks_fts" in plan, plan
