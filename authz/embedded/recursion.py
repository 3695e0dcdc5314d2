"""When OpenFGA's check resolves a relation with its *recursive* strategies: OpenFGA's
weighted model graph, reduced to what decides that (see :class:`RecursionAnalysis`).

Part of the analysis of a model (:mod:`authz.embedded.analysis`), done once per model.
"""

from __future__ import annotations

from collections.abc import Callable

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
from authz.embedded.model import AuthorizationModel


class RecursionAnalysis:
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

    def __init__(
        self, model: AuthorizationModel, reachable: Callable[[str], frozenset[tuple[str, str]]]
    ) -> None:
        self.model = model
        # Relations reachable from a label in the type graph (ModelAnalysis.reachable).
        self.reachable = reachable
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
            reach = self.reachable(user_type) | self.reachable(f"{user_type}:*")
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
            reach = self.reachable(user_type) | self.reachable(f"{user_type}:*")
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
