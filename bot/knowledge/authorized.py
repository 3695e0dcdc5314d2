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
over-fetched: for people who may read a fair share it holds the ``k`` chunks, and it is the
estimate otherwise. If it did not yield ``k`` readable chunks and the ranking goes on, the
readable share ``p`` is estimated from the documents checked so far
(``(readable + 0.5) / (checked + 1)``). Below ``prefilter_share`` (default 0.25) the rest of
the query is pre-filtered: over-fetching would have to examine about ``missing / p``
more documents (batch checks when cold, cache look-ups when warm), while the listing is
small (about ``p`` of the corpus) and cached. At or above it over-fetching goes on, the next
page sized by the estimate, and the estimate is looked at again after each page. A listing
that reaches ``list_objects_limit`` (OpenFGA caps ListObjects at 1,000 objects by default)
may be truncated: it is not used, and over-fetching goes on to the end.

Whether a query needed the listing is also averaged per set of viewers (each new query
counting for half). While that average is at least 3/4 (the last two queries, say, needed
it), the viewers' next queries are pre-filtered at once, without the first page, for
``hint_ttl`` seconds (default 60; then a first page is read again, which renews or ends
it): people who may read little skip a batch check that would only have confirmed it. The
average only picks the way; the listing still comes from the authorization engine
(through the cache), so it never grants anything, and a listing grown past
``list_objects_limit`` sends the query back to over-fetching.

