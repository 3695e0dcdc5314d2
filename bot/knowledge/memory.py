"""The in-process retriever (the embedded default): BM25 with ``bm25s``, plus dense vectors
from an embeddings endpoint when one is configured, fused by reciprocal rank fusion.

**Ranking.** A chunk matches a query when it contains a query term (BM25 score > 0) or,
with dense vectors, when the cosine similarity of its vector with the query's is at least
``min_similarity``. Without dense vectors the matches are ordered by BM25 score; with them
by ``sum(1 / (rrf_k + rank))`` over the two lists (each ranked over the whole corpus,
equal scores sharing a rank), which is the score reported. Ties are broken by chunk id
(lower first), so the order is total and repeatable, and
:meth:`MemoryRetriever.search_documents` is exactly :meth:`MemoryRetriever.search`
restricted to the given documents: the ranks and scores of a chunk never depend on what
else is asked for. Term statistics are those of the whole corpus. A query's ranking is
kept for a minute (up to 256 queries, dropped when the index changes), so the pages an
authorized search asks for one after another cost one ranking; if the query's vector
cannot be had, that query is ranked by BM25 alone.

**Keeping in sync with the chunks table.** The index is an immutable snapshot of the
``chunks`` table (joined with ``documents``), built when the retriever starts. It is
rebuilt when the table's *fingerprint* changes: the number of documents, their latest
``updated_at``, the number of chunks and the highest chunk id (ingestion updates a
document's ``updated_at`` whenever it replaces its chunks; a deletion lowers a count). The
fingerprint, one small query, is read every ``refresh_interval`` seconds by a background
task (``RETRIEVAL_REFRESH_SECONDS``), and :meth:`MemoryRetriever.refresh` can be called
at once after an ingestion in this process (the ingester's ``on_change``). A rebuild runs
in a thread while the previous snapshot keeps serving, then replaces it in one
assignment. Chunk vectors are kept by chunk content hash across rebuilds, so only new
chunks are sent to the embeddings endpoint; if that fails the index is built without
vectors and a poll a minute later tries again (the lexical index is kept). Ingestion by
``pmbot ingest`` (another process) is therefore searchable here within
``refresh_interval`` seconds plus the rebuild time (a few seconds for 50,000 chunks,
spent in a thread, but tokenizing holds the interpreter lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import bm25s
import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select

from bot.knowledge.embeddings import Embedder, EmbeddingsUnavailable, Vectors
from bot.knowledge.ports import Passage
from bot.knowledge.text import Tokenizer, indexed_text
from bot.projects.models import Chunk, Document
from bot.storage.db import Database

log = logging.getLogger(__name__)

Rows = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float64]

RRF_K: Final = 60
_RANKING_CACHE_SIZE: Final = 256
_RANKING_TTL: Final = 60.0
_DENSE_RETRY_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """One row of ``chunks`` with the document fields a passage carries."""

    chunk_id: int
    document_id: str
    project_id: str
    title: str
    source: str
    heading: str
    text: str
    content_hash: str


Fingerprint = tuple[int, datetime | None, int, int | None]


async def read_fingerprint(db: Database) -> Fingerprint:
    """What changes whenever chunks are added, replaced or deleted (module docstring)."""
    statement = select(
        select(func.count()).select_from(Document).scalar_subquery(),
        select(func.max(Document.updated_at)).scalar_subquery(),
        select(func.count()).select_from(Chunk).scalar_subquery(),
        select(func.max(Chunk.id)).scalar_subquery(),
    )
    async with db.engine.connect() as conn:
        row = (await conn.execute(statement)).one()
    return (int(row[0]), row[1], int(row[2]), row[3])


async def read_records(db: Database) -> list[ChunkRecord]:
    """Every chunk with its document's fields, by chunk id."""
    statement = (
        select(
            Chunk.id,
            Chunk.document_id,
            Document.project_id,
            Document.title,
            Document.source,
            Chunk.heading,
            Chunk.text,
            Chunk.content_hash,
        )
        .join(Document, Document.id == Chunk.document_id)
        .order_by(Chunk.id)
    )
    async with db.engine.connect() as conn:
        result = await conn.execute(statement)
        return [ChunkRecord(*row) for row in result]


