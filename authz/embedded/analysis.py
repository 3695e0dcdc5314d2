"""The analysis of an authorization model that Check, ListObjects and ListUsers share,
done once per model (:func:`analysis_of`): compiled rewrites, the type graph behind the
"can this user type reach this relation at all" test, ListObjects' pruned edges, which
relations OpenFGA resolves with its recursive strategies (:mod:`authz.embedded.recursion`),
and a cache of validated users.
"""

from __future__ import annotations

import re
from typing import Any, Final, NamedTuple

from authz.embedded.definitions import (
    ComputedUserset,
    Difference,
    Intersection,
    RelationDef,
    Rewrite,
    This,
    TupleToUserset,
    Union,
    iter_leaves,
)
from authz.embedded.memory import split_user
from authz.embedded.model import AuthorizationModel
from authz.embedded.recursion import RecursionAnalysis

# Compiled rewrite node tags.
THIS: Final = 0
COMPUTED: Final = 1
TTU: Final = 2
UNION: Final = 3
INTERSECTION: Final = 4
DIFFERENCE: Final = 5

Node = tuple[Any, ...]

# Well-formed objects and usersets (OpenFGA's IsValidObject / IsValidUserset, fast path).
OBJECT_RE: Final = re.compile(r"([^\x00-\x1f\x7f-\x9f #:]+):([^\x00-\x1f\x7f-\x9f #:]+)")
USERSET_RE: Final = re.compile(
    r"([^\x00-\x1f\x7f-\x9f #:]+):([^\x00-\x1f\x7f-\x9f #:*]+)#([^\x00-\x1f\x7f-\x9f #:*]+)"
)
_PROFILE_CACHE_SIZE: Final = 65_536


class UserProfile(NamedTuple):
    """What a check needs to know about its (valid) user."""

    reachable: frozenset[tuple[str, str]]
    user_type: str | None  # None for a userset user (never resolved recursively)
    self_key: tuple[str, str] | None  # (object, relation) of a userset user
    source_kind: str  # the type restriction the user's type falls under
    tuple_kind: str  # the kind of a tuple written for exactly this user
    user_member: str  # what such a tuple stores under that kind
    wildcard_kind: str | None  # "type:*", if wildcards can apply to the user


# ListObjects edges: (kind, target type, target relation, tupleset, needs a check).
DIRECT_EDGE: Final = 0
TTU_EDGE: Final = 1
COMPUTED_EDGE: Final = 2
Edge = tuple[int, str, str, str, bool]


class RelationInfo:
    """Everything the evaluator needs about one ``type#relation``."""

    __slots__ = ("allowed", "key", "name", "rewrite", "type", "userset_kinds")

    def __init__(self, type_name: str, name: str, allowed: frozenset[str], rewrite: Node) -> None:
        self.type = type_name
        self.name = name
        self.key = (type_name, name)
        self.allowed = allowed
        self.userset_kinds: tuple[tuple[str, str], ...] = tuple(
            (kind, kind.partition("#")[2]) for kind in sorted(allowed) if "#" in kind
        )
        self.rewrite = rewrite


