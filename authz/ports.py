"""The authorization port: the one interface every service uses for decisions.

Two engines implement it (``authz.embedded`` over the SQL database and ``authz.openfga``
over openfga-sdk); the decision cache (``authz.cache``) wraps either. Every method is async.

Contract shared by all implementations:

* Objects are ``type:id`` strings, users are ``type:id``, ``type:*`` (wildcard) or
  ``type:id#relation`` (userset), as in OpenFGA.
* ``check`` returns ``True`` or ``False``. When a decision cannot be made (engine down,
  timeout, evaluation error such as the depth limit) it raises :class:`AuthzUnavailable`
  or :class:`AuthzEvaluationError`, never ``False`` silently and never ``True``.
* ``batch_check`` returns one :class:`BatchItemResult` per request item; a per-item error is
  reported on that item (callers treat it as a deny).
* Invalid requests (unknown type or relation, malformed ids, tuples outside the type
  restrictions) raise :class:`AuthzValidationError` with OpenFGA's error code.
* ``write`` and ``delete`` are idempotent: writing an existing tuple or deleting a missing one
  is not an error.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class TupleKey:
    """One relationship tuple: ``user`` has ``relation`` on ``object``."""

    user: str
    relation: str
    object: str

    def __str__(self) -> str:
        return f"{self.object}#{self.relation}@{self.user}"


class Consistency(enum.Enum):
    """How fresh a decision must be (OpenFGA's ConsistencyPreference)."""

    MINIMIZE_LATENCY = "MINIMIZE_LATENCY"
    HIGHER_CONSISTENCY = "HIGHER_CONSISTENCY"


@dataclass(frozen=True, slots=True)
class CheckRequest:
    user: str
    relation: str
    object: str
    contextual_tuples: tuple[TupleKey, ...] = ()
    correlation_id: str = ""


@dataclass(frozen=True, slots=True)
class BatchItemResult:
    request: CheckRequest
    allowed: bool
    error: str | None = None

    @property
    def denied_by_error(self) -> bool:
        return self.error is not None


class ErrorCode(enum.IntEnum):
    """OpenFGA's numeric error codes, each under OpenFGA's name for it (openfga/api
    ``errors.proto``): the input errors of the ``ErrorCode`` enum (answered with HTTP 400, and
    a BatchCheck item's ``input_error``) and ``NotFoundErrorCode.store_id_not_found`` (HTTP
    404). The one definition of these numbers and names in pmbot."""

    no_error = 0
    validation_error = 2000
    authorization_model_not_found = 2001
    authorization_model_resolution_too_complex = 2002
    invalid_write_input = 2003
    cannot_allow_duplicate_tuples_in_one_request = 2004
    cannot_allow_duplicate_types_in_one_request = 2005
    cannot_allow_multiple_references_to_one_relation = 2006
    invalid_continuation_token = 2007
    invalid_tuple_set = 2008
    invalid_check_input = 2009
    invalid_expand_input = 2010
    unsupported_user_set = 2011
    invalid_object_format = 2012
    write_failed_due_to_invalid_input = 2017
    authorization_model_assertions_not_found = 2018
    latest_authorization_model_not_found = 2020
    type_not_found = 2021
    relation_not_found = 2022
    empty_relation_definition = 2023
    invalid_user = 2025
    invalid_tuple = 2027
    unknown_relation = 2028
    store_id_invalid_length = 2030
    assertions_too_many_items = 2033
    id_too_long = 2034
    authorization_model_id_too_long = 2036
    tuple_key_value_not_specified = 2037
    tuple_keys_too_many_or_too_few_items = 2038
    page_size_invalid = 2039
    param_missing_value = 2040
    difference_base_missing_value = 2041
    subtract_base_missing_value = 2042
    object_too_long = 2043
    relation_too_long = 2044
    type_definitions_too_few_items = 2045
    type_invalid_length = 2046
    type_invalid_pattern = 2047
    relations_too_few_items = 2048
    relations_too_long = 2049
    relations_invalid_pattern = 2050
    object_invalid_pattern = 2051
    query_string_type_continuation_token_mismatch = 2052
    exceeded_entity_limit = 2053
    invalid_contextual_tuple = 2054
    duplicate_contextual_tuple = 2055
    invalid_authorization_model = 2056
    unsupported_schema_version = 2057
    cancelled = 2058
    invalid_start_time = 2059
    store_id_not_found = 5002

    @property
    def is_input_error(self) -> bool:
        """Whether the code belongs to OpenFGA's ``ErrorCode`` enum (input errors and
        ``no_error``), as opposed to ``store_id_not_found`` (a ``NotFoundErrorCode``)."""
        return self.value < 5000

    @classmethod
    def input_error_numbered(cls, code: int) -> ErrorCode:
        """The input error numbered ``code``; ``validation_error`` for any other number."""
        try:
            found = cls(code)
        except ValueError:
            return cls.validation_error
        return found if found.is_input_error else cls.validation_error

    @classmethod
    def input_error_named(cls, name: str | None) -> ErrorCode:
        """The input error called ``name``; ``validation_error`` for any other name."""
        found = cls.__members__.get(name or "")
        return found if found is not None and found.is_input_error else cls.validation_error


class AuthzError(Exception):
    """Base of every error the authorization layer raises."""


class AuthzValidationError(AuthzError):
    """The request or model is invalid; carries OpenFGA's error code."""

    def __init__(self, code: ErrorCode | int, message: str) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message

    def __repr__(self) -> str:
        return f"AuthzValidationError({self.code}, {self.message!r})"


class AuthzEvaluationError(AuthzError):
    """The engine could not decide (depth limit exceeded, unsupported construct...)."""


class AuthzUnavailable(AuthzError):
    """The engine is unreachable or timed out. Callers must deny and say so."""


@dataclass(frozen=True, slots=True)
class ReadResult:
    tuples: list[TupleKey] = field(default_factory=list)
    continuation_token: str = ""


@runtime_checkable
class Authorizer(Protocol):
    """The authorization port (see module docstring for the contract)."""

    async def check(
        self,
        user: str,
        relation: str,
        object: str,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> bool: ...

    async def batch_check(
        self,
        requests: Sequence[CheckRequest],
        *,
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[BatchItemResult]: ...

    async def list_objects(
        self,
        user: str,
        relation: str,
        type: str,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[str]: ...

    async def list_users(
        self,
        object: str,
        relation: str,
        user_filters: Sequence[str],
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[str]: ...

    async def write(self, tuples: Sequence[TupleKey]) -> None: ...

    async def delete(self, tuples: Sequence[TupleKey]) -> None: ...

    async def read(
        self,
        *,
        user: str | None = None,
        relation: str | None = None,
        object: str | None = None,
        page_size: int = 100,
        continuation_token: str = "",
    ) -> ReadResult: ...
