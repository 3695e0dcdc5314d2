"""Shrinking a mismatch: fewer tuples (delta debugging), then fewer types and relations and
simpler definitions, as long as the real engine accepts the model and the two engines
still disagree (every candidate is asked of the real engine again).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from authz.ports import TupleKey
from authz.testing.cases import CheckQuery, Query, Scenario
from authz.testing.engines import (
    EmbeddedUnderTest,
    RealEngine,
    RealRun,
    fga_test_document,
    query_key,
)
from authz.testing.model_spec import (
    Direct,
    Exclusion,
    Intersection,
    ModelSpec,
    Rewrite,
    TypeDef,
    Union,
    walk,
)
from authz.testing.report import Mismatch


def _single_query_scenario(name: str, tuples: tuple[TupleKey, ...], query: Query) -> Scenario:
    if isinstance(query, CheckQuery):
        return Scenario(name, tuples, (query,))
    return Scenario(name, tuples, (), (query,))


def _embedded_verdict(embedded: EmbeddedUnderTest, dsl: str) -> str | None:
    try:
        embedded.parse(dsl)
    except Exception as exc:
        return f"embedded parser: {exc}"
    return None


def _probe(
    base: Mismatch,
    candidates: Sequence[tuple[ModelSpec, tuple[TupleKey, ...]]],
    real: RealEngine,
    embedded: EmbeddedUnderTest,
    *,
    validate: bool,
) -> list[Mismatch | None]:
    """For each (model, tuples) candidate: the mismatch on ``base.query`` if it persists.

    All candidates go through one ``fga model test`` run (after one parallel validation when
    the models changed).
    """
    verdicts: list[str | None] = [None] * len(candidates)
    if validate:
        # Models the embedded parser refuses are skipped without asking the real engine: a
        # shortcut that can only make the shrunk case less small, never wrong.
        verdicts = [_embedded_verdict(embedded, spec.dsl()) for spec, _ in candidates]
        todo = [i for i, v in enumerate(verdicts) if v is None]
        for i, verdict in zip(
            todo, real.validate([candidates[i][0].dsl() for i in todo]), strict=True
        ):
            verdicts[i] = verdict
    documents: dict[str, dict[str, Any]] = {}
    for i, ((spec, tuples), verdict) in enumerate(zip(candidates, verdicts, strict=True)):
        if verdict is None:
            scenario = _single_query_scenario(f"c{i}", tuples, base.query)
            documents[f"c{i:04d}"] = fga_test_document(spec.dsl(), [scenario])
    run = real.run_documents(documents) if documents else RealRun({}, {}, {}, 0.0)
    found: list[Mismatch | None] = []
    for i, (spec, tuples) in enumerate(candidates):
        key = query_key(f"c{i}", base.query)
        real_outcome = run.outcomes.get(key)
        if f"c{i:04d}" not in documents or real_outcome is None:
            found.append(None)
            continue
        scenario = _single_query_scenario(f"c{i}", tuples, base.query)
        mine = embedded.answers(spec.dsl(), scenario, [base.query])[base.query]
        if mine == real_outcome:
            found.append(None)
            continue
        found.append(
            Mismatch(
                base.seed,
                base.model_index,
                base.scenario,
                spec,
                tuples,
                base.query,
                real_outcome,
                mine,
                run.details.get(key, ""),
                base.original_tuple_count,
                base.original_type_count,
            )
        )
    return found


def _shrink_tuples(
    current: Mismatch, real: RealEngine, embedded: EmbeddedUnderTest, deadline: float
) -> Mismatch:
    """Delta debugging over the tuples: drop chunks while the engines still disagree."""
    granularity = 2
    while current.tuples and time.perf_counter() < deadline:
        tuples = list(current.tuples)
        size = max(1, len(tuples) // granularity)
        chunks = [tuples[i : i + size] for i in range(0, len(tuples), size)]
        candidates = [
            (current.spec, tuple(t for t in tuples if t not in set(chunk))) for chunk in chunks
        ]
        smaller = next(
            (m for m in _probe(current, candidates, real, embedded, validate=False) if m), None
        )
        if smaller is not None:
            current = smaller
            granularity = max(2, granularity - 1)
        elif size == 1:
            break
        else:
            granularity = min(len(tuples), granularity * 2)
    return current


@dataclass(frozen=True, slots=True)
class _Reduction:
    """One way to make a model smaller."""

    drop_type: str | None = None
    relation: tuple[str, str] | None = None
    #: With ``relation``: the new definition, or None to drop the relation.
    rewrite: Rewrite | None = None

    def apply(self, spec: ModelSpec) -> ModelSpec:
        types = []
        for type_def in spec.types:
            if type_def.name == self.drop_type:
                continue
            relations: list[tuple[str, Rewrite]] = []
            for name, rw in type_def.relations:
                if (type_def.name, name) != self.relation:
                    relations.append((name, rw))
                elif self.rewrite is not None:
                    relations.append((name, self.rewrite))
            types.append(TypeDef(type_def.name, tuple(relations)))
        return ModelSpec(tuple(types))


def _simpler(rewrite: Rewrite) -> Iterator[Rewrite]:
    """Every rewrite one step simpler: an operand instead of an operator, one operand or one
    type restriction less, recursively."""
    match rewrite:
        case Direct(restrictions) if len(restrictions) > 1:
            for r in restrictions:
                yield Direct(tuple(x for x in restrictions if x != r))
        case Union(children) | Intersection(children):
            yield from children
            rebuild = type(rewrite)
            if len(children) > 2:
                for i in range(len(children)):
                    yield rebuild(children[:i] + children[i + 1 :])
            for i, child in enumerate(children):
                for smaller in _simpler(child):
                    yield rebuild((*children[:i], smaller, *children[i + 1 :]))
        case Exclusion(base, subtract):
            yield base
            for smaller in _simpler(base):
                yield Exclusion(smaller, subtract)
            for smaller in _simpler(subtract):
                yield Exclusion(base, smaller)
        case _:
            pass


def _reductions(spec: ModelSpec, query: Query) -> list[list[_Reduction]]:
    """Ways to make the model smaller, cheapest to try first: drop a type, drop a relation,
    simplify a definition."""
    keep_types = _query_types(query)
    target_type = query.object.split(":", 1)[0] if isinstance(query, CheckQuery) else query.type
    drop_types = [_Reduction(drop_type=t.name) for t in spec.types if t.name not in keep_types]
    drop_relations: list[_Reduction] = []
    simplify: list[_Reduction] = []
    for type_def in spec.types:
        for name, rw in type_def.relations:
            where = (type_def.name, name)
            if where != (target_type, query.relation):
                drop_relations.append(_Reduction(relation=where))
            if not isinstance(rw, Direct):
                direct = tuple(
                    r for node in walk(rw) if isinstance(node, Direct) for r in node.restrictions
                )
                simplify.append(_Reduction(relation=where, rewrite=Direct(direct or ("user",))))
            simplify.extend(_Reduction(relation=where, rewrite=smaller) for smaller in _simpler(rw))
    return [drop_types, drop_relations, simplify]


def _fits(spec: ModelSpec, t: TupleKey) -> bool:
    """Whether a tuple is still allowed by the (reduced) model's type restrictions."""
    rewrite = spec.relation(t.object.split(":", 1)[0], t.relation)
    if rewrite is None:
        return False
    user_type, _, rest = t.user.partition(":")
    for node in walk(rewrite):
        if not isinstance(node, Direct):
            continue
        for restriction in node.restrictions:
            if restriction.endswith(":*"):
                if t.user == restriction:
                    return True
            elif "#" in restriction:
                if "#" in rest and restriction == f"{user_type}#{rest.split('#', 1)[1]}":
                    return True
            elif restriction == user_type and "#" not in rest and rest != "*":
                return True
    return False


