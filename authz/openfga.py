"""The ``openfga`` engine: the :class:`~authz.ports.Authorizer` port over openfga-sdk's async
``OpenFgaClient``, for an OpenFGA server or Auth0 FGA.

Error mapping (the port's contract, fail closed):

* connection errors, timeouts, HTTP 5xx and 429 (after the SDK's own retries of 429/5xx; it
  never retries connection errors), 401/403 (credentials refused), 404 (unknown store) and
  any answer that cannot be understood raise :class:`AuthzUnavailable`;
* HTTP 400 raises :class:`AuthzValidationError` with OpenFGA's numeric code (the SDK exposes
  the code's name, mapped with :class:`~authz.ports.ErrorCode`), except
  ``authorization_model_resolution_too_complex`` (the depth limit), which is an
  :class:`AuthzEvaluationError`;
* requests the SDK refuses before sending (malformed arguments) raise
  :class:`AuthzValidationError` (``validation_error``).

``write``/``delete`` are idempotent: they ask the server to ignore existing/missing tuples
(``on_duplicate``/``on_missing``: ``ignore``, OpenFGA >= 1.10) and, for servers that do not
know these options, fall back to one request per tuple, ignoring the "already exists"/"does
not exist" refusals. ``batch_check`` uses the server-side BatchCheck (OpenFGA >= 1.8) in
chunks of at most 50 checks. ``list_users`` takes exactly one user filter, as OpenFGA (and
the embedded engine) require. Note that an OpenFGA server caps ListObjects at
``OPENFGA_LIST_OBJECTS_MAX_RESULTS`` objects (1,000 by default).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import aiohttp
from openfga_sdk import ClientConfiguration, OpenFgaClient
from openfga_sdk import configuration as _sdk_configuration
from openfga_sdk import models as _sdk_models
from openfga_sdk.client import models as _sdk_client_models
from openfga_sdk.client.models import list_users_request as _sdk_list_users
from openfga_sdk.client.models.write_conflict_opts import (
    ClientWriteRequestOnDuplicateWrites,
    ClientWriteRequestOnMissingDeletes,
    ConflictOptions,
)
from openfga_sdk.credentials import CredentialConfiguration, Credentials
from openfga_sdk.exceptions import (
    ApiException,
    ApiValueError,
    FgaValidationException,
    ValidationException,
)

from authz.ports import (
    AuthzError,
    AuthzEvaluationError,
    AuthzUnavailable,
    AuthzValidationError,
    BatchItemResult,
    CheckRequest,
    Consistency,
    ErrorCode,
    ReadResult,
    TupleKey,
)

log = logging.getLogger(__name__)

# The SDK's generated classes have untyped constructors; they are used as ``Any``.
ClientBatchCheckItem: Any = _sdk_client_models.ClientBatchCheckItem
ClientBatchCheckRequest: Any = _sdk_client_models.ClientBatchCheckRequest
ClientCheckRequest: Any = _sdk_client_models.ClientCheckRequest
ClientListObjectsRequest: Any = _sdk_client_models.ClientListObjectsRequest
ClientListUsersRequest: Any = _sdk_list_users.ClientListUsersRequest
ClientTuple: Any = _sdk_client_models.ClientTuple
ClientWriteRequest: Any = _sdk_client_models.ClientWriteRequest
FgaObject: Any = _sdk_models.FgaObject
ReadRequestTupleKey: Any = _sdk_models.ReadRequestTupleKey
UserTypeFilter: Any = _sdk_models.UserTypeFilter
RetryParams: Any = _sdk_configuration.RetryParams

#: Checks per BatchCheck request (OpenFGA's default OPENFGA_MAX_CHECKS_PER_BATCH_CHECK).
MAX_BATCH_CHECK: Final = 50
#: Tuples per Write request (OpenFGA's default OPENFGA_MAX_TUPLES_PER_WRITE).
MAX_TUPLES_PER_WRITE: Final = 100
#: BatchCheck requests in flight at once for one ``batch_check`` call.
MAX_PARALLEL_BATCHES: Final = 4

_TOO_COMPLEX: Final = ErrorCode.authorization_model_resolution_too_complex.name
_WRITE_CONFLICT: Final = ErrorCode.write_failed_due_to_invalid_input
_NO_ERROR_CODES: Final = frozenset({"", "no_error", "no_internal_error"})


@contextlib.contextmanager
def _sdk_errors(operation: str) -> Iterator[None]:
    """Translates whatever the SDK raises into the port's errors (see module docstring)."""
    try:
        yield
    except AuthzError:
        raise
    except ValidationException as exc:
        code = exc.code
        message = exc.error_message or str(exc)
        if code == _TOO_COMPLEX:
            raise AuthzEvaluationError(message) from exc
        raise AuthzValidationError(ErrorCode.input_error_named(code), message) from exc
    except (FgaValidationException, ApiValueError) as exc:
        raise AuthzValidationError(ErrorCode.validation_error, str(exc)) from exc
    except ApiException as exc:
        status = exc.status
        hint = ""
        if status in (401, 403):
            hint = " (the server refused the credentials: check FGA_API_TOKEN)"
        raise AuthzUnavailable(
            f"OpenFGA {operation} failed: HTTP {status} {exc.reason}{hint}"
        ) from exc
    except TimeoutError as exc:
        raise AuthzUnavailable(f"OpenFGA {operation} timed out") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise AuthzUnavailable(f"OpenFGA {operation} failed: {exc!r}") from exc
    except Exception as exc:
        # An answer the SDK could not parse (a proxy's HTML error page, an unknown enum
        # value...): no decision can be made from it.
        log.warning("OpenFGA %s: unexpected error", operation, exc_info=True)
        raise AuthzUnavailable(f"OpenFGA {operation} failed: {exc!r}") from exc


