"""Check, ListObjects and ListUsers of the embedded engine: semantics, error rules, validation
codes, cycles and the depth limit, and the tuple store."""

from __future__ import annotations

import random

import pytest

from authz.embedded.check import ResolutionTooComplexError, TooMuchWorkError
from authz.embedded.evaluator import Evaluator
from authz.embedded.memory import MemoryTupleStore, validate_tuple
from authz.embedded.model import AuthorizationModel, parse_dsl
from authz.ports import AuthzEvaluationError, AuthzValidationError, ErrorCode, TupleKey

HEADER = "model\n  schema 1.1\n"

DRIVE = """
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
    define blocked: [user, group#member]
    define editor: [user] or owner
    define viewer: ([user, group#member] or editor or viewer from parent) but not blocked
    define auditor: [user] and viewer
"""


def tk(text: str) -> TupleKey:
    """``object#relation@user``."""
    left, _, user = text.partition("@")
    obj, _, rel = left.partition("#")
    return TupleKey(user, rel, obj)


def engine(model: str | AuthorizationModel, *tuples: str, **kwargs: int) -> Evaluator:
    m = parse_dsl(model) if isinstance(model, str) else model
    store = MemoryTupleStore()
    for t in tuples:
        validate_tuple(m, tk(t))
    store.write(tk(t) for t in tuples)
    return Evaluator(m, store, **kwargs)


def code_of(call: object) -> int:
    assert callable(call)
    with pytest.raises(AuthzValidationError) as info:
        call()
    return info.value.code


# -- Check ---------------------------------------------------------------------------------------


def test_direct_computed_ttu_and_wildcards() -> None:
    ev = engine(
        DRIVE,
        "folder:root#owner@user:olga",
        "folder:sub#parent@folder:root",
        "doc:1#parent@folder:sub",
        "doc:1#editor@user:ed",
        "folder:pub#viewer@user:*",
        "doc:2#parent@folder:pub",
    )
    assert ev.check("user:olga", "viewer", "doc:1")  # owner of the grandparent folder
    assert ev.check("user:ed", "viewer", "doc:1")  # editor implies viewer
    assert not ev.check("user:ed", "viewer", "folder:sub")
    assert ev.check("user:anyone", "viewer", "doc:2")  # public folder
    assert ev.check("user:*", "viewer", "folder:pub")
    assert not ev.check("user:*", "viewer", "folder:root")
    assert not ev.check("user:olga", "owner", "doc:1")


def test_usersets_nested_groups_and_self() -> None:
    ev = engine(
        DRIVE,
        "group:eng#member@user:ann",
        "group:all#member@group:eng#member",
        "doc:1#viewer@group:all#member",
    )
    assert ev.check("user:ann", "viewer", "doc:1")
    assert ev.check("group:eng#member", "viewer", "doc:1")
    assert ev.check("group:eng#member", "member", "group:eng")  # a userset is in itself
    assert not ev.check("user:bob", "viewer", "doc:1")


def test_exclusion_and_intersection() -> None:
    ev = engine(
        DRIVE,
        "doc:1#viewer@user:ann",
        "doc:1#viewer@user:bob",
        "doc:1#blocked@group:bad#member",
        "group:bad#member@user:bob",
        "doc:1#auditor@user:ann",
        "doc:1#auditor@user:cid",
    )
    assert ev.check("user:ann", "viewer", "doc:1")
    assert not ev.check("user:bob", "viewer", "doc:1")
    assert ev.check("user:ann", "auditor", "doc:1")
    assert not ev.check("user:cid", "auditor", "doc:1")  # direct but not a viewer


def test_contextual_tuples_count_and_are_validated() -> None:
    ev = engine(DRIVE)
    ctx = [tk("doc:9#owner@user:kim")]
    assert ev.check("user:kim", "viewer", "doc:9", ctx)
    assert not ev.check("user:kim", "viewer", "doc:9")
    assert ev.list_objects("user:kim", "editor", "doc", ctx) == ["doc:9"]
    assert ev.list_users("doc:9", "owner", ["user"], ctx) == ["user:kim"]
    for bad in (
        "doc:9#nope@user:kim",
        "doc:9#owner@folder:x",
        "doc:9#owner@user:*",
        "nope:1#owner@user:kim",
    ):
        assert code_of(lambda bad=bad: ev.check("user:kim", "viewer", "doc:9", [tk(bad)])) == 2027
        assert (
            code_of(lambda bad=bad: ev.list_objects("user:kim", "viewer", "doc", [tk(bad)])) == 2027
        )
        assert (
            code_of(lambda bad=bad: ev.list_users("doc:9", "viewer", ["user"], [tk(bad)])) == 2027
        )