class ModelAnalysis:
    """Indexes derived from a model once (and cached on it): compiled rewrites, the type
    graph behind the "can this user type reach this relation at all" test, ListObjects'
    edges, which relations are resolved with OpenFGA's recursive strategies, and a cache of
    validated users."""

    def __init__(self, model: AuthorizationModel) -> None:
        self.model = model
        self.rels: dict[tuple[str, str], RelationInfo] = {}
        for td in model.type_definitions:
            for rel in td.relations:
                allowed = frozenset(tr.label for tr in rel.directly_related)
                self.rels[(td.name, rel.name)] = RelationInfo(
                    td.name, rel.name, allowed, self._compile(td.name, rel.rewrite)
                )
        # Type graph: label ("user", "user:*", "team#member") -> relations it leads into.
        self._succ: dict[str, set[tuple[str, str]]] = {}
        for td in model.type_definitions:
            for rel in td.relations:
                node = (td.name, rel.name)
                for leaf in iter_leaves(rel.rewrite):
                    for label in self._leaf_labels(td.name, rel.name, leaf):
                        self._succ.setdefault(label, set()).add(node)
        self._edges: dict[tuple[tuple[str, str], tuple[str, str, bool]], tuple[Edge, ...]] = {}
        self._involves: dict[tuple[str, str, int], bool] = {}
        self._reach: dict[str, frozenset[tuple[str, str]]] = {}
        self._reach_user: dict[str, frozenset[tuple[str, str]]] = {}
        self._profiles: dict[str, UserProfile] = {}
        self._recursion = RecursionAnalysis(model, self.reachable)

    def recursive_strategy(self, type_name: str, relation: str, user_type: str) -> str | None:
        """``"userset"`` or ``"ttu"`` if OpenFGA resolves ``type#relation`` for users of
        ``user_type`` with its recursive strategy (see
        :class:`~authz.embedded.recursion.RecursionAnalysis`)."""
        return self._recursion.strategy(type_name, relation, user_type)

    def _ttu_parent_types(self, type_name: str, leaf: TupleToUserset) -> tuple[str, ...]:
        """Types a tupleset may point to (plain type restrictions) that define the computed
        relation; tupleset tuples to other types are skipped by the check."""
        tupleset = self.model.relation(type_name, leaf.tupleset)
        assert tupleset is not None
        out: list[str] = []
        for tr in tupleset.directly_related:
            if tr.relation or tr.wildcard or tr.type in out:
                continue
            if self.model.relation(tr.type, leaf.computed) is not None:
                out.append(tr.type)
        return tuple(out)

    def _leaf_labels(self, type_name: str, rel_name: str, leaf: Rewrite) -> list[str]:
        if isinstance(leaf, This):
            rel = self.model.relation(type_name, rel_name)
            assert rel is not None
            return [tr.label for tr in rel.directly_related]
        if isinstance(leaf, ComputedUserset):
            return [f"{type_name}#{leaf.relation}"]
        if isinstance(leaf, TupleToUserset):
            tupleset = self.model.relation(type_name, leaf.tupleset)
            assert tupleset is not None
            return [
                f"{tr.type}#{leaf.computed}"
                for tr in tupleset.directly_related
                if self.model.relation(tr.type, leaf.computed) is not None
            ]
        return []

    def _compile(self, type_name: str, rw: Rewrite) -> Node:
        if isinstance(rw, This):
            return (THIS,)
        if isinstance(rw, ComputedUserset):
            return (COMPUTED, rw.relation)
        if isinstance(rw, TupleToUserset):
            tupleset = self.model.relation(type_name, rw.tupleset)
            assert tupleset is not None
            all_parent_types = tuple(
                dict.fromkeys(
                    tr.type
                    for tr in tupleset.directly_related
                    if not tr.relation and not tr.wildcard
                )
            )
            return (
                TTU,
                rw.tupleset,
                rw.computed,
                self._ttu_parent_types(type_name, rw),
                all_parent_types,
            )
        if isinstance(rw, Union):
            return (UNION, tuple(self._compile(type_name, c) for c in rw.children))
        if isinstance(rw, Intersection):
            return (INTERSECTION, tuple(self._compile(type_name, c) for c in rw.children))
        assert isinstance(rw, Difference)
        return (
            DIFFERENCE,
            self._compile(type_name, rw.base),
            self._compile(type_name, rw.subtract),
        )

    def reachable(self, label: str) -> frozenset[tuple[str, str]]:
        """Relations reachable from ``label`` in the type graph (a relation label reaches
        itself)."""
        cached = self._reach.get(label)
        if cached is not None:
            return cached
        seen: set[tuple[str, str]] = set()
        type_name, sep, rel_name = label.partition("#")
        if sep and (type_name, rel_name) in self.rels:
            seen.add((type_name, rel_name))
        stack = [label]
        while stack:
            for node in self._succ.get(stack.pop(), ()):
                if node not in seen:
                    seen.add(node)
                    stack.append(f"{node[0]}#{node[1]}")
        result = frozenset(seen)
        self._reach[label] = result
        return result

    def reachable_for_user(self, user: str) -> frozenset[tuple[str, str]]:
        """Relations a check for ``user`` can possibly succeed on (OpenFGA's PathExists)."""
        obj, sep, rel = user.rpartition("#")
        if sep:
            return self.reachable(f"{obj.partition(':')[0]}#{rel}")
        user_type = user.partition(":")[0]
        cached = self._reach_user.get(user_type)
        if cached is None:
            cached = self.reachable(user_type) | self.reachable(f"{user_type}:*")
            self._reach_user[user_type] = cached
        return cached

    def profile(self, user: str) -> UserProfile | None:
        """The profile of ``user``, or None if it is not a valid user for the model."""
        cached = self._profiles.get(user)
        if cached is not None:
            return cached
        m = OBJECT_RE.fullmatch(user)
        if m is not None:
            user_type = m.group(1)
            if not self.model.has_type(user_type):
                return None
            tuple_kind, member = split_user(user)
            profile = UserProfile(
                self.reachable_for_user(user),
                user_type,
                None,
                user_type,
                tuple_kind,
                member,
                f"{user_type}:*",
            )
        else:
            m = USERSET_RE.fullmatch(user)
            if m is None:
                return None
            user_type, user_id, rel = m.groups()
            if (user_type, rel) not in self.rels:
                return None
            kind = f"{user_type}#{rel}"
            obj = f"{user_type}:{user_id}"
            profile = UserProfile(
                self.reachable_for_user(user), None, (obj, rel), kind, kind, obj, None
            )
        if len(self._profiles) >= _PROFILE_CACHE_SIZE:
            self._profiles.clear()
        self._profiles[user] = profile
        return profile

    # -- ListObjects edges (OpenFGA's pruned relationship edges) ------------------------------

    def pruned_edges(
        self, target: tuple[str, str], source: tuple[str, str, bool]
    ) -> tuple[Edge, ...]:
        """The edges by which users of ``source`` (``(type, "", False)``, ``(type, "", True)``
        for ``type:*``, or ``(type, relation, False)``) lead to ``target``, following only the
        first operand of intersections and the base of exclusions (those edges are flagged:
        what they find must be confirmed with a check)."""
        key = (target, source)
        cached = self._edges.get(key)
        if cached is None:
            cached = tuple(self._edges_of(target, source, set()))
            self._edges[key] = cached
        return cached

    def _edges_of(
        self, target: tuple[str, str], source: tuple[str, str, bool], visited: set[tuple[str, str]]
    ) -> list[Edge]:
        if target in visited:
            return []
        visited.add(target)
        rel = self.model.relation(*target)
        if rel is None:
            return []
        return self._rewrite_edges(target, rel, rel.rewrite, source, visited)

    def _rewrite_edges(
        self,
        target: tuple[str, str],
        rel: RelationDef,
        rw: Rewrite,
        source: tuple[str, str, bool],
        visited: set[tuple[str, str]],
    ) -> list[Edge]:
        s_type, s_rel, s_wildcard = source
        edges: list[Edge] = []
        if isinstance(rw, This):
            related = any(
                tr.type == s_type
                and (
                    (tr.wildcard and s_wildcard)
                    or (not tr.wildcard and not s_wildcard and tr.relation == s_rel)
                )
                for tr in rel.directly_related
            )
            public = any(tr.type == s_type and tr.wildcard for tr in rel.directly_related)
            if related or public:
                edges.append((DIRECT_EDGE, target[0], target[1], "", False))
            for tr in rel.directly_related:
                if tr.relation:
                    edges.extend(self._edges_of((tr.type, tr.relation), source, visited))
        elif isinstance(rw, ComputedUserset):
            if target[0] == s_type and rw.relation == s_rel:
                edges.append((COMPUTED_EDGE, target[0], target[1], "", False))
            edges.extend(self._edges_of((target[0], rw.relation), source, visited))
        elif isinstance(rw, TupleToUserset):
            tupleset = self.model.relation(target[0], rw.tupleset)
            assert tupleset is not None
            for tr in tupleset.directly_related:
                if self.model.relation(tr.type, rw.computed) is None:
                    continue
                if tr.type == s_type and rw.computed == s_rel:
                    flag = self.involves(tr.type, rw.computed, INTERSECTION) or self.involves(
                        tr.type, rw.computed, DIFFERENCE
                    )
                    edges.append((TTU_EDGE, target[0], target[1], rw.tupleset, flag))
                edges.extend(self._edges_of((tr.type, rw.computed), source, visited))
        elif isinstance(rw, Union):
            for child in rw.children:
                edges.extend(self._rewrite_edges(target, rel, child, source, visited))
        else:
            first = rw.children[0] if isinstance(rw, Intersection) else rw.base
            for kind, t_type, t_rel, ts_name, _ in self._rewrite_edges(
                target, rel, first, source, visited
            ):
                edges.append((kind, t_type, t_rel, ts_name, True))
        return edges

    def involves(self, type_name: str, relation: str, operator: int) -> bool:
        """OpenFGA's RelationInvolvesIntersection / RelationInvolvesExclusion (including its
        habit of stopping at the first intersection or exclusion met)."""
        key = (type_name, relation, operator)
        cached = self._involves.get(key)
        if cached is None:
            cached = self._involves_walk(type_name, relation, operator, set())
            self._involves[key] = cached
        return cached

    def _involves_walk(
        self, type_name: str, relation: str, operator: int, visited: set[tuple[str, str]]
    ) -> bool:
        if (type_name, relation) in visited:
            return False
        visited.add((type_name, relation))
        rel = self.model.relation(type_name, relation)
        if rel is None:
            return False

        def handle(rw: Rewrite) -> bool | None:
            if isinstance(rw, ComputedUserset):
                return (
                    True if self._involves_walk(type_name, rw.relation, operator, visited) else None
                )
            if isinstance(rw, TupleToUserset):
                tupleset = self.model.relation(type_name, rw.tupleset)
                assert tupleset is not None
                for tr in tupleset.directly_related:
                    if self.model.relation(tr.type, rw.computed) is None:
                        continue
                    if self._involves_walk(tr.type, rw.computed, operator, visited):
                        return True
                return None
            if isinstance(rw, Intersection):
                return operator == INTERSECTION
            if isinstance(rw, Difference):
                return operator == DIFFERENCE
            return None

        def walk(rw: Rewrite) -> bool | None:
            result = handle(rw)
            if result is not None:
                return result
            if isinstance(rw, This | ComputedUserset | TupleToUserset):
                return handle(rw)
            children = (rw.base, rw.subtract) if isinstance(rw, Difference) else rw.children
            for child in children:
                result = walk(child)
                if result is not None:
                    return result
            return None

        if walk(rel.rewrite):
            return True
        return any(
            tr.relation
            and (tr.type, tr.relation) not in visited
            and self._involves_walk(tr.type, tr.relation, operator, visited)
            for tr in rel.directly_related
        )


def analysis_of(model: AuthorizationModel) -> ModelAnalysis:
    """The analysis of ``model``, built on first use and kept with the model."""
    return model.derived(ModelAnalysis)
