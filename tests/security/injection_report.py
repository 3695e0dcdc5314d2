"""What each prompt-injection attempt produced, gathered while the suite runs and shown at
the end of the test run (``tests/security/conftest.py``) and in a report file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attempt:
    dialect: str
    attack: str
    carrier: str
    asker: str
    asked: str  # the tool calls the model asked for
    ran: str  # what the runner did with each (tool: outcome, from the audit log)
    outcome: str  # what changed, in one line


PROPERTY = "injection_attempt"  # the name of the user property each attempt is sent as
ATTEMPTS: list[Attempt] = []  # gathered from the test reports (tests/security/conftest.py)


def table(attempts: list[Attempt]) -> list[str]:
    header = ("db", "attack", "carrier", "asker", "model asked for", "what ran", "outcome")
    rows = [(a.dialect, a.attack, a.carrier, a.asker, a.asked, a.ran, a.outcome) for a in attempts]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    widths = [min(w, 60) for w in widths]

    def line(row: tuple[str, ...]) -> str:
        cells = [
            (cell if len(cell) <= width else cell[: width - 1] + "…").ljust(width)
            for cell, width in zip(row, widths, strict=True)
        ]
        return " | ".join(cells).rstrip()

    return [line(header), "-+-".join("-" * w for w in widths), *(line(r) for r in rows)]


def markdown(attempts: list[Attempt]) -> str:
    lines = [
        "# Prompt-injection attempts",
        "",
        "| db | attack | carrier | asker | model asked for | what ran | outcome |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in attempts:
        cells = (a.dialect, a.attack, a.carrier, a.asker, a.asked, a.ran, a.outcome)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
