"""Reading files into sections: Markdown, plain text and PDF (pypdf).

:func:`read_document` either returns an :class:`Extracted` document or raises
:class:`Unreadable` with a reason a person can act on; it never raises anything else for a
bad file (a PDF that pypdf cannot parse, an encrypted one, a binary file, a file with no
text, a file too large or that cannot be read).

Which reader: ``.md``/``.markdown`` files are Markdown, files named ``.pdf`` or starting
with ``%PDF-`` are PDF, anything else is plain text if it is UTF-8 without NUL bytes (so a
``README`` or ``notes.log`` is read as text) and binary otherwise. :func:`collect_files`
expands directories into the files of those kinds they hold.
"""

from __future__ import annotations

import enum
import io
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bot.knowledge.chunking import Section, markdown_sections, text_sections
from bot.knowledge.text import normalize_text

log = logging.getLogger(__name__)

MARKDOWN_SUFFIXES: Final = frozenset({".md", ".markdown", ".mdown", ".mkd"})
TEXT_SUFFIXES: Final = frozenset({".txt", ".text", ".rst", ".log", ".csv"})
PDF_SUFFIXES: Final = frozenset({".pdf"})
INGESTIBLE_SUFFIXES: Final = MARKDOWN_SUFFIXES | TEXT_SUFFIXES | PDF_SUFFIXES
MAX_TITLE_CHARS: Final = 300  # the documents.title column


class Kind(enum.StrEnum):
    MARKDOWN = "markdown"
    TEXT = "text"
    PDF = "pdf"


class Unreadable(Exception):
    """The file cannot be ingested; ``reason`` says why, in words for the summary."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Extracted:
    """A file's text: its title, kind, normalised text and sections."""

    title: str
    kind: Kind
    text: str
    sections: list[Section]


def collect_files(paths: Iterable[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The files to ingest, each once (by resolved path, in the order given; a directory's
    files sorted, hidden entries and files of other kinds left out), and the paths that
    cannot be read at all, with the reason."""
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            files.append(resolved)

    for path in paths:
        try:
            if path.is_dir():
                for root, dirs, names in os.walk(path, onerror=None):
                    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                    for name in sorted(names):
                        candidate = Path(root) / name
                        if (
                            not name.startswith(".")
                            and candidate.suffix.lower() in INGESTIBLE_SUFFIXES
                            and candidate.is_file()
                        ):
                            add(candidate)
            elif path.is_file():
                add(path)
            elif path.exists():
                problems.append((path, "not a regular file"))
            else:
                problems.append((path, "no such file or directory"))
        except OSError as exc:
            problems.append((path, f"cannot be read: {exc.strerror or exc}"))
    return files, problems


def kind_of(path: Path, head: bytes) -> Kind:
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES or head.startswith(b"%PDF-"):
        return Kind.PDF
    if suffix in MARKDOWN_SUFFIXES:
        return Kind.MARKDOWN
    return Kind.TEXT


def read_document(path: Path, *, max_bytes: int) -> Extracted:
    """The document in ``path`` (blocking: run it in a thread); :class:`Unreadable` if it
    cannot be ingested."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise Unreadable(f"larger than {max_bytes:,} bytes ({size:,})")
        data = path.read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot be read: {exc.strerror or exc}") from None
    kind = kind_of(path, data[:8])
    if kind is Kind.PDF:
        title, pages = _pdf_pages(data)
        sections = [
            Section((f"page {number}",), text)
            for number, text in enumerate(pages, start=1)
            if text.strip()
        ]
        if not sections:
            raise Unreadable("PDF has no extractable text (scanned images?)")
        return Extracted(
            _title(title or path.stem),
            kind,
            "\n\n".join(s.text for s in sections),
            sections,
        )
    text = _decode(data)
    if not text.strip():
        raise Unreadable("no text (empty file)")
    if kind is Kind.MARKDOWN:
        sections = markdown_sections(text)
        first = sections[0].headings[:1] if sections and sections[0].headings else ()
        title = first[0] if first else path.stem
    else:
        sections = text_sections(text)
        title = path.stem
    if not sections:
        raise Unreadable("no text (only headings)")
    return Extracted(_title(title), kind, text, sections)


def _title(title: str) -> str:
    title = " ".join(title.split()) or "untitled"
    return title if len(title) <= MAX_TITLE_CHARS else title[: MAX_TITLE_CHARS - 1] + "…"


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise Unreadable("binary file (not text, Markdown or PDF)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unreadable("binary file or not UTF-8 text") from None
    return normalize_text(text)


def _pdf_pages(data: bytes) -> tuple[str, list[str]]:
    """The PDF's title (from its metadata, may be empty) and the text of each page."""
    # Imported here: pypdf is only needed for PDFs.
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                decrypted = reader.decrypt("")
            except (PyPdfError, NotImplementedError) as exc:
                raise Unreadable(f"encrypted PDF ({exc})") from None
            if not decrypted:
                raise Unreadable("encrypted PDF (a password is needed)")
        pages = [normalize_text(page.extract_text() or "") for page in reader.pages]
        metadata = reader.metadata
        title = str(metadata.title or "") if metadata is not None else ""
    except Unreadable:
        raise
    except RecursionError:
        raise Unreadable("PDF could not be parsed (nested too deeply)") from None
    except Exception as exc:
        # pypdf raises many kinds of errors for malformed files (its own, and ValueError,
        # KeyError, TypeError... from deep inside): all mean "this PDF cannot be read".
        log.debug("pypdf failed", exc_info=True)
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        reason = f"PDF could not be parsed ({type(exc).__name__}"
        raise Unreadable(reason + (f": {detail})" if detail else ")")) from None
    return title, pages
