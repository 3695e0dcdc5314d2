"""Typed, immutable representation of an OpenFGA schema 1.1 authorization model.

An :class:`AuthorizationModel` is only ever built from a definition that passes the same
rules OpenFGA's ``WriteAuthorizationModel`` applies (type restrictions, entrypoints, cycles
through computed relations, tupleset relations...), so the evaluator can rely on it being
well formed. Its building blocks (types, relations, rewrites) are in
:mod:`authz.embedded.definitions`. Models are built from the OpenFGA API JSON form
(:func:`model_from_json`) or from the DSL (:func:`parse_dsl`, over the parser in
:mod:`authz.embedded.dsl`), and converted back to the API JSON form with
:func:`model_to_json`.

Conditions and modular models are recognised but refused with an
:class:`~authz.ports.AuthzValidationError`: the embedded engine cannot evaluate them, and
it must never answer a question about them wrongly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

from authz.embedded.definitions import (
    CONDITIONS_UNSUPPORTED,
    ComputedUserset,
    Difference,
    Intersection,
    RelationDef,
    Rewrite,
    This,
    TupleToUserset,
    TypeDef,
    TypeRestriction,
    Union,
    contains_this,
    invalid_model,
    iter_leaves,
)
from authz.embedded.dsl import parse_definitions
from authz.validation import RELATION, TYPE

SUPPORTED_SCHEMA_VERSIONS = ("1.1", "1.2")

# OpenFGA API field patterns (openfga/api validation rules on TypeDefinition).
_TYPE_NAME = re.compile(TYPE)
_RELATION_NAME = re.compile(RELATION)
_RESERVED = ("self", "this")

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class AuthorizationModel:
    """An immutable, validated schema 1.1 authorization model.

    Construction validates the definition exactly like OpenFGA's ``WriteAuthorizationModel``
    does and raises :class:`AuthzValidationError` (``invalid_authorization_model``) if it
    would be refused. Equality compares the definitions (order of types and relations does
    not matter).
    """

    __slots__ = ("_derived", "_relations", "_types", "schema_version", "type_definitions")

    def __init__(self, schema_version: str, type_definitions: Iterable[TypeDef]) -> None:
        self.schema_version = schema_version or "1.1"
        self.type_definitions: tuple[TypeDef, ...] = tuple(type_definitions)
        self._types: dict[str, TypeDef] = {}
        for td in self.type_definitions:
            if td.name in self._types:
                raise invalid_model(f"the type '{td.name}' is defined more than once")
            self._types[td.name] = td
        self._relations: dict[tuple[str, str], RelationDef] = {
            (td.name, r.name): r for td in self.type_definitions for r in td.relations
        }
        self._derived: dict[Callable[[AuthorizationModel], Any], Any] = {}
        _Validator(self).validate()

    # -- lookups ------------------------------------------------------------------------------

    @property
    def type_names(self) -> tuple[str, ...]:
        return tuple(self._types)

    def has_type(self, name: str) -> bool:
        return name in self._types

    def type_definition(self, name: str) -> TypeDef | None:
        return self._types.get(name)

    def relation(self, type: str, rel: str) -> RelationDef | None:
        """The definition of ``type#rel``, or ``None`` if the model has no such relation."""
        return self._relations.get((type, rel))

    def relations_of(self, type: str) -> tuple[str, ...]:
        td = self._types.get(type)
        return td.relation_names if td is not None else ()

    def is_tupleset_relation(self, type: str, rel: str) -> bool:
        """Whether ``rel`` is the right-hand side of some ``x from rel`` on ``type``."""
        td = self._types.get(type)
        if td is None:
            return False
        return any(
            isinstance(leaf, TupleToUserset) and leaf.tupleset == rel
            for r in td.relations
            for leaf in iter_leaves(r.rewrite)
        )

    def derived(self, build: Callable[[AuthorizationModel], _T]) -> _T:
        """``build(self)``, built on first use and then kept with the model: indexes derived
        from it, such as the evaluator's analysis of the model."""
        found = self._derived.get(build)
        if found is None:
            found = self._derived[build] = build(self)
        return cast(_T, found)

    # -- value semantics ----------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AuthorizationModel):
            return NotImplemented
        return self.schema_version == other.schema_version and self._types == other._types

    def __hash__(self) -> int:
        return hash((self.schema_version, frozenset(self.type_definitions)))

    def __repr__(self) -> str:
        types = list(self._types)
        return f"AuthorizationModel(schema_version={self.schema_version!r}, types={types!r})"


