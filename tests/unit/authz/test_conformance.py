"""OpenFGA's conformance matrix against the embedded engine, one pytest case per test name."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from authz.testing.conformance import case_names, main_conformance, run_conformance

REPO_ROOT = Path(__file__).resolve().parents[3]
MATRIX = REPO_ROOT.parent / "shared" / "conformance" / "openfga" / "consolidated_1_1_tests.yaml"

needs_matrix = pytest.mark.skipif(
    not MATRIX.exists(), reason=f"OpenFGA conformance matrix not found at {MATRIX}"
)


def _names() -> list[str]:
    return case_names(MATRIX) if MATRIX.exists() else []


@needs_matrix
def test_matrix_is_complete() -> None:
    # Guards against a truncated or replaced matrix silently shrinking the suite.
    report = run_conformance(MATRIX)
    assert report.passed + report.failed >= 700
    assert len(_names()) >= 100


@needs_matrix
@pytest.mark.parametrize("name", _names())
def test_conformance_case(name: str) -> None:
    report = run_conformance(MATRIX, name_filter=name)
    assert report.passed > 0, f"no assertion ran for {name}"
    assert report.failures == []


MINI = """
tests:
  - name: passes
    stages:
      - model: |
          model
            schema 1.1
          type user
          type doc
            relations
              define viewer: [user]
        tuples:
          - {object: "doc:1", relation: viewer, user: "user:a"}
        checkAssertions:
          - tuple: {object: "doc:1", relation: viewer, user: "user:a"}
            expectation: true
          - tuple: {object: "doc:1", relation: nope, user: "user:a"}
            errorCode: 2000
        listObjectsAssertions:
          - request: {user: "user:a", type: doc, relation: viewer}
            expectation: ["doc:1"]
        listUsersAssertions:
          - request: {filters: [user], object: "doc:1", relation: viewer}
            expectation: ["user:a"]
  - name: fails
    stages:
      - model: |
          model
            schema 1.1
          type user
          type doc
            relations
              define viewer: [user]
        checkAssertions:
          - tuple: {object: "doc:1", relation: viewer, user: "user:a"}
            expectation: true
          - tuple: {object: "doc:1", relation: viewer, user: "user:a"}
            errorCode: 2000
"""


def test_runner_counts_and_reports_failures(tmp_path: Path) -> None:
    path = tmp_path / "mini.yaml"
    path.write_text(MINI, encoding="utf-8")
    report = run_conformance(path)
    assert (report.passed, report.failed) == (4, 2)
    assert all(f.startswith("fails[stage 0]: check doc:1#viewer@user:a") for f in report.failures)
    only = run_conformance(path, name_filter="passes")
    assert (only.passed, only.failed) == (4, 0)

    out = io.StringIO()
    assert main_conformance(path, out) == 1
    lines = out.getvalue().splitlines()
    assert lines[-1] == "4 passed, 2 failed"
    assert len(lines) == 3


def test_runner_stages_share_the_store(tmp_path: Path) -> None:
    # A later stage's model forbids the earlier tuple: it must be ignored, not used.
    path = tmp_path / "stages.yaml"
    path.write_text(
        """
tests:
  - name: stages
    stages:
      - model: |
          model
            schema 1.1
          type user
          type doc
            relations
              define viewer: [user:*]
        tuples:
          - {object: "doc:1", relation: viewer, user: "user:*"}
        checkAssertions:
          - tuple: {object: "doc:1", relation: viewer, user: "user:b"}
            expectation: true
      - model: |
          model
            schema 1.1
          type user
          type doc
            relations
              define viewer: [user, user:*]
        checkAssertions:
          - tuple: {object: "doc:1", relation: viewer, user: "user:b"}
            expectation: true
""",
        encoding="utf-8",
    )
    report = run_conformance(path)
    assert (report.passed, report.failed) == (2, 0)
