"""What the differential reports: mismatches between the engines (each with its replay
command and a standalone ``fga model test`` file), models the engines disagree on, and the
summary of a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from authz.ports import TupleKey
from authz.testing.cases import Batch, CheckQuery, Query
from authz.testing.engines import Outcome, tuple_doc
from authz.testing.model_spec import ModelSpec


def replay_command(seed: int, model_index: int) -> str:
    """The command that runs the differential again on one candidate model."""
    return f"python -m authz.testing.differential --seed {seed} --model {model_index}"


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings (the model) as ``|`` blocks."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def _indent(text: str, prefix: str = "    ") -> list[str]:
    return [prefix + line for line in text.rstrip().splitlines()]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """The engines answer one query differently (after shrinking: a minimal case)."""

    seed: int
    model_index: int
    scenario: str
    spec: ModelSpec
    tuples: tuple[TupleKey, ...]
    query: Query
    real: Outcome
    embedded: Outcome
    real_detail: str = ""
    original_tuple_count: int = 0
    original_type_count: int = 0
    #: Every answer the real engine gave when asked again (more than one: nondeterministic).
    real_variants: tuple[Outcome, ...] = ()

    @property
    def dsl(self) -> str:
        return self.spec.dsl()

    def replay_command(self) -> str:
        return replay_command(self.seed, self.model_index)

    def replay_document(self) -> str:
        """A standalone ``fga model test`` file asserting the real engine's answer."""
        query = self.query
        test: dict[str, Any] = {"name": "mismatch"}
        if isinstance(query, CheckQuery):
            answer: Any = self.real == "true"
            test["check"] = [
                {"user": query.user, "object": query.object, "assertions": {query.relation: answer}}
            ]
        else:
            answer = (
                [] if self.real == "error" else [o for o in self.real.strip("[]").split(", ") if o]
            )
            test["list_objects"] = [
                {"user": query.user, "type": query.type, "assertions": {query.relation: answer}}
            ]
        doc = {"model": self.dsl, "tuples": [tuple_doc(t) for t in self.tuples], "tests": [test]}
        text = yaml.dump(doc, Dumper=_LiteralDumper, sort_keys=False, width=120)
        if self.real == "error":
            text = (
                "# the real engine answers this query with an error (any assertion fails)\n" + text
            )
        return text

    def report(self) -> str:
        lines = [
            f"MISMATCH seed={self.seed} model={self.model_index} scenario={self.scenario}",
            f"  replay: {self.replay_command()}",
            f"  query: {self.query}",
            f"  real engine: {self.real}" + (f"  ({self.real_detail})" if self.real_detail else ""),
            *(
                [f"  the real engine is nondeterministic here; it answered: {self.real_variants}"]
                if len(self.real_variants) > 1
                else []
            ),
            f"  embedded:    {self.embedded}",
            f"  model ({len(self.spec.types)} of {self.original_type_count or len(self.spec.types)}"
            " types after shrinking):",
            *_indent(self.dsl),
            f"  tuples ({len(self.tuples)} of {self.original_tuple_count or len(self.tuples)}"
            " after shrinking):",
            *(f"    - {t.object}#{t.relation}@{t.user}" for t in self.tuples),
            "  as an fga model test file:",
            *_indent(self.replay_document()),
        ]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ModelMismatch:
    """The two engines disagree on whether a model is valid."""

    seed: int
    model_index: int
    dsl: str
    real: str
    embedded: str

    def report(self) -> str:
        lines = [
            f"MODEL MISMATCH seed={self.seed} model={self.model_index}",
            f"  replay: {replay_command(self.seed, self.model_index)}",
            f"  real engine: {self.real}",
            f"  embedded:    {self.embedded}",
            "  model:",
            *_indent(self.dsl),
        ]
        return "\n".join(lines)


@dataclass(slots=True)
class DifferentialReport:
    seed: int
    batch: Batch
    checks_run: int = 0
    list_objects_run: int = 0
    real_counts: dict[str, int] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    model_mismatches: list[ModelMismatch] = field(default_factory=list)
    #: Queries the real engine answers differently from run to run, and the embedded engine
    #: gives one of those answers: reported, not failures.
    unstable: list[Mismatch] = field(default_factory=list)
    #: Candidates that passed validation but whose model or tuples a store refused.
    refused_cases: dict[int, str] = field(default_factory=dict)
    real_seconds: float = 0.0
    embedded_seconds: float = 0.0
    shrink_seconds: float = 0.0
    total_seconds: float = 0.0
    embedded_ran: bool = False

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.model_mismatches

    def summary(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(self.real_counts.items()))
        return (
            f"differential seed={self.seed}: {len(self.batch.cases)} models "
            f"({len(self.batch.rejected)} rejected candidates), {self.checks_run} checks, "
            f"{self.list_objects_run} list_objects; real answers: {counts}; "
            f"mismatches: {len(self.mismatches)} queries, {len(self.model_mismatches)} models; "
            f"{len(self.unstable)} queries where the real engine is nondeterministic; "
            f"real {self.real_seconds:.1f}s, embedded {self.embedded_seconds:.1f}s, "
            f"shrinking {self.shrink_seconds:.1f}s, total {self.total_seconds:.1f}s"
            + ("" if self.embedded_ran else " (real engine only)")
        )

    def full_report(self, limit: int | None = None) -> str:
        found: list[Mismatch | ModelMismatch] = [*self.model_mismatches, *self.mismatches]
        shown = found if limit is None else found[:limit]
        parts = [self.summary(), *(m.report() for m in shown)]
        if len(shown) < len(found):
            parts.append(f"... and {len(found) - len(shown)} more mismatches")
        parts.extend(
            f"NOTE nondeterministic real engine: seed={m.seed} model={m.model_index} "
            f"scenario={m.scenario} {m.query}: real answers {m.real_variants}, "
            f"embedded {m.embedded}"
            for m in self.unstable
        )
        return "\n\n".join(parts)