# --------------------------------------------------------------------------------------------
# Validation (the rules of OpenFGA's typesystem.NewAndValidate)
# --------------------------------------------------------------------------------------------


class _Validator:
    def __init__(self, model: AuthorizationModel) -> None:
        self.model = model
        self.rels = model._relations

    def validate(self) -> None:
        m = self.model
        if m.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
            raise invalid_model(f"unsupported schema version '{m.schema_version}'")
        if not m.type_definitions:
            raise invalid_model("a model must define at least one type")
        for td in m.type_definitions:
            if not _TYPE_NAME.fullmatch(td.name):
                raise invalid_model(f"invalid type name '{td.name}'")
            if td.name in _RESERVED:
                raise invalid_model(f"the type name '{td.name}' is a reserved keyword")
            for r in td.relations:
                if not _RELATION_NAME.fullmatch(r.name):
                    raise invalid_model(f"invalid relation name '{r.name}' in type '{td.name}'")
                if r.name in _RESERVED:
                    raise invalid_model(f"the relation name '{r.name}' is a reserved keyword")
                for tr in r.directly_related:
                    if tr.condition:
                        raise invalid_model(CONDITIONS_UNSUPPORTED)
                    if tr.wildcard and tr.relation:
                        raise invalid_model(
                            f"'{td.name}#{r.name}': a type restriction cannot be both a "
                            "wildcard and a userset"
                        )
        for type_name in sorted(m._types):
            td = m._types[type_name]
            for rel_name in sorted(td.relation_names):
                self._validate_relation(type_name, rel_name)

    def _validate_relation(self, type_name: str, rel_name: str) -> None:
        rel = self.rels[(type_name, rel_name)]
        self._check_rewrite(type_name, rel_name, rel.rewrite)
        self._check_type_restrictions(type_name, rel)
        has, loop = self._has_entrypoints(type_name, rel_name, rel.rewrite, {})
        if not has:
            why = "no entrypoints (loop)" if loop else "no entrypoints"
            raise invalid_model(
                f"the relation '{type_name}#{rel_name}' has {why}: no user can ever be related"
            )
        if self._has_cycle(type_name, rel_name, rel.rewrite, {}):
            raise invalid_model(
                f"the relation '{type_name}#{rel_name}' is defined in terms of itself (cycle)"
            )

    def _check_rewrite(self, type_name: str, rel_name: str, rw: Rewrite) -> None:
        if isinstance(rw, ComputedUserset):
            if rw.relation == rel_name:
                raise invalid_model(f"'{type_name}#{rel_name}' cannot be defined as itself")
            if (type_name, rw.relation) not in self.rels:
                raise invalid_model(
                    f"'{type_name}#{rel_name}' refers to undefined relation "
                    f"'{type_name}#{rw.relation}'"
                )
        elif isinstance(rw, TupleToUserset):
            ts = self.rels.get((type_name, rw.tupleset))
            if ts is None:
                raise invalid_model(
                    f"'{type_name}#{rel_name}' refers to undefined tupleset relation "
                    f"'{type_name}#{rw.tupleset}'"
                )
            if not isinstance(ts.rewrite, This):
                raise invalid_model(
                    f"the '{type_name}#{rw.tupleset}' relation is referenced in at least one "
                    "tupleset and thus must be a direct relation"
                )
            if not any((tr.type, rw.computed) in self.rels for tr in ts.directly_related):
                raise invalid_model(
                    f"'{type_name}#{rel_name}': relation '{rw.computed}' is not defined on any "
                    f"type related by '{rw.tupleset}'"
                )
        elif isinstance(rw, Union | Intersection):
            for child in rw.children:
                self._check_rewrite(type_name, rel_name, child)
        elif isinstance(rw, Difference):
            self._check_rewrite(type_name, rel_name, rw.base)
            self._check_rewrite(type_name, rel_name, rw.subtract)

    def _check_type_restrictions(self, type_name: str, rel: RelationDef) -> None:
        assignable = contains_this(rel.rewrite)
        where = f"'{type_name}#{rel.name}'"
        if assignable and not rel.directly_related:
            raise invalid_model(f"{where} is directly assignable but has no type restrictions")
        if not assignable and rel.directly_related:
            raise invalid_model(f"{where} has type restrictions but is not directly assignable")
        for tr in rel.directly_related:
            if not self.model.has_type(tr.type):
                raise invalid_model(
                    f"{where}: type restriction '{tr.label}' refers to an undefined type"
                )
            if tr.relation or tr.wildcard:
                if self.model.is_tupleset_relation(type_name, rel.name):
                    raise invalid_model(
                        f"{where} is used as a tupleset and cannot allow '{tr.label}' "
                        "(only direct objects)"
                    )
                if tr.relation and (tr.type, tr.relation) not in self.rels:
                    raise invalid_model(
                        f"{where}: type restriction '{tr.label}' refers to an undefined relation"
                    )

    def _relation_or_fail(self, type_name: str, rel_name: str) -> RelationDef:
        rel = self.rels.get((type_name, rel_name))
        if rel is None:
            raise invalid_model(f"undefined type definition for '{type_name}#{rel_name}'")
        return rel

    def _has_entrypoints(
        self,
        type_name: str,
        rel_name: str,
        rw: Rewrite,
        visited: dict[str, dict[str, bool]],
    ) -> tuple[bool, bool]:
        """Whether some concrete user can ever be related (and whether a loop was met).

        Mirrors OpenFGA's walk exactly, including its shallow copies of ``visited`` (inner
        dicts are shared with the caller), so that the same models are accepted.
        """
        v = dict(visited)
        if type_name in v:
            v[type_name][rel_name] = False
        else:
            v[type_name] = {rel_name: False}
        relation = self._relation_or_fail(type_name, rel_name)

        if isinstance(rw, This):
            for tr in relation.directly_related:
                if not tr.relation or tr.wildcard:
                    v[type_name][rel_name] = True
                    return True, False
                target = self._relation_or_fail(tr.type, tr.relation)
                if tr.relation in v.get(tr.type, {}):
                    continue
                has, _ = self._has_entrypoints(tr.type, tr.relation, target.rewrite, v)
                if has:
                    return True, False
            return False, False
        if isinstance(rw, ComputedUserset):
            target = self._relation_or_fail(type_name, rw.relation)
            seen = v.get(type_name, {})
            if rw.relation in seen:
                return seen[rw.relation], True
            return self._has_entrypoints(type_name, rw.relation, target.rewrite, v)
        if isinstance(rw, TupleToUserset):
            tupleset = self._relation_or_fail(type_name, rw.tupleset)
            for tr in tupleset.directly_related:
                target_rel = self.rels.get((tr.type, rw.computed))
                if target_rel is None:
                    continue
                seen = v.get(tr.type, {})
                if rw.computed in seen:
                    if seen[rw.computed]:
                        return True, False
                    continue
                has, _ = self._has_entrypoints(tr.type, rw.computed, target_rel.rewrite, v)
                if has:
                    return True, False
            return False, False
        if isinstance(rw, Union):
            if len(rw.children) < 2:
                raise invalid_model(f"'{type_name}#{rel_name}' as union has less than 2 children")
            loop = False
            for child in rw.children:
                has, child_loop = self._has_entrypoints(type_name, rel_name, child, visited)
                if has:
                    return True, False
                loop = loop or child_loop
            return False, loop
        if isinstance(rw, Intersection):
            if len(rw.children) < 2:
                raise invalid_model(
                    f"'{type_name}#{rel_name}' as intersection has less than 2 children"
                )
            for child in rw.children:
                has, child_loop = self._has_entrypoints(type_name, rel_name, child, visited)
                if not has:
                    return False, child_loop
            return True, False
        # Difference
        has, loop = self._has_entrypoints(type_name, rel_name, rw.base, visited)
        if not has:
            return False, loop
        has, loop = self._has_entrypoints(type_name, rel_name, rw.subtract, visited)
        if not has:
            return False, loop
        return True, False

    def _has_cycle(
        self, type_name: str, rel_name: str, rw: Rewrite, visited: dict[str, None]
    ) -> bool:
        """A relation defined in terms of itself through computed relations only."""
        visited[f"{type_name}#{rel_name}"] = None
        copy = dict(visited)
        if isinstance(rw, This | TupleToUserset):
            return False
        if isinstance(rw, ComputedUserset):
            if f"{type_name}#{rw.relation}" in visited:
                return True
            target = self._relation_or_fail(type_name, rw.relation)
            return self._has_cycle(type_name, rw.relation, target.rewrite, copy)
        children = (rw.base, rw.subtract) if isinstance(rw, Difference) else rw.children
        return any(self._has_cycle(type_name, rel_name, child, copy) for child in children)


