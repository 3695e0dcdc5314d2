"""OpenFGA's request field rules (openfga/api protoc-gen-validate patterns), in one place.

The HTTP API (``authz.http_api``) answers a violation with OpenFGA's 400 body; the
embedded authorizer, called in process, raises the same :class:`AuthzValidationError`, so
an id the real server would refuse is refused here too, whichever way it arrives. The
model's type and relation names follow :data:`TYPE` and :data:`RELATION` too
(``authz.embedded.model``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from authz.ports import AuthzValidationError, ErrorCode, TupleKey

TYPE: Final = r"^[^:#@\s]{1,254}$"
RELATION: Final = r"^[^:#@\s]{1,50}$"
OBJECT: Final = r"^[^\s]{2,256}$"
USER: Final = r"^[^\s]{2,512}$"
OBJECT_ID: Final = r"^[^#:\s]+$"
#: Store and authorization model ids.
ULID: Final = r"^[ABCDEFGHJKMNPQRSTVWXYZ0-9]{26}$"
CORRELATION_ID: Final = r"^[\w\d-]{1,36}$"
STORE_NAME: Final = r"^[\w\d\s./-]{3,64}$"

_RELATION_RE = re.compile(RELATION)
_OBJECT_RE = re.compile(OBJECT)
_USER_RE = re.compile(USER)


def validate_tuple_keys(tuples: Sequence[TupleKey], message: str) -> None:
    """Raise :class:`AuthzValidationError` (``validation_error``) for the first tuple key
    whose fields break OpenFGA's patterns (lengths are counted in characters, as the
    patterns do)."""
    for key in tuples:
        for field, value, pattern in (
            ("User", key.user, _USER_RE),
            ("Relation", key.relation, _RELATION_RE),
            ("Object", key.object, _OBJECT_RE),
        ):
            if not pattern.match(value):
                raise AuthzValidationError(
                    ErrorCode.validation_error,
                    f"invalid {message}.{field}: value does not match regex pattern "
                    f"{pattern.pattern!r}",
                )
