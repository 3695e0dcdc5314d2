"""Synchronous, in-memory evaluation of OpenFGA schema 1.1 models: Check, ListObjects and
ListUsers, giving OpenFGA's answers (checked against the real engine, see the tests).

Check follows OpenFGA's check resolver:

* A check on ``object#relation`` walks the relation's rewrite. Following a userset tuple or a
  tuple-to-userset edge is a *dispatch* and costs one level of depth; computed usersets
  cost none. Reaching depth 25 is an error (``authorization_model_resolution_too_complex``).
* A node already on the current path is a cycle: it evaluates to false, flagged as a cycle.
  An intersection, or the subtract of an exclusion, that sees a cycle evaluates to false.
* A union is true if any branch is true, even if another one failed; otherwise an error in
  any branch is the union's error. An intersection is false if any branch is false, else an
  error in any branch is its error. An exclusion is false if the base is false or the
  subtract true, and an error otherwise stays an error. Errors are never turned into false.
  OpenFGA evaluates branches concurrently and the first decisive answer wins; the only
  visible effect is whether a false carries the cycle flag, which is decided here by a
  simple model of when each answer would arrive (one unit per read or dispatch).
* ``user == object#relation`` is true (a userset is related to itself), and a check whose
  user type cannot reach the relation in the model's type graph is false without reading.
* Recursive relations (``define member: [user, group#member]``, ``define viewer: [user] or
  viewer from parent``) are walked breadth first when OpenFGA does so (see
  :class:`_RecursionAnalysis`): cycles are then plain false and depth counts levels.
* Stored tuples that the model in force does not allow are ignored.

Within one request, results of sub-problems that did not depend on the path (no cycle met,
no depth limit reached) are memoised, so diamonds in the data are evaluated once.

ListObjects follows OpenFGA's reverse expansion from the user (:class:`_ReverseExpansion`),
confirming with a check only what was reached through an intersection or an exclusion.
ListUsers follows OpenFGA's expansion from the object (:class:`_ListUsersRun`), which is
not a check per user (see :meth:`Evaluator.list_users`).

A request that needs more than ``max_steps`` evaluation steps (pathological models and
data, on which OpenFGA itself runs into its request deadline) fails with
:class:`TooMuchWorkError` rather than running on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
from authz.embedded.memory import (
    MemoryTupleStore,
    is_valid_object,
    key_problem,
    split_user,
    tuple_problem,
    user_problem,
)
from authz.embedded.model import AuthorizationModel
from authz.ports import AuthzEvaluationError, AuthzValidationError, ErrorCode, TupleKey

DEFAULT_MAX_DEPTH: Final = 25
#: Evaluation steps (sub-problems) one request may take before it is abandoned.
DEFAULT_MAX_STEPS: Final = 200_000


class ResolutionTooComplexError(AuthzEvaluationError):
    """The depth limit was reached before a decision could be made (OpenFGA's
    ``authorization_model_resolution_too_complex``)."""

    code: int = ErrorCode.authorization_model_resolution_too_complex.value

    def __init__(self) -> None:
        super().__init__(
            "Authorization Model resolution required too many rewrite rules to be resolved. "
            "Check your authorization model for infinite recursion or too much nesting"
        )


class TooMuchWorkError(AuthzEvaluationError):
    """The request needed more evaluation steps than allowed (pathological models and data,
    on which OpenFGA itself runs into its request deadline)."""

    def __init__(self, max_steps: int) -> None:
        super().__init__(f"authorization request abandoned after {max_steps} evaluation steps")


# Evaluation outcomes (ints: cheap to compare in the hot path).
FALSE: Final = 0
TRUE: Final = 1
CYCLE: Final = 2  # false, reached through a cycle
ERROR: Final = 3

# Compiled rewrite node tags.
_THIS: Final = 0
_COMPUTED: Final = 1
_TTU: Final = 2
_UNION: Final = 3
_INTERSECTION: Final = 4
_DIFFERENCE: Final = 5

_NO_HIT: Final = 1 << 30

Node = tuple[Any, ...]

# Well-formed objects and usersets (OpenFGA's IsValidObject / IsValidUserset, fast path).
_OBJECT_RE: Final = re.compile(r"([^\x00-\x1f\x7f-\x9f #:]+):([^\x00-\x1f\x7f-\x9f #:]+)")
_USERSET_RE: Final = re.compile(
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
_DIRECT_EDGE: Final = 0
_TTU_EDGE: Final = 1
_COMPUTED_EDGE: Final = 2
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
        self._recursion = _RecursionAnalysis(model, self)

    def recursive_strategy(self, type_name: str, relation: str, user_type: str) -> str | None:
        """``"userset"`` or ``"ttu"`` if OpenFGA resolves ``type#relation`` for users of
        ``user_type`` with its recursive strategy (see :class:`_RecursionAnalysis`)."""
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
            return (_THIS,)
        if isinstance(rw, ComputedUserset):
            return (_COMPUTED, rw.relation)
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
                _TTU,
                rw.tupleset,
                rw.computed,
                self._ttu_parent_types(type_name, rw),
                all_parent_types,
            )
        if isinstance(rw, Union):
            return (_UNION, tuple(self._compile(type_name, c) for c in rw.children))
        if isinstance(rw, Intersection):
            return (_INTERSECTION, tuple(self._compile(type_name, c) for c in rw.children))
        assert isinstance(rw, Difference)
        return (
            _DIFFERENCE,
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
        m = _OBJECT_RE.fullmatch(user)
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
            m = _USERSET_RE.fullmatch(user)
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
                edges.append((_DIRECT_EDGE, target[0], target[1], "", False))
            for tr in rel.directly_related:
                if tr.relation:
                    edges.extend(self._edges_of((tr.type, tr.relation), source, visited))
        elif isinstance(rw, ComputedUserset):
            if target[0] == s_type and rw.relation == s_rel:
                edges.append((_COMPUTED_EDGE, target[0], target[1], "", False))
            edges.extend(self._edges_of((target[0], rw.relation), source, visited))
        elif isinstance(rw, TupleToUserset):
            tupleset = self.model.relation(target[0], rw.tupleset)
            assert tupleset is not None
            for tr in tupleset.directly_related:
                if self.model.relation(tr.type, rw.computed) is None:
                    continue
                if tr.type == s_type and rw.computed == s_rel:
                    flag = self.involves(tr.type, rw.computed, _INTERSECTION) or self.involves(
                        tr.type, rw.computed, _DIFFERENCE
                    )
                    edges.append((_TTU_EDGE, target[0], target[1], rw.tupleset, flag))
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
                return operator == _INTERSECTION
            if isinstance(rw, Difference):
                return operator == _DIFFERENCE
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


class _RecursionAnalysis:
    """When OpenFGA's check uses its *recursive* strategies instead of dispatching.

    For a relation that refers to itself through exactly one branch, either a userset
    (``define member: [user, group#member]``) or a tuple-to-userset (``define viewer: [user]
    or viewer from parent``), and whose other branches reach the user type without any
    userset or tuple-to-userset hop, OpenFGA walks the chain breadth first: cycles in the
    data then evaluate to a plain false (not a cycle), and each level, not each hop, costs
    one level of depth. The conditions come from OpenFGA's weighted model graph, which is
    not built at all (and the strategies never used) for models where an intersection or
    an exclusion lies on a cycle of relations, where an intersection's operands share no
    user type, or where a tupleset points to a type lacking the computed relation. The user
    types of an operand are those the graph gives a weight, which excludes types that reach
    it only through one side of a nested intersection (see :meth:`_weighted_node_types`).
    """

    def __init__(self, model: AuthorizationModel, analysis: ModelAnalysis) -> None:
        self.model = model
        self.analysis = analysis
        self._cache: dict[tuple[str, str, str], str | None] = {}
        self._weight: dict[tuple[str, str, str], int] = {}
        self._kind: dict[tuple[str, str], str | None] = {}
        # (type, relation) -> user types with a weight for it (see _weighted_node_types).
        self._node_types: dict[tuple[str, str], set[str]] = {}
        self.graph_ok = self._graph_builds()

    # -- the model graph ----------------------------------------------------------------------

    def _leaf_targets(
        self, type_name: str, rel: RelationDef, leaf: Rewrite
    ) -> list[tuple[str, str]]:
        if isinstance(leaf, This):
            return [(tr.type, tr.relation) for tr in rel.directly_related if tr.relation]
        if isinstance(leaf, ComputedUserset):
            return [(type_name, leaf.relation)]
        if isinstance(leaf, TupleToUserset):
            tupleset = self.model.relation(type_name, leaf.tupleset)
            assert tupleset is not None
            return [(tr.type, leaf.computed) for tr in tupleset.directly_related]
        return []

    def _graph_builds(self) -> bool:
        model = self.model
        # Nodes: relations ("r", type, relation) and operators ("o", type, relation, index).
        succ: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        and_or_but_not: set[tuple[str, ...]] = set()
        intersections: list[tuple[str, RelationDef, Intersection]] = []

        for td in model.type_definitions:
            for rel in td.relations:
                counter = [0]

                def node_of(
                    rw: Rewrite,
                    td_name: str = td.name,
                    rel: RelationDef = rel,
                    counter: list[int] = counter,
                ) -> list[tuple[str, ...]]:
                    if isinstance(rw, Union | Intersection | Difference):
                        op = ("o", td_name, rel.name, str(counter[0]))
                        counter[0] += 1
                        children = (
                            (rw.base, rw.subtract) if isinstance(rw, Difference) else rw.children
                        )
                        if not isinstance(rw, Union):
                            and_or_but_not.add(op)
                        if isinstance(rw, Intersection):
                            intersections.append((td_name, rel, rw))
                        out: list[tuple[str, ...]] = []
                        for child in children:
                            out.extend(node_of(child))
                        succ[op] = out
                        return [op]
                    targets = self._leaf_targets(td_name, rel, rw)
                    if isinstance(rw, TupleToUserset):
                        for t_type, t_rel in targets:
                            if model.relation(t_type, t_rel) is None:
                                raise _NoWeightedGraph
                    return [("r", t, r) for t, r in targets]

                try:
                    succ[("r", td.name, rel.name)] = node_of(rel.rewrite)
                except _NoWeightedGraph:
                    return False
        self._scc = _strongly_connected(succ)
        self._weighted_node_types()
        for op in and_or_but_not:
            component = self._scc.get(op)
            if component is not None and (len(component) > 1 or op in succ.get(op, [])):
                return False
        for type_name, rel, rw in intersections:
            common: set[str] | None = None
            for child in rw.children:
                types = self._terminal_types(type_name, rel, child)
                common = types if common is None else common & types
            if not common:
                return False
        return True

    def _terminal_types(self, type_name: str, rel: RelationDef, rw: Rewrite) -> set[str]:
        """User types that can reach ``rw`` (wildcards count as their type): all operands of
        a union, only those common to every operand of an intersection, and only the base
        of an exclusion."""
        if isinstance(rw, Union):
            return set().union(*(self._terminal_types(type_name, rel, c) for c in rw.children))
        if isinstance(rw, Intersection):
            sets = [self._terminal_types(type_name, rel, c) for c in rw.children]
            return set.intersection(*sets)
        if isinstance(rw, Difference):
            return self._terminal_types(type_name, rel, rw.base)
        out: set[str] = set()
        if isinstance(rw, This):
            out.update(tr.type for tr in rel.directly_related if not tr.relation)
        for target in self._leaf_targets(type_name, rel, rw):
            out.update(self._node_types.get(target, ()))
        return out

    def _weighted_node_types(self) -> None:
        """The user types each relation has a weight for in OpenFGA's weighted graph: like
        reachability, except that an intersection only keeps the types common to all its
        operands and an exclusion only those of its base. (A type reaching a relation only
        through one operand of an intersection has no weight for it, so it does not count
        when another intersection's operands are matched.) Computed as the least fixed point,
        which is exact for cycles of unions, the only cycles the graph allows."""
        self._node_types = {
            (td.name, rel.name): set() for td in self.model.type_definitions for rel in td.relations
        }
        changed = True
        while changed:
            changed = False
            for td in self.model.type_definitions:
                for rel in td.relations:
                    types = self._terminal_types(td.name, rel, rel.rewrite)
                    current = self._node_types[(td.name, rel.name)]
                    if not types <= current:
                        current |= types
                        changed = True

    # -- per relation -------------------------------------------------------------------------

    def _recursive_kind(self, type_name: str, rel_name: str) -> str | None:
        """ "userset" / "ttu" if the relation is recursive through exactly one branch of that
        kind and no other relation takes part in its cycles."""
        key = (type_name, rel_name)
        if key in self._kind:
            return self._kind[key]
        kind: str | None = None
        node = ("r", type_name, rel_name)
        component = self._scc.get(node, frozenset())
        other_relations = [n for n in component if n[0] == "r" and n != node]
        rel = self.model.relation(type_name, rel_name)
        assert rel is not None
        if not other_relations:
            branches: list[str] = []
            for leaf in iter_leaves(rel.rewrite):
                if isinstance(leaf, This):
                    if any(
                        tr.type == type_name and tr.relation == rel_name
                        for tr in rel.directly_related
                    ):
                        branches.append("userset")
                elif isinstance(leaf, TupleToUserset) and leaf.computed == rel_name:
                    tupleset = self.model.relation(type_name, leaf.tupleset)
                    assert tupleset is not None
                    if any(tr.type == type_name for tr in tupleset.directly_related):
                        branches.append("ttu")
            if len(branches) == 1:
                kind = branches[0]
        self._kind[key] = kind
        return kind

    def strategy(self, type_name: str, rel_name: str, user_type: str) -> str | None:
        key = (type_name, rel_name, user_type)
        if key in self._cache:
            return self._cache[key]
        result: str | None = None
        if self.graph_ok:
            kind = self._recursive_kind(type_name, rel_name)
            reach = self.analysis.reachable(user_type) | self.analysis.reachable(f"{user_type}:*")
            if kind is not None and (type_name, rel_name) in reach:
                rel = self.model.relation(type_name, rel_name)
                assert rel is not None
                if self._other_branches_weight_one(type_name, rel, rel.rewrite, user_type, kind):
                    result = kind
        self._cache[key] = result
        return result

    def _other_branches_weight_one(
        self, type_name: str, rel: RelationDef, rw: Rewrite, user_type: str, kind: str
    ) -> bool:
        """Every branch other than the recursive one reaches ``user_type`` without a hop (or
        not at all)."""
        if isinstance(rw, Union):
            return all(
                self._other_branches_weight_one(type_name, rel, c, user_type, kind)
                for c in rw.children
            )
        if isinstance(rw, This):
            for tr in rel.directly_related:
                if not tr.relation:
                    continue
                if kind == "userset" and tr.type == type_name and tr.relation == rel.name:
                    continue
                if self.weight(tr.type, tr.relation, user_type):
                    return False
            return True
        if isinstance(rw, TupleToUserset):
            tupleset = self.model.relation(type_name, rw.tupleset)
            assert tupleset is not None
            for tr in tupleset.directly_related:
                if kind == "ttu" and rw.computed == rel.name and tr.type == type_name:
                    continue
                if self.weight(tr.type, rw.computed, user_type):
                    return False
            return True
        return self._rewrite_weight(type_name, rel, rw, user_type, set()) <= 1

    def weight(self, type_name: str, rel_name: str, user_type: str) -> int:
        """0 if ``user_type`` cannot reach the relation, 1 if only through direct
        assignments (and computed relations), 2 if through at least one hop."""
        return self._weight_of(type_name, rel_name, user_type, set())

    def _weight_of(
        self, type_name: str, rel_name: str, user_type: str, stack: set[tuple[str, str]]
    ) -> int:
        key = (type_name, rel_name, user_type)
        cached = self._weight.get(key)
        if cached is not None:
            return cached
        if (type_name, rel_name) in stack:
            reach = self.analysis.reachable(user_type) | self.analysis.reachable(f"{user_type}:*")
            return 2 if (type_name, rel_name) in reach else 0
        rel = self.model.relation(type_name, rel_name)
        if rel is None:
            return 0
        stack.add((type_name, rel_name))
        result = self._rewrite_weight(type_name, rel, rel.rewrite, user_type, stack)
        stack.discard((type_name, rel_name))
        if not stack:
            self._weight[key] = result
        return result

    def _rewrite_weight(
        self,
        type_name: str,
        rel: RelationDef,
        rw: Rewrite,
        user_type: str,
        stack: set[tuple[str, str]],
    ) -> int:
        if isinstance(rw, This):
            best = 0
            for tr in rel.directly_related:
                if tr.relation:
                    if self._weight_of(tr.type, tr.relation, user_type, stack):
                        best = 2
                elif tr.type == user_type:
                    best = max(best, 1)
            return best
        if isinstance(rw, ComputedUserset):
            return self._weight_of(type_name, rw.relation, user_type, stack)
        if isinstance(rw, TupleToUserset):
            tupleset = self.model.relation(type_name, rw.tupleset)
            assert tupleset is not None
            for tr in tupleset.directly_related:
                if self._weight_of(tr.type, rw.computed, user_type, stack):
                    return 2
            return 0
        if isinstance(rw, Union):
            return max(
                self._rewrite_weight(type_name, rel, c, user_type, stack) for c in rw.children
            )
        if isinstance(rw, Intersection):
            weights = [
                self._rewrite_weight(type_name, rel, c, user_type, stack) for c in rw.children
            ]
            return 0 if 0 in weights else max(weights)
        assert isinstance(rw, Difference)
        base = self._rewrite_weight(type_name, rel, rw.base, user_type, stack)
        if base == 0:
            return 0
        return max(base, self._rewrite_weight(type_name, rel, rw.subtract, user_type, stack))


class _NoWeightedGraph(Exception):
    """OpenFGA's weighted graph cannot be built for the model."""


def _strongly_connected(
    succ: dict[tuple[str, ...], list[tuple[str, ...]]],
) -> dict[tuple[str, ...], frozenset[tuple[str, ...]]]:
    """Strongly connected components (iterative Tarjan): node -> its component."""
    index: dict[tuple[str, ...], int] = {}
    low: dict[tuple[str, ...], int] = {}
    on_stack: set[tuple[str, ...]] = set()
    stack: list[tuple[str, ...]] = []
    result: dict[tuple[str, ...], frozenset[tuple[str, ...]]] = {}
    counter = 0
    for root in list(succ):
        if root in index:
            continue
        work: list[tuple[tuple[str, ...], int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = succ.get(node, [])
            if i < len(children):
                work.append((node, i + 1))
                child = children[i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component: list[tuple[str, ...]] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                frozen = frozenset(component)
                for member in component:
                    result[member] = frozen
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result


class _CheckRun:
    """State of one request for one user: the current path (cycle detection) and the memo
    of path-independent results."""

    __slots__ = (
        "analysis",
        "error",
        "fast",
        "hit",
        "max_depth",
        "max_steps",
        "memo",
        "path",
        "reach",
        "reachable",
        "rels",
        "self_key",
        "source_kind",
        "steps_left",
        "stores",
        "strategies",
        "time",
        "tuple_kind",
        "user",
        "user_member",
        "user_type",
        "wildcard_kind",
    )

    def __init__(
        self,
        analysis: ModelAnalysis,
        stores: tuple[MemoryTupleStore, ...],
        user: str,
        profile: UserProfile,
        max_depth: int,
        max_steps: int = DEFAULT_MAX_STEPS,
    ) -> None:
        self.analysis = analysis
        self.max_steps = max_steps
        self.steps_left = max_steps
        self.rels = analysis.rels
        self.stores = stores
        self.user = user
        self.max_depth = max_depth
        (
            self.reachable,
            self.user_type,
            self.self_key,
            self.source_kind,
            self.tuple_kind,
            self.user_member,
            self.wildcard_kind,
        ) = profile
        # (type, relation) -> recursive strategy for this user's type, or None.
        self.strategies: dict[tuple[str, str], str | None] = {}
        # (type, relation) -> objects the user reaches without any hop (recursive strategies).
        self.fast: dict[tuple[str, str], set[str]] = {}
        self.path: dict[tuple[str, str], int] = {}
        # (object, relation) -> (result, depth it needed, time it took)
        self.memo: dict[tuple[str, str], tuple[int, int, int]] = {}
        self.time = 0
        self.hit = _NO_HIT
        self.reach = 0
        self.error: AuthzEvaluationError | None = None

    def resolve(self, obj: str, rel: str, depth: int) -> int:
        """Is the user related to ``obj`` by ``rel``? (OpenFGA's ResolveCheck).

        Like every evaluation step, sets ``self.time``: when the answer would be known in
        OpenFGA's concurrent evaluation (one unit per read or dispatch). Races between
        concurrent branches only decide whether a false answer carries the cycle flag."""
        self.time = 0
        self.steps_left -= 1
        if self.steps_left < 0:
            raise TooMuchWorkError(self.max_steps)
        if depth >= self.max_depth:
            self.error = ResolutionTooComplexError()
            if depth > self.reach:
                self.reach = depth
            return ERROR
        key = (obj, rel)
        path = self.path
        pos = path.get(key)
        if pos is not None:
            if pos < self.hit:
                self.hit = pos
            return CYCLE
        if key == self.self_key:
            return TRUE
        info = self.rels.get((obj.partition(":")[0], rel))
        if info is None:
            self.error = AuthzEvaluationError(f"relation '{obj}#{rel}' is undefined")
            return ERROR
        if info.key not in self.reachable:
            return FALSE
        memo = self.memo.get(key)
        if memo is not None and depth + memo[1] < self.max_depth:
            if depth + memo[1] > self.reach:
                self.reach = depth + memo[1]
            self.time = memo[2]
            return memo[0]
        outer_hit, outer_reach = self.hit, self.reach
        self.hit, self.reach = _NO_HIT, depth
        path[key] = len(path)
        result = self.evaluate(info.rewrite, obj, info, depth)
        del path[key]
        hit, reach = self.hit, self.reach
        if hit == _NO_HIT and result <= TRUE and reach < self.max_depth:
            self.memo[key] = (result, reach - depth, self.time)
        self.hit = hit if hit < outer_hit else outer_hit
        self.reach = reach if reach > outer_reach else outer_reach
        return result

    def evaluate(self, node: Node, obj: str, info: RelationInfo, depth: int) -> int:
        tag = node[0]
        if tag == _THIS:
            return self.direct(obj, info, depth)
        if tag == _COMPUTED:
            return self.resolve(obj, node[1], depth)
        if tag == _TTU:
            return self.tuple_to_userset(obj, node, info, depth)
        if tag == _UNION:
            error = cycle = False
            latest = 0
            for child in node[1]:
                r = self.evaluate(child, obj, info, depth)
                if r == TRUE:
                    return TRUE
                if r == ERROR:
                    error = True
                elif r == CYCLE:
                    cycle = True
                if self.time > latest:
                    latest = self.time
            self.time = latest
            return ERROR if error else CYCLE if cycle else FALSE
        if tag == _INTERSECTION:
            # The first operand to answer false decides (and whether it carries the flag).
            error = False
            latest = 0
            first = -1
            first_time = 0
            for child in node[1]:
                r = self.evaluate(child, obj, info, depth)
                t = self.time
                if r in (FALSE, CYCLE):
                    if first < 0 or t < first_time:
                        first, first_time = r, t
                    if t == 0:
                        break
                elif r == ERROR:
                    error = True
                if t > latest:
                    latest = t
            if first >= 0:
                self.time = first_time
                return first
            self.time = latest
            return ERROR if error else TRUE
        # _DIFFERENCE: both sides run; a false base or a true subtract decides, whichever
        # answers first.
        base = self.evaluate(node[1], obj, info, depth)
        base_time = self.time
        subtract = self.evaluate(node[2], obj, info, depth)
        subtract_time = self.time
        base_decides = base in (FALSE, CYCLE)
        subtract_decides = subtract in (TRUE, CYCLE)
        if base_decides and (not subtract_decides or base_time <= subtract_time):
            self.time = base_time
            return base
        if subtract_decides:
            self.time = subtract_time
            return FALSE if subtract == TRUE else CYCLE
        self.time = max(base_time, subtract_time)
        if base == ERROR or subtract == ERROR:
            return ERROR
        return TRUE

    def direct(self, obj: str, info: RelationInfo, depth: int) -> int:
        """The ``[...]`` part: a direct tuple, a public wildcard, or a userset tuple."""
        allowed = info.allowed
        check_direct = self.source_kind in allowed and self.tuple_kind in allowed
        wildcard = self.wildcard_kind
        check_public = wildcard is not None and wildcard in allowed
        key = (obj, info.name)
        if check_direct or check_public:
            for store in self.stores:
                by_kind = store.fwd_index.get(key)
                if by_kind is None:
                    continue
                if check_direct:
                    members = by_kind.get(self.tuple_kind)
                    if members is not None and self.user_member in members:
                        self.time = 1
                        return TRUE
                if check_public and wildcard in by_kind:
                    self.time = 1
                    return TRUE
            latest = 1
        else:
            latest = 0
        if not info.userset_kinds:
            self.time = latest
            return FALSE
        if self.strategy(info) == "userset":
            return self.recursive(obj, info, info.name, info.userset_kinds, info.key, depth)
        error = cycle = False
        latest = 1
        for kind, relation in info.userset_kinds:
            for store in self.stores:
                by_kind = store.fwd_index.get(key)
                if by_kind is None:
                    continue
                for member in by_kind.get(kind, ()):
                    r = self.resolve(member, relation, depth + 1)
                    t = self.time + 2
                    if r == TRUE:
                        self.time = t
                        return TRUE
                    if r == ERROR:
                        error = True
                    elif r == CYCLE:
                        cycle = True
                    if t > latest:
                        latest = t
        self.time = latest
        return ERROR if error else CYCLE if cycle else FALSE

    def tuple_to_userset(self, obj: str, node: Node, info: RelationInfo, depth: int) -> int:
        _, tupleset, computed, parent_types, all_parent_types = node
        if self.strategy(info) == "ttu":
            kinds = tuple((t, "") for t in all_parent_types)
            return self.recursive(obj, info, tupleset, kinds, None, depth, computed)
        key = (obj, tupleset)
        error = cycle = False
        latest = 1
        for store in self.stores:
            by_kind = store.fwd_index.get(key)
            if by_kind is None:
                continue
            for parent_type in parent_types:
                for parent in by_kind.get(parent_type, ()):
                    r = self.resolve(parent, computed, depth + 1)
                    t = self.time + 2
                    if r == TRUE:
                        self.time = t
                        return TRUE
                    if r == ERROR:
                        error = True
                    elif r == CYCLE:
                        cycle = True
                    if t > latest:
                        latest = t
        self.time = latest
        return ERROR if error else CYCLE if cycle else FALSE

    # -- OpenFGA's recursive strategies -----------------------------------------------------

    def strategy(self, info: RelationInfo) -> str | None:
        if self.user_type is None:
            return None
        key = info.key
        if key not in self.strategies:
            self.strategies[key] = self.analysis.recursive_strategy(
                info.type, info.name, self.user_type
            )
        return self.strategies[key]

    def fast_objects(self, type_name: str, relation: str) -> set[str]:
        """Objects of ``type_name`` the user is related to by ``relation`` without any
        userset or tuple-to-userset hop (direct tuples, wildcards, computed relations)."""
        key = (type_name, relation)
        cached = self.fast.get(key)
        if cached is None:
            info = self.rels.get(key)
            cached = set() if info is None else self._fast(info.rewrite, info)
            self.fast[key] = cached
        return cached

    def _fast(self, node: Node, info: RelationInfo) -> set[str]:
        tag = node[0]
        if tag == _THIS:
            out: set[str] = set()
            subjects = []
            if self.tuple_kind in info.allowed:
                subjects.append(self.user)
            if self.wildcard_kind is not None and self.wildcard_kind in info.allowed:
                subjects.append(self.wildcard_kind)
            for subject in subjects:
                for store in self.stores:
                    out.update(store.rev_index.get((subject, info.name, info.type), ()))
            return out
        if tag == _COMPUTED:
            return self.fast_objects(info.type, node[1])
        if tag == _TTU:
            return set()
        parts = [self._fast(child, info) for child in (node[1:] if tag == _DIFFERENCE else node[1])]
        if tag == _UNION:
            return set().union(*parts)
        if tag == _INTERSECTION:
            return set.intersection(*parts)
        return parts[0] - parts[1]

    def recursive(
        self,
        obj: str,
        info: RelationInfo,
        read_relation: str,
        kinds: tuple[tuple[str, str], ...],
        user_side_key: tuple[str, str] | None,
        depth: int,
        computed: str = "",
    ) -> int:
        """Breadth-first resolution of a recursive userset (``read_relation`` is the relation
        itself) or tuple-to-userset (``read_relation`` is the tupleset): follow the chain
        level by level until an object the user reaches without a hop is met."""

        def step(o: str) -> list[str]:
            o_info = self.rels.get((o.partition(":")[0], read_relation))
            found: list[str] = []
            if o_info is None:
                return found
            for store in self.stores:
                by_kind = store.fwd_index.get((o, read_relation))
                if by_kind is None:
                    continue
                for kind, _ in kinds:
                    if kind in o_info.allowed:
                        found.extend(by_kind.get(kind, ()))
            return found

        first = set(step(obj))
        self.time = 1
        if not first:
            return FALSE
        if user_side_key is not None:
            user_side = self.fast_objects(*user_side_key)
        else:
            user_side = set()
            for parent_type, _ in kinds:
                user_side |= self.fast_objects(parent_type, computed)
        if not user_side:
            return FALSE
        if not first.isdisjoint(user_side):
            return TRUE
        visited: set[str] = set()
        level = first
        level_depth = depth
        while True:
            level_depth += 1
            self.time += 1
            if level_depth > self.reach:
                self.reach = level_depth
            if level_depth >= self.max_depth:
                self.error = ResolutionTooComplexError()
                return ERROR
            if not level:
                return FALSE
            following: set[str] = set()
            for o in level:
                if o in visited:
                    continue
                visited.add(o)
                for child in step(o):
                    if child in user_side:
                        return TRUE
                    following.add(child)
            level = following


def _validation(code: ErrorCode, message: str) -> AuthzValidationError:
    return AuthzValidationError(code, message)


class Evaluator:
    """Answers Check, ListObjects and ListUsers for one model over one tuple store.

    Request validation errors raise :class:`AuthzValidationError` with OpenFGA's codes
    (2000 validation_error, 2021 type_not_found, 2022 relation_not_found, 2027 invalid_tuple
    for contextual tuples). When no decision can be made, :class:`AuthzEvaluationError` is
    raised (:class:`ResolutionTooComplexError` for the depth limit): never ``False``.
    """

    def __init__(
        self,
        model: AuthorizationModel,
        tuples: MemoryTupleStore,
        *,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_steps: int = DEFAULT_MAX_STEPS,
    ) -> None:
        self.model = model
        self.tuples = tuples
        self.max_depth = max_depth
        self.max_steps = max_steps
        self._analysis = model.derived(ModelAnalysis)

    # -- helpers --------------------------------------------------------------------------------

    def _stores(self, contextual_tuples: Sequence[TupleKey]) -> tuple[MemoryTupleStore, ...]:
        if not contextual_tuples:
            return (self.tuples,)
        for t in contextual_tuples:
            problem = tuple_problem(self.model, t)
            if problem is not None:
                raise _validation(
                    ErrorCode.invalid_tuple, f"Invalid tuple '{t}'. Reason: {problem}"
                )
        return (self.tuples, MemoryTupleStore(contextual_tuples))

    def _run(self, stores: tuple[MemoryTupleStore, ...], user: str) -> _CheckRun:
        profile = self._analysis.profile(user)
        if profile is None:
            problem = user_problem(self.model, user) or "invalid user"
            raise _validation(ErrorCode.validation_error, f"invalid 'user' value: {problem}")
        return _CheckRun(self._analysis, stores, user, profile, self.max_depth, self.max_steps)

    @staticmethod
    def _outcome(run: _CheckRun, result: int) -> bool:
        if result == TRUE:
            return True
        if result == ERROR:
            assert run.error is not None
            raise run.error
        return False

    def _target_relation(self, type: str, relation: str) -> None:
        if not self.model.has_type(type):
            raise _validation(ErrorCode.type_not_found, f"type '{type}' not found")
        if self.model.relation(type, relation) is None:
            raise _validation(
                ErrorCode.relation_not_found, f"relation '{type}#{relation}' not found"
            )

    # -- Check ----------------------------------------------------------------------------------

    def check(
        self, user: str, relation: str, object: str, contextual_tuples: Sequence[TupleKey] = ()
    ) -> bool:
        """Whether ``user`` is related to ``object`` by ``relation``."""
        analysis = self._analysis
        profile = analysis.profile(user)
        m = _OBJECT_RE.fullmatch(object)
        if (
            profile is None
            or m is None
            or m.group(2) == "*"
            or (m.group(1), relation) not in analysis.rels
        ):
            problem = key_problem(self.model, user, relation, object) or "invalid request"
            raise _validation(ErrorCode.validation_error, f"Invalid check request: {problem}")
        stores = (self.tuples,) if not contextual_tuples else self._stores(contextual_tuples)
        run = _CheckRun(analysis, stores, user, profile, self.max_depth, self.max_steps)
        result = run.resolve(object, relation, 0)
        if result == TRUE:
            return True
        if result == ERROR:
            assert run.error is not None
            raise run.error
        return False

    # -- ListObjects ----------------------------------------------------------------------------

    def list_objects(
        self, user: str, relation: str, type: str, contextual_tuples: Sequence[TupleKey] = ()
    ) -> list[str]:
        """Every object of ``type`` that ``user`` is related to by ``relation`` (sorted).

        Follows OpenFGA's ListObjects: objects are found by expanding from the user towards
        the type along the model's edges (each expansion step costs one level of depth, so
        very long chains are an error); objects reached through an intersection or an
        exclusion are confirmed with a check."""
        stores = self._stores(contextual_tuples)
        self._target_relation(type, relation)
        problem = user_problem(self.model, user)
        if problem is not None:
            raise _validation(ErrorCode.validation_error, f"invalid 'user' value: {problem}")
        expansion = _ReverseExpansion(
            self._analysis, stores, type, relation, self.max_depth, self.max_steps
        )
        expansion.run(user)
        run = self._run(stores, user)
        found: list[str] = []
        for candidate, needs_check in expansion.candidates.items():
            if not needs_check or self._outcome(run, run.resolve(candidate, relation, 0)):
                found.append(candidate)
        found.sort()
        return found

    # -- ListUsers ------------------------------------------------------------------------------

    def list_users(
        self,
        object: str,
        relation: str,
        user_filters: Sequence[str],
        contextual_tuples: Sequence[TupleKey] = (),
    ) -> list[str]:
        """Users of the filter's type (``type`` or ``type#relation``; exactly one filter, as
        the OpenFGA API requires) related to ``object`` by ``relation``: ``type:id``,
        ``type:*`` (everyone of the type) or ``type:id#relation`` (sorted).

        This follows OpenFGA's ListUsers expansion, which is not a check per user: with a
        ``type#relation`` filter, directly related objects of that type are returned too,
        and exclusions whose subtracted side meets a cycle contribute nobody."""
        if not is_valid_object(object) or object.endswith(":*"):
            raise _validation(ErrorCode.validation_error, f"invalid object '{object}'")
        if len(user_filters) != 1:
            raise _validation(ErrorCode.validation_error, "exactly one user filter is required")
        stores = self._stores(contextual_tuples)
        f_type, sep, f_rel = user_filters[0].partition("#")
        if not f_type or (sep and not f_rel):
            raise _validation(
                ErrorCode.validation_error, f"invalid user filter '{user_filters[0]}'"
            )
        if not self.model.has_type(f_type):
            raise _validation(ErrorCode.type_not_found, f"type '{f_type}' not found")
        if sep and self.model.relation(f_type, f_rel) is None:
            raise _validation(
                ErrorCode.relation_not_found, f"relation '{f_type}#{f_rel}' not found"
            )
        obj_type = object.partition(":")[0]
        self._target_relation(obj_type, relation)
        if not (obj_type == f_type and relation == f_rel) and not _has_possible_edges(
            self.model, (obj_type, relation), (f_type, f_rel), set()
        ):
            return []
        run = _ListUsersRun(self._analysis, stores, f_type, f_rel, self.max_depth, self.max_steps)
        found, _, failed, _ = run.expand(object, relation, 0, frozenset())
        if failed:
            raise ResolutionTooComplexError()
        status: dict[str, int] = {}
        for user, st, _, _ in run.arrival_order(found):
            status[user] = st
        return sorted(user for user, st in status.items() if st == _HAS)


class _ReverseExpansion:
    """OpenFGA's ListObjects reverse expansion for one request.

    Starting from the user, each step reads the tuples that relate the current subject to
    an object along one of the model's edges towards the target, and continues from
    ``object#relation``. A subject that is ``target_object#target_relation`` is a
    candidate; candidates reached through an intersection or an exclusion need a check.
    Every step costs one level of depth (the first one is free); a userset already expanded
    through the same edge is not expanded again."""

    __slots__ = (
        "analysis",
        "candidates",
        "max_depth",
        "max_steps",
        "rels",
        "steps_left",
        "stores",
        "target",
        "visited",
    )

    def __init__(
        self,
        analysis: ModelAnalysis,
        stores: tuple[MemoryTupleStore, ...],
        target_type: str,
        target_relation: str,
        max_depth: int,
        max_steps: int = DEFAULT_MAX_STEPS,
    ) -> None:
        self.analysis = analysis
        self.rels = analysis.rels
        self.stores = stores
        self.max_steps = max_steps
        self.steps_left = max_steps
        self.target = (target_type, target_relation)
        self.max_depth = max_depth
        self.visited: set[tuple[str, str, tuple[int, str, str, str]]] = set()
        # object -> needs a check (the first way an object is found wins)
        self.candidates: dict[str, bool] = {}

    def run(self, user: str) -> None:
        obj, sep, rel = user.rpartition("#")
        if sep:
            self.expand(obj, rel, None, False, None)
        else:
            self.expand(user, "", None, False, None)

    def read(self, obj_type: str, relation: str, subjects: list[str]) -> list[str]:
        """Objects of ``obj_type`` related by ``relation`` to one of ``subjects`` (tuples the
        model does not allow are skipped)."""
        info = self.rels.get((obj_type, relation))
        if info is None:
            return []
        found: dict[str, None] = {}
        for store in reversed(self.stores):
            for subject in subjects:
                if split_user(subject)[0] in info.allowed:
                    found.update(store.rev_index.get((subject, relation, obj_type), {}))
        return list(found)

    def expand(
        self,
        subject: str,
        relation: str,
        in_edge: tuple[int, str, str, str] | None,
        needs_check: bool,
        depth: int | None,
    ) -> None:
        """Expands from ``subject`` (an object, ``type:*``, or with ``relation`` the userset
        ``subject#relation``)."""
        self.steps_left -= 1
        if self.steps_left < 0:
            raise TooMuchWorkError(self.max_steps)
        if depth is None:
            depth = 0
        else:
            if depth >= self.max_depth:
                raise ResolutionTooComplexError()
            depth += 1
        subject_type = subject.partition(":")[0]
        if relation:
            if in_edge is not None:
                key = (subject, relation, in_edge)
                if key in self.visited:
                    return
                self.visited.add(key)
            if (subject_type, relation) == self.target and subject not in self.candidates:
                self.candidates[subject] = needs_check
            source = (subject_type, relation, False)
        else:
            source = (subject_type, "", subject.endswith(":*"))
        for kind, t_type, t_rel, tupleset, flagged in self.analysis.pruned_edges(
            self.target, source
        ):
            edge_key = (kind, t_type, t_rel, tupleset)
            check = needs_check or flagged
            if kind == _DIRECT_EDGE:
                subjects: list[str] = []
                if not relation:
                    info = self.rels.get((t_type, t_rel))
                    if info is not None and f"{subject_type}:*" in info.allowed:
                        subjects.append(f"{subject_type}:*")
                    if not source[2]:
                        subjects.append(subject)
                else:
                    subjects.append(f"{subject}#{relation}")
                for found in self.read(t_type, t_rel, subjects):
                    self.expand(found, t_rel, edge_key, check, depth)
            elif kind == _COMPUTED_EDGE:
                self.expand(subject, t_rel, edge_key, check, depth)
            else:
                for found in self.read(t_type, tupleset, [subject]):
                    self.expand(found, t_rel, edge_key, check, depth)


# ListUsers relationship status of a found user (exclusions can deny explicitly).
_HAS: Final = 0
_NOT: Final = 1

# (user, status, users excluded below this point, when it reaches the collector)
Found = tuple[str, int, tuple[str, ...], int]
# (found users, cycle met, failed, when the expansion is complete)
Expansion = tuple[list[Found], bool, bool, int]


class _ListUsersRun:
    """OpenFGA's ListUsers expansion for one request, evaluated sequentially.

    Every expansion step (including computed usersets) costs one level of depth; a step
    already on the path is a cycle. Errors travel up to the request, except under an
    exclusion whose subtracted side met a cycle (which then contributes nobody)."""

    __slots__ = (
        "f_rel",
        "f_type",
        "max_depth",
        "max_steps",
        "rels",
        "steps_left",
        "stores",
        "wildcard_key",
    )

    def __init__(
        self,
        analysis: ModelAnalysis,
        stores: tuple[MemoryTupleStore, ...],
        f_type: str,
        f_rel: str,
        max_depth: int,
        max_steps: int = DEFAULT_MAX_STEPS,
    ) -> None:
        self.rels = analysis.rels
        self.stores = stores
        self.max_steps = max_steps
        self.steps_left = max_steps
        self.f_type = f_type
        self.f_rel = f_rel
        self.max_depth = max_depth
        self.wildcard_key = f"{f_type}:*"

    def users(self, obj: str, rel: str) -> list[str]:
        """Users of the tuples on ``obj#rel`` in storage order (contextual tuples first)."""
        if len(self.stores) == 1:
            return list(self.stores[0].users_index.get((obj, rel), ()))
        merged: dict[str, None] = {}
        for store in reversed(self.stores):
            merged.update(store.users_index.get((obj, rel), {}))
        return list(merged)

    def expand(
        self, obj: str, rel: str, depth: int, visited: frozenset[tuple[str, str]]
    ) -> Expansion:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise TooMuchWorkError(self.max_steps)
        if depth >= self.max_depth:
            return [], False, True, 0
        depth += 1
        key = (obj, rel)
        if key in visited:
            return [], True, False, 0
        visited = visited | {key}
        obj_type = obj.partition(":")[0]
        found: list[Found] = []
        if obj_type == self.f_type and rel == self.f_rel:
            found.append((f"{obj}#{rel}", _HAS, (), 0))
        info = self.rels.get((obj_type, rel))
        if info is None:
            return found, False, False, 0
        more, cycle, failed, done = self.rewrite(info.rewrite, obj, info, depth, visited)
        found.extend((u, st, ex, t + 1) for u, st, ex, t in more)
        return found, cycle, failed, done + 1

    def rewrite(
        self,
        node: Node,
        obj: str,
        info: RelationInfo,
        depth: int,
        visited: frozenset[tuple[str, str]],
    ) -> Expansion:
        tag = node[0]
        if tag == _THIS:
            return self.direct(obj, info, depth, visited)
        if tag == _COMPUTED:
            return self.expand(obj, node[1], depth, visited)
        if tag == _TTU:
            found: list[Found] = []
            failed = False
            done = 0
            for index, parent in enumerate(self.users(obj, node[1]), 1):
                done = index
                if split_user(parent)[0] not in node[4]:
                    continue
                more, _, child_failed, child_done = self.expand(parent, node[2], depth, visited)
                found.extend((u, st, ex, t + index) for u, st, ex, t in more)
                failed = failed or child_failed
                done = max(done, child_done + index)
            return found, False, failed, done
        children = (node[1], node[2]) if tag == _DIFFERENCE else node[1]
        results = [self.rewrite(child, obj, info, depth, visited) for child in children]
        done = max(r[3] for r in results)
        failed = any(r[2] for r in results)
        if tag == _UNION:
            out = self.union([r[0] for r in results])
        elif tag == _INTERSECTION:
            out = self.intersection([r[0] for r in results])
        else:
            if results[1][1]:
                # The subtracted side met a cycle: nobody, and no error either.
                return [], False, False, done
            out = self.exclusion(results[0][0], results[1][0])
        # Set operations wait for all their operands, then send everything at once.
        return [(u, st, ex, done) for u, st, ex in out], False, failed, done

    def direct(
        self, obj: str, info: RelationInfo, depth: int, visited: frozenset[tuple[str, str]]
    ) -> Expansion:
        found: list[Found] = []
        cycle = failed = False
        done = 0
        for index, user in enumerate(self.users(obj, info.name), 1):
            done = max(done, index)
            kind, member = split_user(user)
            if kind not in info.allowed:
                continue
            k_type, sep, k_rel = kind.partition("#")
            if sep:
                more, child_cycle, child_failed, child_done = self.expand(
                    member, k_rel, depth, visited
                )
                found.extend((u, st, ex, t + index) for u, st, ex, t in more)
                cycle = cycle or child_cycle
                failed = failed or child_failed
                done = max(done, child_done + index)
            elif k_type.partition(":")[0] == self.f_type:
                found.append((user, _HAS, (), index))
        return found, cycle, failed, done

    @staticmethod
    def arrival_order(found: list[Found]) -> list[Found]:
        """``found`` in the order its items reach a collector (a stable sort on time)."""
        return sorted(found, key=lambda f: f[3])

    def union(self, operands: list[list[Found]]) -> list[tuple[str, int, tuple[str, ...]]]:
        users: dict[str, None] = {}
        excluded_count: dict[str, int] = {}
        for found in operands:
            for user, status, excluded, _ in found:
                for ex in excluded:
                    excluded_count[ex] = excluded_count.get(ex, 0) + 1
                if status != _NOT:
                    users[user] = None
        excluded_all = tuple(u for u, n in excluded_count.items() if n == len(operands))
        return [(u, _HAS, excluded_all) for u in users]

    def intersection(self, operands: list[list[Found]]) -> list[tuple[str, int, tuple[str, ...]]]:
        counts: dict[str, int] = {}
        excluded: dict[str, None] = {}
        wildcards = 0
        for found in operands:
            present: dict[str, None] = {}
            for user, status, child_excluded, _ in found:
                excluded.update(dict.fromkeys(child_excluded))
                if status != _NOT:
                    present[user] = None
            has_wildcard = self.wildcard_key in present
            if has_wildcard:
                wildcards += 1
            for user in present:
                # A user found next to a wildcard is only counted through the wildcard.
                counts[user] = counts.get(user, 0) + (0 if has_wildcard else 1)
        excluded_list = tuple(excluded)
        return [
            (user, _HAS, excluded_list)
            for user, n in counts.items()
            if user not in excluded and n + wildcards == len(operands)
        ]

    def exclusion(
        self, base_found: list[Found], sub_found: list[Found]
    ) -> list[tuple[str, int, tuple[str, ...]]]:
        # The last answer to arrive about a user is the one that counts.
        base = {user: status for user, status, _, _ in self.arrival_order(base_found)}
        subtract = {user: status for user, status, _, _ in self.arrival_order(sub_found)}
        out: list[tuple[str, int, tuple[str, ...]]] = []
        base_wildcard = self.wildcard_key in base
        sub_wildcard = self.wildcard_key in subtract
        for user, status in base.items():
            subtracted = subtract.get(user)
            if base_wildcard:
                if subtracted is None and not sub_wildcard:
                    # Keeps the user's own status (as the engine answers, e.g. a user
                    # already excluded further down stays excluded).
                    out.append((user, status, ()))
                for sub_user, sub_status in subtract.items():
                    if sub_user.endswith(":*") and "#" not in sub_user:
                        if subtracted is None:
                            out.append((user, _NOT, ()))
                        continue
                    if sub_status == _NOT:
                        out.append((sub_user, _HAS, ()))
                    else:
                        out.append((sub_user, _NOT, (sub_user,)))
            elif sub_wildcard or subtracted is not None:
                # A user only subtracted through the wildcard counts as subtracted.
                out.append((user, _HAS if subtracted == _NOT else _NOT, ()))
            else:
                out.append((user, status, ()))
        return out


def _has_possible_edges(
    model: AuthorizationModel,
    target: tuple[str, str],
    source: tuple[str, str],
    visited: set[tuple[str, str]],
) -> bool:
    """Whether users of ``source`` (``(type, "")`` or ``(type, relation)``) can reach
    ``target`` at all, following OpenFGA's pruned relationship edges (only the first
    operand of an intersection and the base of an exclusion are followed)."""
    if target in visited:
        return False
    visited.add(target)
    rel = model.relation(*target)
    if rel is None:
        return False
    return _rewrite_has_edges(model, target, source, rel.rewrite, visited)


def _rewrite_has_edges(
    model: AuthorizationModel,
    target: tuple[str, str],
    source: tuple[str, str],
    rw: Rewrite,
    visited: set[tuple[str, str]],
) -> bool:
    s_type, s_rel = source
    if isinstance(rw, This):
        rel = model.relation(*target)
        assert rel is not None
        found = False
        for tr in rel.directly_related:
            if tr.type == s_type and (
                tr.wildcard or (tr.relation == s_rel if s_rel else not tr.relation)
            ):
                found = True
        for tr in rel.directly_related:
            if tr.relation and _has_possible_edges(model, (tr.type, tr.relation), source, visited):
                found = True
        return found
    if isinstance(rw, ComputedUserset):
        found = target[0] == s_type and rw.relation == s_rel
        return _has_possible_edges(model, (target[0], rw.relation), source, visited) or found
    if isinstance(rw, TupleToUserset):
        tupleset = model.relation(target[0], rw.tupleset)
        assert tupleset is not None
        found = False
        for tr in tupleset.directly_related:
            if model.relation(tr.type, rw.computed) is None:
                continue
            if tr.type == s_type and rw.computed == s_rel:
                found = True
            if _has_possible_edges(model, (tr.type, rw.computed), source, visited):
                found = True
        return found
    if isinstance(rw, Union):
        found = False
        for child in rw.children:
            if _rewrite_has_edges(model, target, source, child, visited):
                found = True
        return found
    if isinstance(rw, Intersection):
        return _rewrite_has_edges(model, target, source, rw.children[0], visited)
    assert isinstance(rw, Difference)
    return _rewrite_has_edges(model, target, source, rw.base, visited)