def _client_tuples(tuples: Sequence[TupleKey]) -> list[Any] | None:
    if not tuples:
        return None
    return [ClientTuple(user=t.user, relation=t.relation, object=t.object) for t in tuples]


def _user_string(user: Any) -> str:
    """``type:id``, ``type:id#relation`` or ``type:*`` from a ListUsers ``User``."""
    if user.object is not None:
        return f"{user.object.type}:{user.object.id}"
    if user.userset is not None:
        return f"{user.userset.type}:{user.userset.id}#{user.userset.relation}"
    if user.wildcard is not None:
        return f"{user.wildcard.type}:*"
    raise AuthzUnavailable("OpenFGA list_users returned a user of an unknown shape")


def _item_error(error: Any) -> str | None:
    """The text of a BatchCheck item's ``CheckError``, or ``None`` if it reports no error
    (servers may send ``"error": {"message": ""}`` on successful items)."""
    if error is None:
        return None
    input_error = getattr(error, "input_error", None) or ""
    internal_error = getattr(error, "internal_error", None) or ""
    message = getattr(error, "message", None) or ""
    codes = [c for c in (str(input_error), str(internal_error)) if c not in _NO_ERROR_CODES]
    if not codes and not message:
        return None
    return f"{', '.join(codes) or 'error'}: {message}" if message else ", ".join(codes)


def _dedupe(tuples: Sequence[TupleKey]) -> list[TupleKey]:
    # OpenFGA refuses a request that names a tuple twice.
    return list(dict.fromkeys(tuples))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _configuration(
    *,
    api_url: str,
    store_id: str | None,
    model_id: str | None,
    api_token: str | None,
    timeout_ms: int,
    max_retries: int,
) -> Any:
    credentials = None
    if api_token:
        credentials = Credentials(
            method="api_token", configuration=CredentialConfiguration(api_token=api_token)
        )
    return ClientConfiguration(
        api_url=api_url.rstrip("/"),
        store_id=store_id or None,
        authorization_model_id=model_id or None,
        credentials=credentials,
        retry_params=RetryParams(max_retry=max_retries, min_wait_in_ms=50),
        timeout_millisec=int(timeout_ms),
    )


