"""The differential's cases: queries, scenarios (tuples and queries) over one generated
model, batches of them, what a query would cost the real engine (queries whose resolution
would explode are left out) and which schema features and data shapes a batch exercises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from authz.ports import TupleKey
from authz.testing.model_spec import (
    Computed,
    Direct,
    Exclusion,
    FromTupleset,
    Intersection,
    ModelSpec,
    Union,
    walk,
)

#: OpenFGA's default resolution depth limit; chains are generated on both sides of it.
DEPTH_LIMIT = 25
MAX_TUPLES_PER_SCENARIO = 90


@dataclass(frozen=True, slots=True)
class CheckQuery:
    user: str
    relation: str
    object: str

    def __str__(self) -> str:
        return f"check(user={self.user}, relation={self.relation}, object={self.object})"


@dataclass(frozen=True, slots=True)
class ListObjectsQuery:
    user: str
    relation: str
    type: str

    def __str__(self) -> str:
        return f"list_objects(user={self.user}, relation={self.relation}, type={self.type})"


Query = CheckQuery | ListObjectsQuery


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    tuples: tuple[TupleKey, ...]
    checks: tuple[CheckQuery, ...]
    list_objects: tuple[ListObjectsQuery, ...] = ()
    #: Length of the longest generated chain (0 when the scenario has none).
    chain_length: int = 0


@dataclass(frozen=True, slots=True)
class ModelCase:
    """One generated model (candidate ``index`` of ``seed``) and its scenarios."""

    seed: int
    index: int
    spec: ModelSpec
    scenarios: tuple[Scenario, ...]

    @property
    def dsl(self) -> str:
        return self.spec.dsl()

    @property
    def check_count(self) -> int:
        return sum(len(s.checks) for s in self.scenarios)

    @property
    def list_objects_count(self) -> int:
        return sum(len(s.list_objects) for s in self.scenarios)


@dataclass(frozen=True, slots=True)
class RejectedModel:
    """A candidate the real engine refused; the embedded parser must refuse it too."""

    seed: int
    index: int
    dsl: str
    reason: str


@dataclass(slots=True)
class Batch:
    seed: int
    cases: list[ModelCase] = field(default_factory=list)
    rejected: list[RejectedModel] = field(default_factory=list)
    #: The first candidate index not looked at yet.
    next_index: int = 0

    @property
    def check_count(self) -> int:
        return sum(c.check_count for c in self.cases)

    @property
    def list_objects_count(self) -> int:
        return sum(c.list_objects_count for c in self.cases)


class ResolutionCost:
    """How many rewrite steps a naive check walks: an estimate of the real engine's work.

    The real engine evaluates every branch of a rewrite without sharing results between
    branches, so a relation that recurses twice per level of a chain (``viewer from parent``
    twice, through two relations) costs 2^depth. Such queries would run for hours; the
    generator leaves them out (the same ones for both engines).

    :meth:`steps` first counts depth-bounded paths with memoisation (an upper bound, cheap);
    only when that exceeds ``limit`` does it walk the paths, stopping at a repeated
    ``object#relation`` on the current path as the engine's cycle detection does, and giving
    up once ``limit`` steps are spent.
    """

    def __init__(self, spec: ModelSpec, tuples: Sequence[TupleKey], limit: int) -> None:
        self.spec = spec
        self.limit = limit
        self.index: dict[tuple[str, str], list[str]] = {}
        for t in tuples:
            self.index.setdefault((t.object, t.relation), []).append(t.user)
        self._memo: dict[tuple[str, str, int], int] = {}
        self._edge_cache: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
        self._walked = 0

    def steps(self, relation: str, obj: str) -> int:
        """Steps spent on ``check(?, relation, obj)``, capped just above ``limit``."""
        bound = self._bound(relation, obj, 0)
        if bound <= self.limit:
            return bound
        self._walked = 0
        with contextlib.suppress(_CostExceeded):
            self._walk(relation, obj, 0, set())
        return self._walked

    def _edges(self, relation: str, obj: str) -> list[tuple[str, str, int]]:
        """``(relation, object, depth increment)`` of every sub-check of ``obj#relation``."""
        key = (relation, obj)
        cached = self._edge_cache.get(key)
        if cached is not None:
            return cached
        edges: list[tuple[str, str, int]] = []
        rewrite = self.spec.relation(obj.split(":", 1)[0], relation)
        for part in walk(rewrite) if rewrite is not None else ():
            match part:
                case Direct():
                    for user in self.index.get((obj, relation), ()):
                        if "#" in user:
                            user_obj, user_rel = user.split("#", 1)
                            edges.append((user_rel, user_obj, 1))
                case Computed(target):
                    edges.append((target, obj, 0))
                case FromTupleset(target, tupleset):
                    edges.extend((target, user, 1) for user in self.index.get((obj, tupleset), ()))
                case _:
                    pass
        self._edge_cache[key] = edges
        return edges

    def _bound(self, relation: str, obj: str, depth: int) -> int:
        key = (relation, obj, depth)
        cached = self._memo.get(key)
        if cached is not None:
            return cached
        self._memo[key] = self.limit + 1  # a definition cycle (rejected models) is unbounded
        total = 1
        if depth <= DEPTH_LIMIT:
            for target, target_obj, step in self._edges(relation, obj):
                total += self._bound(target, target_obj, depth + step)
                if total > self.limit:
                    total = self.limit + 1
                    break
        self._memo[key] = total
        return total

    def _walk(self, relation: str, obj: str, depth: int, path: set[tuple[str, str]]) -> None:
        self._walked += 1
        if self._walked > self.limit:
            raise _CostExceeded
        key = (relation, obj)
        if depth > DEPTH_LIMIT or key in path:
            return
        path.add(key)
        for target, target_obj, step in self._edges(relation, obj):
            self._walk(target, target_obj, depth + step, path)
        path.discard(key)


