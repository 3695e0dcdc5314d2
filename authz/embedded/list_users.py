"""OpenFGA's ListUsers, in memory: the users of one type (or userset) related to an object
by a relation, found by OpenFGA's expansion from the object (:class:`ListUsersRun`), which
is not a check per user (see :func:`list_users`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from authz.embedded.analysis import (
    COMPUTED,
    DIFFERENCE,
    INTERSECTION,
    THIS,
    TTU,
    UNION,
    ModelAnalysis,
    Node,
    RelationInfo,
)
from authz.embedded.check import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_STEPS,
    ResolutionTooComplexError,
    TooMuchWorkError,
    request_stores,
    require_relation,
)
from authz.embedded.definitions import (
    ComputedUserset,
    Difference,
    Intersection,
    Rewrite,
    This,
    TupleToUserset,
    Union,
)
from authz.embedded.memory import MemoryTupleStore, is_valid_object, split_user
from authz.embedded.model import AuthorizationModel
from authz.ports import AuthzValidationError, ErrorCode, TupleKey

# ListUsers relationship status of a found user (exclusions can deny explicitly).
_HAS: Final = 0
_NOT: Final = 1

# (user, status, users excluded below this point, when it reaches the collector)
Found = tuple[str, int, tuple[str, ...], int]
# (found users, cycle met, failed, when the expansion is complete)
Expansion = tuple[list[Found], bool, bool, int]


def list_users(
    analysis: ModelAnalysis,
    tuples: MemoryTupleStore,
    object: str,
    relation: str,
    user_filters: Sequence[str],
    contextual_tuples: Sequence[TupleKey] = (),
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> list[str]:
    """Users of the filter's type (``type`` or ``type#relation``; exactly one filter, as
    the OpenFGA API requires) related to ``object`` by ``relation``: ``type:id``,
    ``type:*`` (everyone of the type) or ``type:id#relation`` (sorted).

    This follows OpenFGA's ListUsers expansion, which is not a check per user: with a
    ``type#relation`` filter, directly related objects of that type are returned too,
    and exclusions whose subtracted side meets a cycle contribute nobody."""
    model = analysis.model
    if not is_valid_object(object) or object.endswith(":*"):
        raise AuthzValidationError(ErrorCode.validation_error, f"invalid object '{object}'")
    if len(user_filters) != 1:
        raise AuthzValidationError(
            ErrorCode.validation_error, "exactly one user filter is required"
        )
    stores = request_stores(model, tuples, contextual_tuples)
    f_type, sep, f_rel = user_filters[0].partition("#")
    if not f_type or (sep and not f_rel):
        raise AuthzValidationError(
            ErrorCode.validation_error, f"invalid user filter '{user_filters[0]}'"
        )
    if not model.has_type(f_type):
        raise AuthzValidationError(ErrorCode.type_not_found, f"type '{f_type}' not found")
    if sep and model.relation(f_type, f_rel) is None:
        raise AuthzValidationError(
            ErrorCode.relation_not_found, f"relation '{f_type}#{f_rel}' not found"
        )
    obj_type = object.partition(":")[0]
    require_relation(model, obj_type, relation)
    if not (obj_type == f_type and relation == f_rel) and not _has_possible_edges(
        model, (obj_type, relation), (f_type, f_rel), set()
    ):
        return []
    run = ListUsersRun(analysis, stores, f_type, f_rel, max_depth, max_steps)
    found, _, failed, _ = run.expand(object, relation, 0, frozenset())
    if failed:
        raise ResolutionTooComplexError()
    status: dict[str, int] = {}
    for user, st, _, _ in run.arrival_order(found):
        status[user] = st
    return sorted(user for user, st in status.items() if st == _HAS)


class ListUsersRun:
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
        if tag == THIS:
            return self.direct(obj, info, depth, visited)
        if tag == COMPUTED:
            return self.expand(obj, node[1], depth, visited)
        if tag == TTU:
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
        children = (node[1], node[2]) if tag == DIFFERENCE else node[1]
        results = [self.rewrite(child, obj, info, depth, visited) for child in children]
        done = max(r[3] for r in results)
        failed = any(r[2] for r in results)
        if tag == UNION:
            out = self.union([r[0] for r in results])
        elif tag == INTERSECTION:
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
