"""The DSL parser, the model's validation rules and the API JSON form."""

from __future__ import annotations

import json

import pytest

from authz.embedded.definitions import (
    CONDITIONS_UNSUPPORTED,
    MODULES_UNSUPPORTED,
    ComputedUserset,
    Difference,
    Intersection,
    RelationDef,
    This,
    TupleToUserset,
    TypeDef,
    TypeRestriction,
    Union,
)
from authz.embedded.dsl import parse_definitions
from authz.embedded.model import AuthorizationModel, model_from_json, model_to_json, parse_dsl
from authz.ports import AuthzValidationError, ErrorCode

HEADER = "model\n  schema 1.1\n"

GDRIVE = """
# A drive-like model: folders, documents, nested groups.
model
  schema 1.1

type user

type group
  relations
    define member: [user, group#member]

type folder
  relations
    define owner: [user]
    define parent: [folder]
    define viewer: [user, user:*, group#member] or owner or viewer from parent

type doc
  relations
    define parent: [folder]
    define owner: [user]
    define blocked: [user]
    define editor: [user] or owner # trailing comment
    define viewer: ([user, group#member] or editor or viewer from parent) but not blocked
    define auditor: [
      user,
      group#member
    ] and viewer
"""


def invalid(text: str) -> AuthzValidationError:
    with pytest.raises(AuthzValidationError) as info:
        parse_dsl(text)
    assert info.value.code == ErrorCode.invalid_authorization_model
    return info.value


def test_parses_every_construct() -> None:
    model = parse_dsl(GDRIVE)
    assert model.schema_version == "1.1"
    assert model.type_names == ("user", "group", "folder", "doc")
    viewer = model.relation("folder", "viewer")
    assert viewer is not None
    assert viewer.rewrite == Union(
        (This(), ComputedUserset("owner"), TupleToUserset("parent", "viewer"))
    )
    assert viewer.directly_related == (
        TypeRestriction("user"),
        TypeRestriction("user", wildcard=True),
        TypeRestriction("group", "member"),
    )
    doc_viewer = model.relation("doc", "viewer")
    assert doc_viewer is not None
    assert doc_viewer.rewrite == Difference(
        Union((This(), ComputedUserset("editor"), TupleToUserset("parent", "viewer"))),
        ComputedUserset("blocked"),
    )
    auditor = model.relation("doc", "auditor")
    assert auditor is not None
    assert auditor.rewrite == Intersection((This(), ComputedUserset("viewer")))
    assert [t.label for t in auditor.directly_related] == ["user", "group#member"]
    assert model.relation("doc", "nope") is None
    assert model.relation("nope", "viewer") is None
    assert model.is_tupleset_relation("doc", "parent")
    assert not model.is_tupleset_relation("doc", "owner")


def test_the_model_is_built_from_the_parsed_definitions() -> None:
    schema_version, type_definitions = parse_definitions(GDRIVE)
    assert parse_dsl(GDRIVE) == AuthorizationModel(schema_version, type_definitions)


def test_extended_identifiers_and_keyword_like_type_names() -> None:
    model = parse_dsl(
        HEADER
        + "type user\ntype module\ntype a.b/c-d\n  relations\n    define x.y: [a.b/c-d, module]\n"
    )
    assert model.type_names == ("user", "module", "a.b/c-d")
    rel = model.relation("a.b/c-d", "x.y")
    assert rel is not None
    assert [t.label for t in rel.directly_related] == ["a.b/c-d", "module"]