A warm repeat (same query, viewers and permissions within the cache's TTL) takes the same
path and is answered from the cache: no remote call.

The ranking is taken to stay the same during one query: should the index change between
two pages of it (a refresh after an ingestion), a chunk seen twice is returned once and
every chunk returned is still checked, but the top ``k`` is then that of a mixture.

**Failing closed.** An item the engine could not decide is asked once more with ``check``:
if the engine is unavailable that raises :class:`~authz.ports.AuthzUnavailable` and the
search raises it (never a silently shorter list); if the engine answers with an
evaluation error for that document (e.g. the depth limit), the document is denied.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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


@dataclass(slots=True)
class _Estimate:
    needed_listing: float  # running average of "the query needed the listing" (1 or 0)
    samples: int = 1
    prefilter_until: float = 0.0


def _share(decided: dict[str, bool]) -> float:
    """The readable share of the documents checked, pulled towards 1/2 when few were."""
    return (sum(decided.values()) + 0.5) / (len(decided) + 1)


@functools.lru_cache(maxsize=100_000)
def _view_request(user: str, document_id: str) -> CheckRequest:
    """``user`` may view the document (requests are immutable: one per pair is kept)."""
    return CheckRequest(user=user, relation=VIEW, object=document_object(document_id))


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
        prefilter_share: float = 0.25,
        list_objects_limit: int | None = None,
        strategy: Strategy = "auto",
        hint_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._retriever = retriever
        self._authz = authorizer
        self._first_page = max(1, first_page)
        self._max_page = max(self._first_page, max_page)
        self._prefilter_share = prefilter_share
        self._list_limit = list_objects_limit
        self._strategy = strategy
        # Listings turned into sets of document ids, by listing (see _readable).
        self._listings: OrderedDict[tuple[str, ...], frozenset[str]] = OrderedDict()
        self._sequences: OrderedDict[frozenset[str], tuple[str, ...]] = OrderedDict()
        # Viewers (sorted) -> their estimated readable share, and whether to pre-filter.
        self._estimates: OrderedDict[tuple[str, ...], _Estimate] = OrderedDict()
        self._hint_ttl = hint_ttl
        self._clock = clock
        self.last_path = ""  # "overfetch" or "prefilter": how the last search was answered

    async def search(self, query: str, *, viewers: Sequence[str], k: int) -> list[Passage]:
        users = list(dict.fromkeys(viewers))
        if k <= 0 or not users:
            # Nobody to answer for: nothing is readable (fail closed).
            return []
        key = tuple(sorted(users))
        estimate = self._estimates.get(key)
        hinted = estimate is not None and estimate.prefilter_until > self._clock()
        if self._strategy == "prefilter" or (self._strategy == "auto" and hinted):
            readable = await self._readable(users)
            if readable is not None:
                return await self._prefiltered(query, readable, k)
            if estimate is not None:
                estimate.prefilter_until = 0.0
        passages, listed = await self._overfetch(query, users, k)
        if self._strategy == "auto":
            self._observe(key, listed)
        return passages

    def _observe(self, key: tuple[str, ...], needed_listing: bool) -> None:
        """Averages whether queries needed the listing (module docstring: the rule)."""
        value = 1.0 if needed_listing else 0.0
        estimate = self._estimates.get(key)
        if estimate is None:
            estimate = self._estimates[key] = _Estimate(value)
            if len(self._estimates) > 10_000:
                self._estimates.popitem(last=False)
        else:
            estimate.needed_listing = (estimate.needed_listing + value) / 2
            estimate.samples += 1
            self._estimates.move_to_end(key)
        if estimate.samples >= 2 and estimate.needed_listing >= 0.75 and self._hint_ttl > 0:
            estimate.prefilter_until = self._clock() + self._hint_ttl

    async def _prefiltered(self, query: str, readable: frozenset[str], k: int) -> list[Passage]:
        self.last_path = "prefilter"
        if not readable:
            return []
        # The same tuple for the same set: a retriever may keep what it derives from it.
        ids = self._sequences.get(readable)
        if ids is None:
            ids = self._sequences[readable] = tuple(sorted(readable))
            if len(self._sequences) > 64:
                self._sequences.popitem(last=False)
        return await self._retriever.search_documents(query, document_ids=ids, k=k)

    async def _overfetch(self, query: str, users: list[str], k: int) -> tuple[list[Passage], bool]:
        """The answer, and whether it needed the listing (pre-filtered after all)."""
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
                    return found, False
            if len(candidates) < page:
                return found, False  # the ranking is exhausted
            share = _share(decided)
            if may_prefilter and share < self._prefilter_share:
                may_prefilter = False
                readable = await self._readable(users)
                if readable is not None:
                    return await self._prefiltered(query, readable, k), True
            documents_needed = (k - len(found)) / share
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
        requests = [_view_request(user, document) for document in new for user in users]
        results = await self._authz.batch_check(requests)
        if len(results) != len(requests):
            raise AuthzUnavailable(f"batch check answered {len(results)} of {len(requests)}")
        if len(users) == 1:
            for document, result in zip(new, results, strict=True):
                decided[document] = (
                    result.allowed if result.error is None else await self._recheck(result)
                )
            return
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

    async def _readable(self, users: list[str]) -> frozenset[str] | None:
        """The documents every user may view, or None when a listing may be incomplete or
        could not be evaluated (then over-fetching decides instead)."""
        answers = await asyncio.gather(
            *(self._authz.list_objects(user, VIEW, DOCUMENT_TYPE) for user in users),
            return_exceptions=True,
        )
        readable: frozenset[str] | None = None
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
            ids = self._document_ids(answer)
            readable = ids if readable is None else readable & ids
        return readable

    def _document_ids(self, listing: list[str]) -> frozenset[str]:
        """The document ids of a listing; the last 64 listings' are kept (a warm repeat
        gets the same listing from the decision cache: decoding it again would cost more
        than the ranking)."""
        key = tuple(listing)
        ids = self._listings.get(key)
        if ids is None:
            prefix = DOCUMENT_TYPE + ":"
            ids = frozenset(from_fga_id(o[len(prefix) :]) for o in listing if o.startswith(prefix))
            self._listings[key] = ids
            if len(self._listings) > 64:
                self._listings.popitem(last=False)
        else:
            self._listings.move_to_end(key)
        return ids
