"""The PostgreSQL retriever: full-text search over the ``chunks`` table, for corpora too big
to hold in every replica's memory.

A chunk matches a query when its ``to_tsvector('english', heading || ' ' || text)`` has any
of the query's lexemes (the words of ``plainto_tsquery('english', query)`` joined with
``|``, so any word matches, as with BM25); matches are ordered by ``ts_rank`` (higher
first), then by chunk id. :meth:`PostgresRetriever.search_documents` runs the same query
with a ``document_id = ANY(...)`` condition, so its order is :meth:`search`'s restricted
to those documents.

Speed at scale needs the GIN index on that exact expression
(:data:`FULL_TEXT_INDEX`); without it every query reads every chunk. Dense vectors need
the ``vector`` extension (pgvector): :meth:`PostgresRetriever.start` looks for it in
``pg_available_extensions`` and, where it is missing, ranks by full-text search alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from sqlalchemy import String, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY

from bot.knowledge.ports import Passage
from bot.knowledge.text import Tokenizer
from bot.storage.db import Database

log = logging.getLogger(__name__)

DOCUMENT_VECTOR: Final = "to_tsvector('english'::regconfig, chunks.heading || ' ' || chunks.text)"
FULL_TEXT_INDEX: Final = (
    "CREATE INDEX ix_chunks_fts ON chunks USING gin "
    "(to_tsvector('english'::regconfig, heading || ' ' || text))"
)

# Built from constants only; every value is a bound parameter.
_QUERY: Final = f"""
WITH q AS (
    SELECT CAST(replace(CAST(plainto_tsquery('english'::regconfig, :query) AS text),
                        ' & ', ' | ') AS tsquery) AS terms
)
SELECT chunks.id, chunks.document_id, documents.project_id, documents.title,
       documents.source, chunks.heading, chunks.text,
       ts_rank({DOCUMENT_VECTOR}, q.terms) AS score
FROM chunks JOIN documents ON documents.id = chunks.document_id, q
WHERE {DOCUMENT_VECTOR} @@ q.terms {{restrict}}
ORDER BY score DESC, chunks.id
LIMIT :limit OFFSET :offset
"""  # noqa: S608

_SEARCH: Final = text(_QUERY.format(restrict=""))
_SEARCH_DOCUMENTS: Final = text(
    _QUERY.format(restrict="AND chunks.document_id = ANY(:documents)")
).bindparams(bindparam("documents", type_=ARRAY(String())))


class PostgresRetriever:
    """The PostgreSQL :class:`~bot.knowledge.ports.Retriever` (see the module docstring)."""

    def __init__(self, *, db: Database) -> None:
        if db.dialect != "postgresql":
            raise ValueError("RETRIEVAL_BACKEND=postgres needs a PostgreSQL DATABASE_URL")
        self._db = db
        self._tokenize = Tokenizer()
        self.vector_available = False

    async def start(self) -> None:
        async with self._db.engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
            )
        self.vector_available = bool(found)
        if not self.vector_available:
            log.info("pgvector is not installed: PostgreSQL retrieval uses full-text search alone")
        else:
            log.info(
                "pgvector is available, but chunk vectors are not stored in PostgreSQL yet: "
                "retrieval uses full-text search alone"
            )

    async def aclose(self) -> None:
        return None

    async def refresh(self, *, force: bool = False) -> bool:
        """Nothing to do: every query reads the table."""
        return False

    def _searchable(self, query: str) -> bool:
        # Only stop words (or no words): PostgreSQL would match nothing, with a NOTICE.
        return bool(self._tokenize(query))

    async def _run(self, statement: object, params: dict[str, object]) -> list[Passage]:
        async with self._db.engine.connect() as conn:
            result = await conn.execute(statement, params)  # type: ignore[call-overload]
            return [
                Passage(
                    chunk_id=int(row[0]),
                    document_id=row[1],
                    project_id=row[2],
                    title=row[3],
                    source=row[4],
                    heading=row[5],
                    text=row[6],
                    score=float(row[7]),
                )
                for row in result
            ]

    async def search(self, query: str, *, k: int, offset: int = 0) -> list[Passage]:
        if k <= 0 or offset < 0 or not self._searchable(query):
            return []
        return await self._run(_SEARCH, {"query": query, "limit": k, "offset": offset})

    async def search_documents(
        self, query: str, *, document_ids: Sequence[str], k: int
    ) -> list[Passage]:
        if k <= 0 or not document_ids or not self._searchable(query):
            return []
        return await self._run(
            _SEARCH_DOCUMENTS,
            {"query": query, "limit": k, "offset": 0, "documents": list(document_ids)},
        )
