"""Heading-aware chunking.

A document is first cut into :class:`Section` s: for Markdown at every ATX (``## Title``) or
setext (``Title`` over ``===``/``---``) heading outside fenced code, each section carrying
its heading path (``Guide > Install > Linux``); plain text is one section; a PDF is one
section per page (``page 3``). Each section is then packed into chunks of at most ``size``
characters, paragraph by paragraph (a fenced code block is one paragraph); a paragraph
longer than a chunk is split at line ends, then sentence ends, then spaces, and only a
single word longer than that is cut. Every chunk of a section but the first starts with
the end of the chunk before it, at most ``overlap`` characters cut at a word boundary
(:func:`overlap_tail`), so a sentence cut between two chunks is whole in one of them.
Chunks never span two sections. About four characters make a token, so the default 1,200
characters are about 300 tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

HEADING_SEPARATOR: Final = " > "
MAX_HEADING_CHARS: Final = 500  # the chunks.heading column
_MAX_TITLE_CHARS: Final = 120

_ATX: Final = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_ATX_CLOSING: Final = re.compile(r"(?:^|[ \t]+)#+$")
_SETEXT: Final = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE: Final = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SENTENCE_END: Final = re.compile(r"(?<=[.!?…])\s+")

_PARAGRAPH: Final = "\n\n"
# How the pieces of a split paragraph are joined again, coarsest first.
_SPLITTERS: Final = ("\n", "sentence", " ")


@dataclass(frozen=True, slots=True)
class Section:
    """Consecutive text under one heading path (empty for text before any heading)."""

    headings: tuple[str, ...]
    text: str

    @property
    def heading(self) -> str:
        return heading_path(self.headings)


@dataclass(frozen=True, slots=True)
class ChunkDraft:
    """A chunk before it is stored: its heading path and its text."""

    heading: str
    text: str


def heading_path(headings: Sequence[str]) -> str:
    """``A > B > C``, within the column's 500 characters: long titles are shortened and,
    if still too long, the outermost headings give way to ``…``."""
    titles = [
        t if len(t) <= _MAX_TITLE_CHARS else t[: _MAX_TITLE_CHARS - 1] + "…" for t in headings
    ]
    path = HEADING_SEPARATOR.join(titles)
    while len(path) > MAX_HEADING_CHARS and len(titles) > 1:
        titles = titles[1:]
        path = HEADING_SEPARATOR.join(["…", *titles])
    return path[:MAX_HEADING_CHARS]


def _atx_heading(line: str) -> tuple[int, str] | None:
    match = _ATX.match(line)
    if match is None:
        return None
    title = _ATX_CLOSING.sub("", match.group(2) or "").strip()
    return len(match.group(1)), title


def markdown_sections(text: str) -> list[Section]:
    """The sections of a Markdown document (see the module docstring); sections with no
    text (a heading directly followed by another) are left out."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    lines: list[str] = []
    fence: str | None = None

    def flush() -> None:
        body = "\n".join(lines).strip("\n")
        if body.strip():
            sections.append(Section(tuple(t for _, t in stack if t), body))
        lines.clear()

    def open_heading(level: int, title: str) -> None:
        flush()
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))

    for line in text.split("\n"):
        marker = _FENCE.match(line)
        if fence is not None:
            lines.append(line)
            if marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence):
                fence = None
            continue
        if marker:
            fence = marker.group(1)
            lines.append(line)
            continue
        atx = _atx_heading(line)
        if atx is not None:
            open_heading(*atx)
            continue
        setext = _SETEXT.match(line)
        if (
            setext
            and lines
            and lines[-1].strip()
            and (len(lines) == 1 or not lines[-2].strip())
            and _atx_heading(lines[-1]) is None
        ):
            title = lines.pop().strip()
            open_heading(1 if setext.group(1)[0] == "=" else 2, title)
            continue
        lines.append(line)
    flush()
    return sections


def text_sections(text: str) -> list[Section]:
    """Plain text: one section without a heading."""
    return [Section((), text)] if text.strip() else []


def _paragraphs(text: str) -> list[str]:
    """Blocks separated by blank lines; a fenced code block stays one block."""
    blocks: list[str] = []
    current: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        marker = _FENCE.match(line)
        if fence is not None:
            current.append(line)
            if marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence):
                fence = None
            continue
        if marker:
            fence = marker.group(1)
            current.append(line)
            continue
        if line.strip():
            current.append(line)
        elif current:
            blocks.append("\n".join(current))
            current = []
    if current:
        blocks.append("\n".join(current))
    return blocks


def _split(text: str, limit: int, level: int = 0) -> list[tuple[str, str]]:
    """``text`` as ``(separator, unit)`` pairs of at most ``limit`` characters each, as
    coarse as that allows (lines, else sentences, else words, else cuts); the separator is
    what joins a unit to the one before it."""
    if len(text) <= limit:
        return [("", text)]
    if level >= len(_SPLITTERS):
        return [("", text[i : i + limit]) for i in range(0, len(text), limit)]
    splitter = _SPLITTERS[level]
    if splitter == "sentence":
        units, sep = [u for u in _SENTENCE_END.split(text) if u], " "
    else:
        units, sep = [u for u in text.split(splitter) if u.strip()], splitter
    if len(units) <= 1:
        return _split(text, limit, level + 1)
    out: list[tuple[str, str]] = []
    for unit in units:
        for index, (inner_sep, piece) in enumerate(_split(unit, limit, level + 1)):
            out.append((sep if index == 0 else inner_sep, piece))
    return out


def overlap_tail(text: str, overlap: int) -> str:
    """The end of ``text`` a following chunk repeats: its last ``overlap`` characters,
    starting at a word (the raw characters if they hold no word boundary)."""
    if overlap <= 0:
        return ""
    if len(text) <= overlap:
        return text.strip()
    tail = text[-overlap:]
    cut = re.search(r"\s", tail)
    if cut is not None and tail[cut.end() :].strip():
        return tail[cut.end() :].strip()
    return tail.strip() or tail


def chunk_section(section: Section, *, size: int, overlap: int) -> list[ChunkDraft]:
    """The chunks of one section (see the module docstring); ``overlap`` must be less than
    half of ``size``."""
    if size < 2 or not 0 <= overlap * 2 < size:
        raise ValueError("chunk size must be more than twice the overlap")
    # Room for the overlap and a paragraph separator before any piece.
    limit = size - overlap - len(_PARAGRAPH)
    pieces: list[tuple[str, str]] = []
    for block in _paragraphs(section.text):
        for index, (sep, piece) in enumerate(_split(block.strip("\n"), limit)):
            pieces.append((_PARAGRAPH if index == 0 else sep, piece))
    heading = section.heading
    texts: list[str] = []
    current = ""
    for sep, piece in pieces:
        if not current:
            current = piece
        elif len(current) + len(sep) + len(piece) <= size:
            current += sep + piece
        else:
            texts.append(current)
            tail = overlap_tail(current, overlap)
            current = tail + sep + piece if tail else piece
    if current:
        texts.append(current)
    return [ChunkDraft(heading, t) for t in texts if t.strip()]


def chunk_sections(sections: Iterable[Section], *, size: int, overlap: int) -> list[ChunkDraft]:
    """The chunks of a document, section after section."""
    return [c for s in sections for c in chunk_section(s, size=size, overlap=overlap)]
