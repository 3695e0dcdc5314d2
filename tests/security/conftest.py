"""The security suites' report: after the run, the table of prompt-injection attempts
(what the model asked for, what ran, what came of it) is printed, ``-q`` included, and
written as Markdown next to the run's temporary files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.injection_report import ATTEMPTS, REPORT, markdown, table


@pytest.fixture(scope="session")
def injection_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Writes the report file once the session's attempts are in."""
    path = tmp_path_factory.getbasetemp() / "prompt-injection-report.md"
    REPORT.append(path)
    yield
    path.write_text(markdown(ATTEMPTS), encoding="utf-8")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ATTEMPTS:
        return
    terminalreporter.write_sep("=", f"prompt-injection attempts ({len(ATTEMPTS)})")
    for line in table(ATTEMPTS):
        terminalreporter.write_line(line)
    for path in REPORT:
        terminalreporter.write_line(f"report: {path}")