@pytest.mark.parametrize(
    "text",
    [
        "type user\n",  # no header
        "model\n  schema 11\ntype user\n",
        "model\ntype user\n",
        HEADER + "type user\n  relations\n",  # relations without definitions
        HEADER + "type user\n  relations\n    define a: [user] or b and c\n",  # mixed operators
        HEADER + "type user\n  relations\n    define b: [user]\n    define a: b or [user]\n",
        HEADER + "type user\n  relations\n    define a: [user\n",
        HEADER + "type user\n  relations\n    define a [user]\n",
        HEADER + "type user\n  relations\n    define a: [user] but not b but not c\n",
        HEADER + "type user\n  relations\n    define in: [user]\n",  # reserved CEL token
        HEADER + "type user\n  relations\n    define a: [user:]\n",
        HEADER + "type user\n  relations\n    define a: [user] $\n",
    ],
)
def test_syntax_errors(text: str) -> None:
    error = invalid(text)
    assert "syntax error" in error.message or "already defined" in error.message


@pytest.mark.parametrize(
    ("body", "why"),
    [
        # relations defined only in terms of each other: nothing can ever be related
        ("type user\ntype doc\n  relations\n    define a: b\n    define b: a\n", "entrypoints"),
        ("type user\ntype doc\n  relations\n    define a: [user] or b\n    define b: a\n", "cycle"),
        ("type user\ntype doc\n  relations\n    define a: a\n", "itself"),
        ("type user\ntype doc\n  relations\n    define a: [user] or b\n", "undefined relation"),
        ("type user\ntype doc\n  relations\n    define a: [folder]\n", "undefined type"),
        ("type user\ntype doc\n  relations\n    define a: [doc#nope]\n", "undefined relation"),
        (
            "type user\ntype doc\n  relations\n    define p: [doc] or q\n    define q: [doc]\n"
            "    define a: [user] or a from p\n",
            "must be a direct relation",
        ),
        (
            "type user\ntype doc\n  relations\n    define p: [user]\n"
            "    define a: [user] or a from p\n",
            "not defined on any type",
        ),
        (
            "type user\ntype doc\n  relations\n    define p: [doc:*]\n"
            "    define a: [user] or a from p\n",
            "tupleset",
        ),
        ("type user\ntype user\n", "more than once"),
        ("type this\n", "reserved"),
        ("type user\ntype doc\n  relations\n    define self: [user]\n", "reserved"),
        (
            "type user\ntype doc\n  relations\n    define a: [user]\n    define a: [user]\n",
            "already defined",
        ),
        ("", "at least one type"),
    ],
)
def test_models_openfga_refuses(body: str, why: str) -> None:
    error = invalid(HEADER + body)
    assert why in error.message


def test_conditions_are_refused_clearly() -> None:
    with_condition = (
        HEADER
        + "type user\ntype doc\n  relations\n    define viewer: [user with in_office]\n"
        + "condition in_office(ip: ipaddress, allowed: list<string>) {\n"
        + "  ip.in_cidr('10.0.0.0/8') && 'x' in allowed\n}\n"
    )
    assert invalid(with_condition).message == CONDITIONS_UNSUPPORTED
    declared_only = HEADER + "type user\ncondition c(x: int) {\n  x < 3\n}\n"
    assert invalid(declared_only).message == CONDITIONS_UNSUPPORTED


def test_modules_are_refused_clearly() -> None:
    assert invalid("module core\n\ntype user\n").message == MODULES_UNSUPPORTED
    assert invalid("module core\n\nextend type user\n").message == MODULES_UNSUPPORTED
    assert invalid(HEADER + "extend type user\n").message == MODULES_UNSUPPORTED


def test_json_round_trip() -> None:
    model = parse_dsl(GDRIVE)
    doc = model_to_json(model)
    # Survives a JSON encoding, as it does on the wire.
    again = model_from_json(json.loads(json.dumps(doc)))
    assert again == model
    assert model_to_json(again) == doc


