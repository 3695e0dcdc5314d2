"""The differential's seeded generator: random schema 1.1 models (some made invalid on
purpose), random tuples (data cycles, chains deeper than the resolution depth limit) and
queries. Candidate ``K`` of seed ``N`` is always the same model and scenarios, whatever was
generated before it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from authz.ports import TupleKey
from authz.testing.cases import (
    DEPTH_LIMIT,
    MAX_TUPLES_PER_SCENARIO,
    Batch,
    CheckQuery,
    ListObjectsQuery,
    ModelCase,
    RejectedModel,
    Scenario,
    affordable,
)
from authz.testing.model_spec import (
    Computed,
    Direct,
    Exclusion,
    FromTupleset,
    Intersection,
    ModelSpec,
    Rewrite,
    TypeDef,
    Union,
    walk,
)

OBJECT_TYPES = ("group", "folder", "doc", "org")
ASSIGNABLE = ("a", "b", "c")
DERIVED = ("d", "e", "f")
TUPLESETS = ("p", "q")
LADDER_TYPE = "ladder"


def _candidate_rng(seed: int, index: int, part: str) -> random.Random:
    # String seeds are hashed deterministically (unlike hash()), so a candidate is
    # reproducible from (seed, index) alone, whatever was generated before it.
    return random.Random(f"pmbot-differential:{seed}:{index}:{part}")


class ModelGenerator:
    """Random schema 1.1 models over ``user`` plus a few object types."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def generate(self) -> ModelSpec:
        rng = self.rng
        type_names = list(OBJECT_TYPES[: rng.randint(2, len(OBJECT_TYPES))])
        plan: dict[str, dict[str, list[str]]] = {}
        for name in type_names:
            assignable = ["a", "b"] + (["c"] if rng.random() < 0.5 else [])
            derived = (
                ["d"]
                + (["e"] if rng.random() < 0.6 else [])
                + (["f"] if rng.random() < 0.3 else [])
            )
            tuplesets = (["p"] if rng.random() < 0.75 else []) + (
                ["q"] if rng.random() < 0.2 else []
            )
            if rng.random() < 0.15:
                # Not every type has every name: tuple-to-userset targets then exist on only
                # some of the tupleset's types.
                derived = derived[:-1] or derived
                assignable = [n for n in assignable if n != "b"]
            plan[name] = {"assignable": assignable, "derived": derived, "tuplesets": tuplesets}

        all_relations = {
            t: p["tuplesets"] + p["assignable"] + p["derived"] for t, p in plan.items()
        }
        tupleset_targets: dict[tuple[str, str], list[str]] = {}
        for t, p in plan.items():
            for ts in p["tuplesets"]:
                targets = rng.sample(type_names, k=min(len(type_names), rng.choice((1, 1, 2))))
                if rng.random() < 0.5 and t not in targets:
                    targets[0] = t  # recursion through the parent (folder in folder)
                tupleset_targets[(t, ts)] = sorted(set(targets))

        defs: dict[str, dict[str, Rewrite]] = {t: {} for t in type_names}
        for t, p in plan.items():
            for ts in p["tuplesets"]:
                defs[t][ts] = Direct(tuple(tupleset_targets[(t, ts)]))
            for rel in p["assignable"]:
                direct = Direct(self._restrictions(t, type_names, all_relations))
                roll = rng.random()
                if roll < 0.15:
                    defs[t][rel] = Union(
                        (direct, self._leaf(t, rel, plan, tupleset_targets, all_relations))
                    )
                elif roll < 0.22:
                    other = self._leaf(t, rel, plan, tupleset_targets, all_relations)
                    defs[t][rel] = (
                        Intersection((direct, other))
                        if rng.random() < 0.5
                        else Exclusion(direct, other)
                    )
                else:
                    defs[t][rel] = direct
            for rel in p["derived"]:
                defs[t][rel] = self._expr(
                    t, rel, rng.randint(1, 3), plan, tupleset_targets, all_relations
                )

        self._add_recursion(defs, plan, tupleset_targets)

        types = [TypeDef("user")]
        for t in type_names:
            order = plan[t]["tuplesets"] + plan[t]["assignable"] + plan[t]["derived"]
            types.append(TypeDef(t, tuple((rel, defs[t][rel]) for rel in order)))
        if rng.random() < 0.25:
            types.append(self._ladder())
        return ModelSpec(tuple(types))

    def _restrictions(
        self, t: str, type_names: list[str], rels: dict[str, list[str]]
    ) -> tuple[str, ...]:
        rng = self.rng
        pool: list[tuple[str, float]] = [("user", 5.0), ("user:*", 1.2)]
        for other in type_names:
            pool.append((other, 0.4))
            for rel in rels[other]:
                pool.append((f"{other}#{rel}", 0.5 if other != t else 0.8))
        chosen: list[str] = []
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            names, weights = zip(*pool, strict=True)
            pick = rng.choices(names, weights=weights)[0]
            if pick not in chosen:
                chosen.append(pick)
        if all("#" in c for c in chosen):
            # A relation reachable only through usersets has no entrypoint when those
            # usersets lead back to it; a plain type keeps most models valid.
            chosen.insert(0, "user")
        return tuple(chosen)

    def _leaf(
        self,
        t: str,
        rel: str,
        plan: dict[str, dict[str, list[str]]],
        targets: dict[tuple[str, str], list[str]],
        rels: dict[str, list[str]],
    ) -> Rewrite:
        rng = self.rng
        tuplesets = plan[t]["tuplesets"]
        if tuplesets and rng.random() < 0.4:
            ts = rng.choice(tuplesets)
            names = sorted({r for target in targets[(t, ts)] for r in rels[target]})
            return FromTupleset(rng.choice(names), ts)
        # Computed usersets point to relations defined earlier (tuplesets, assignable, then
        # derived ones in order), so most models are acyclic; a rare forward reference keeps
        # cyclic definitions (which the engine rejects) in the mix.
        order = rels[t]
        earlier = order[: order.index(rel)]
        if not earlier or rng.random() < 0.03:
            earlier = [r for r in order if r != rel]
        return Computed(rng.choice(earlier))

    def _expr(
        self,
        t: str,
        rel: str,
        depth: int,
        plan: dict[str, dict[str, list[str]]],
        targets: dict[tuple[str, str], list[str]],
        rels: dict[str, list[str]],
    ) -> Rewrite:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.25:
            return self._leaf(t, rel, plan, targets, rels)
        kind = rng.choices(("or", "and", "but not"), weights=(3, 1.5, 1.5))[0]
        if kind == "but not":
            return Exclusion(
                self._expr(t, rel, depth - 1, plan, targets, rels),
                self._expr(t, rel, depth - 1, plan, targets, rels),
            )
        children = tuple(
            self._expr(t, rel, depth - 1, plan, targets, rels) for _ in range(rng.choice((2, 2, 3)))
        )
        return Union(children) if kind == "or" else Intersection(children)

    def _add_recursion(
        self,
        defs: dict[str, dict[str, Rewrite]],
        plan: dict[str, dict[str, list[str]]],
        targets: dict[tuple[str, str], list[str]],
    ) -> None:
        """Make recursive relations likely: ``a: [user, T#a]`` and ``b: [user] or b from p``."""
        rng = self.rng
        type_names = list(defs)
        if rng.random() < 0.7:
            t = rng.choice(type_names)
            current = defs[t]["a"]
            if isinstance(current, Direct) and f"{t}#a" not in current.restrictions:
                restrictions = current.restrictions
                if "user" not in restrictions:
                    restrictions = ("user", *restrictions)
                defs[t]["a"] = Direct((*restrictions, f"{t}#a"))
        if rng.random() < 0.6:
            candidates = [
                (t, ts)
                for t in type_names
                for ts in plan[t]["tuplesets"]
                if t in targets[(t, ts)] and "b" in plan[t]["assignable"]
            ]
            if candidates:
                t, ts = rng.choice(candidates)
                if all("b" in plan[target]["assignable"] for target in targets[(t, ts)]):
                    defs[t]["b"] = Union((Direct(("user",)), FromTupleset("b", ts)))

    def _ladder(self) -> TypeDef:
        # Computed usersets chained past the depth limit: the real engine's Check resolves
        # them without spending depth, while its ListObjects does spend it.
        length = self.rng.randint(20, 32)
        relations: list[tuple[str, Rewrite]] = [
            (f"l{i}", Computed(f"l{i + 1}")) for i in range(length)
        ]
        relations.append((f"l{length}", Direct(("user", "user:*"))))
        return TypeDef(LADDER_TYPE, tuple(relations))


