"""The security suites' report: after the run, the table of prompt-injection attempts
(what the model asked for, what ran, what came of it) is printed, ``-q`` included, and
written as Markdown next to the run's temporary files.

Each attempt travels with its test's report (``user_properties``), so the table is whole
when the tests run in several worker processes too."""

from __future__ import annotations

import pytest

from tests.security.injection_report import ATTEMPTS, PROPERTY, Attempt, markdown, table


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    for name, value in report.user_properties:
        if name == PROPERTY and isinstance(value, dict):
            ATTEMPTS.append(Attempt(**value))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    if not ATTEMPTS:
        return
    path = config._tmp_path_factory.getbasetemp() / "prompt-injection-report.md"  # type: ignore[attr-defined]
    path.write_text(markdown(ATTEMPTS), encoding="utf-8")
    terminalreporter.write_sep("=", f"prompt-injection attempts ({len(ATTEMPTS)})")
    for line in table(ATTEMPTS):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"report: {path}")