def test_request_validation_codes() -> None:
    ev = engine(DRIVE)
    for user, rel, obj in [
        ("user:a", "nope", "doc:1"),  # unknown relation
        ("nope:a", "viewer", "doc:1"),  # unknown user type
        ("group:x#nope", "viewer", "doc:1"),  # unknown userset relation
        ("user:a", "viewer", "nope:1"),  # unknown object type
        ("user:a", "viewer", "doc:*"),  # wildcard object
        ("user a", "viewer", "doc:1"),  # malformed user
        ("user:a", "viewer", "doc1"),  # malformed object
        ("jon", "viewer", "doc:1"),
    ]:
        assert code_of(lambda u=user, r=rel, o=obj: ev.check(u, r, o)) == ErrorCode.validation_error
    assert code_of(lambda: ev.list_objects("user:a", "viewer", "nope")) == 2021
    assert code_of(lambda: ev.list_objects("user:a", "nope", "doc")) == 2022
    assert code_of(lambda: ev.list_objects("nope:a", "viewer", "doc")) == 2000
    assert code_of(lambda: ev.list_users("doc:1", "viewer", ["nope"])) == 2021
    assert code_of(lambda: ev.list_users("doc:1", "viewer", ["group#nope"])) == 2022
    assert code_of(lambda: ev.list_users("doc:1", "nope", ["user"])) == 2022
    assert code_of(lambda: ev.list_users("nope:1", "viewer", ["user"])) == 2021
    assert code_of(lambda: ev.list_users("doc:1", "viewer", [])) == 2000


# -- error propagation ---------------------------------------------------------------------------

CHAIN = """
model
  schema 1.1
type user
type res
  relations
    define a0: [user]
{defs}
    define ok: [user]
    define any: deep or ok
    define all: deep and ok
    define deep_but_not_ok: deep but not ok
    define ok_but_not_deep: ok but not deep
"""


def chain(length: int) -> str:
    defs = "\n".join(f"    define a{i}: [res#a{i - 1}]" for i in range(1, length + 1))
    return CHAIN.replace("{defs}", defs + f"\n    define deep: a{length}")


def chain_engine(length: int, *extra: str) -> Evaluator:
    tuples = [f"res:1#a{i}@res:1#a{i - 1}" for i in range(1, length + 1)]
    return engine(chain(length), "res:1#a0@user:u", *tuples, *extra)


def test_depth_limit_is_an_error_never_false() -> None:
    # 25 dispatches are too many: OpenFGA's resolution depth limit.
    ev = chain_engine(26)
    with pytest.raises(ResolutionTooComplexError) as info:
        ev.check("user:u", "deep", "res:1")
    assert info.value.code == 2002
    assert isinstance(info.value, AuthzEvaluationError)
    # One level less is fine.
    assert chain_engine(24).check("user:u", "deep", "res:1")


def test_error_rules_of_set_operations() -> None:
    ev = chain_engine(26, "res:1#ok@user:u")
    assert ev.check("user:u", "any", "res:1")  # union: true wins over an error
    with pytest.raises(ResolutionTooComplexError):
        ev.check("user:u", "all", "res:1")  # intersection: error and true is an error
    with pytest.raises(ResolutionTooComplexError):
        ev.check("user:u", "ok_but_not_deep", "res:1")  # exclusion: an error stays an error
    assert not ev.check("user:u", "deep_but_not_ok", "res:1")  # subtract true decides
    without_ok = chain_engine(26)
    assert not without_ok.check("user:u", "all", "res:1")  # intersection: false wins
    assert not without_ok.check("user:u", "ok_but_not_deep", "res:1")  # base false decides
    with pytest.raises(ResolutionTooComplexError):
        without_ok.check("user:u", "any", "res:1")  # union: error and false is an error


