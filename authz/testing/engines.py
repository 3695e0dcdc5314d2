"""The two engines the differential compares, driven alike: the real OpenFGA engine inside
the ``fga`` CLI (``fga model validate``, ``fga model test``), and the embedded engine in
process. Each answers a query with an :data:`Outcome`.

The ``fga`` CLI's local test mode writes a test's tuples to an in-memory store (in chunks of
40) rather than sending them as contextual tuples, so the 100 contextual tuples limit does not
apply; a scenario is nevertheless kept under
:data:`~authz.testing.cases.MAX_TUPLES_PER_SCENARIO` so that a failing case stays readable,
and each scenario is its own test (its own store).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from authz.embedded.evaluator import Evaluator
from authz.embedded.memory import MemoryTupleStore
from authz.embedded.model import AuthorizationModel, parse_dsl
from authz.ports import AuthzError, TupleKey
from authz.testing.cases import CheckQuery, Query, Scenario

FGA_TIMEOUT_S = 300.0
#: Per-query time budget for the embedded engine; a query that takes longer is a mismatch.
EMBEDDED_QUERY_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------------------------
# The real engine
# --------------------------------------------------------------------------------------------


def fga_binary() -> Path | None:
    """The ``fga`` CLI next to the running interpreter (virtualenv), else on ``PATH``."""
    beside = Path(sys.executable).parent / "fga"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("fga")
    return Path(found) if found else None


Outcome = str
"""``"true"``/``"false"`` for a check, ``"[obj, ...]"`` (sorted) for list_objects, ``"error"``
when the engine refused or could not decide, ``"crash: ..."`` for an unexpected failure."""

QueryKey = tuple[str, str, str, str, str]
"""(test name, "check"|"list_objects", user, relation, object or type)."""


def query_key(test: str, query: Query) -> QueryKey:
    if isinstance(query, CheckQuery):
        return (test, "check", query.user, query.relation, query.object)
    return (test, "list_objects", query.user, query.relation, query.type)


def list_outcome(objects: Sequence[str]) -> Outcome:
    return "[" + ", ".join(sorted(set(objects))) + "]"


class FgaRunError(RuntimeError):
    """``fga model test`` failed for a reason other than failing assertions."""

    def __init__(self, message: str, file: str | None = None) -> None:
        super().__init__(message)
        self.file = file


@dataclass(slots=True)
class RealRun:
    outcomes: dict[QueryKey, Outcome]
    details: dict[QueryKey, str]
    #: Model files the engine refused to load, with its reason.
    refused: dict[str, str]
    seconds: float


class RealEngine:
    """The OpenFGA engine inside the ``fga`` CLI (``fga model test``, ``fga model validate``)."""

    def __init__(self, binary: Path, workers: int | None = None) -> None:
        self.binary = binary
        self.workers = workers or min(8, (os.cpu_count() or 2))
        self._verdicts: dict[str, str | None] = {}

    def _run(
        self, args: Sequence[str], cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binary, arguments built here
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            timeout=FGA_TIMEOUT_S,
            cwd=cwd,
            check=False,
        )

    def validate(self, dsls: Sequence[str]) -> list[str | None]:
        """Per DSL text: None when the engine accepts the model, else its reason (cached)."""
        todo = sorted({dsl for dsl in dsls if dsl not in self._verdicts})
        if todo:
            with tempfile.TemporaryDirectory(prefix="fga-validate-") as tmp:
                paths = []
                for i, dsl in enumerate(todo):
                    path = Path(tmp) / f"m{i}.fga"
                    path.write_text(dsl, encoding="utf-8")
                    paths.append(path)
                with ThreadPoolExecutor(self.workers) as pool:
                    self._verdicts.update(
                        zip(todo, pool.map(self._validate_file, paths), strict=True)
                    )
        return [self._verdicts[dsl] for dsl in dsls]

    def _validate_file(self, path: Path) -> str | None:
        proc = self._run(["model", "validate", "--file", str(path)])
        try:
            verdict = json.loads(proc.stdout)
        except json.JSONDecodeError:
            return (proc.stderr or proc.stdout).strip() or f"exit {proc.returncode}"
        if verdict.get("is_valid") is True and proc.returncode == 0:
            return None
        return str(verdict.get("error") or proc.stderr.strip() or "invalid")

    def run_documents(self, documents: dict[str, dict[str, Any]]) -> RealRun:
        """Run ``fga model test`` over test documents (file stem -> YAML document).

        A file whose model or tuples the engine refuses is set aside (``refused``) and the
        others are run again, so one bad file does not hide the rest.
        """
        started = time.perf_counter()
        outcomes: dict[QueryKey, Outcome] = {}
        details: dict[QueryKey, str] = {}
        refused: dict[str, str] = {}
        pending = dict(documents)
        with tempfile.TemporaryDirectory(prefix="fga-diff-") as tmp:
            while pending:
                for old in Path(tmp).glob("*.fga.yaml"):
                    old.unlink()
                for stem, doc in pending.items():
                    # JSON is YAML, and much faster to write than PyYAML's emitter.
                    (Path(tmp) / f"{stem}.fga.yaml").write_text(json.dumps(doc), encoding="utf-8")
                pattern = "*.fga.yaml" if len(pending) > 1 else f"{next(iter(pending))}.fga.yaml"
                # --tests with a glob runs every file in one process (one engine start).
                proc = self._run(["model", "test", "--tests", pattern, "--verbose"], cwd=Path(tmp))
                try:
                    results = json.loads(proc.stdout) if proc.stdout.strip() else None
                except json.JSONDecodeError as exc:
                    raise FgaRunError(f"unreadable fga output: {exc}: {proc.stdout[:500]}") from exc
                if results is None:
                    match = re.search(
                        r"error running tests for (\S+?) due to (.*)", proc.stderr, re.DOTALL
                    )
                    if not match:
                        raise FgaRunError(
                            f"fga model test failed (exit {proc.returncode}): {proc.stderr.strip()}"
                        )
                    bad = Path(match.group(1)).name.removesuffix(".fga.yaml")
                    if bad not in pending:
                        raise FgaRunError(proc.stderr.strip(), bad)
                    refused[bad] = match.group(2).strip()
                    del pending[bad]
                    continue
                errors = _parse_failure_details(proc.stderr)
                for test in results:
                    name = str(test["name"])
                    for item in test.get("check_results") or []:
                        req = item["request"]
                        key: QueryKey = (name, "check", req["user"], req["relation"], req["object"])
                        if item.get("error") is not None:
                            outcomes[key] = "error"
                            details[key] = errors.get(key, "")
                        else:
                            outcomes[key] = "true" if item["got"] else "false"
                    for item in test.get("list_objects_results") or []:
                        req = item["request"]
                        key = (name, "list_objects", req["user"], req["relation"], req["type"])
                        if item.get("error") is not None:
                            outcomes[key] = "error"
                            details[key] = errors.get(key, "")
                        else:
                            outcomes[key] = list_outcome(item.get("got") or [])
                break
        return RealRun(outcomes, details, refused, time.perf_counter() - started)


_FAILING_HEADER = re.compile(r"^\((?:FAILING|PASSING)\) (.+?): ")
_FAILED_CHECK = re.compile(r"^ⅹ Check\(user=(.*?),relation=(.*?),object=(.*?)\): .*?error=(.*)$")
_FAILED_LIST = re.compile(r"^ⅹ ListObjects\(user=(.*?),relation=(.*?),type=(.*?)\): .*?error=(.*)$")


def _parse_failure_details(stderr: str) -> dict[QueryKey, str]:
    """Error messages from the human summary (the JSON output carries an empty error)."""
    details: dict[QueryKey, str] = {}
    test = ""
    for line in stderr.splitlines():
        header = _FAILING_HEADER.match(line)
        if header:
            test = header.group(1)
            continue
        for kind, pattern in (("check", _FAILED_CHECK), ("list_objects", _FAILED_LIST)):
            found = pattern.match(line)
            if found:
                user, relation, target, error = found.groups()
                details[(test, kind, user, relation, target)] = error.strip()
    return details


def tuple_doc(t: TupleKey) -> dict[str, str]:
    return {"user": t.user, "relation": t.relation, "object": t.object}


def fga_test_document(dsl: str, scenarios: Sequence[Scenario]) -> dict[str, Any]:
    """An ``fga model test`` document: one test (one store) per scenario.

    Every assertion expects ``true`` / ``[]``: only the engine's answers are read back.
    """
    tests = []
    for scenario in scenarios:
        test: dict[str, Any] = {
            "name": scenario.name,
            "tuples": [tuple_doc(t) for t in scenario.tuples],
            "check": [
                {"user": q.user, "object": q.object, "assertions": {q.relation: True}}
                for q in scenario.checks
            ],
        }
        if scenario.list_objects:
            test["list_objects"] = [
                {"user": q.user, "type": q.type, "assertions": {q.relation: []}}
                for q in scenario.list_objects
            ]
        tests.append(test)
    return {"name": "differential", "model": dsl, "tuples": [], "tests": tests}


# --------------------------------------------------------------------------------------------
# The embedded engine
# --------------------------------------------------------------------------------------------


class _QueryTimeout(BaseException):
    """Raised inside a slow embedded query; a BaseException so engine code cannot swallow it."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise _QueryTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class EmbeddedUnderTest:
    """The embedded engine (:mod:`authz.embedded`: its DSL parser, tuple store and
    evaluator), in process, driven the way the differential needs."""

    def __init__(self, timeout: float = EMBEDDED_QUERY_TIMEOUT_S) -> None:
        self.timeout = timeout

    def parse(self, dsl: str) -> AuthorizationModel:
        """The parsed model; raises :class:`AuthzValidationError` for an invalid one."""
        return parse_dsl(dsl)

    def evaluator(self, model: AuthorizationModel, tuples: Sequence[TupleKey]) -> Evaluator:
        store = MemoryTupleStore()
        store.write(list(tuples))
        return Evaluator(model, store)

    def answer(self, evaluator: Evaluator, query: Query) -> Outcome:
        try:
            with _deadline(self.timeout):
                if isinstance(query, CheckQuery):
                    allowed = evaluator.check(query.user, query.relation, query.object)
                    if not isinstance(allowed, bool):
                        return f"crash: check returned {allowed!r}"
                    return "true" if allowed else "false"
                objects = evaluator.list_objects(query.user, query.relation, query.type)
                return list_outcome(list(objects))
        except AuthzError:
            return "error"
        except _QueryTimeout:
            return f"crash: no answer within {self.timeout:g}s"
        except Exception as exc:  # any other exception is a defect the report must show
            return f"crash: {type(exc).__name__}: {exc}"

    def answers(
        self, dsl: str, scenario: Scenario, queries: Sequence[Query]
    ) -> dict[Query, Outcome]:
        try:
            model = self.parse(dsl)
        except Exception as exc:
            failure = f"crash: model refused: {type(exc).__name__}: {exc}"
            return dict.fromkeys(queries, failure)
        try:
            evaluator = self.evaluator(model, scenario.tuples)
        except Exception as exc:
            failure = f"crash: tuples refused: {type(exc).__name__}: {exc}"
            return dict.fromkeys(queries, failure)
        return {q: self.answer(evaluator, q) for q in queries}
