"""The models the differential generates: a small AST of OpenFGA schema 1.1 (direct
assignments, computed usersets, tuple-to-userset, ``or`` / ``and`` / ``but not``) and its
DSL text.

Why a second model AST instead of the engine's own classes (:mod:`authz.embedded.model`,
:mod:`authz.embedded.definitions`):

* It is the oracle's input, so it stays independent of the code under test. The
  differential tests the embedded DSL parser and model validation too: every candidate is
  rendered here to DSL text and handed to both engines, and the real engine's verdict on
  whether the model is valid is compared with the embedded parser's. Candidates built
  with the engine's classes would let a defect in those classes shape the very inputs
  meant to expose it.
* It must hold invalid models. About one candidate in eight is made invalid on purpose
  (undefined relations and types, cycles of computed relations, a relation defined twice,
  empty type restrictions, usersets or wildcards on a tupleset...), and the shrinker's
  intermediate models may be invalid (the real engine decides). The engine's classes
  refuse to represent these: :class:`~authz.embedded.model.AuthorizationModel` validates
  on construction and :class:`~authz.embedded.definitions.TypeDef` refuses a relation
  defined twice.
* It has the DSL's shape: a direct assignment is one node holding its type restrictions
  (the engine keeps them beside the rewrite, as OpenFGA's JSON form does), which is what the
  generator, the shrinker's one-step simplifications and the DSL rendering work on; the
  engine has no DSL renderer.

Where the engine's own types serve, the differential uses them: tuples are
:class:`~authz.ports.TupleKey`, and the embedded side parses with
:func:`authz.embedded.model.parse_dsl` and answers with
:class:`~authz.embedded.evaluator.Evaluator` (:mod:`authz.testing.engines`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


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