def test_computed_relations_cost_no_depth() -> None:
    defs = "\n".join(f"    define c{i}: c{i + 1}" for i in range(40))
    model = (
        "model\n  schema 1.1\ntype user\ntype doc\n  relations\n"
        + defs
        + "\n    define c40: [user]\n"
    )
    assert engine(model, "doc:1#c40@user:u").check("user:u", "c0", "doc:1")


CYCLES = """
model
  schema 1.1
type user
type doc
  relations
    define editor: [user, doc#viewer]
    define viewer: editor
    define restricted: [user, doc#viewer2]
    define viewer2: [user] but not restricted
type group
  relations
    define member: [user, group#member]
type page
  relations
    define blocked: [user, group#member]
    define viewer: [user] but not blocked
"""


def test_data_cycles_are_false_not_errors() -> None:
    ev = engine(
        CYCLES,
        "doc:1#editor@doc:1#viewer",
        "doc:2#viewer2@user:jon",
        "doc:2#restricted@doc:2#viewer2",
    )
    assert not ev.check("user:jon", "viewer", "doc:1")
    # The subtracted side meets a cycle: false (as OpenFGA answers).
    assert not ev.check("user:jon", "viewer2", "doc:2")
    assert ev.list_objects("user:jon", "viewer2", "doc") == []


def test_recursive_groups_resolve_cycles_to_plain_false() -> None:
    # OpenFGA walks recursive usersets breadth first: a cycle in group membership is then a
    # plain "not a member", so the exclusion lets jon in...
    tuples = (
        "page:1#viewer@user:jon",
        "group:1#member@group:2#member",
        "group:2#member@group:1#member",
        "page:1#blocked@group:1#member",
    )
    groups_and_pages = (
        CYCLES.split("type group")[0].split("type doc")[0]
        + "type group"
        + CYCLES.split("type group")[1]
    )
    ev = engine(groups_and_pages, *tuples)
    assert not ev.check("user:jon", "member", "group:1")
    assert not ev.check("user:jon", "blocked", "page:1")
    assert ev.check("user:jon", "viewer", "page:1")
    # ... but not in a model where an exclusion lies on a cycle of relations (doc#viewer2):
    # OpenFGA then never walks breadth first, and the cycle denies.
    assert not engine(CYCLES, *tuples).check("user:jon", "viewer", "page:1")


def test_recursive_groups_deeper_than_the_dispatch_limit() -> None:
    model = HEADER + "type user\ntype group\n  relations\n    define member: [user, group#member]\n"
    tuples = ["group:0#member@user:u"] + [
        f"group:{i}#member@group:{i - 1}#member" for i in range(1, 27)
    ]
    ev = engine(model, *tuples)
    assert ev.check("user:u", "member", "group:25")  # one level per breadth-first step
    assert not ev.check("user:x", "member", "group:26")  # nobody to find: no walk at all
    with pytest.raises(ResolutionTooComplexError):
        ev.check("user:u", "member", "group:26")
    with pytest.raises(ResolutionTooComplexError):
        ev.list_objects("user:u", "member", "group")
    assert len(engine(model, *tuples[:25]).list_objects("user:u", "member", "group")) == 25


def test_which_models_are_walked_breadth_first() -> None:
    # A chain of 24 usersets whose last level is empty: breadth first, the 25th level costs
    # one depth too many (an error); dispatching, the chain ends at depth 24 (false). OpenFGA
    # only walks breadth first when its weighted model graph can be built, which it cannot
    # when an intersection's operands share no user type.
    base = HEADER + (
        "type user\ntype folder\n  relations\n    define p: [folder]\n"
        "    define a: [folder#a, user]\n    define b: [user]\n"
    )
    tuples = [f"folder:c{i}#a@folder:c{i + 1}#a" for i in range(2, 26)] + ["folder:c28#a@user:u0"]
    with pytest.raises(ResolutionTooComplexError):
        engine(base, *tuples).check("user:u0", "a", "folder:c2")
    for extra in ("    define e: b and p\n", "    define e: (b but not p from p) and p\n"):
        assert not engine(base + extra, *tuples).check("user:u0", "a", "folder:c2")
    with pytest.raises(ResolutionTooComplexError):
        engine(base + "    define e: b and (p or b)\n", *tuples).check("user:u0", "a", "folder:c2")