class _CostExceeded(Exception):
    pass


#: Step budget per query (see :class:`ResolutionCost`); the real engine answers these in ms.
QUERY_COST_LIMIT = 600


def affordable(spec: ModelSpec, scenario: Scenario, limit: int = QUERY_COST_LIMIT) -> Scenario:
    """``scenario`` without the queries whose resolution would explode (same for both engines)."""
    cost = ResolutionCost(spec, scenario.tuples, limit)
    checks = tuple(q for q in scenario.checks if cost.steps(q.relation, q.object) <= limit)
    objects_by_type: dict[str, set[str]] = {}
    for t in scenario.tuples:
        objects_by_type.setdefault(t.object.split(":", 1)[0], set()).add(t.object)
    list_objects = tuple(
        q
        for q in scenario.list_objects
        if sum(cost.steps(q.relation, o) for o in sorted(objects_by_type.get(q.type, ()))) <= limit
    )
    return Scenario(scenario.name, scenario.tuples, checks, list_objects, scenario.chain_length)


def _has_cycle(edges: dict[str, set[str]]) -> bool:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str) -> bool:
        state[node] = 1
        for nxt in edges.get(node, ()):
            mark = state.get(nxt)
            if mark == 1 or (mark is None and visit(nxt)):
                return True
        state[node] = 2
        return False

    return any(state.get(n) is None and visit(n) for n in list(edges))


def data_has_cycle(tuples: Sequence[TupleKey]) -> bool:
    """Whether following usersets and parents (object-typed users) from an object can lead
    back to it."""
    edges: dict[str, set[str]] = {}
    for t in tuples:
        user_obj = t.user.split("#", 1)[0]
        if not user_obj.startswith("user:") and not user_obj.endswith(":*"):
            edges.setdefault(t.object, set()).add(user_obj)
    return _has_cycle(edges)


def batch_features(cases: Sequence[ModelCase]) -> set[str]:
    """Which schema features and data shapes the cases exercise."""
    found: set[str] = set()
    for case in cases:
        for type_def in case.spec.types:
            for _, rewrite in type_def.relations:
                for node in walk(rewrite):
                    match node:
                        case Direct(restrictions):
                            found.add("direct")
                            if any(r.endswith(":*") for r in restrictions):
                                found.add("wildcard")
                            if any("#" in r for r in restrictions):
                                found.add("userset")
                        case Computed():
                            found.add("computed")
                        case FromTupleset():
                            found.add("tuple_to_userset")
                        case Union():
                            found.add("union")
                        case Intersection():
                            found.add("intersection")
                        case Exclusion():
                            found.add("exclusion")
                    if isinstance(node, Union | Intersection | Exclusion) and any(
                        isinstance(child, Union | Intersection | Exclusion)
                        for child in walk(node)
                        if child is not node
                    ):
                        found.add("nested_operators")
        for scenario in case.scenarios:
            if any(t.user.endswith(":*") for t in scenario.tuples):
                found.add("wildcard_tuple")
            if data_has_cycle(scenario.tuples):
                found.add("data_cycle")
            if scenario.chain_length > DEPTH_LIMIT:
                found.add("deeper_than_limit")
            if scenario.list_objects:
                found.add("list_objects")
            if any("#" in q.user for q in scenario.checks):
                found.add("userset_query")
            if any(q.user.endswith(":*") for q in scenario.checks):
                found.add("wildcard_query")
    return found
