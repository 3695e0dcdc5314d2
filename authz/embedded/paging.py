"""Pages of the engine's Read and ReadChanges: their result types and continuation tokens.

A token is URL-safe base64 (unpadded) of a small JSON object. Read's holds a fingerprint of
the filter and the last key returned (``{"f": ..., "k": [object, relation, user]}``), so a
token is only accepted with the filter that produced it; ReadChanges' holds the changelog
position and the type filter (``{"p": ..., "t": ...}``). A token that does not decode or
does not fit the request is ``invalid_continuation_token``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from authz.embedded.sqlstore import TupleChange
from authz.ports import AuthzValidationError, ErrorCode, ReadResult, TupleKey

MAX_PAGE_SIZE: Final = 100


@dataclass(frozen=True, slots=True)
class TimedReadResult(ReadResult):
    """A :class:`ReadResult` that also carries when each tuple was written."""

    timestamps: dict[TupleKey, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChangesPage:
    """One page of a store's changelog (OpenFGA's ReadChanges). The continuation token is
    returned even when the page is empty, so a caller can poll with it."""

    changes: list[TupleChange]
    continuation_token: str


def _invalid_token() -> AuthzValidationError:
    return AuthzValidationError(ErrorCode.invalid_continuation_token, "Invalid continuation token")


def _encode_token(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        payload = None
    if not isinstance(payload, dict):
        raise _invalid_token()
    return payload


def read_fingerprint(user: str | None, relation: str | None, object: str | None) -> str:
    """Identifies a Read filter inside its continuation tokens."""
    return hashlib.sha256(json.dumps([user, relation, object]).encode()).hexdigest()[:16]


def read_token(fingerprint: str, last: TupleKey) -> str:
    """The token of the Read page that ends with ``last``."""
    return _encode_token({"f": fingerprint, "k": [last.object, last.relation, last.user]})


def read_after(token: str, fingerprint: str) -> tuple[str, str, str]:
    """``(object, relation, user)`` of the last tuple before the page ``token`` asks for."""
    payload = _decode_token(token)
    key = payload.get("k")
    if (
        payload.get("f") != fingerprint
        or not isinstance(key, list)
        or len(key) != 3
        or not all(isinstance(v, str) for v in key)
    ):
        raise _invalid_token()
    return (key[0], key[1], key[2])


def changes_token(position: int, type: str | None) -> str:
    """The ReadChanges token that resumes after changelog ``position``."""
    return _encode_token({"p": position, "t": type})


def changes_position(token: str, type: str | None) -> int:
    """The changelog position a ReadChanges token resumes after (for the same ``type``)."""
    payload = _decode_token(token)
    p = payload.get("p")
    if not isinstance(p, int) or isinstance(p, bool) or p < 0 or payload.get("t") != type:
        raise _invalid_token()
    return p
