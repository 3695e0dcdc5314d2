"""The building blocks of an OpenFGA schema 1.1 authorization model definition: type
definitions, their relations, each relation's directly related user types (type
restrictions) and userset rewrite.

These are immutable values and are not validated as a whole (a :class:`TypeDef` only
refuses to define a relation twice): :class:`~authz.embedded.model.AuthorizationModel`
applies OpenFGA's rules when a model is built from them. The DSL parser
(:mod:`authz.embedded.dsl`) and the API JSON form (:mod:`authz.embedded.model`) produce
them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeAlias

from authz.ports import AuthzValidationError, ErrorCode

CONDITIONS_UNSUPPORTED = "conditions are not supported by the embedded engine"
MODULES_UNSUPPORTED = "modules are not supported by the embedded engine"


def invalid_model(message: str) -> AuthzValidationError:
    """The error every invalid model definition is reported with."""
    return AuthzValidationError(ErrorCode.invalid_authorization_model, message)


# --------------------------------------------------------------------------------------------
# Userset rewrites
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class This:
    """Direct assignment: the tuples written on the relation (``[user, team#member]``)."""


@dataclass(frozen=True, slots=True)
class ComputedUserset:
    """Another relation of the same object (``define viewer: editor``)."""

    relation: str


@dataclass(frozen=True, slots=True)
class TupleToUserset:
    """``computed from tupleset``: ``computed`` on every object related by ``tupleset``."""

    tupleset: str
    computed: str


@dataclass(frozen=True, slots=True)
class Union:
    children: tuple[Rewrite, ...]


@dataclass(frozen=True, slots=True)
class Intersection:
    children: tuple[Rewrite, ...]


@dataclass(frozen=True, slots=True)
class Difference:
    """``base but not subtract``."""

    base: Rewrite
    subtract: Rewrite


Rewrite: TypeAlias = This | ComputedUserset | TupleToUserset | Union | Intersection | Difference


@dataclass(frozen=True, slots=True)
class TypeRestriction:
    """One entry of a relation's directly related user types: ``user``, ``user:*`` or
    ``team#member`` (optionally ``with condition``)."""

    type: str
    relation: str = ""
    wildcard: bool = False
    condition: str = ""

    @property
    def label(self) -> str:
        """The DSL spelling without condition: ``user``, ``user:*`` or ``team#member``."""
        if self.wildcard:
            return f"{self.type}:*"
        if self.relation:
            return f"{self.type}#{self.relation}"
        return self.type


@dataclass(frozen=True, slots=True)
class RelationDef:
    name: str
    rewrite: Rewrite
    directly_related: tuple[TypeRestriction, ...] = ()


class TypeDef:
    """A type and its relations (in definition order; equality ignores the order)."""

    __slots__ = ("_by_name", "name", "relations")

    def __init__(self, name: str, relations: Iterable[RelationDef] = ()) -> None:
        self.name = name
        self.relations: tuple[RelationDef, ...] = tuple(relations)
        self._by_name = {r.name: r for r in self.relations}
        if len(self._by_name) != len(self.relations):
            raise invalid_model(f"type '{name}' defines a relation more than once")

    def relation(self, name: str) -> RelationDef | None:
        return self._by_name.get(name)

    @property
    def relation_names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TypeDef):
            return NotImplemented
        return self.name == other.name and self._by_name == other._by_name

    def __hash__(self) -> int:
        return hash((self.name, frozenset(self.relations)))

    def __repr__(self) -> str:
        return f"TypeDef({self.name!r}, {list(self.relations)!r})"


def contains_this(rewrite: Rewrite) -> bool:
    """Whether the rewrite allows direct assignment anywhere."""
    if isinstance(rewrite, This):
        return True
    if isinstance(rewrite, Union | Intersection):
        return any(contains_this(c) for c in rewrite.children)
    if isinstance(rewrite, Difference):
        return contains_this(rewrite.base) or contains_this(rewrite.subtract)
    return False


def iter_leaves(rewrite: Rewrite, *, skip_subtract: bool = False) -> Iterator[Rewrite]:
    """The ``This`` / computed / tuple-to-userset leaves of a rewrite tree."""
    if isinstance(rewrite, Union | Intersection):
        for child in rewrite.children:
            yield from iter_leaves(child, skip_subtract=skip_subtract)
    elif isinstance(rewrite, Difference):
        yield from iter_leaves(rewrite.base, skip_subtract=skip_subtract)
        if not skip_subtract:
            yield from iter_leaves(rewrite.subtract, skip_subtract=skip_subtract)
    else:
        yield rewrite