def test_nested_intersections_narrow_the_types_other_intersections_match() -> None:
    # folder#e intersects `p from p` (type folder) with `a`. A folder reaches group#b, one
    # operand of group#d, but not group#a, so folder has no weight for group#d, hence none
    # for folder#a: e's operands share no type, the graph is not built and the 24-userset
    # chain is dispatched (false, as OpenFGA answers). When group#d is a union, folder
    # reaches folder#a, the graph is built and the chain is walked breadth first (an error).
    def model(d: str) -> str:
        return HEADER + (
            "type user\ntype group\n  relations\n    define q: [group]\n"
            f"    define a: [group#q]\n    define b: [folder] or q from q\n    define d: {d}\n"
            "type folder\n  relations\n    define p: [folder]\n"
            "    define a: [user, group#d, folder#a]\n    define e: p from p and a\n"
        )

    tuples = [f"folder:c{i}#a@folder:c{i + 1}#a" for i in range(24)] + ["folder:c25#a@user:u0"]
    assert not engine(model("a and b from q"), *tuples).check("user:u0", "a", "folder:c0")
    with pytest.raises(ResolutionTooComplexError):
        engine(model("a or b from q"), *tuples).check("user:u0", "a", "folder:c0")


def test_tuples_the_model_no_longer_allows_are_ignored() -> None:
    old = parse_dsl(
        "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user:*]\n"
    )
    new = parse_dsl(
        "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n"
    )
    store = MemoryTupleStore([tk("doc:1#viewer@user:*")])
    assert Evaluator(old, store).check("user:jon", "viewer", "doc:1")
    ev = Evaluator(new, store)
    assert not ev.check("user:jon", "viewer", "doc:1")
    assert ev.list_objects("user:jon", "viewer", "doc") == []
    assert ev.list_users("doc:1", "viewer", ["user"]) == []


def test_work_limit_fails_closed() -> None:
    ev = engine(DRIVE, "doc:1#viewer@user:a", max_steps=1)
    with pytest.raises(TooMuchWorkError):
        ev.check("user:b", "viewer", "doc:1")


# -- ListObjects / ListUsers ---------------------------------------------------------------------


def test_list_objects() -> None:
    ev = engine(
        DRIVE,
        "folder:root#viewer@user:ann",
        "folder:sub#parent@folder:root",
        *(f"doc:{i}#parent@folder:sub" for i in range(30)),
        "doc:7#blocked@user:ann",
        "doc:99#owner@user:ann",
        "folder:pub#viewer@user:*",
    )
    docs = ev.list_objects("user:ann", "viewer", "doc")
    assert docs == sorted([f"doc:{i}" for i in range(30) if i != 7] + ["doc:99"])
    assert ev.list_objects("user:ann", "viewer", "folder") == [
        "folder:pub",
        "folder:root",
        "folder:sub",
    ]
    assert ev.list_objects("user:*", "viewer", "folder") == ["folder:pub"]
    assert ev.list_objects("user:zed", "viewer", "folder") == ["folder:pub"]
    assert ev.list_objects("user:ann", "auditor", "doc") == []


def test_list_users() -> None:
    ev = engine(
        DRIVE,
        "group:eng#member@user:ann",
        "group:all#member@group:eng#member",
        "group:all#member@user:bob",
        "doc:1#viewer@group:all#member",
        "doc:1#owner@user:cid",
        "doc:1#blocked@user:bob",
        "folder:pub#viewer@user:*",
    )
    assert ev.list_users("doc:1", "viewer", ["user"]) == ["user:ann", "user:cid"]
    assert ev.list_users("doc:1", "viewer", ["group#member"]) == [
        "group:all#member",
        "group:eng#member",
    ]
    assert ev.list_users("folder:pub", "viewer", ["user"]) == ["user:*"]
    assert ev.list_users("doc:2", "viewer", ["user"]) == []


