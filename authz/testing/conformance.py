"""Runs OpenFGA's conformance matrix (``consolidated_1_1_tests.yaml``) against the embedded
engine.

Each test has stages; like OpenFGA's own runner, the stages of a test share one store: a
stage writes a new model and its tuples, and tuples from earlier stages stay (the engine
must ignore the ones the new model does not allow). Every check, list-objects and
list-users assertion counts as one case; an assertion with ``errorCode`` passes when the
request is refused with that code.

Usage: ``python -m authz.testing.conformance [FILE]`` (or ``pmbot fga conformance FILE``)
prints every failure and, last, exactly ``N passed, M failed``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from authz.embedded.evaluator import Evaluator
from authz.embedded.memory import MemoryTupleStore, validate_tuple
from authz.embedded.model import AuthorizationModel, parse_dsl
from authz.ports import AuthzError, TupleKey


@dataclass
class ConformanceReport:
    passed: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    def record(self, ok: bool, description: str) -> None:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            self.failures.append(description)


def load_tests(path: Path) -> list[Mapping[str, Any]]:
    """The tests of a conformance file, in file order (parsed once per file version)."""
    stat = path.stat()
    return list(_load(str(path.resolve()), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int) -> tuple[Mapping[str, Any], ...]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as fh:
        doc = yaml.load(fh, Loader=loader)  # noqa: S506 - a safe loader
    tests = doc.get("tests") if isinstance(doc, Mapping) else None
    if not isinstance(tests, list):
        raise ValueError(f"{path}: no 'tests' list")
    return tuple(t for t in tests if isinstance(t, Mapping))


def case_names(path: Path) -> list[str]:
    """Distinct test names, in file order."""
    names: list[str] = []
    for t in load_tests(path):
        name = str(t.get("name", ""))
        if name not in names:
            names.append(name)
    return names


def _tuples(items: Any) -> list[TupleKey]:
    return [TupleKey(str(t["user"]), str(t["relation"]), str(t["object"])) for t in items or []]


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", value) or ("error", code-or-None), never raising for engine errors."""
    try:
        return "ok", call()
    except AuthzError as exc:
        return "error", getattr(exc, "code", None)


def _compare(label: str, expected: Any, error_code: Any, got: tuple[str, Any]) -> tuple[bool, str]:
    kind, value = got
    if error_code is not None:
        ok = kind == "error" and value == int(error_code)
        want = f"error {error_code}"
    else:
        ok = kind == "ok" and value == expected
        want = repr(expected)
    have = f"error {value}" if kind == "error" else repr(value)
    return ok, f"{label}: expected {want}, got {have}"


def _run_stage(
    report: ConformanceReport, where: str, stage: Mapping[str, Any], store: MemoryTupleStore
) -> None:
    try:
        model: AuthorizationModel = parse_dsl(str(stage["model"]))
        tuples = _tuples(stage.get("tuples"))
        for t in tuples:
            validate_tuple(model, t)
    except AuthzError as exc:
        report.record(False, f"{where}: stage refused: {exc}")
        return
    store.write(tuples)
    evaluator = Evaluator(model, store)

    for a in stage.get("checkAssertions") or []:
        tk = a["tuple"]
        ctx = _tuples(a.get("contextualTuples"))

        def check(tk: Mapping[str, Any] = tk, ctx: list[TupleKey] = ctx) -> bool:
            return evaluator.check(tk["user"], tk["relation"], tk["object"], ctx)

        label = f"{where}: check {tk['object']}#{tk['relation']}@{tk['user']}"
        report.record(*_compare(label, a.get("expectation"), a.get("errorCode"), _outcome(check)))

    for a in stage.get("listObjectsAssertions") or []:
        req = a["request"]
        ctx = _tuples(a.get("contextualTuples"))

        def list_objects(req: Mapping[str, Any] = req, ctx: list[TupleKey] = ctx) -> list[str]:
            return sorted(evaluator.list_objects(req["user"], req["relation"], req["type"], ctx))

        expected = sorted(a.get("expectation") or [])
        label = f"{where}: list_objects {req['type']}#{req['relation']}@{req['user']}"
        report.record(*_compare(label, expected, a.get("errorCode"), _outcome(list_objects)))

    for a in stage.get("listUsersAssertions") or []:
        req = a["request"]
        ctx = _tuples(a.get("contextualTuples"))
        filters = [str(f) for f in req.get("filters") or []]

        def list_users(
            req: Mapping[str, Any] = req, ctx: list[TupleKey] = ctx, filters: list[str] = filters
        ) -> list[str]:
            return sorted(evaluator.list_users(req["object"], req["relation"], filters, ctx))

        expected = sorted(a.get("expectation") or [])
        label = f"{where}: list_users {req['object']}#{req['relation']} filters={filters}"
        report.record(*_compare(label, expected, a.get("errorCode"), _outcome(list_users)))


def run_conformance(path: Path, *, name_filter: str | None = None) -> ConformanceReport:
    """Runs every test of ``path`` (only those named exactly ``name_filter`` if given)."""
    report = ConformanceReport()
    for test in load_tests(path):
        name = str(test.get("name", ""))
        if name_filter is not None and name != name_filter:
            continue
        store = MemoryTupleStore()
        for index, stage in enumerate(test.get("stages") or []):
            _run_stage(report, f"{name}[stage {index}]", stage, store)
    return report


def main_conformance(path: Path, out: TextIO) -> int:
    """Prints each failure, then ``N passed, M failed``; 0 if nothing failed, else 1."""
    report = run_conformance(path)
    for failure in report.failures:
        print(failure, file=out)
    print(f"{report.passed} passed, {report.failed} failed", file=out)
    return 0 if report.failed == 0 else 1


def default_path() -> Path:
    """The shared conformance file (``../shared`` beside the repository)."""
    repo_root = Path(__file__).resolve().parents[2]
    return repo_root.parent / "shared" / "conformance" / "openfga" / "consolidated_1_1_tests.yaml"


if __name__ == "__main__":  # pragma: no cover - command line entry point
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else default_path()
    sys.exit(main_conformance(target, sys.stdout))