def _query_types(query: Query) -> set[str]:
    target = query.object.split(":", 1)[0] if isinstance(query, CheckQuery) else query.type
    return {"user", target, query.user.split(":", 1)[0]}


def _shrink_model(
    current: Mismatch, real: RealEngine, embedded: EmbeddedUnderTest, deadline: float
) -> Mismatch:
    """Drop types and relations and simplify definitions while the model stays valid and the
    engines still disagree."""
    progress = True
    while progress and time.perf_counter() < deadline:
        progress = False
        for options in _reductions(current.spec, current.query):
            if not options or time.perf_counter() >= deadline:
                continue
            specs = [option.apply(current.spec) for option in options]
            candidates = [
                (spec, tuple(t for t in current.tuples if _fits(spec, t))) for spec in specs
            ]
            results = _probe(current, candidates, real, embedded, validate=True)
            working = [options[i] for i, m in enumerate(results) if m is not None]
            if not working:
                continue
            first = next(m for m in results if m is not None)
            together = None
            if len(working) > 1:
                # Every working reduction at once: they are often independent.
                spec = current.spec
                for option in working:
                    spec = option.apply(spec)
                together = _probe(
                    current,
                    [(spec, tuple(t for t in current.tuples if _fits(spec, t)))],
                    real,
                    embedded,
                    validate=True,
                )[0]
            current = together or first
            progress = True
            break  # start again from the cheapest kind of reduction
    return current


def shrink(
    mismatch: Mismatch, real: RealEngine, embedded: EmbeddedUnderTest, *, deadline: float
) -> Mismatch:
    """A smaller case (fewer tuples, types and relations) on which the engines still disagree."""
    current = _shrink_tuples(mismatch, real, embedded, deadline)
    current = _shrink_model(current, real, embedded, deadline)
    return _shrink_tuples(current, real, embedded, deadline)
