"""The decision cache: TTL, coalescing, batching, invalidation, errors, consistency."""

from __future__ import annotations

import asyncio
import time

import pytest

from authz.cache import DecisionCache
from authz.embedded.engine import EmbeddedEngine
from authz.embedded.model import AuthorizationModel
from authz.ports import (
    Authorizer,
    AuthzEvaluationError,
    AuthzUnavailable,
    CheckRequest,
    Consistency,
)
from tests.fakes.authz import (
    CountingAuthorizer,
    FakeClock,
    MemoryAuthorizer,
    T,
    deep_teams,
)

HIGHER = Consistency.HIGHER_CONSISTENCY


async def _until_sent(backend: CountingAuthorizer, count: int) -> None:
    """Lets the loop run until ``count`` batch checks have reached the backend."""
    for _ in range(100):
        if len(backend.batch_sizes) >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError("the batch was never sent")


@pytest.fixture
def backend(model: AuthorizationModel) -> CountingAuthorizer:
    return CountingAuthorizer(
        MemoryAuthorizer(
            model,
            [
                T("user:anne", "owner", "document:1"),
                T("user:*", "viewer", "folder:public"),
                *deep_teams(30),
            ],
        )
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(backend: CountingAuthorizer, clock: FakeClock) -> DecisionCache:
    return DecisionCache(backend, ttl=10.0, clock=clock)


def test_is_an_authorizer(cache: DecisionCache) -> None:
    assert isinstance(cache, Authorizer)


async def test_hit_miss_and_ttl(
    cache: DecisionCache, backend: CountingAuthorizer, clock: FakeClock
) -> None:
    assert await cache.check("user:anne", "owner", "document:1")
    assert await cache.check("user:anne", "owner", "document:1")
    assert not await cache.check("user:bob", "owner", "document:1")
    assert not await cache.check("user:bob", "owner", "document:1")
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["remote_calls"]) == (2, 2, 2)
    assert backend.calls == ["batch_check", "batch_check"]

    clock.advance(9.9)
    assert await cache.check("user:anne", "owner", "document:1")
    assert cache.stats()["remote_calls"] == 2
    clock.advance(0.2)  # 10.1 s after the answer: expired
    assert await cache.check("user:anne", "owner", "document:1")
    assert cache.stats()["remote_calls"] == 3
    assert cache.stats()["misses"] == 3


async def test_contextual_tuples_are_part_of_the_key(cache: DecisionCache) -> None:
    ctx = (T("user:bob", "owner", "document:1"),)
    assert await cache.check("user:bob", "owner", "document:1", contextual_tuples=ctx)
    assert not await cache.check("user:bob", "owner", "document:1")
    assert cache.stats()["remote_calls"] == 2


async def test_concurrent_identical_checks_are_coalesced(
    cache: DecisionCache, backend: CountingAuthorizer
) -> None:
    backend.gate = asyncio.Event()
    first = asyncio.gather(*(cache.check("user:anne", "owner", "document:1") for _ in range(5)))
    await _until_sent(backend, 1)  # the batch is on its way, held by the gate
    later = asyncio.gather(*(cache.check("user:anne", "owner", "document:1") for _ in range(5)))
    await asyncio.sleep(0)
    backend.gate.set()
    assert await first == [True] * 5
    assert await later == [True] * 5
    assert backend.batch_sizes == [1]
    stats = cache.stats()
    assert stats["remote_calls"] == 1
    assert stats["coalesced"] == 9


async def test_misses_are_batched_fifty_per_round_trip(
    cache: DecisionCache, backend: CountingAuthorizer
) -> None:
    users = [f"user:u{i}" for i in range(120)]
    answers = await asyncio.gather(*(cache.check(u, "viewer", "folder:public") for u in users))
    assert answers == [True] * 120
    assert backend.calls == ["batch_check"] * 3
    assert sorted(backend.batch_sizes) == [20, 50, 50]
    assert cache.stats()["remote_calls"] == 3

    # batch_check through the cache: hits are answered locally, misses batched likewise.
    requests = [CheckRequest(u, "viewer", "folder:public", correlation_id=u) for u in users]
    requests += [CheckRequest(f"user:v{i}", "owner", "document:1") for i in range(60)]
    results = await cache.batch_check(requests)
    assert [r.request for r in results] == requests
    assert [r.allowed for r in results] == [True] * 120 + [False] * 60
    assert sorted(backend.batch_sizes[3:]) == [10, 50]
    assert cache.stats()["hits"] == 120


