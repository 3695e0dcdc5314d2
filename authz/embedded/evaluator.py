"""Synchronous, in-memory evaluation of OpenFGA schema 1.1 models: Check, ListObjects and
ListUsers, giving OpenFGA's answers (checked against the real engine, see the tests).

:class:`Evaluator` answers them for one model over one tuple store; each is implemented in
its own module: :mod:`authz.embedded.check`, :mod:`authz.embedded.list_objects` and
:mod:`authz.embedded.list_users`, over the analysis of the model they share
(:mod:`authz.embedded.analysis`, built once per model).

A request that needs more than ``max_steps`` evaluation steps (pathological models and
data, on which OpenFGA itself runs into its request deadline) fails with
:class:`~authz.embedded.check.TooMuchWorkError` rather than running on.
"""

from __future__ import annotations

from collections.abc import Sequence

from authz.embedded.analysis import analysis_of
from authz.embedded.check import DEFAULT_MAX_DEPTH, DEFAULT_MAX_STEPS, check
from authz.embedded.list_objects import list_objects
from authz.embedded.list_users import list_users
from authz.embedded.memory import MemoryTupleStore
from authz.embedded.model import AuthorizationModel
from authz.ports import TupleKey


class Evaluator:
    """Answers Check, ListObjects and ListUsers for one model over one tuple store.

    Request validation errors raise :class:`AuthzValidationError` with OpenFGA's codes
    (2000 validation_error, 2021 type_not_found, 2022 relation_not_found, 2027 invalid_tuple
    for contextual tuples). When no decision can be made, :class:`AuthzEvaluationError` is
    raised (:class:`~authz.embedded.check.ResolutionTooComplexError` for the depth limit):
    never ``False``.
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
        self._analysis = analysis_of(model)

    def check(
        self, user: str, relation: str, object: str, contextual_tuples: Sequence[TupleKey] = ()
    ) -> bool:
        """Whether ``user`` is related to ``object`` by ``relation``."""
        return check(
            self._analysis,
            self.tuples,
            user,
            relation,
            object,
            contextual_tuples,
            max_depth=self.max_depth,
            max_steps=self.max_steps,
        )

    def list_objects(
        self, user: str, relation: str, type: str, contextual_tuples: Sequence[TupleKey] = ()
    ) -> list[str]:
        """Every object of ``type`` that ``user`` is related to by ``relation`` (sorted; see
        :func:`authz.embedded.list_objects.list_objects`)."""
        return list_objects(
            self._analysis,
            self.tuples,
            user,
            relation,
            type,
            contextual_tuples,
            max_depth=self.max_depth,
            max_steps=self.max_steps,
        )

    def list_users(
        self,
        object: str,
        relation: str,
        user_filters: Sequence[str],
        contextual_tuples: Sequence[TupleKey] = (),
    ) -> list[str]:
        """Users of the filter's type related to ``object`` by ``relation`` (sorted; see
        :func:`authz.embedded.list_users.list_users`)."""
        return list_users(
            self._analysis,
            self.tuples,
            object,
            relation,
            user_filters,
            contextual_tuples,
            max_depth=self.max_depth,
            max_steps=self.max_steps,
        )
