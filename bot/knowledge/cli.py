"""``pmbot ingest PATH... --project NAME [--team TEAM_ID]``: files into a project's documents,
with a progress bar (on a terminal) and a summary.

Exit codes: 0 every file was ingested (or unchanged); 1 some were skipped (each listed with
its reason); 2 nothing could be done (unknown project, no ``--team`` in production, the
database or authorization engine unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy.exc import SQLAlchemyError

from authz.factory import open_authorizer
from authz.ports import AuthzError
from bot.knowledge.ingest import Ingester, IngestReport, ProjectNotFound, find_project
from bot.settings import Mode, Settings
from bot.storage.db import Database
from bot.storage.outbox import Outbox

# The workspace of the local Slack sandbox (sandbox mode's default for --team).
SANDBOX_TEAM_ID: Final = "T0SANDBOX"


@contextlib.contextmanager
def _quiet_pdf_parser() -> Iterator[None]:
    """pypdf logs a warning for every irregularity it recovers from; the summary says what
    matters (a file that could not be read)."""
    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def format_report(report: IngestReport, *, project: str, team_id: str) -> list[str]:
    lines = [
        f"Ingested into project {project} (workspace {team_id}):",
        f"  files read: {report.files_read}",
        f"  documents:  {report.new} new, {report.updated} updated, {report.unchanged} unchanged",
        f"  chunks:     {report.chunks} written",
        f"  skipped:    {len(report.skipped)}",
    ]
    lines += [f"    - {s.path}: {s.reason}" for s in report.skipped]
    return lines


def run_ingest(
    settings: Settings,
    *,
    paths: Sequence[str],
    project_name: str,
    team_id: str | None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The ``pmbot ingest`` command (see the module docstring); returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    team = team_id or (SANDBOX_TEAM_ID if settings.mode is Mode.SANDBOX else None)
    if not team:
        print("pmbot ingest: --team TEAM_ID is required in production mode", file=err)
        return 2
    if settings.sqlite_path() is not None:
        # Alembic runs its own event loop: before ours starts.
        from bot.storage.migrate import upgrade

        upgrade(settings.database_url)
    from bot.wiring import authz_config

    async def run() -> int:
        db = Database(settings.database_url)
        try:
            project = await find_project(db, team_id=team, name=project_name)
            async with open_authorizer(authz_config(settings), engine=db.engine) as authorizer:
                ingester = Ingester(
                    db=db,
                    outbox=Outbox(db=db, authorizer=authorizer),
                    chunk_chars=settings.chunk_chars,
                    overlap_chars=settings.chunk_overlap_chars,
                    max_file_bytes=settings.ingest_max_file_bytes,
                )
                console = Console(file=err)
                with Progress(
                    TextColumn("[progress.description]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=console,
                    transient=True,
                    disable=not console.is_terminal,
                ) as progress:
                    task: TaskID | None = None

                    def started(total: int) -> None:
                        nonlocal task
                        task = progress.add_task("ingesting", total=total)

                    def advanced(path: Path) -> None:
                        if task is not None:
                            progress.update(task, advance=1, description=path.name[:40])

                    report = await ingester.ingest(
                        project,
                        [Path(p) for p in paths],
                        on_start=started,
                        on_file=advanced,
                    )
        finally:
            await db.dispose()
        for line in format_report(report, project=project.name, team_id=team):
            print(line, file=out)
        if report.tuples_pending:
            print(
                f"pmbot ingest: {report.tuples_pending} authorization change(s) wait for the "
                "engine; the new documents are visible to nobody until `pmbot serve` "
                "delivers them",
                file=err,
            )
        return 0 if report.ok else 1

    try:
        with _quiet_pdf_parser():
            return asyncio.run(run())
    except ProjectNotFound as exc:
        known = ", ".join(exc.known) if exc.known else "none"
        print(
            f"pmbot ingest: no project named {exc.name!r} in workspace {exc.team_id} "
            f"(its projects: {known})",
            file=err,
        )
        return 2
    except AuthzError as exc:
        print(f"pmbot ingest: the authorization engine is unavailable: {exc}", file=err)
        return 2
    except (SQLAlchemyError, OSError) as exc:
        print(f"pmbot ingest: the database is unavailable: {type(exc).__name__}", file=err)
        return 2