def test_json_shape_matches_the_openfga_api() -> None:
    doc = model_to_json(parse_dsl(GDRIVE))
    assert doc["schema_version"] == "1.1"
    user, group, folder = doc["type_definitions"][:3]
    assert user == {"type": "user", "relations": {}, "metadata": None}
    assert group["relations"]["member"] == {"this": {}}
    assert group["metadata"]["relations"]["member"]["directly_related_user_types"] == [
        {"type": "user"},
        {"type": "group", "relation": "member"},
    ]
    assert folder["relations"]["viewer"] == {
        "union": {
            "child": [
                {"this": {}},
                {"computedUserset": {"relation": "owner"}},
                {
                    "tupleToUserset": {
                        "tupleset": {"relation": "parent"},
                        "computedUserset": {"relation": "viewer"},
                    }
                },
            ]
        }
    }
    assert {"type": "user", "wildcard": {}} in folder["metadata"]["relations"]["viewer"][
        "directly_related_user_types"
    ]


def test_json_as_read_back_from_a_server() -> None:
    # camelCase names and the empty "object" fields OpenFGA echoes back are accepted.
    doc = {
        "id": "01HXYZ",
        "schemaVersion": "1.1",
        "typeDefinitions": [
            {"type": "user"},
            {
                "type": "doc",
                "relations": {
                    "owner": {"this": {}},
                    "viewer": {
                        "difference": {
                            "base": {"computedUserset": {"object": "", "relation": "owner"}},
                            "subtract": {"this": {}},
                        }
                    },
                },
                "metadata": {
                    "relations": {
                        "owner": {"directlyRelatedUserTypes": [{"type": "user"}]},
                        "viewer": {"directlyRelatedUserTypes": [{"type": "user", "condition": ""}]},
                    },
                    "module": "",
                },
            },
        ],
        "conditions": {},
    }
    model = model_from_json(doc)
    viewer = model.relation("doc", "viewer")
    assert viewer is not None
    assert viewer.rewrite == Difference(ComputedUserset("owner"), This())


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ({"schema_version": "1.0", "type_definitions": [{"type": "user"}]}, "schema version"),
        ({"schema_version": "1.1", "type_definitions": []}, "at least one type"),
        (
            {
                "schema_version": "1.1",
                "type_definitions": [{"type": "doc", "relations": {"a": {"this": {}}}}],
            },
            "no type restrictions",
        ),
        (
            {
                "schema_version": "1.1",
                "type_definitions": [
                    {"type": "user"},
                    {
                        "type": "doc",
                        "relations": {"a": {"union": {"child": [{"this": {}}]}}},
                        "metadata": {
                            "relations": {"a": {"directly_related_user_types": [{"type": "user"}]}}
                        },
                    },
                ],
            },
            "less than 2 children",
        ),
        (
            {
                "schema_version": "1.1",
                "type_definitions": [{"type": "user"}],
                "conditions": {"c": {"name": "c", "expression": "true"}},
            },
            CONDITIONS_UNSUPPORTED,
        ),
        ({"schema_version": "1.1", "type_definitions": [{"type": "a b"}]}, "invalid type name"),
        (
            {
                "schema_version": "1.1",
                "type_definitions": [{"type": "doc", "relations": {"a": {"nope": {}}}}],
            },
            "unknown userset operator",
        ),
    ],
)
def test_json_models_openfga_refuses(doc: dict[str, object], why: str) -> None:
    with pytest.raises(AuthzValidationError) as info:
        model_from_json(doc)
    assert info.value.code == ErrorCode.invalid_authorization_model
    assert why in info.value.message


def test_models_built_in_code_are_validated_too() -> None:
    with pytest.raises(AuthzValidationError):
        AuthorizationModel(
            "1.1",
            [
                TypeDef(
                    "doc",
                    [
                        RelationDef("a", ComputedUserset("b")),
                        RelationDef("b", ComputedUserset("a")),
                    ],
                )
            ],
        )
    ok = AuthorizationModel(
        "1.1",
        [TypeDef("user"), TypeDef("doc", [RelationDef("a", This(), (TypeRestriction("user"),))])],
    )
    assert ok == parse_dsl(HEADER + "type user\ntype doc\n  relations\n    define a: [user]\n")
    assert hash(ok) == hash(
        parse_dsl(HEADER + "type user\ntype doc\n  relations\n    define a: [user]\n")
    )
