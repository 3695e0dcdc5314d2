"""Text normalisation, hashing and the tokenizer of the in-process lexical index.

The tokenizer is the same for chunks and queries: lower-cased word characters, English
stop words removed (the list ``bm25s`` uses, Lucene's), Snowball English stems (the stemmer
PostgreSQL's ``english`` configuration uses too, so both backends match the same word forms).
A :class:`Tokenizer` keeps a stemmer, which is not thread-safe: one per thread.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

import Stemmer
from bm25s.stopwords import STOPWORDS_EN

_WORD: Final = re.compile(r"\w+")
_STOPWORDS: Final = frozenset(STOPWORDS_EN)
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_RUN: Final = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


class Tokenizer:
    """Words to index terms (see the module docstring)."""

    def __init__(self) -> None:
        self._stemmer = Stemmer.Stemmer("english")

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]
        return list(self._stemmer.stemWords(words)) if words else []


def normalize_text(text: str) -> str:
    """Unix newlines, no control characters (tabs and newlines stay), no trailing spaces on
    lines, at most one blank line in a row, no blank lines at either end."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    text = _CONTROL.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUN.sub("\n\n", text).strip("\n")


def digest(*parts: str) -> str:
    """SHA-256 (hex) of the parts, each one delimited, so ``("ab", "c")`` and ``("a", "bc")``
    differ."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def indexed_text(heading: str, text: str) -> str:
    """What both backends index for a chunk: its heading path, then its text."""
    return f"{heading}\n{text}" if heading else text
