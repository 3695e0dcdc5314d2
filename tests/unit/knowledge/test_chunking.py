"""Heading-aware chunking: sections and heading paths, chunk sizes, overlap."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.knowledge.chunking import (
    MAX_HEADING_CHARS,
    Section,
    chunk_section,
    chunk_sections,
    heading_path,
    markdown_sections,
    overlap_tail,
    text_sections,
)

DOC = """Preface before any heading.

# Apollo

Apollo is the launch project.

## Risks

Vendor delay.

### Legal ###

Contract review pending.

## Timeline

Setext Heading
--------------

Under a setext heading.

```python
# a comment, not a heading

x = 1
```

Other Top
=========

Back at level one.
"""


def test_markdown_sections_carry_their_heading_path() -> None:
    sections = markdown_sections(DOC)
    assert [(s.heading, s.text.splitlines()[0]) for s in sections] == [
        ("", "Preface before any heading."),
        ("Apollo", "Apollo is the launch project."),
        ("Apollo > Risks", "Vendor delay."),
        ("Apollo > Risks > Legal", "Contract review pending."),
        ("Apollo > Setext Heading", "Under a setext heading."),
        ("Other Top", "Back at level one."),
    ]
    # "## Timeline" has no text of its own; a fenced "# comment" is code, not a heading.
    code = sections[4].text
    assert "# a comment, not a heading" in code and "x = 1" in code


def test_a_thematic_break_after_a_blank_line_is_not_a_heading() -> None:
    sections = markdown_sections("# T\n\nPara one.\n\n---\n\nPara two.\n")
    assert [s.heading for s in sections] == ["T"]
    assert "---" in sections[0].text


def test_heading_paths_fit_the_column() -> None:
    path = heading_path(["x" * 400, "y" * 400, "z" * 30])
    assert len(path) <= MAX_HEADING_CHARS
    assert path.endswith("z" * 30)


def test_short_sections_are_one_chunk_each_and_chunks_never_span_sections() -> None:
    chunks = chunk_sections(markdown_sections(DOC), size=400, overlap=50)
    assert [c.heading for c in chunks] == [s.heading for s in markdown_sections(DOC)]


def long_text(n: int) -> str:
    return "\n\n".join(
        " ".join(f"Paragraph {p} sentence {i} says something." for i in range(6)) for p in range(n)
    )


@pytest.mark.parametrize(("size", "overlap"), [(200, 0), (300, 60), (1200, 150), (500, 249)])
def test_chunks_respect_the_size_and_overlap_their_neighbours(size: int, overlap: int) -> None:
    section = Section(("Guide",), long_text(30))
    chunks = chunk_section(section, size=size, overlap=overlap)
    assert len(chunks) > 3
    assert all(len(c.text) <= size for c in chunks)
    assert all(c.heading == "Guide" for c in chunks)
    # Filled: every chunk but the last holds more than half of the size.
    assert all(len(c.text) > size // 2 for c in chunks[:-1])
    for before, after in itertools.pairwise(chunks):
        tail = overlap_tail(before.text, overlap)
        if overlap:
            assert tail and len(tail) <= overlap
            assert before.text.endswith(tail)
            assert after.text.startswith(tail)
        else:
            assert tail == ""
    # Nothing is lost: every sentence is in some chunk.
    for p in range(30):
        for i in range(6):
            sentence = f"Paragraph {p} sentence {i} says something."
            assert any(sentence in c.text for c in chunks)


def test_a_word_longer_than_a_chunk_is_cut() -> None:
    chunks = chunk_section(Section((), "a" * 1000), size=300, overlap=50)
    assert all(len(c.text) <= 300 for c in chunks)
    assert "".join(c.text for c in chunks).count("a") >= 1000


def test_text_sections() -> None:
    assert text_sections("") == []
    assert text_sections("just text") == [Section((), "just text")]


def test_overlap_must_be_less_than_half_the_size() -> None:
    with pytest.raises(ValueError, match="twice the overlap"):
        chunk_section(Section((), "text"), size=200, overlap=100)


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("ab .\n#`-="), max_size=3000),
    size=st.integers(min_value=50, max_value=600),
    data=st.data(),
)
def test_any_markdown_chunks_within_the_size(text: str, size: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(min_value=0, max_value=(size - 1) // 2))
    chunks = chunk_sections(markdown_sections(text), size=size, overlap=overlap)
    assert all(0 < len(c.text) <= size and c.text.strip() for c in chunks)