# --------------------------------------------------------------------------------------------
# OpenFGA API JSON form
# --------------------------------------------------------------------------------------------


def _get(doc: Mapping[str, Any], *names: str) -> Any:
    """The first present field among ``names`` (the API accepts snake_case and camelCase)."""
    for name in names:
        if name in doc:
            return doc[name]
    return None


def _rewrite_from_json(doc: Any, where: str) -> Rewrite:
    if not isinstance(doc, Mapping):
        raise invalid_model(f"{where}: a userset rewrite must be an object")
    present = [k for k, v in doc.items() if v is not None]
    if len(present) != 1:
        raise invalid_model(f"{where}: a userset rewrite must have exactly one operator")
    key = present[0]
    value = doc[key]
    if key == "this":
        return This()
    if key in ("computedUserset", "computed_userset"):
        rel = value.get("relation") if isinstance(value, Mapping) else None
        if not isinstance(rel, str) or not rel:
            raise invalid_model(f"{where}: computed userset without a relation")
        return ComputedUserset(rel)
    if key in ("tupleToUserset", "tuple_to_userset"):
        if not isinstance(value, Mapping):
            raise invalid_model(f"{where}: malformed tuple to userset")
        ts = _get(value, "tupleset")
        cu = _get(value, "computedUserset", "computed_userset")
        ts_rel = ts.get("relation") if isinstance(ts, Mapping) else None
        cu_rel = cu.get("relation") if isinstance(cu, Mapping) else None
        if not isinstance(ts_rel, str) or not ts_rel or not isinstance(cu_rel, str) or not cu_rel:
            raise invalid_model(f"{where}: tuple to userset needs a tupleset and a relation")
        return TupleToUserset(ts_rel, cu_rel)
    if key in ("union", "intersection"):
        children = value.get("child") if isinstance(value, Mapping) else None
        if not isinstance(children, list):
            raise invalid_model(f"{where}: {key} without children")
        parsed = tuple(_rewrite_from_json(c, where) for c in children)
        return Union(parsed) if key == "union" else Intersection(parsed)
    if key == "difference":
        if not isinstance(value, Mapping) or "base" not in value or "subtract" not in value:
            raise invalid_model(f"{where}: difference needs a base and a subtract")
        return Difference(
            _rewrite_from_json(value["base"], where), _rewrite_from_json(value["subtract"], where)
        )
    raise invalid_model(f"{where}: unknown userset operator '{key}'")


