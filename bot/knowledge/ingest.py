"""Ingestion: files into documents and chunks of a project, and their authorization tuple.

For each file (:func:`~bot.knowledge.extract.collect_files` expands directories):

1. read and chunk it (:mod:`bot.knowledge.extract`, :mod:`bot.knowledge.chunking`), in a
   thread; a file that cannot be ingested is skipped with its reason;
2. the document is identified by its project and its source (the file's resolved path).
   Its content hash covers the extracted text and the chunking parameters: when it equals
   the stored one the document is *unchanged* and nothing is written;
3. otherwise, in **one transaction**: the document row is inserted (*new*, with the tuple
   ``document:D#project@project:P`` staged in the outbox) or updated (*updated*: its old
   chunks are deleted), and its chunks are inserted. A failure rolls the whole document
   back: no document is ever half ingested. Identical chunks within one document are
   stored once; chunks of different documents share nothing.

After the last file the outbox is drained (the tuples reach the engine) and ``on_change``
runs (e.g. to refresh an in-process index at once, rather than at its next poll).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from authz.embedded.ulid import new_ulid
from authz.ids import fga_id
from authz.ports import TupleKey
from bot.knowledge.chunking import ChunkDraft, chunk_sections
from bot.knowledge.extract import Extracted, Unreadable, collect_files, read_document
from bot.knowledge.text import digest
from bot.projects.models import Chunk, Document, Project
from bot.storage.db import Database
from bot.storage.outbox import Outbox, stage

log = logging.getLogger(__name__)

# Changes whenever chunking changes in a way that should re-chunk unchanged files.
CHUNKER_VERSION: Final = "1"
MAX_SOURCE_CHARS: Final = 1000  # the documents.source column


def document_object(document_id: str) -> str:
    return f"document:{fga_id(document_id)}"


def project_object(project_id: str) -> str:
    return f"project:{fga_id(project_id)}"


def document_tuple(document_id: str, project_id: str) -> TupleKey:
    """``document:D#project@project:P``: the document inherits its project's roles."""
    return TupleKey(
        user=project_object(project_id), relation="project", object=document_object(document_id)
    )


@dataclass(frozen=True, slots=True)
class Skipped:
    path: str
    reason: str


@dataclass
class IngestReport:
    """What an ingestion did; ``files_read`` counts the files that could be read."""

    files_read: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    tuples_pending: int = 0

    @property
    def ok(self) -> bool:
        return not self.skipped


@dataclass(frozen=True, slots=True)
class _Prepared:
    source: str
    extracted: Extracted
    chunks: list[ChunkDraft]
    content_hash: str


class ProjectNotFound(Exception):
    def __init__(self, team_id: str, name: str, known: Sequence[str]) -> None:
        super().__init__(f"no project named {name!r} in workspace {team_id}")
        self.team_id = team_id
        self.name = name
        self.known = list(known)


async def find_project(db: Database, *, team_id: str, name: str) -> Project:
    """The project called ``name`` (whatever its case) in workspace ``team_id``;
    :class:`ProjectNotFound` (with the workspace's project names) otherwise."""
    key = " ".join(name.split()).casefold()
    async with db.session() as session:
        projects = list(
            await session.scalars(
                select(Project).where(Project.team_id == team_id).order_by(Project.name)
            )
        )
    for project in projects:
        if key in (project.name_key.casefold(), " ".join(project.name.split()).casefold()):
            return project
    raise ProjectNotFound(team_id, name, [p.name for p in projects])


