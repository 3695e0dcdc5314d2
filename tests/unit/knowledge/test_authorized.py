"""Exact authorized top-k: the same chunks, in the same order, as checking every document
for every viewer, filtering and ranking; whichever way (over-fetch or pre-filter) the
answer is found; warm repeats cost no remote call; failures fail closed."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz.cache import DecisionCache
from authz.embedded.model import parse_dsl
from authz.factory import AuthzConfig, open_authorizer
from authz.ports import (
    Authorizer,
    AuthzEvaluationError,
    AuthzUnavailable,
    Consistency,
    TupleKey,
)
from bot.knowledge.authorized import FgaAuthorizedRetriever, Strategy
from bot.knowledge.memory import ChunkRecord, MemoryRetriever
from bot.knowledge.ports import Passage
from bot.storage.db import Database
from tests.fakes.authz import CountingAuthorizer, MemoryAuthorizer, deep_teams

MODEL = parse_dsl((Path(__file__).parents[3] / "authz" / "model.fga").read_text())
VOCABULARY = ["launch", "budget", "risk", "vendor", "review", "apollo"]
STRATEGIES: list[Strategy] = ["auto", "overfetch", "prefilter"]


def T(user: str, relation: str, object: str) -> TupleKey:
    return TupleKey(user=user, relation=relation, object=object)


async def brute_force(
    authz: Authorizer, retriever: Retriever, query: str, viewers: Sequence[str], k: int
) -> list[Passage]:
    """Check every document for every viewer, keep the readable chunks, rank, take k."""
    everything = await retriever.search(query, k=10**9)
    documents = {r.document_id for r in retriever.records}
    readable = set()
    for document in sorted(documents):
        allowed = [
            await authz.check(
                v, "can_view", f"document:{document}", consistency=Consistency.HIGHER_CONSISTENCY
            )
            for v in viewers
        ]
        if all(allowed):
            readable.add(document)
    return [p for p in everything if p.document_id in readable][:k]


class Retriever(MemoryRetriever):
    """The in-process retriever over given records, with the list of every chunk."""

    def __init__(self) -> None:
        super().__init__(db=None)
        self.records: list[ChunkRecord] = []

    async def use(self, records: list[ChunkRecord]) -> None:
        self.records = records
        await self.load(records)


# ------------------------------------------------------------------------------------------
# The property: generated corpora, tuples, viewers and queries, on the embedded engine
# ------------------------------------------------------------------------------------------


@dataclass
class World:
    documents: list[tuple[int, list[str]]]  # (project number, chunk texts) per document
    projects: int
    roles: dict[tuple[int, int], str]  # (project, user) -> role
    direct: set[tuple[int, int]]  # (document, user): direct viewer
    blocked: set[tuple[int, int]]  # (document, user)
    team_docs: set[int]  # documents shared with team:T#member
    team_members: set[int]
    queries: list[str]
    viewer_sets: list[list[int]]
    k: int
    first_page: int
    tuples: list[TupleKey] = field(default_factory=list)


USERS = 4


@st.composite
def worlds(draw: st.DrawFn) -> World:
    projects = draw(st.integers(1, 4))
    chunk = st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=5).map(" ".join)
    documents = draw(
        st.lists(
            st.tuples(st.integers(0, projects - 1), st.lists(chunk, min_size=1, max_size=4)),
            min_size=1,
            max_size=14,
        )
    )
    pairs = st.tuples(st.integers(0, len(documents) - 1), st.integers(0, USERS - 1))
    roles = draw(
        st.dictionaries(
            st.tuples(st.integers(0, projects - 1), st.integers(0, USERS - 1)),
            st.sampled_from(["viewer", "editor", "owner"]),
            max_size=8,
        )
    )
    return World(
        documents=documents,
        projects=projects,
        roles=roles,
        direct=draw(st.sets(pairs, max_size=6)),
        blocked=draw(st.sets(pairs, max_size=4)),
        team_docs=draw(st.sets(st.integers(0, len(documents) - 1), max_size=3)),
        team_members=draw(st.sets(st.integers(0, USERS - 1), max_size=2)),
        queries=draw(
            st.lists(
                st.lists(st.sampled_from([*VOCABULARY, "absent"]), min_size=1, max_size=3).map(
                    " ".join
                ),
                min_size=1,
                max_size=3,
            )
        ),
        viewer_sets=draw(
            st.lists(
                st.lists(st.integers(0, USERS - 1), min_size=1, max_size=3, unique=True),
                min_size=1,
                max_size=3,
            )
        ),
        k=draw(st.integers(1, 6)),
        first_page=draw(st.integers(1, 4)),
    )


class Example:
    """Names one generated world apart from the others in the shared store."""

    counter = itertools.count()

    def __init__(self, world: World) -> None:
        n = next(self.counter)
        self.prefix = f"e{n}"
        w = world
        self.user = [f"user:{self.prefix}u{i}" for i in range(USERS)]
        self.document = [f"{self.prefix}d{i}" for i in range(len(w.documents))]
        project = [f"project:{self.prefix}p{i}" for i in range(w.projects)]
        team = f"team:{self.prefix}t"
        tuples = [
            T(project[p], "project", f"document:{self.document[d]}")
            for d, (p, _) in enumerate(w.documents)
        ]
        tuples += [T(self.user[u], role, project[p]) for (p, u), role in w.roles.items()]
        tuples += [T(self.user[u], "viewer", f"document:{self.document[d]}") for d, u in w.direct]
        tuples += [T(self.user[u], "blocked", f"document:{self.document[d]}") for d, u in w.blocked]
        tuples += [
            T(f"{team}#member", "viewer", f"document:{self.document[d]}") for d in w.team_docs
        ]
        tuples += [T(self.user[u], "member", team) for u in w.team_members]
        self.tuples = tuples
        chunk_id = itertools.count(1)
        self.records = [
            ChunkRecord(
                chunk_id=next(chunk_id),
                document_id=self.document[d],
                project_id=project[p],
                title=f"doc {d}",
                source=f"/docs/{d}.md",
                heading="",
                text=text,
                content_hash=f"{d}-{i}",
            )
            for d, (p, texts) in enumerate(w.documents)
            for i, text in enumerate(texts)
        ]


async def check_world(authz: DecisionCache, world: World) -> None:
    example = Example(world)
    await authz.write(example.tuples)
    retriever = Retriever()
    await retriever.use(example.records)
    for query in world.queries:
        for viewer_numbers in world.viewer_sets:
            viewers = [example.user[u] for u in viewer_numbers]
            expected = await brute_force(authz, retriever, query, viewers, world.k)
            for strategy in STRATEGIES:
                authz.invalidate()  # cold: the engine's own answers, not the brute force's
                authorized = FgaAuthorizedRetriever(
                    retriever=retriever,
                    authorizer=authz,
                    first_page=world.first_page,
                    strategy=strategy,
                )
                got = await authorized.search(query, viewers=viewers, k=world.k)
                assert got == expected, (strategy, query, viewers)


def test_authorized_top_k_is_brute_force_on_the_embedded_engine(sqlite_url: str) -> None:
    """For one viewer and for several, whatever way is taken."""
    with asyncio.Runner() as runner:
        db = Database(sqlite_url)
        opened = open_authorizer(AuthzConfig(), engine=db.engine)
        authz = runner.run(opened.__aenter__())
        try:

            @settings(
                max_examples=60,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(world=worlds())
            def run(world: World) -> None:
                runner.run(check_world(authz, world))

            run()
        finally:
            runner.run(opened.__aexit__(None, None, None))
            runner.run(db.dispose())


# ------------------------------------------------------------------------------------------
# The rule, the cache and failures, on a counted in-process engine
# ------------------------------------------------------------------------------------------


@dataclass
class Org:
    retriever: Retriever
    engine: CountingAuthorizer
    cache: DecisionCache
    readers: dict[str, str]  # share -> user

    def authorized(self, **options: object) -> FgaAuthorizedRetriever:
        return FgaAuthorizedRetriever(
            retriever=self.retriever,
            authorizer=self.cache,
            **options,  # type: ignore[arg-type]
        )


async def make_org(documents: int = 200, chunks: int = 5, seed: int = 3) -> Org:
    """``documents`` documents in 100 projects; ``user:p1`` reads 1 % of the projects,
    ``user:p10`` 10 %, ``user:p50`` half and ``user:p100`` all of them; every chunk has
    the word "alpha"."""
    rnd = random.Random(seed)
    projects = [f"project:p{i}" for i in range(100)]
    tuples = [T(projects[d % 100], "project", f"document:d{d}") for d in range(documents)]
    readers = {"1": "user:p1", "10": "user:p10", "50": "user:p50", "100": "user:p100"}
    for share, user in readers.items():
        tuples += [T(user, "viewer", p) for p in projects[: int(share)]]
    records = [
        ChunkRecord(
            chunk_id=d * chunks + c + 1,
            document_id=f"d{d}",
            project_id=projects[d % 100],
            title=f"doc {d}",
            source=f"/docs/{d}.md",
            heading="",
            text="alpha " + " ".join(rnd.choices(VOCABULARY, k=rnd.randint(1, 8))),
            content_hash=f"{d}-{c}",
        )
        for d in range(documents)
        for c in range(chunks)
    ]
    retriever = Retriever()
    await retriever.use(records)
    engine = CountingAuthorizer(MemoryAuthorizer(MODEL, tuples))
    return Org(retriever, engine, DecisionCache(engine, ttl=600), readers)


@pytest.mark.parametrize(
    ("share", "path", "most_cold_calls"),
    [
        ("1", "prefilter", 2),
        ("10", "prefilter", 2),
        ("50", "overfetch", 1),
        ("100", "overfetch", 1),
    ],
)
async def test_the_way_follows_the_readable_share_and_warm_repeats_are_free(
    share: str, path: str, most_cold_calls: int
) -> None:
    org = await make_org()
    authorized = org.authorized()
    user = org.readers[share]
    for query in ("alpha", "alpha launch", "budget risk"):
        org.cache.invalidate()
        remote = org.cache.stats()["remote_calls"]
        got = await authorized.search(query, viewers=[user], k=8)
        cold = org.cache.stats()["remote_calls"] - remote
        assert authorized.last_path == path, query
        assert 1 <= cold <= most_cold_calls, query
        remote = org.cache.stats()["remote_calls"]
        assert await authorized.search(query, viewers=[user], k=8) == got
        assert org.cache.stats()["remote_calls"] == remote, "a warm repeat calls the engine"
        assert got == await brute_force(org.cache, org.retriever, query, [user], 8)
        assert len(got) == 8 or query != "alpha"


async def test_viewers_who_read_little_are_pre_filtered_at_once_for_a_while() -> None:
    org = await make_org()
    now = [0.0]
    authorized = org.authorized(hint_ttl=60.0, clock=lambda: now[0])
    user = org.readers["1"]

    async def cold_calls(query: str) -> int:
        org.cache.invalidate()
        before = org.cache.stats()["remote_calls"]
        await authorized.search(query, viewers=[user], k=8)
        return org.cache.stats()["remote_calls"] - before

    # The first two queries read a first page (one batch), then list (one call)...
    assert [await cold_calls("alpha"), await cold_calls("alpha launch")] == [2, 2]
    # ... after which the listing comes first: one call.
    assert await cold_calls("budget") == 1
    assert authorized.last_path == "prefilter"
    now[0] += 61.0  # the hint ends: a first page again, which renews it
    assert await cold_calls("risk") == 2
    assert await cold_calls("vendor") == 1
    # A reader of everything never gets the hint.
    for query in ("alpha", "alpha launch", "budget", "risk"):
        await authorized.search(query, viewers=[org.readers["100"]], k=8)
        assert authorized.last_path == "overfetch"


async def test_several_viewers_see_only_what_all_of_them_may_view() -> None:
    org = await make_org()
    authorized = org.authorized()
    viewers = [org.readers["10"], org.readers["1"]]
    got = await authorized.search("alpha", viewers=viewers, k=8)
    assert got == await brute_force(org.cache, org.retriever, "alpha", viewers, 8)
    assert {p.project_id for p in got} == {"project:p0"}
    assert await authorized.search("alpha", viewers=[*viewers, "user:nobody"], k=8) == []
    assert await authorized.search("alpha", viewers=[], k=8) == []
    assert await authorized.search("alpha", viewers=viewers, k=0) == []


async def test_fewer_than_k_only_when_fewer_are_readable() -> None:
    org = await make_org()
    for strategy in STRATEGIES:
        authorized = org.authorized(strategy=strategy)
        got = await authorized.search("alpha", viewers=[org.readers["1"]], k=50)
        # 1 project of 100 has 2 of the 200 documents: 10 chunks.
        assert len(got) == 10
        assert got == await brute_force(org.cache, org.retriever, "alpha", [org.readers["1"]], 50)


async def test_a_listing_that_may_be_truncated_is_not_used() -> None:
    org = await make_org()
    authorized = org.authorized(list_objects_limit=2, strategy="prefilter")
    user = org.readers["1"]  # may view 2 documents: a listing of 2 may have been cut
    got = await authorized.search("alpha", viewers=[user], k=8)
    assert authorized.last_path == "overfetch"
    assert got == await brute_force(org.cache, org.retriever, "alpha", [user], 8)


async def test_an_unavailable_engine_raises_never_fewer_results() -> None:
    org = await make_org()
    org.engine.down = True
    for strategy in STRATEGIES:
        for share in ("1", "100"):
            authorized = org.authorized(strategy=strategy)
            with pytest.raises(AuthzUnavailable):
                await authorized.search("alpha", viewers=[org.readers[share]], k=8)


async def test_a_document_the_engine_cannot_decide_is_denied() -> None:
    org = await make_org(documents=20)
    # d0 is viewable only through 30 nested teams (beyond the resolution limit: an error),
    # d1 directly.
    tuples = [
        *deep_teams(30, "user:deep"),
        T("team:0#member", "viewer", "document:d0"),
        T("user:deep", "viewer", "document:d1"),
    ]
    await org.engine.inner.write(tuples)
    with pytest.raises(AuthzEvaluationError):
        await org.engine.inner.check("user:deep", "can_view", "document:d0")
    for strategy in ("overfetch", "auto"):
        authorized = org.authorized(strategy=strategy)
        got = await authorized.search("alpha", viewers=["user:deep"], k=100)
        assert {p.document_id for p in got} == {"d1"}