class InvalidModelMutator:
    """Turns a model into one that is probably invalid (the real engine decides)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def mutate(self, spec: ModelSpec) -> ModelSpec:
        rng = self.rng
        types = list(spec.types)
        idx = rng.randrange(1, len(types))
        target = types[idx]
        rels = list(target.relations)
        kind = rng.choice(
            (
                "undefined-relation",
                "undefined-type",
                "self-cycle",
                "mutual-cycle",
                "userset-tupleset",
                "undefined-tupleset",
                "duplicate-relation",
                "undefined-userset-relation",
                "wildcard-tupleset",
                "empty-type-restriction",
            )
        )
        if kind == "undefined-relation":
            rels.append(("zz_bad", Union((Computed("a"), Computed("nosuchrel")))))
        elif kind == "undefined-type":
            rels.append(("zz_bad", Direct(("user", "nosuchtype"))))
        elif kind == "self-cycle":
            rels.append(("zz_bad", Computed("zz_bad")))
        elif kind == "mutual-cycle":
            rels.append(("zz_bad", Computed("zz_bad2")))
            rels.append(("zz_bad2", Union((Computed("zz_bad"), Computed("zz_bad")))))
        elif kind == "userset-tupleset":
            rels.append(("zz_ts", Direct((f"{target.name}#a",))))
            rels.append(("zz_bad", FromTupleset("a", "zz_ts")))
        elif kind == "undefined-tupleset":
            rels.append(("zz_bad", FromTupleset("a", "nosuchtupleset")))
        elif kind == "duplicate-relation":
            rels.append(rels[0])
        elif kind == "undefined-userset-relation":
            rels.append(("zz_bad", Direct(("user", f"{target.name}#nosuchrel"))))
        elif kind == "wildcard-tupleset":
            rels.append(("zz_ts", Direct((f"{target.name}:*",))))
            rels.append(("zz_bad", FromTupleset("a", "zz_ts")))
        else:
            rels.append(("zz_bad", Direct(())))
        types[idx] = TypeDef(target.name, tuple(rels))
        return ModelSpec(tuple(types))


_Q = TypeVar("_Q")


class ScenarioGenerator:
    """Random tuples and queries for one model."""

    def __init__(self, spec: ModelSpec, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        self.object_types = spec.object_types()
        self.ids = {t: [str(i) for i in range(rng.randint(2, 4))] for t in self.object_types}
        self.users = [f"user:u{i}" for i in range(rng.randint(2, 4))]

    # tuples -------------------------------------------------------------------------------

    def _user_for(self, restriction: str) -> str | None:
        rng = self.rng
        if restriction == "user":
            return rng.choice(self.users)
        if restriction.endswith(":*"):
            return restriction
        if "#" in restriction:
            type_name, rel = restriction.split("#", 1)
            if type_name not in self.ids:
                return None
            return f"{type_name}:{rng.choice(self.ids[type_name])}#{rel}"
        if restriction in self.ids:
            return f"{restriction}:{rng.choice(self.ids[restriction])}"
        return None

    def random_tuples(self, count: int) -> list[TupleKey]:
        rng = self.rng
        assignable = [a for a in self.spec.assignable() if a[0] in self.ids]
        out: dict[TupleKey, None] = {}
        if not assignable:
            return []
        for _ in range(count):
            type_name, rel, restrictions = rng.choice(assignable)
            user = self._user_for(rng.choice(restrictions))
            obj = f"{type_name}:{rng.choice(self.ids[type_name])}"
            # T:x#r as a user of T:x#r is implied, and the engine refuses to store it.
            if user is not None and user != f"{obj}#{rel}":
                out[TupleKey(user, rel, obj)] = None
        # Loops in the data: T:0#r -> T:1#r -> ... -> T:0#r, and parents that are their own
        # ancestors. The real engine answers false for a cycle (or errors at the depth limit).
        for type_name, rel, restrictions in assignable:
            ids = self.ids[type_name]
            if rng.random() < 0.5 and f"{type_name}#{rel}" in restrictions:
                ring = rng.sample(ids, k=min(len(ids), rng.randint(2, 3)))
                for i, src in enumerate(ring):
                    dst = ring[(i + 1) % len(ring)]
                    out[TupleKey(f"{type_name}:{src}#{rel}", rel, f"{type_name}:{dst}")] = None
            elif rng.random() < 0.5 and type_name in restrictions and rel in TUPLESETS:
                ring = rng.sample(ids, k=min(len(ids), rng.randint(1, 3)))
                for i, src in enumerate(ring):
                    dst = ring[(i + 1) % len(ring)]
                    out[TupleKey(f"{type_name}:{src}", rel, f"{type_name}:{dst}")] = None
        return list(out)[:MAX_TUPLES_PER_SCENARIO]

    # queries ------------------------------------------------------------------------------

    def random_user(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.7 or not self.object_types:
            return rng.choice([*self.users, "user:nobody"])
        if roll < 0.8:
            return "user:*"
        type_name = rng.choice(self.object_types)
        obj = f"{type_name}:{rng.choice(self.ids[type_name])}"
        if roll < 0.88:
            return obj
        return f"{obj}#{rng.choice(self.spec.relation_names(type_name))}"

    def random_check(self) -> CheckQuery:
        rng = self.rng
        type_name = rng.choice(self.object_types)
        relation = rng.choice(self.spec.relation_names(type_name))
        obj = f"{type_name}:{rng.choice([*self.ids[type_name], '9'])}"
        user = self.random_user()
        roll = rng.random()
        # A few invalid requests: both engines must refuse them.
        if roll < 0.01:
            relation = "nosuchrel"
        elif roll < 0.02:
            obj = "nosuchtype:1"
        elif roll < 0.03:
            user = "nosuchtype:1"
        return CheckQuery(user, relation, obj)

    def random_list_objects(self) -> ListObjectsQuery:
        rng = self.rng
        type_name = rng.choice(self.object_types)
        user = rng.choice(self.users) if rng.random() < 0.85 else self.random_user()
        return ListObjectsQuery(user, rng.choice(self.spec.relation_names(type_name)), type_name)

    def random_scenario(self, name: str, checks: int, list_objects: int) -> Scenario:
        tuples = self.random_tuples(self.rng.randint(4, 24))
        return Scenario(
            name,
            tuple(tuples),
            _unique(self.random_check() for _ in range(checks)),
            _unique(self.random_list_objects() for _ in range(list_objects)),
        )

    # deep chains --------------------------------------------------------------------------

    def recursive_edges(self) -> list[tuple[str, str, str | None]]:
        """``(type, relation, tupleset)``: relations that reach themselves on another object.

        ``tupleset`` is None for a userset edge (``r: [T#r]``) and names the tupleset for a
        tuple-to-userset edge (``r: ... or r from p`` with ``p: [T]``).
        """
        edges: list[tuple[str, str, str | None]] = []
        for t in self.object_types:
            type_def = self.spec.type_def(t)
            assert type_def is not None
            for rel, rewrite in type_def.relations:
                for node in walk(rewrite):
                    if isinstance(node, Direct) and f"{t}#{rel}" in node.restrictions:
                        edges.append((t, rel, None))
                    if isinstance(node, FromTupleset) and node.relation == rel:
                        ts = self.spec.relation(t, node.tupleset)
                        if isinstance(ts, Direct) and t in ts.restrictions:
                            edges.append((t, rel, node.tupleset))
        return sorted(set(edges), key=lambda e: (e[0], e[1], e[2] or ""))

    def chain_scenario(self, name: str, extra_checks: int) -> Scenario | None:
        rng = self.rng
        edges = self.recursive_edges()
        if not edges:
            return None
        type_name, rel, tupleset = rng.choice(edges)
        length = rng.randint(DEPTH_LIMIT - 7, DEPTH_LIMIT + 15)
        node = [f"{type_name}:c{i}" for i in range(length + 1)]
        tuples: dict[TupleKey, None] = {}
        for i in range(length):
            if tupleset is None:
                tuples[TupleKey(f"{node[i + 1]}#{rel}", rel, node[i])] = None
            else:
                tuples[TupleKey(node[i + 1], tupleset, node[i])] = None
        restrictions = next(
            (r for t, n, r in self.spec.assignable() if (t, n) == (type_name, rel)), ()
        )
        terminal_user = "user:u0"
        if "user" in restrictions:
            tuples[TupleKey(terminal_user, rel, node[length])] = None
        elif "user:*" in restrictions:
            tuples[TupleKey("user:*", rel, node[length])] = None
        if rng.random() < 0.5:
            # A back edge turns the far end of the chain into a loop.
            back = rng.randint(0, length - 1)
            if tupleset is None:
                tuples[TupleKey(f"{node[back]}#{rel}", rel, node[length])] = None
            else:
                tuples[TupleKey(node[back], tupleset, node[length])] = None
        for extra in self.random_tuples(rng.randint(0, 8)):
            tuples[extra] = None

        positions = {0, 1, length // 2, length}
        positions.update(
            p for p in range(length - DEPTH_LIMIT - 3, length - DEPTH_LIMIT + 4) if 0 <= p <= length
        )
        checks: list[CheckQuery] = [
            CheckQuery(terminal_user, rel, node[p]) for p in sorted(positions)
        ]
        checks.append(CheckQuery("user:nobody", rel, node[0]))
        for other in self.spec.relation_names(type_name):
            checks.append(
                CheckQuery(
                    terminal_user, other, node[rng.choice((0, max(0, length - DEPTH_LIMIT)))]
                )
            )
        checks.extend(self.random_check() for _ in range(extra_checks))
        list_objects = [ListObjectsQuery(terminal_user, rel, type_name)]
        list_objects.extend(self.random_list_objects() for _ in range(2))
        return Scenario(
            name,
            tuple(list(tuples)[: MAX_TUPLES_PER_SCENARIO + length]),
            _unique(checks),
            _unique(list_objects),
            chain_length=length,
        )

    def ladder_scenario(self, name: str) -> Scenario | None:
        ladder = self.spec.type_def(LADDER_TYPE)
        if ladder is None:
            return None
        names = [n for n, _ in ladder.relations]
        top = names[-1]
        tuples = (
            TupleKey("user:u0", top, f"{LADDER_TYPE}:0"),
            TupleKey("user:*", top, f"{LADDER_TYPE}:1"),
        )
        checks = [
            CheckQuery(u, n, f"{LADDER_TYPE}:{i}")
            for n in names[:4] + names[-3:]
            for u in ("user:u0", "user:u1")
            for i in (0, 1)
        ]
        return Scenario(
            name,
            tuples,
            _unique(checks),
            (ListObjectsQuery("user:u0", names[0], LADDER_TYPE),),
            chain_length=len(names),
        )


def _unique(items: Iterable[_Q]) -> tuple[_Q, ...]:
    return tuple(dict.fromkeys(items))


def generate_candidate(seed: int, index: int) -> ModelSpec:
    """Candidate model ``index`` of ``seed`` (deterministic); some are invalid on purpose."""
    spec = ModelGenerator(_candidate_rng(seed, index, "model")).generate()
    mutate_rng = _candidate_rng(seed, index, "mutate")
    if mutate_rng.random() < 0.12:
        spec = InvalidModelMutator(mutate_rng).mutate(spec)
    return spec


def generate_scenarios(seed: int, index: int, spec: ModelSpec) -> tuple[Scenario, ...]:
    """The scenarios of candidate ``index`` of ``seed`` (deterministic)."""
    rng = _candidate_rng(seed, index, "scenarios")
    gen = ScenarioGenerator(spec, rng)
    scenarios: list[Scenario] = []
    chain = gen.chain_scenario(f"m{index}-chain", extra_checks=6) if rng.random() < 0.8 else None
    if chain is not None:
        scenarios.append(chain)
    ladder = gen.ladder_scenario(f"m{index}-ladder")
    if ladder is not None:
        scenarios.append(ladder)
    for i in range(3 - len(scenarios) + 1):
        scenarios.append(
            gen.random_scenario(f"m{index}-s{i}", checks=rng.randint(14, 22), list_objects=3)
        )
    return tuple(affordable(spec, s) for s in scenarios)


Validator = Callable[[Sequence[str]], list[str | None]]


def generate_batch(
    seed: int,
    checks: int,
    validate: Validator,
    *,
    only: int | None = None,
    start: int = 0,
    chunk: int = 16,
) -> Batch:
    """Candidates ``start, start + 1, ...`` of ``seed`` until the accepted ones hold ``checks``
    checks (the last case may overshoot).

    ``validate`` returns, per DSL text, None when the real engine accepts the model and the
    reason otherwise. With ``only``, just candidate ``only`` is generated (replay).
    """
    batch = Batch(seed, next_index=start)
    while True:
        first = batch.next_index if only is None else only
        indices = [only] if only is not None else list(range(first, first + chunk))
        specs = [generate_candidate(seed, i) for i in indices]
        verdicts = validate([s.dsl() for s in specs])
        for i, spec, verdict in zip(indices, specs, verdicts, strict=True):
            batch.next_index = i + 1
            if verdict is not None:
                batch.rejected.append(RejectedModel(seed, i, spec.dsl(), verdict))
            else:
                batch.cases.append(ModelCase(seed, i, spec, generate_scenarios(seed, i, spec)))
            if only is None and batch.check_count >= checks:
                break
        if only is not None or batch.check_count >= checks:
            return batch