class Ingester:
    """Ingests files into a project's documents (see the module docstring)."""

    def __init__(
        self,
        *,
        db: Database,
        outbox: Outbox,
        chunk_chars: int = 1200,
        overlap_chars: int = 150,
        max_file_bytes: int = 50_000_000,
        on_change: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        if not 0 <= overlap_chars * 2 < chunk_chars:
            raise ValueError("the chunk size must be more than twice the overlap")
        self._db = db
        self._outbox = outbox
        self._size = chunk_chars
        self._overlap = overlap_chars
        self._max_bytes = max_file_bytes
        self._on_change = on_change

    async def ingest(
        self,
        project: Project,
        paths: Sequence[Path],
        *,
        on_start: Callable[[int], None] | None = None,
        on_file: Callable[[Path], None] | None = None,
    ) -> IngestReport:
        """Ingests ``paths`` into ``project``. ``on_start(total)`` is called once the files
        are known, ``on_file(path)`` after each file (for a progress bar)."""
        report = IngestReport()
        files, problems = collect_files(paths)
        report.skipped.extend(Skipped(str(p), reason) for p, reason in problems)
        if on_start is not None:
            on_start(len(files))
        changed = False
        for path in files:
            try:
                changed |= await self._ingest_file(project, path, report)
            finally:
                if on_file is not None:
                    on_file(path)
        await self._outbox.drain()
        report.tuples_pending = await self._outbox.pending()
        if changed and self._on_change is not None:
            await self._on_change()
        return report

    def _prepare(self, path: Path) -> _Prepared:
        """Reads and chunks ``path`` (blocking: runs in a thread)."""
        source = str(path)
        if len(source) > MAX_SOURCE_CHARS:
            raise Unreadable(f"path longer than {MAX_SOURCE_CHARS} characters")
        extracted = read_document(path, max_bytes=self._max_bytes)
        drafts = chunk_sections(extracted.sections, size=self._size, overlap=self._overlap)
        if not drafts:
            raise Unreadable("no text")
        unique: dict[tuple[str, str], ChunkDraft] = {}
        for draft in drafts:
            unique.setdefault((draft.heading, draft.text), draft)
        content_hash = digest(
            CHUNKER_VERSION,
            str(self._size),
            str(self._overlap),
            extracted.kind.value,
            extracted.title,
            *(part for s in extracted.sections for part in (s.heading, s.text)),
        )
        return _Prepared(source, extracted, list(unique.values()), content_hash)

    async def _ingest_file(self, project: Project, path: Path, report: IngestReport) -> bool:
        """One file; True when it changed what is stored."""
        try:
            prepared = await asyncio.to_thread(self._prepare, path)
        except Unreadable as exc:
            report.skipped.append(Skipped(str(path), exc.reason))
            return False
        report.files_read += 1
        now = datetime.now(UTC)
        try:
            async with self._db.session() as session:
                document = await session.scalar(
                    select(Document).where(
                        Document.project_id == project.id, Document.source == prepared.source
                    )
                )
                if document is not None and document.content_hash == prepared.content_hash:
                    report.unchanged += 1
                    return False
                if document is None:
                    document = Document(
                        id=new_ulid(),
                        project_id=project.id,
                        title=prepared.extracted.title,
                        source=prepared.source,
                        content_hash=prepared.content_hash,
                        created_at=now,
                        updated_at=now,
                    )
                    session.add(document)
                    stage(session, writes=[document_tuple(document.id, project.id)])
                    is_new = True
                else:
                    await session.execute(delete(Chunk).where(Chunk.document_id == document.id))
                    document.title = prepared.extracted.title
                    document.content_hash = prepared.content_hash
                    document.updated_at = now
                    is_new = False
                await session.flush()
                await session.execute(
                    insert(Chunk),
                    [
                        {
                            "document_id": document.id,
                            "ordinal": ordinal,
                            "heading": draft.heading,
                            "text": draft.text,
                            "content_hash": digest(draft.heading, draft.text),
                        }
                        for ordinal, draft in enumerate(prepared.chunks)
                    ],
                )
        except IntegrityError:
            log.debug("ingesting %s conflicted with a concurrent change", path, exc_info=True)
            report.skipped.append(
                Skipped(
                    str(path),
                    "changed at the same time by another ingestion, or its project was "
                    "deleted; nothing stored (run the command again)",
                )
            )
            return False
        if is_new:
            report.new += 1
        else:
            report.updated += 1
        report.chunks += len(prepared.chunks)
        return True
