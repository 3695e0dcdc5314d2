"""OpenFGA's Check, in memory: is a user related to an object by a relation?

Follows OpenFGA's check resolver:

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
  :class:`~authz.embedded.recursion.RecursionAnalysis`): cycles are then plain false and
  depth counts levels.
* Stored tuples that the model in force does not allow are ignored.

Within one request, results of sub-problems that did not depend on the path (no cycle met,
no depth limit reached) are memoised, so diamonds in the data are evaluated once.

Also the limits and request helpers that ListObjects (which confirms some objects with a
check) and ListUsers share with Check: a request that needs more than ``max_steps``
evaluation steps fails with :class:`TooMuchWorkError`, one that reaches the depth limit
with :class:`ResolutionTooComplexError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from authz.embedded.analysis import (
    COMPUTED,
    DIFFERENCE,
    INTERSECTION,
    OBJECT_RE,
    THIS,
    TTU,
    UNION,
    ModelAnalysis,
    Node,
    RelationInfo,
    UserProfile,
)
from authz.embedded.memory import MemoryTupleStore, key_problem, tuple_problem, user_problem
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

_NO_HIT: Final = 1 << 30


class CheckRun:
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
        if tag == THIS:
            return self.direct(obj, info, depth)
        if tag == COMPUTED:
            return self.resolve(obj, node[1], depth)
        if tag == TTU:
            return self.tuple_to_userset(obj, node, info, depth)
        if tag == UNION:
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
        if tag == INTERSECTION:
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
        # DIFFERENCE: both sides run; a false base or a true subtract decides, whichever
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
        if tag == THIS:
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
        if tag == COMPUTED:
            return self.fast_objects(info.type, node[1])
        if tag == TTU:
            return set()
        parts = [self._fast(child, info) for child in (node[1:] if tag == DIFFERENCE else node[1])]
        if tag == UNION:
            return set().union(*parts)
        if tag == INTERSECTION:
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


def request_stores(
    model: AuthorizationModel, tuples: MemoryTupleStore, contextual_tuples: Sequence[TupleKey]
) -> tuple[MemoryTupleStore, ...]:
    """The stores a request reads: ``tuples``, then the request's contextual tuples (each
    one must fit the model: ``invalid_tuple``)."""
    if not contextual_tuples:
        return (tuples,)
    for t in contextual_tuples:
        problem = tuple_problem(model, t)
        if problem is not None:
            raise AuthzValidationError(
                ErrorCode.invalid_tuple, f"Invalid tuple '{t}'. Reason: {problem}"
            )
    return (tuples, MemoryTupleStore(contextual_tuples))


def check_run(
    analysis: ModelAnalysis,
    stores: tuple[MemoryTupleStore, ...],
    user: str,
    max_depth: int,
    max_steps: int,
) -> CheckRun:
    """A check run for ``user`` (``validation_error`` if the user is not valid)."""
    profile = analysis.profile(user)
    if profile is None:
        problem = user_problem(analysis.model, user) or "invalid user"
        raise AuthzValidationError(ErrorCode.validation_error, f"invalid 'user' value: {problem}")
    return CheckRun(analysis, stores, user, profile, max_depth, max_steps)


def decided(run: CheckRun, result: int) -> bool:
    """The answer of a resolved check: ``True``, ``False``, or the run's error raised."""
    if result == TRUE:
        return True
    if result == ERROR:
        assert run.error is not None
        raise run.error
    return False


def require_relation(model: AuthorizationModel, type: str, relation: str) -> None:
    """``type_not_found`` / ``relation_not_found`` unless the model defines ``type#relation``."""
    if not model.has_type(type):
        raise AuthzValidationError(ErrorCode.type_not_found, f"type '{type}' not found")
    if model.relation(type, relation) is None:
        raise AuthzValidationError(
            ErrorCode.relation_not_found, f"relation '{type}#{relation}' not found"
        )


def check(
    analysis: ModelAnalysis,
    tuples: MemoryTupleStore,
    user: str,
    relation: str,
    object: str,
    contextual_tuples: Sequence[TupleKey] = (),
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> bool:
    """Whether ``user`` is related to ``object`` by ``relation``."""
    profile = analysis.profile(user)
    m = OBJECT_RE.fullmatch(object)
    if (
        profile is None
        or m is None
        or m.group(2) == "*"
        or (m.group(1), relation) not in analysis.rels
    ):
        problem = key_problem(analysis.model, user, relation, object) or "invalid request"
        raise AuthzValidationError(ErrorCode.validation_error, f"Invalid check request: {problem}")
    stores = request_stores(analysis.model, tuples, contextual_tuples)
    run = CheckRun(analysis, stores, user, profile, max_depth, max_steps)
    return decided(run, run.resolve(object, relation, 0))