class _Snapshot:
    """An immutable index over ``records`` (sorted by chunk id)."""

    def __init__(
        self,
        records: list[ChunkRecord],
        lexical: bm25s.BM25 | None,
        vectors: Vectors | None,
        fingerprint: Fingerprint | None,
    ) -> None:
        self.records = records
        self.lexical = lexical
        self.vectors = vectors
        self.fingerprint = fingerprint
        self.doc_numbers: dict[str, int] = {}
        doc_of_row = np.empty(len(records), dtype=np.int32)
        for row, record in enumerate(records):
            doc_of_row[row] = self.doc_numbers.setdefault(record.document_id, len(self.doc_numbers))
        self.doc_of_row = doc_of_row
        self._masks: OrderedDict[tuple[str, ...], npt.NDArray[np.bool_] | None] = OrderedDict()

    def document_mask(self, document_ids: Sequence[str]) -> npt.NDArray[np.bool_] | None:
        """Which documents (by number) are among ``document_ids``; None if none is. The
        last 64 are kept: an authorized search asks for the same readable set again and
        again, and building the mask of a large one costs more than the ranking."""
        key = document_ids if isinstance(document_ids, tuple) else tuple(document_ids)
        if key in self._masks:
            self._masks.move_to_end(key)
            return self._masks[key]
        numbers = [self.doc_numbers[d] for d in key if d in self.doc_numbers]
        mask: npt.NDArray[np.bool_] | None = None
        if numbers:
            mask = np.zeros(len(self.doc_numbers), dtype=bool)
            mask[numbers] = True
        self._masks[key] = mask
        if len(self._masks) > 64:
            self._masks.popitem(last=False)
        return mask


def _build_lexical(records: Sequence[ChunkRecord]) -> bm25s.BM25 | None:
    tokenize = Tokenizer()
    corpus = [tokenize(indexed_text(r.heading, r.text)) for r in records]
    if not any(corpus):
        return None
    lexical = bm25s.BM25()
    lexical.index(corpus, show_progress=False)
    return lexical


@dataclass(frozen=True, slots=True)
class _Ranking:
    rows: Rows  # matching rows, best first
    scores: Scores  # their scores, aligned with rows


def _ordered(rows: Rows, scores: npt.NDArray[Any]) -> Rows:
    """``rows`` (ascending, so ascending chunk ids) by descending score, ties kept in row
    order."""
    return rows[np.argsort(-scores[rows], kind="stable")]


def _competition_ranks(descending: npt.NDArray[Any]) -> Scores:
    """1-based ranks of scores sorted best first, equal scores sharing the best rank
    ("1224"): identical chunks get identical fused scores."""
    negated = -np.asarray(descending, dtype=np.float64)
    return np.searchsorted(negated, negated, side="left").astype(np.float64) + 1.0