def _restriction_from_json(doc: Any, where: str) -> TypeRestriction:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("type"), str):
        raise invalid_model(f"{where}: malformed type restriction")
    relation = doc.get("relation") or ""
    wildcard = doc.get("wildcard") is not None
    condition = doc.get("condition") or ""
    if not isinstance(relation, str) or not isinstance(condition, str):
        raise invalid_model(f"{where}: malformed type restriction")
    if condition:
        raise invalid_model(CONDITIONS_UNSUPPORTED)
    return TypeRestriction(doc["type"], relation, wildcard, condition)


def model_from_json(doc: Mapping[str, Any]) -> AuthorizationModel:
    """Builds a model from its OpenFGA API JSON form (``WriteAuthorizationModel`` body or
    ``ReadAuthorizationModel`` ``authorization_model``); camelCase field names are accepted
    too. Raises :class:`AuthzValidationError` if OpenFGA would refuse the model or if it uses
    conditions."""
    if not isinstance(doc, Mapping):
        raise invalid_model("an authorization model must be a JSON object")
    if _get(doc, "conditions"):
        raise invalid_model(CONDITIONS_UNSUPPORTED)
    schema = _get(doc, "schema_version", "schemaVersion") or "1.1"
    tds = _get(doc, "type_definitions", "typeDefinitions") or []
    if not isinstance(schema, str) or not isinstance(tds, list):
        raise invalid_model("malformed authorization model")
    typedefs: list[TypeDef] = []
    for td in tds:
        if not isinstance(td, Mapping) or not isinstance(td.get("type"), str):
            raise invalid_model("malformed type definition")
        name = td["type"]
        rels = td.get("relations") or {}
        metadata = td.get("metadata") or {}
        if not isinstance(rels, Mapping) or not isinstance(metadata, Mapping):
            raise invalid_model(f"type '{name}': malformed relations or metadata")
        rel_meta = metadata.get("relations") or {}
        if not isinstance(rel_meta, Mapping):
            raise invalid_model(f"type '{name}': malformed relation metadata")
        relations: list[RelationDef] = []
        for rel_name, rw in rels.items():
            where = f"'{name}#{rel_name}'"
            meta = rel_meta.get(rel_name) or {}
            if not isinstance(meta, Mapping):
                raise invalid_model(f"{where}: malformed relation metadata")
            restrictions = (
                _get(meta, "directly_related_user_types", "directlyRelatedUserTypes") or []
            )
            if not isinstance(restrictions, list):
                raise invalid_model(f"{where}: malformed directly related user types")
            relations.append(
                RelationDef(
                    rel_name,
                    _rewrite_from_json(rw, where),
                    tuple(_restriction_from_json(r, where) for r in restrictions),
                )
            )
        typedefs.append(TypeDef(name, relations))
    return AuthorizationModel(schema, typedefs)