async def test_invalidated_by_writes_and_deletes(
    cache: DecisionCache, backend: CountingAuthorizer
) -> None:
    assert not await cache.check("user:bob", "viewer", "document:1")
    assert await cache.list_objects("user:bob", "viewer", "document") == []
    await cache.write([T("user:bob", "owner", "document:1")])
    assert await cache.check("user:bob", "viewer", "document:1")
    assert await cache.list_objects("user:bob", "viewer", "document") == ["document:1"]
    await cache.delete([T("user:bob", "owner", "document:1")])
    assert not await cache.check("user:bob", "viewer", "document:1")
    assert cache.stats()["invalidations"] == 2
    assert cache.stats()["hits"] == 0


async def test_answer_in_flight_during_a_write_is_not_cached(
    cache: DecisionCache, backend: CountingAuthorizer
) -> None:
    backend.gate = asyncio.Event()
    before = asyncio.ensure_future(cache.check("user:bob", "owner", "document:2"))
    await _until_sent(backend, 1)  # decided (no), delivery held by the gate
    await cache.write([T("user:bob", "owner", "document:2")])
    backend.gate.set()
    assert not await before  # asked before the write: the old answer is fine for it...
    assert await cache.check("user:bob", "owner", "document:2")  # ...but was not cached
    assert backend.batch_sizes == [1, 1]


async def test_request_after_a_write_does_not_join_one_sent_before(
    cache: DecisionCache, backend: CountingAuthorizer
) -> None:
    backend.gate = asyncio.Event()
    before = asyncio.ensure_future(cache.check("user:bob", "owner", "document:3"))
    await _until_sent(backend, 1)
    await cache.write([T("user:bob", "owner", "document:3")])
    after = asyncio.ensure_future(cache.check("user:bob", "owner", "document:3"))
    await _until_sent(backend, 2)  # a new round trip, not the one in flight
    backend.gate.set()
    assert not await before
    assert await after
    assert cache.stats()["coalesced"] == 0


async def test_errors_are_denials_and_not_cached(
    cache: DecisionCache, backend: CountingAuthorizer
) -> None:
    for _ in range(2):
        with pytest.raises(AuthzEvaluationError):
            await cache.check("user:deep", "member", "team:0")  # beyond the depth limit
    [item] = await cache.batch_check([CheckRequest("user:deep", "member", "team:0")])
    assert not item.allowed and item.denied_by_error
    stats = cache.stats()
    assert stats["remote_calls"] == 3 and stats["errors"] == 3 and stats["entries"] == 0

    backend.down = True
    with pytest.raises(AuthzUnavailable):
        await cache.check("user:anne", "owner", "document:1")
    results = await cache.batch_check(
        [CheckRequest("user:anne", "owner", "document:1"), CheckRequest("user:b", "owner", "d:1")]
    )
    assert [(r.allowed, r.denied_by_error) for r in results] == [(False, True), (False, True)]
    with pytest.raises(AuthzUnavailable):
        await cache.list_objects("user:anne", "owner", "document")
    backend.down = False
    assert await cache.check("user:anne", "owner", "document:1")
    assert await cache.list_objects("user:anne", "owner", "document") == ["document:1"]