class OpenFgaAuthorizer:
    """The :class:`~authz.ports.Authorizer` port over an OpenFGA server (see the module
    docstring for error mapping). Build it with :meth:`open` inside the running loop."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        *,
        api_url: str,
        store_id: str,
        model_id: str | None = None,
        api_token: str | None = None,
        timeout_ms: int = 2000,
        max_retries: int = 1,
    ) -> AsyncIterator[OpenFgaAuthorizer]:
        """An authorizer on ``store_id`` (and ``model_id``, else the store's latest model);
        the SDK client (and its HTTP session) is created here, in the running loop, and
        closed on exit. No request is sent until the first call, so opening never fails
        because the server is down; a malformed configuration (URL, ids that are not ULIDs,
        timeout) raises ``ValueError`` here. ``timeout_ms`` bounds each HTTP request;
        ``max_retries`` is how often the SDK retries a 429/5xx answer."""
        configuration = _configuration(
            api_url=api_url,
            store_id=store_id,
            model_id=model_id,
            api_token=api_token,
            timeout_ms=timeout_ms,
            max_retries=max_retries,
        )
        try:
            configuration.is_valid()
        except (FgaValidationException, ApiValueError) as exc:
            raise ValueError(f"invalid OpenFGA configuration: {exc}") from exc
        client: Any = OpenFgaClient(configuration)
        try:
            yield cls(client)
        finally:
            await client.close()

    @staticmethod
    def _options(consistency: Consistency | None = None, **extra: Any) -> dict[str, Any]:
        options: dict[str, Any] = dict(extra)
        if consistency is not None:
            options["consistency"] = consistency.value
        return options

    async def check(
        self,
        user: str,
        relation: str,
        object: str,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> bool:
        body = ClientCheckRequest(
            user=user,
            relation=relation,
            object=object,
            contextual_tuples=_client_tuples(contextual_tuples),
        )
        with _sdk_errors("check"):
            response = await self._client.check(body, self._options(consistency))
            allowed = response.allowed
        if not isinstance(allowed, bool):
            raise AuthzUnavailable("OpenFGA check returned no decision")
        return allowed

    async def batch_check(
        self,
        requests: Sequence[CheckRequest],
        *,
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[BatchItemResult]:
        """One result per request, in order. Items are sent with their position as
        correlation id (callers' ids need not be unique nor match OpenFGA's pattern)."""
        if not requests:
            return []
        items = [
            ClientBatchCheckItem(
                user=r.user,
                relation=r.relation,
                object=r.object,
                correlation_id=str(i),
                contextual_tuples=_client_tuples(r.contextual_tuples),
            )
            for i, r in enumerate(requests)
        ]
        options = self._options(
            consistency, max_batch_size=MAX_BATCH_CHECK, max_parallel_requests=MAX_PARALLEL_BATCHES
        )
        with _sdk_errors("batch_check"):
            response = await self._client.batch_check(
                ClientBatchCheckRequest(checks=items), options
            )
            by_id = {r.correlation_id: r for r in response.result}
        results: list[BatchItemResult] = []
        for i, request in enumerate(requests):
            item = by_id.get(str(i))
            if item is None:
                results.append(BatchItemResult(request, False, "no result for this check"))
                continue
            error = _item_error(item.error)
            if error is not None or not isinstance(item.allowed, bool):
                results.append(BatchItemResult(request, False, error or "no decision"))
            else:
                results.append(BatchItemResult(request, item.allowed))
        return results

    async def list_objects(
        self,
        user: str,
        relation: str,
        type: str,
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[str]:
        body = ClientListObjectsRequest(
            user=user,
            relation=relation,
            type=type,
            contextual_tuples=_client_tuples(contextual_tuples),
        )
        with _sdk_errors("list_objects"):
            response = await self._client.list_objects(body, self._options(consistency))
            return sorted(str(o) for o in response.objects)

    async def list_users(
        self,
        object: str,
        relation: str,
        user_filters: Sequence[str],
        *,
        contextual_tuples: Sequence[TupleKey] = (),
        consistency: Consistency = Consistency.MINIMIZE_LATENCY,
    ) -> list[str]:
        obj_type, sep, obj_id = object.partition(":")
        if not sep or not obj_type or not obj_id:
            raise AuthzValidationError(ErrorCode.validation_error, f"invalid object '{object}'")
        if len(user_filters) != 1:
            # OpenFGA's rule (the embedded engine applies it too).
            raise AuthzValidationError(
                ErrorCode.validation_error, "exactly one user filter is required"
            )
        f_type, _, f_relation = user_filters[0].partition("#")
        body = ClientListUsersRequest(
            object=FgaObject(type=obj_type, id=obj_id),
            relation=relation,
            user_filters=[UserTypeFilter(type=f_type, relation=f_relation or None)],
            contextual_tuples=_client_tuples(contextual_tuples),
        )
        with _sdk_errors("list_users"):
            response = await self._client.list_users(body, self._options(consistency))
            return sorted({_user_string(u) for u in response.users})

    async def write(self, tuples: Sequence[TupleKey]) -> None:
        await self._change(_dedupe(tuples), delete=False)

    async def delete(self, tuples: Sequence[TupleKey]) -> None:
        await self._change(_dedupe(tuples), delete=True)

    async def _change(self, tuples: Sequence[TupleKey], *, delete: bool) -> None:
        # Each chunk is one transaction; a larger change is not atomic as a whole.
        for chunk in _chunks(tuples, MAX_TUPLES_PER_WRITE):
            try:
                await self._send_change(chunk, delete=delete, ignore_conflicts=True)
            except AuthzValidationError as exc:
                if exc.code != _WRITE_CONFLICT:
                    raise
                # A server without on_duplicate/on_missing: find the conflicting tuples one
                # by one and let the others through.
                for t in chunk:
                    try:
                        await self._send_change([t], delete=delete, ignore_conflicts=False)
                    except AuthzValidationError as one:
                        if one.code != _WRITE_CONFLICT:
                            raise

    async def _send_change(
        self, tuples: Sequence[TupleKey], *, delete: bool, ignore_conflicts: bool
    ) -> None:
        client_tuples = _client_tuples(tuples)
        options: dict[str, Any] = {}
        if ignore_conflicts:
            options["conflict"] = ConflictOptions(
                on_duplicate_writes=ClientWriteRequestOnDuplicateWrites.IGNORE,
                on_missing_deletes=ClientWriteRequestOnMissingDeletes.IGNORE,
            )
        body = (
            ClientWriteRequest(deletes=client_tuples)
            if delete
            else ClientWriteRequest(writes=client_tuples)
        )
        with _sdk_errors("delete" if delete else "write"):
            await self._client.write(body, options)

    async def read(
        self,
        *,
        user: str | None = None,
        relation: str | None = None,
        object: str | None = None,
        page_size: int = 100,
        continuation_token: str = "",
    ) -> ReadResult:
        body = ReadRequestTupleKey(user=user, relation=relation, object=object)
        options: dict[str, Any] = {"page_size": page_size}
        if continuation_token:
            options["continuation_token"] = continuation_token
        with _sdk_errors("read"):
            response = await self._client.read(body, options)
            tuples = [
                TupleKey(user=t.key.user, relation=t.key.relation, object=t.key.object)
                for t in response.tuples
            ]
            return ReadResult(tuples=tuples, continuation_token=response.continuation_token or "")


async def push_model(
    api_url: str,
    store_id: str,
    api_token: str | None,
    model_json: Mapping[str, Any] | str,
    *,
    timeout_ms: int = 10_000,
) -> str:
    """Writes an authorization model (OpenFGA API JSON: ``schema_version``,
    ``type_definitions``...) to ``store_id`` and returns the new model's id. Errors are
    mapped as for :class:`OpenFgaAuthorizer`."""
    doc = json.loads(model_json) if isinstance(model_json, str) else dict(model_json)
    doc.pop("id", None)
    client: Any = OpenFgaClient(
        _configuration(
            api_url=api_url,
            store_id=store_id,
            model_id=None,
            api_token=api_token,
            timeout_ms=timeout_ms,
            max_retries=1,
        )
    )
    try:
        with _sdk_errors("write_authorization_model"):
            response = await client.write_authorization_model(doc)
            model_id = response.authorization_model_id
    finally:
        await client.close()
    if not isinstance(model_id, str) or not model_id:
        raise AuthzUnavailable("OpenFGA returned no authorization model id")
    return model_id
