"""OpenFGA's ListObjects, in memory: every object of a type that a user is related to by a
relation, found by OpenFGA's reverse expansion from the user (:class:`ReverseExpansion`),
confirming with a check (:mod:`authz.embedded.check`) only what was reached through an
intersection or an exclusion.
"""

from __future__ import annotations

from collections.abc import Sequence

from authz.embedded.analysis import COMPUTED_EDGE, DIRECT_EDGE, ModelAnalysis
from authz.embedded.check import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_STEPS,
    ResolutionTooComplexError,
    TooMuchWorkError,
    check_run,
    decided,
    request_stores,
    require_relation,
)
from authz.embedded.memory import MemoryTupleStore, split_user, user_problem
from authz.ports import AuthzValidationError, ErrorCode, TupleKey


def list_objects(
    analysis: ModelAnalysis,
    tuples: MemoryTupleStore,
    user: str,
    relation: str,
    type: str,
    contextual_tuples: Sequence[TupleKey] = (),
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> list[str]:
    """Every object of ``type`` that ``user`` is related to by ``relation`` (sorted).

    Follows OpenFGA's ListObjects: objects are found by expanding from the user towards
    the type along the model's edges (each expansion step costs one level of depth, so
    very long chains are an error); objects reached through an intersection or an
    exclusion are confirmed with a check."""
    model = analysis.model
    stores = request_stores(model, tuples, contextual_tuples)
    require_relation(model, type, relation)
    problem = user_problem(model, user)
    if problem is not None:
        raise AuthzValidationError(ErrorCode.validation_error, f"invalid 'user' value: {problem}")
    expansion = ReverseExpansion(analysis, stores, type, relation, max_depth, max_steps)
    expansion.run(user)
    run = check_run(analysis, stores, user, max_depth, max_steps)
    found: list[str] = []
    for candidate, needs_check in expansion.candidates.items():
        if not needs_check or decided(run, run.resolve(candidate, relation, 0)):
            found.append(candidate)
    found.sort()
    return found


class ReverseExpansion:
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
            if kind == DIRECT_EDGE:
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
            elif kind == COMPUTED_EDGE:
                self.expand(subject, t_rel, edge_key, check, depth)
            else:
                for found in self.read(t_type, tupleset, [subject]):
                    self.expand(found, t_rel, edge_key, check, depth)