def test_checks_and_lists_agree_on_random_data() -> None:
    # Self-consistency over many small random stores: every listed object/user checks true
    # and every object that checks true is listed.
    model = parse_dsl(DRIVE)
    rng = random.Random(7)
    users = ["user:a", "user:b", "user:c", "user:*"]
    for _ in range(40):
        tuples: set[TupleKey] = set()
        for _ in range(25):
            kind = rng.randrange(6)
            i, j = rng.randrange(4), rng.randrange(4)
            if kind == 0:
                tuples.add(TupleKey(rng.choice(users[:3]), "member", f"group:{i}"))
            elif kind == 1 and i != j:
                tuples.add(TupleKey(f"group:{j}#member", "member", f"group:{i}"))
            elif kind == 2:
                tuples.add(
                    TupleKey(f"folder:{j}", "parent", rng.choice([f"folder:{i}", f"doc:{i}"]))
                )
            elif kind == 3:
                tuples.add(TupleKey(rng.choice(users), "viewer", f"folder:{i}"))
            elif kind == 4:
                tuples.add(
                    TupleKey(
                        rng.choice(users[:3]),
                        rng.choice(["owner", "blocked", "auditor"]),
                        f"doc:{i}",
                    )
                )
            else:
                tuples.add(
                    TupleKey(f"group:{j}#member", rng.choice(["viewer", "blocked"]), f"doc:{i}")
                )
        ev = Evaluator(model, MemoryTupleStore(tuples))
        for user in users[:3]:
            for rel in ("viewer", "editor", "auditor"):
                listed = ev.list_objects(user, rel, "doc")
                checked = [f"doc:{i}" for i in range(4) if ev.check(user, rel, f"doc:{i}")]
                assert listed == checked, (user, rel, sorted(tuples, key=str))
            for i in range(4):
                members = ev.list_users(f"group:{i}", "member", ["user"])
                assert members == [u for u in users[:3] if ev.check(u, "member", f"group:{i}")]


# -- tuple store and tuple validation ------------------------------------------------------------


def test_store_is_idempotent_and_indexed() -> None:
    store = MemoryTupleStore()
    a, b = tk("doc:1#viewer@user:a"), tk("doc:1#viewer@group:g#member")
    store.write([a, b, a])
    store.write([a])
    assert len(store) == 2
    assert set(store) == {a, b}
    assert a in store
    assert store.read(object="doc:1", relation="viewer") == [b, a]
    assert store.read(user="user:a") == [a]
    assert store.read(object="doc:") == [b, a]
    store.delete([a, a, tk("doc:2#viewer@user:a")])
    assert len(store) == 1
    assert a not in store
    assert store.read(user="user:a") == []
    store.delete([b])
    assert len(store) == 0
    assert store.fwd_index == {} and store.rev_index == {} and store.users_index == {}


@pytest.mark.parametrize(
    ("tuple_text", "reason"),
    [
        ("doc:1#nope@user:a", "relation 'doc#nope' not found"),
        ("doc:1#viewer@folder:x", "not an allowed type restriction"),
        ("doc:1#viewer@user:*", "typed wildcard"),
        ("doc:1#viewer@group:g#nope", "relation 'group#nope' not found"),
        ("doc:1#parent@folder:x#viewer", "unexpected user"),
        ("doc:1#parent@folder:*", "wildcard"),
        ("doc:1#viewer@doc:1#viewer", "implicit"),
        ("nope:1#viewer@user:a", "type 'nope' not found"),
        ("doc:1#viewer@jon", "must be an object"),
    ],
)
def test_validate_tuple(tuple_text: str, reason: str) -> None:
    model = parse_dsl(
        DRIVE.replace(
            "define viewer: ([user, group#member]",
            "define viewer: ([user, group#member, doc#viewer]",
        )
    )
    with pytest.raises(AuthzValidationError) as info:
        validate_tuple(model, tk(tuple_text))
    assert info.value.code == ErrorCode.validation_error
    assert reason in info.value.message


def test_validate_tuple_accepts_allowed_tuples() -> None:
    model = parse_dsl(DRIVE)
    for ok in (
        "doc:1#viewer@user:a",
        "doc:1#viewer@group:g#member",
        "folder:1#viewer@user:*",
        "doc:1#parent@folder:x",
    ):
        validate_tuple(model, tk(ok))