class MemoryRetriever:
    """The in-process :class:`~bot.knowledge.ports.Retriever` (see the module docstring).

    ``db`` is where the chunks are read from (``None`` for an index given its records with
    :meth:`load`). Use :meth:`start` and :meth:`aclose`, or ``async with``.
    """

    def __init__(
        self,
        *,
        db: Database | None,
        embedder: Embedder | None = None,
        refresh_interval: float = 5.0,
        min_similarity: float = 0.2,
        rrf_k: int = RRF_K,
    ) -> None:
        self._db = db
        self._embedder = embedder
        self._interval = refresh_interval
        self._min_similarity = min_similarity
        self._rrf_k = rrf_k
        self._snapshot = _Snapshot([], None, None, None)
        self._vectors: dict[str, npt.NDArray[np.float32]] = {}
        self._dense_incomplete = False
        self._dense_retry_at = 0.0
        self._rankings: OrderedDict[str, tuple[float, _Ranking]] = OrderedDict()
        self._tokenize = Tokenizer()
        self._lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self.rebuilds = 0

    async def __aenter__(self) -> MemoryRetriever:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def size(self) -> int:
        """Chunks in the current snapshot."""
        return len(self._snapshot.records)

    def forget_rankings(self) -> None:
        """Drops the kept query rankings (benchmarks time rankings from scratch)."""
        self._rankings.clear()

    async def start(self) -> None:
        """Loads the index from the database and starts the background poll."""
        if self._db is not None:
            await self.refresh(force=True)
            if self._interval > 0:
                self._poller = asyncio.create_task(self._poll(), name="knowledge-index-poll")

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except Exception:
                log.warning("the knowledge index could not be refreshed", exc_info=True)

    async def refresh(self, *, force: bool = False) -> bool:
        """Rebuilds the index if the chunks table changed (or ``force``); True if it did."""
        if self._db is None:
            return False
        async with self._lock:
            fingerprint = await read_fingerprint(self._db)
            current = self._snapshot
            if not force and fingerprint == current.fingerprint:
                if not self._dense_incomplete or time.monotonic() < self._dense_retry_at:
                    return False
                # Only the vectors are missing: the lexical index stays.
                vectors = await self._dense(current.records)
                if vectors is None:
                    return False
                self._snapshot = _Snapshot(current.records, current.lexical, vectors, fingerprint)
                self._rankings.clear()
                self.rebuilds += 1
                return True
            # Read after the fingerprint: a change in between shows at the next poll.
            records = await read_records(self._db)
            await self._install(records, fingerprint)
            return True

    async def load(self, records: Sequence[ChunkRecord]) -> None:
        """Indexes ``records`` (instead of the database's chunks)."""
        async with self._lock:
            await self._install(sorted(records, key=lambda r: r.chunk_id), None)

    async def _install(self, records: list[ChunkRecord], fingerprint: Fingerprint | None) -> None:
        started = time.perf_counter()
        lexical = await asyncio.to_thread(_build_lexical, records)
        vectors = await self._dense(records)
        self._snapshot = _Snapshot(records, lexical, vectors, fingerprint)
        self._rankings.clear()
        self.rebuilds += 1
        log.info(
            "knowledge index: %d chunks in %d documents (%s) built in %.2f s",
            len(records),
            len(self._snapshot.doc_numbers),
            "BM25 + dense" if vectors is not None else "BM25",
            time.perf_counter() - started,
        )

    async def _dense(self, records: Sequence[ChunkRecord]) -> Vectors | None:
        self._dense_incomplete = False
        if self._embedder is None or not records:
            return None
        missing: dict[str, str] = {}
        for r in records:
            if r.content_hash not in self._vectors:
                missing.setdefault(r.content_hash, indexed_text(r.heading, r.text))
        if missing:
            try:
                vectors = await self._embedder.embed(list(missing.values()))
            except EmbeddingsUnavailable as exc:
                log.warning("knowledge index built without dense vectors: %s", exc)
                self._dense_incomplete = True
                self._dense_retry_at = time.monotonic() + _DENSE_RETRY_SECONDS
                return None
            self._vectors.update(zip(missing, vectors, strict=True))
        wanted = {r.content_hash for r in records}
        for stale in [h for h in self._vectors if h not in wanted]:
            del self._vectors[stale]
        return np.stack([self._vectors[r.content_hash] for r in records])

    # -- ranking --------------------------------------------------------------------------

    async def _ranking(self, query: str) -> tuple[_Snapshot, _Ranking]:
        snapshot = self._snapshot
        now = time.monotonic()
        cached = self._rankings.get(query)
        if cached is not None and cached[0] > now:
            self._rankings.move_to_end(query)
            return snapshot, cached[1]
        query_vector: npt.NDArray[np.float32] | None = None
        if self._embedder is not None and snapshot.vectors is not None and query.strip():
            try:
                query_vector = (await self._embedder.embed([query]))[0]
            except EmbeddingsUnavailable as exc:
                log.warning("query ranked by BM25 alone: %s", exc)
        if snapshot is not self._snapshot:  # replaced while the query was embedded
            return await self._ranking(query)
        ranking = self._rank(snapshot, query, query_vector)
        self._rankings[query] = (now + _RANKING_TTL, ranking)
        if len(self._rankings) > _RANKING_CACHE_SIZE:
            self._rankings.popitem(last=False)
        return snapshot, ranking

    def _rank(
        self,
        snapshot: _Snapshot,
        query: str,
        query_vector: npt.NDArray[np.float32] | None,
    ) -> _Ranking:
        lists: list[tuple[Rows, npt.NDArray[Any]]] = []
        n = len(snapshot.records)
        tokens = self._tokenize(query)
        if snapshot.lexical is not None and tokens:
            ids = snapshot.lexical.get_tokens_ids(tokens)
            if ids:
                scores = np.asarray(snapshot.lexical.get_scores_from_ids(ids))
                rows = np.flatnonzero(scores > 0).astype(np.int64)
                lists.append((_ordered(rows, scores), scores))
            else:
                lists.append((np.empty(0, dtype=np.int64), np.zeros(n)))
        if query_vector is None or snapshot.vectors is None:
            if not lists:
                return _Ranking(np.empty(0, dtype=np.int64), np.empty(0))
            order, scores = lists[0]
            return _Ranking(order, scores[order].astype(np.float64))
        similarities = snapshot.vectors @ query_vector
        rows = np.flatnonzero(similarities >= self._min_similarity).astype(np.int64)
        lists.append((_ordered(rows, similarities), similarities))
        fused = np.zeros(n, dtype=np.float64)
        member = np.zeros(n, dtype=bool)
        for order, scores in lists:
            fused[order] += 1.0 / (self._rrf_k + _competition_ranks(scores[order]))
            member[order] = True
        order = _ordered(np.flatnonzero(member).astype(np.int64), fused)
        return _Ranking(order, fused[order])

    @staticmethod
    def _passages(snapshot: _Snapshot, rows: Rows, scores: Scores) -> list[Passage]:
        out: list[Passage] = []
        for row, score in zip(rows.tolist(), scores.tolist(), strict=True):
            r = snapshot.records[row]
            out.append(
                Passage(
                    chunk_id=r.chunk_id,
                    document_id=r.document_id,
                    project_id=r.project_id,
                    title=r.title,
                    source=r.source,
                    heading=r.heading,
                    text=r.text,
                    score=float(score),
                )
            )
        return out

    async def search(self, query: str, *, k: int, offset: int = 0) -> list[Passage]:
        if k <= 0 or offset < 0:
            return []
        snapshot, ranking = await self._ranking(query)
        end = offset + k
        return self._passages(snapshot, ranking.rows[offset:end], ranking.scores[offset:end])

    async def search_documents(
        self, query: str, *, document_ids: Sequence[str], k: int
    ) -> list[Passage]:
        if k <= 0:
            return []
        snapshot, ranking = await self._ranking(query)
        wanted = snapshot.document_mask(document_ids)
        if wanted is None:
            return []
        # The ranking is read in growing blocks until k of the documents' chunks are found:
        # a reader of much finds them in the first block, a reader of little reads further.
        picked: list[Rows] = []
        found = 0
        start, block = 0, 1024
        total = len(ranking.rows)
        while start < total and found < k:
            rows = ranking.rows[start : start + block]
            hits = np.flatnonzero(wanted[snapshot.doc_of_row[rows]]) + start
            picked.append(hits)
            found += len(hits)
            start += block
            block *= 4
        positions = np.concatenate(picked)[:k] if picked else np.empty(0, dtype=np.int64)
        return self._passages(snapshot, ranking.rows[positions], ranking.scores[positions])
