"""Exact authorized top-k: the :class:`~bot.knowledge.ports.AuthorizedRetriever` over any
:class:`~bot.knowledge.ports.Retriever` and the authorization port (the decision cache).

The answer is the first ``k`` chunks of the retriever's ranking whose document every viewer
may view (``document:D#can_view``): exactly what checking every document for every viewer,
filtering and ranking would give, and never fewer than ``min(k, readable matches)``. Two
ways to get it, chosen per query by the size of the readable set:

* **over-fetch**: walk the ranking page by page (``search(offset=...)``) and check each new
  candidate document for every viewer (``batch_check`` through the decision cache: one
  item per document and viewer, however many of its chunks are candidates), until ``k``
  readable chunks or the end of the ranking. Good when the viewers may read much.
* **pre-filter**: list what each viewer may view (``list_objects``, cached by the decision
  cache for its TTL and forgotten on writes), intersect, and rank only those documents
  (``search_documents``). Good when the viewers may read little.

**The rule.** The first page (the best ``max(4k, first_page)`` chunks) is always
over-fetched: it settles most queries of people who may read a fair share. If it did not
yield ``k`` readable chunks and the ranking goes on, the readable share ``p`` is estimated
from the documents checked so far (``(readable + 0.5) / (checked + 1)``): finding the
``m`` missing chunks by over-fetching should take about ``m / p`` more documents, i.e.
``m / p * viewers / 50`` more batch round trips. When that exceeds ``prefilter_ratio``
(default 4) round trips per viewer (listing takes one call per viewer, each dearer than a
batch), the rest of the query is pre-filtered. A listing that reaches ``list_objects_limit``
(OpenFGA caps ListObjects at 1,000 objects by default) may be truncated: it is not used,
and over-fetching goes on, each next page sized by the same estimate.

A warm repeat (same query, viewers and permissions within the cache's TTL) takes the same
path and is answered from the cache: no remote call.

**Failing closed.** An item the engine could not decide is asked once more with ``check``:
if the engine is unavailable that raises :class:`~authz.ports.AuthzUnavailable` and the
search raises it (never a silently shorter list); if the engine answers with an
evaluation error for that document (e.g. the depth limit), the document is denied.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Sequence
from typing import Final, Literal

from authz.ids import from_fga_id
from authz.ports import (
    Authorizer,
    AuthzError,
    AuthzUnavailable,
    BatchItemResult,
    CheckRequest,
)
from bot.knowledge.ingest import document_object
from bot.knowledge.ports import Passage, Retriever

log = logging.getLogger(__name__)

Strategy = Literal["auto", "overfetch", "prefilter"]

VIEW: Final = "can_view"
DOCUMENT_TYPE: Final = "document"
BATCH_ITEMS: Final = 50  # items per BatchCheck round trip (the decision cache's batches)


class FgaAuthorizedRetriever:
    """See the module docstring. ``strategy`` forces one way (for tests and benchmarks);
    ``max_page`` bounds the chunks asked for at once."""

    def __init__(
        self,
        *,
        retriever: Retriever,
        authorizer: Authorizer,
        first_page: int = 32,
        max_page: int = 1000,
        prefilter_ratio: float = 4.0,
        list_objects_limit: int | None = None,
        strategy: Strategy = "auto",
    ) -> None:
        self._retriever = retriever
        self._authz = authorizer
        self._first_page = max(1, first_page)
        self._max_page = max(self._first_page, max_page)
        self._prefilter_ratio = prefilter_ratio
        self._list_limit = list_objects_limit
        self._strategy = strategy
        self.last_path = ""  # "overfetch" or "prefilter": how the last search was answered

    async def search(self, query: str, *, viewers: Sequence[str], k: int) -> list[Passage]:
        users = list(dict.fromkeys(viewers))
        if k <= 0 or not users:
            # Nobody to answer for: nothing is readable (fail closed).
            return []
        if self._strategy == "prefilter":
            readable = await self._readable(users)
            if readable is not None:
                self.last_path = "prefilter"
                return await self._retriever.search_documents(
                    query, document_ids=sorted(readable), k=k
                )
        return await self._overfetch(query, users, k)

    async def _overfetch(self, query: str, users: list[str], k: int) -> list[Passage]:
        self.last_path = "overfetch"
        decided: dict[str, bool] = {}
        seen: set[int] = set()
        found: list[Passage] = []
        offset = 0
        page = max(4 * k, self._first_page)
        may_prefilter = self._strategy == "auto"
        while True:
            candidates = await self._retriever.search(query, k=page, offset=offset)
            offset += len(candidates)
            await self._decide(users, (c.document_id for c in candidates), decided)
            for candidate in candidates:
                if candidate.chunk_id in seen or not decided[candidate.document_id]:
                    continue
                seen.add(candidate.chunk_id)
                found.append(candidate)
                if len(found) == k:
                    return found
            if len(candidates) < page:
                return found  # the ranking is exhausted
            missing = k - len(found)
            share = (sum(decided.values()) + 0.5) / (len(decided) + 1)
            documents_needed = missing / share
            if may_prefilter:
                may_prefilter = False
                round_trips = documents_needed * len(users) / BATCH_ITEMS
                if round_trips > self._prefilter_ratio * len(users):
                    readable = await self._readable(users)
                    if readable is not None:
                        self.last_path = "prefilter"
                        return await self._retriever.search_documents(
                            query, document_ids=sorted(readable), k=k
                        )
            chunks_per_document = offset / max(1, len(decided))
            wanted = math.ceil(documents_needed * chunks_per_document * 1.25)
            page = min(self._max_page, max(self._first_page, wanted))

    async def _decide(
        self, users: list[str], documents: Iterable[str], decided: dict[str, bool]
    ) -> None:
        """Adds to ``decided`` whether every user may view each new document."""
        new = [d for d in dict.fromkeys(documents) if d not in decided]
        if not new:
            return
        requests = [
            CheckRequest(user=user, relation=VIEW, object=document_object(document))
            for document in new
            for user in users
        ]
        results = await self._authz.batch_check(requests)
        if len(results) != len(requests):
            raise AuthzUnavailable(f"batch check answered {len(results)} of {len(requests)}")
        verdict = dict.fromkeys(new, True)
        for document, result in zip((d for d in new for _ in users), results, strict=True):
            if not verdict[document]:
                continue
            allowed = result.allowed if result.error is None else await self._recheck(result)
            if not allowed:
                verdict[document] = False
        decided.update(verdict)

    async def _recheck(self, result: BatchItemResult) -> bool:
        """An item the engine could not decide: asked alone. Raises if the engine is
        unavailable; an evaluation error denies."""
        request = result.request
        try:
            return await self._authz.check(request.user, request.relation, request.object)
        except AuthzUnavailable:
            raise
        except AuthzError as exc:
            log.warning("document denied: authorization could not decide (%s)", exc)
            return False

    async def _readable(self, users: list[str]) -> set[str] | None:
        """The documents every user may view, or None when a listing may be incomplete or
        could not be evaluated (then over-fetching decides instead)."""
        answers = await asyncio.gather(
            *(self._authz.list_objects(user, VIEW, DOCUMENT_TYPE) for user in users),
            return_exceptions=True,
        )
        readable: set[str] | None = None
        for answer in answers:
            if isinstance(answer, AuthzUnavailable):
                raise answer
            if isinstance(answer, AuthzError):
                log.warning("listing readable documents failed (%s): over-fetching", answer)
                return None
            if isinstance(answer, BaseException):
                raise answer
            if self._list_limit is not None and len(answer) >= self._list_limit:
                return None
            prefix = DOCUMENT_TYPE + ":"
            ids = {from_fga_id(o[len(prefix) :]) for o in answer if o.startswith(prefix)}
            readable = ids if readable is None else readable & ids
        return readable