async def test_higher_consistency_bypasses_the_cache(
    cache: DecisionCache, backend: CountingAuthorizer
) -> None:
    assert await cache.check("user:anne", "owner", "document:1")
    assert await cache.list_users("document:1", "owner", ["user"]) == ["user:anne"]
    # The permission changes elsewhere (another replica, another process).
    await backend.inner.delete([T("user:anne", "owner", "document:1")])
    assert await cache.check("user:anne", "owner", "document:1")  # cached, within TTL
    assert await cache.list_users("document:1", "owner", ["user"]) == ["user:anne"]
    assert not await cache.check("user:anne", "owner", "document:1", consistency=HIGHER)
    assert await cache.list_users("document:1", "owner", ["user"], consistency=HIGHER) == []
    assert backend.consistencies[-2:] == [HIGHER, HIGHER]
    # The fresh answers replaced the stale ones.
    assert not await cache.check("user:anne", "owner", "document:1")
    assert await cache.list_users("document:1", "owner", ["user"]) == []
    [fresh] = await cache.batch_check(
        [CheckRequest("user:anne", "owner", "document:1")], consistency=HIGHER
    )
    assert not fresh.allowed and fresh.error is None
    assert cache.stats()["bypassed"] == 3


async def test_lists_are_cached_and_coalesced(
    cache: DecisionCache, backend: CountingAuthorizer, clock: FakeClock
) -> None:
    answers = await asyncio.gather(
        *(cache.list_objects("user:anne", "owner", "document") for _ in range(4))
    )
    assert answers == [["document:1"]] * 4
    assert await cache.list_objects("user:anne", "owner", "document") == ["document:1"]
    assert backend.calls == ["list_objects"]
    clock.advance(11)
    assert await cache.list_objects("user:anne", "owner", "document") == ["document:1"]
    assert backend.calls == ["list_objects", "list_objects"]
    # A caller mutating its answer does not corrupt the cache.
    mine = await cache.list_objects("user:anne", "owner", "document")
    mine.append("document:evil")
    assert await cache.list_objects("user:anne", "owner", "document") == ["document:1"]


async def test_cancelled_waiter_does_not_cancel_the_others(
    cache: DecisionCache, backend: CountingAuthorizer
) -> None:
    backend.gate = asyncio.Event()
    impatient = asyncio.ensure_future(cache.check("user:anne", "owner", "document:1"))
    patient = asyncio.ensure_future(cache.check("user:anne", "owner", "document:1"))
    await _until_sent(backend, 1)
    impatient.cancel()
    backend.gate.set()
    assert await patient
    assert impatient.cancelled()


async def test_entries_are_bounded(backend: CountingAuthorizer, clock: FakeClock) -> None:
    cache = DecisionCache(backend, max_entries=10, clock=clock)
    for i in range(25):
        await cache.check(f"user:u{i}", "viewer", "folder:public")
    stats = cache.stats()
    assert stats["entries"] <= 10 and stats["evictions"] >= 15
    assert await cache.check("user:u24", "viewer", "folder:public")  # the newest is kept
    assert cache.stats()["hits"] == 1


async def test_a_hit_is_fast(cache: DecisionCache) -> None:
    assert await cache.check("user:anne", "owner", "document:1")
    samples: list[int] = []
    for _ in range(20_000):
        start = time.perf_counter_ns()
        await cache.check("user:anne", "owner", "document:1")
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    p99_us = samples[int(len(samples) * 0.99)] / 1000
    assert p99_us < 50, f"p99 of a cache hit: {p99_us:.1f} µs"


async def test_over_the_embedded_engine(
    engine: EmbeddedEngine, store_id: str, clock: FakeClock
) -> None:
    """Through the real engine and database: a write through the cache is seen at once."""
    cache = DecisionCache(engine.authorizer(store_id), clock=clock)
    assert not await cache.check("user:anne", "can_view", "document:1")
    await cache.write([T("user:anne", "owner", "document:1")])
    assert await cache.check("user:anne", "can_view", "document:1")
    await cache.write([T("user:anne", "blocked", "document:1")])
    assert not await cache.check("user:anne", "can_view", "document:1")
    results = await cache.batch_check(
        [CheckRequest("user:anne", "owner", "document:1"), CheckRequest("user:x", "bad", "doc:1")]
    )
    assert results[0].allowed and results[0].error is None
    assert not results[1].allowed and results[1].denied_by_error
    page = await cache.read(object="document:1")
    assert set(page.tuples) == {
        T("user:anne", "owner", "document:1"),
        T("user:anne", "blocked", "document:1"),
    }
