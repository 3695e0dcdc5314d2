"""The ports of knowledge retrieval.

``Retriever`` ranks chunks for a query with no notion of who asks (a search backend:
in-process BM25 + optional dense vectors, or PostgreSQL). ``AuthorizedRetriever`` is what
everything else uses: the exact top-k among the chunks that *every* given FGA user may view
(one user for a private answer; every human in a channel for a public one). "Exact" means
the same k chunks, in the same order, as filtering all chunks by FGA and then ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with what a citation needs."""

    chunk_id: int
    document_id: str
    project_id: str
    title: str
    source: str
    heading: str
    text: str
    score: float


class Retriever(Protocol):
    async def search(self, query: str, *, k: int, offset: int = 0) -> list[Passage]:
        """The chunks ranked ``offset`` to ``offset + k`` for ``query`` (best first; ties
        broken by ``chunk_id`` so the order is total and repeatable)."""
        ...

    async def search_documents(
        self, query: str, *, document_ids: Sequence[str], k: int
    ) -> list[Passage]:
        """The best ``k`` chunks for ``query`` among the given documents only (same order
        as :meth:`search` restricted to them)."""
        ...


class AuthorizedRetriever(Protocol):
    async def search(self, query: str, *, viewers: Sequence[str], k: int) -> list[Passage]:
        """The exact top ``k`` chunks that every FGA user in ``viewers`` may view
        (``document:<id>#can_view``); fewer only when fewer match. Raises
        ``AuthzUnavailable`` when authorization cannot decide (fail closed)."""
        ...