def _rewrite_to_json(rw: Rewrite) -> dict[str, Any]:
    if isinstance(rw, This):
        return {"this": {}}
    if isinstance(rw, ComputedUserset):
        return {"computedUserset": {"relation": rw.relation}}
    if isinstance(rw, TupleToUserset):
        return {
            "tupleToUserset": {
                "tupleset": {"relation": rw.tupleset},
                "computedUserset": {"relation": rw.computed},
            }
        }
    if isinstance(rw, Union):
        return {"union": {"child": [_rewrite_to_json(c) for c in rw.children]}}
    if isinstance(rw, Intersection):
        return {"intersection": {"child": [_rewrite_to_json(c) for c in rw.children]}}
    return {
        "difference": {"base": _rewrite_to_json(rw.base), "subtract": _rewrite_to_json(rw.subtract)}
    }


def _restriction_to_json(tr: TypeRestriction) -> dict[str, Any]:
    out: dict[str, Any] = {"type": tr.type}
    if tr.relation:
        out["relation"] = tr.relation
    if tr.wildcard:
        out["wildcard"] = {}
    if tr.condition:
        out["condition"] = tr.condition
    return out


def model_to_json(model: AuthorizationModel) -> dict[str, Any]:
    """The OpenFGA API JSON form of ``model`` (what openfga-sdk sends in
    ``WriteAuthorizationModel``); :func:`model_from_json` is its inverse."""
    tds: list[dict[str, Any]] = []
    for td in model.type_definitions:
        out: dict[str, Any] = {
            "type": td.name,
            "relations": {r.name: _rewrite_to_json(r.rewrite) for r in td.relations},
        }
        if td.relations:
            out["metadata"] = {
                "relations": {
                    r.name: {
                        "directly_related_user_types": [
                            _restriction_to_json(tr) for tr in r.directly_related
                        ]
                    }
                    for r in td.relations
                }
            }
        else:
            out["metadata"] = None
        tds.append(out)
    return {"schema_version": model.schema_version, "type_definitions": tds}


def parse_dsl(text: str) -> AuthorizationModel:
    """Parses and validates a model written in the OpenFGA DSL.

    Raises :class:`~authz.ports.AuthzValidationError` (``invalid_authorization_model``) on a
    syntax error, on a model OpenFGA would refuse, and on models that use conditions or
    modules (which the embedded engine does not support).
    """
    schema_version, type_definitions = parse_definitions(text)
    return AuthorizationModel(schema_version, type_definitions)
