"""In-memory relationship tuple storage with the indexes the evaluator needs, and the
validation of tuples against a model (OpenFGA's ``ValidateTupleForWrite``).

The store itself knows nothing about models: it keeps every tuple it is given. Tuples that
do not fit the model in force (for instance written under an older model) are ignored by
the evaluator at read time, as OpenFGA does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from authz.embedded.model import AuthorizationModel
from authz.ports import AuthzValidationError, ErrorCode, TupleKey

# unicode.IsControl in Go: the Cc category.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def split_user(user: str) -> tuple[str, str]:
    """``(kind, member)`` of a tuple's user.

    The kind is the type restriction the user falls under (``user``, ``user:*`` or
    ``team#member``); the member is what is stored under that kind (``user:jon``,
    ``user:*``, or the userset's object ``team:x``).
    """
    obj, sep, rel = user.rpartition("#")
    if sep:
        return f"{obj.partition(':')[0]}#{rel}", obj
    typ, _, ident = user.partition(":")
    if ident == "*":
        return f"{typ}:*", user
    return typ, user


class MemoryTupleStore:
    """Indexed, idempotent in-memory tuple storage.

    The indexes are read-only views for the evaluator (mutate through :meth:`write` and
    :meth:`delete` only); their "sets" are dicts with ``None`` values so that iteration
    follows the order in which tuples were written, as OpenFGA's storage does:

    * ``fwd_index``: ``(object, relation)`` -> ``{kind: {member: None}}`` (see
      :func:`split_user`), for checks;
    * ``users_index``: ``(object, relation)`` -> ``{user: None}``;
    * ``rev_index``: ``(user, relation, object_type)`` -> ``{object: None}``, to expand from
      a user towards objects.

    Not synchronised: do not write from another thread while an evaluation runs (under
    asyncio, evaluations are synchronous and cannot interleave with writes).
    """

    __slots__ = ("_keys", "fwd_index", "rev_index", "users_index")

    def __init__(self, tuples: Iterable[TupleKey] = ()) -> None:
        self._keys: dict[tuple[str, str, str], TupleKey] = {}
        self.fwd_index: dict[tuple[str, str], dict[str, dict[str, None]]] = {}
        self.users_index: dict[tuple[str, str], dict[str, None]] = {}
        self.rev_index: dict[tuple[str, str, str], dict[str, None]] = {}
        self.write(tuples)

    def write(self, tuples: Iterable[TupleKey]) -> None:
        """Adds the tuples; writing a tuple that is already stored is a no-op."""
        keys, fwd, users, rev = self._keys, self.fwd_index, self.users_index, self.rev_index
        for t in tuples:
            key = (t.object, t.relation, t.user)
            if key in keys:
                continue
            keys[key] = t
            kind, member = split_user(t.user)
            okey = (t.object, t.relation)
            by_kind = fwd.get(okey)
            if by_kind is None:
                fwd[okey] = {kind: {member: None}}
                users[okey] = {t.user: None}
            else:
                by_kind.setdefault(kind, {})[member] = None
                users[okey][t.user] = None
            rev.setdefault((t.user, t.relation, t.object.partition(":")[0]), {})[t.object] = None

    def delete(self, tuples: Iterable[TupleKey]) -> None:
        """Removes the tuples; deleting a tuple that is not stored is a no-op."""
        keys, fwd, users, rev = self._keys, self.fwd_index, self.users_index, self.rev_index
        for t in tuples:
            key = (t.object, t.relation, t.user)
            if keys.pop(key, None) is None:
                continue
            kind, member = split_user(t.user)
            okey = (t.object, t.relation)
            by_kind = fwd[okey]
            members = by_kind[kind]
            del members[member]
            if not members:
                del by_kind[kind]
            del users[okey][t.user]
            if not by_kind:
                del fwd[okey]
                del users[okey]
            rkey = (t.user, t.relation, t.object.partition(":")[0])
            objects = rev[rkey]
            del objects[t.object]
            if not objects:
                del rev[rkey]

    def clear(self) -> None:
        self._keys.clear()
        self.fwd_index.clear()
        self.users_index.clear()
        self.rev_index.clear()

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[TupleKey]:
        return iter(list(self._keys.values()))

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, TupleKey):
            return False
        return (item.object, item.relation, item.user) in self._keys

    def read(
        self, *, user: str | None = None, relation: str | None = None, object: str | None = None
    ) -> list[TupleKey]:
        """Stored tuples matching every given field, sorted by object, relation, user.

        ``object`` may be a bare type (``document:`` or ``document``) to match every object
        of that type, as OpenFGA's Read does with ``type:``.
        """
        candidates: Iterable[TupleKey]
        if object is not None and relation is not None and ":" in object and object[-1] != ":":
            candidates = [
                self._keys[(object, relation, u)]
                for u in self.users_index.get((object, relation), {})
            ]
        else:
            candidates = self._keys.values()
        type_prefix = None
        if object is not None and (":" not in object or object.endswith(":")):
            type_prefix = object.rstrip(":") + ":"
        out = [
            t
            for t in candidates
            if (user is None or t.user == user)
            and (relation is None or t.relation == relation)
            and (
                object is None
                or (t.object.startswith(type_prefix) if type_prefix else t.object == object)
            )
        ]
        out.sort(key=lambda t: (t.object, t.relation, t.user))
        return out


# --------------------------------------------------------------------------------------------
# String forms (OpenFGA pkg/tuple)
# --------------------------------------------------------------------------------------------


def is_valid_object(s: str) -> bool:
    """``type:id`` with exactly one ``:`` (not first), no ``#`` or space, non-empty id."""
    if _CONTROL.search(s) or "#" in s or " " in s:
        return False
    typ, sep, ident = s.partition(":")
    return bool(sep) and bool(typ) and bool(ident) and ":" not in ident


def is_valid_relation(s: str) -> bool:
    return bool(s) and not _CONTROL.search(s) and not any(c in s for c in "#:@ ")


def _is_valid_user_id(s: str) -> bool:
    return bool(s) and not _CONTROL.search(s) and not any(c in s for c in "#: ")


def is_valid_userset(s: str) -> bool:
    """``type:id#relation`` (the state machine of OpenFGA's IsValidUserset)."""
    if _CONTROL.search(s):
        return False
    state = id_len = rel_len = 0
    for i, c in enumerate(s):
        if c == ":":
            if state > 0 or i == 0:
                return False
            state = 1
        elif c == "#":
            if state > 1 or id_len == 0:
                return False
            state = 2
        elif c == " ":
            return False
        elif c == "*":
            if state > 0:
                return False
        elif state == 1:
            id_len += 1
        elif state == 2:
            rel_len += 1
    return rel_len > 0


def is_valid_user(s: str) -> bool:
    return s == "*" or _is_valid_user_id(s) or is_valid_object(s) or is_valid_userset(s)


def is_typed_wildcard(s: str) -> bool:
    typ, _, ident = s.partition(":")
    return bool(typ) and ident == "*"


# --------------------------------------------------------------------------------------------
# Validation against a model
# --------------------------------------------------------------------------------------------


def user_problem(model: AuthorizationModel, user: str) -> str | None:
    """Why ``user`` is not acceptable under ``model`` (OpenFGA's ValidateUser), or None."""
    if not is_valid_user(user):
        return "the 'user' field is malformed"
    userset = "#" in user and is_valid_userset(user)
    if not is_valid_object(user) and not userset:
        return (
            "the 'user' field must be an object (e.g. document:1) or an 'object#relation' "
            "or a typed wildcard (e.g. group:*)"
        )
    user_object, _, user_relation = user.rpartition("#") if userset else (user, "", "")
    user_type = user_object.partition(":")[0]
    if not model.has_type(user_type):
        return f"type '{user_type}' not found"
    if userset and model.relation(user_type, user_relation) is None:
        return f"relation '{user_type}#{user_relation}' not found"
    return None


def object_problem(model: AuthorizationModel, obj: str) -> str | None:
    """Why ``obj`` is not an acceptable object (OpenFGA's ValidateObject), or None."""
    if not is_valid_object(obj):
        return "invalid 'object' field format"
    typ, _, ident = obj.partition(":")
    if ident == "*":
        return "the 'object' field cannot reference a typed wildcard"
    if not model.has_type(typ):
        return f"type '{typ}' not found"
    return None


def relation_problem(model: AuthorizationModel, obj: str, relation: str) -> str | None:
    if not is_valid_relation(relation):
        return "the 'relation' field is malformed"
    typ = obj.partition(":")[0]
    if not model.has_type(typ):
        return f"type '{typ}' not found"
    if model.relation(typ, relation) is None:
        return f"relation '{typ}#{relation}' not found"
    return None


def key_problem(model: AuthorizationModel, user: str, relation: str, obj: str) -> str | None:
    """OpenFGA's ValidateUserObjectRelation: user, then object, then relation."""
    return (
        user_problem(model, user)
        or object_problem(model, obj)
        or relation_problem(model, obj, relation)
    )


def tuple_problem(model: AuthorizationModel, t: TupleKey) -> str | None:
    """Why ``t`` cannot be written under ``model`` (OpenFGA's ValidateTupleForWrite), or
    None. Does not include the write-only "implicit tuple" rule."""
    problem = key_problem(model, t.user, t.relation, t.object)
    if problem:
        return problem
    obj_type = t.object.partition(":")[0]
    if model.is_tupleset_relation(obj_type, t.relation):
        if t.user == "*" or is_typed_wildcard(t.user):
            return (
                f"unexpected wildcard relationship with tupleset relation '{obj_type}#{t.relation}'"
            )
        if not is_valid_object(t.user):
            return f"unexpected user '{t.user}' with tupleset relation '{obj_type}#{t.relation}'"
    rel = model.relation(obj_type, t.relation)
    assert rel is not None  # key_problem checked it
    kind, _ = split_user(t.user)
    if not any(tr.label == kind for tr in rel.directly_related):
        if "#" in kind:
            return f"'{kind}' is not an allowed type restriction for '{obj_type}#{t.relation}'"
        if kind.endswith(":*"):
            return (
                f"the typed wildcard '{t.user}' is not an allowed type restriction for "
                f"'{obj_type}#{t.relation}'"
            )
        return f"type '{kind}' is not an allowed type restriction for '{obj_type}#{t.relation}'"
    return None


def validate_tuple(model: AuthorizationModel, t: TupleKey) -> None:
    """Raises :class:`AuthzValidationError` (``validation_error``, as OpenFGA's Write does)
    if ``t`` cannot be written under ``model``: malformed fields, unknown type or relation,
    a user type outside the relation's type restrictions, a wildcard or userset on a
    tupleset relation, or an implicit tuple (``doc:1#viewer@doc:1#viewer``)."""
    problem = tuple_problem(model, t)
    if problem is None:
        user_object, sep, user_relation = t.user.rpartition("#")
        if sep and user_object == t.object and user_relation == t.relation:
            problem = "cannot write a tuple that is implicit"
    if problem is not None:
        raise AuthzValidationError(
            ErrorCode.validation_error, f"Invalid tuple '{t}'. Reason: {problem}"
        )
