"""The ``chunk`` transform: invariants of the chunks, natural breaks, pages and speed."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest.config import ChunkSettings, Settings
from ingest.model import PAGE_SEPARATOR, Chunk, Document, Metadata, Page, Source
from ingest_plugins import chunk
from ingest_plugins.chunk import Unit, build_chunks, chunk_spans, word_spans


def make_document(*texts: str, first_page: int = 1) -> Document:
    source = Source(path=Path("x.pdf"), content_id="ab" * 32, size=1)
    pages = [
        Page(number=n, text=t, extractor="test") for n, t in enumerate(texts, start=first_page)
    ]
    return Document(source=source, metadata=Metadata(page_count=len(pages)), pages=pages)


def make_settings(unit: Unit, size: int, overlap: int) -> Settings:
    return Settings(chunk=ChunkSettings(unit=unit, size=size, overlap=overlap))


def run_chunk(document: Document, unit: Unit, size: int, overlap: int) -> list[Chunk]:
    chunk.ingest_transform(
        document=document, settings=make_settings(unit, size, overlap), step="chunk"
    )
    return document.chunks


def measure(text: str, start: int, end: int, unit: str) -> int:
    """The size of ``text[start:end]`` in ``unit``, computed without the module's helpers."""
    if unit == "chars":
        return end - start
    return len(text[start:end].split())


def check_invariants(
    document: Document, chunks: list[Chunk], unit: str, size: int, overlap: int
) -> None:
    text = document.text
    words = [m.span() for m in re.finditer(r"\S+", text)]
    word_at = {start: (start, end) for start, end in words}

    # (g) indexes 0..n-1, all from this document.
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.doc_id == document.doc_id for c in chunks)

    covered = bytearray(len(text))
    for c in chunks:
        # (b) the text is the exact slice.
        assert 0 <= c.char_start < c.char_end <= len(text)
        assert c.text == text[c.char_start : c.char_end]
        # (e) starts at a word start and ends at a word end.
        assert c.char_start in word_at
        assert c.char_start == 0 or text[c.char_start - 1].isspace()
        assert not text[c.char_end - 1].isspace()
        assert c.char_end == len(text) or text[c.char_end].isspace()
        # (c) bounds, except a single word longer than size.
        if measure(text, c.char_start, c.char_end, unit) > size:
            assert unit == "chars" and word_at[c.char_start] == (c.char_start, c.char_end)
        # (f) pages, from the page spans.
        touched = [
            n
            for n, start, end in document.page_spans()
            if start < c.char_end and c.char_start < end
        ]
        assert (c.page_start, c.page_end) == (min(touched), max(touched))
        covered[c.char_start : c.char_end] = b"\x01" * (c.char_end - c.char_start)

    # (a) coverage of every non-whitespace character.
    assert all(covered[i] for i, char in enumerate(text) if not char.isspace())
    if not words:
        assert chunks == []

    # (d) overlap and (h) progress between neighbours.
    for previous, current in itertools.pairwise(chunks):
        assert current.char_start > previous.char_start
        assert current.char_end > previous.char_end
        shared = max(0, previous.char_end - current.char_start)
        if shared:
            assert measure(text, current.char_start, previous.char_end, unit) <= overlap
        inside = [w for w in words if previous.char_start <= w[0] and w[1] <= previous.char_end]
        last = inside[-1]
        following = next(w for w in words if w[0] >= previous.char_end)
        room = (
            overlap > 0
            and len(inside) >= 2
            and measure(text, last[0], last[1], unit) <= overlap
            and measure(text, last[0], following[1], unit) <= size
        )
        if room:
            assert shared > 0, "a shared word fitted but none was shared"


_WORDS = st.sampled_from(
    ["a", "bb", "ccc", "word", "end.", "Why?", "(quote.)", "x" * 12, "y" * 30, "é", "日本"]
)
_GAPS = st.sampled_from([" ", " ", " ", "\n", "\n\n", "  ", "\t", " \n \n"])


@st.composite
def page_texts(draw: st.DrawFn) -> str:
    words = draw(st.lists(_WORDS, max_size=25))
    gaps = draw(st.lists(_GAPS, min_size=len(words) + 1, max_size=len(words) + 1))
    # Pages may start or end with whitespace, or hold none at all (a blank scan).
    return gaps[0] * draw(st.booleans()) + "".join(
        w + g for w, g in zip(words, gaps[1:], strict=True)
    )


@st.composite
def chunk_options(draw: st.DrawFn) -> tuple[Unit, int, int]:
    unit: Unit = draw(st.sampled_from(["chars", "words"]))
    size = draw(st.integers(1, 60) if unit == "chars" else st.integers(1, 12))
    overlap = draw(st.integers(0, size - 1))
    return unit, size, overlap


@settings(max_examples=400, deadline=None)
@given(st.lists(page_texts(), min_size=1, max_size=5), chunk_options())
def test_chunk_invariants(pages: list[str], options: tuple[Unit, int, int]) -> None:
    unit, size, overlap = options
    document = make_document(*pages, first_page=3)
    chunks = run_chunk(document, unit, size, overlap)
    check_invariants(document, chunks, unit, size, overlap)
    # (g) a second run gives the same chunks and ids.
    again = build_chunks(
        document.doc_id, document.text, document.page_spans(), unit=unit, size=size, overlap=overlap
    )
    assert again == chunks
    assert [c.chunk_id for c in again] == [c.chunk_id for c in chunks]


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \n"])
@pytest.mark.parametrize("unit", ["chars", "words"])
def test_whitespace_only_text_gives_no_chunks(text: str, unit: Unit) -> None:
    assert chunk_spans(text, unit=unit, size=5, overlap=1) == []
    assert run_chunk(make_document(text, text), unit, 5, 1) == []


def test_a_word_longer_than_size_is_a_chunk_alone() -> None:
    text = "ab cd " + "x" * 25 + " ef gh"
    spans = chunk_spans(text, unit="chars", size=5, overlap=2)
    assert [text[s:e] for s, e in spans] == ["ab cd", "x" * 25, "ef gh"]


def test_chars_overlap_is_aligned_to_words() -> None:
    text = "one two three four five six seven eight nine ten"
    pieces = [text[s:e] for s, e in chunk_spans(text, unit="chars", size=20, overlap=10)]
    assert pieces == [
        "one two three four",
        "three four five six",
        "five six seven eight",
        "eight nine ten",  # "seven eight" is 11 characters, more than the overlap
    ]


def test_words_unit_counts_words() -> None:
    text = " ".join(f"w{i}" for i in range(10))
    pieces = [text[s:e].split() for s, e in chunk_spans(text, unit="words", size=4, overlap=1)]
    assert pieces == [["w0", "w1", "w2", "w3"], ["w3", "w4", "w5", "w6"], ["w6", "w7", "w8", "w9"]]


def test_overlap_just_below_size_still_progresses() -> None:
    text = " ".join(["tiny"] * 200)
    spans = chunk_spans(text, unit="words", size=5, overlap=4)
    assert len(spans) == 196  # one new word per chunk
    spans = chunk_spans(text, unit="chars", size=24, overlap=23)
    assert all(b[0] > a[0] and b[1] > a[1] for a, b in itertools.pairwise(spans))
    assert spans[-1][1] == len(text)


def test_prefers_a_paragraph_end_in_the_last_fifth() -> None:
    text = "aaaa bbbb cccc dddd eeee ffff gggg hhh.\n\niiii jjjj kkkk"
    # 45 characters fit "... hhh. iiii" but the paragraph ends at 39 >= 80% of 45.
    first = chunk_spans(text, unit="chars", size=45, overlap=0)[0]
    assert text[first[0] : first[1]].endswith("hhh.")
    # A paragraph end earlier than the last fifth is not worth the short chunk.
    first = chunk_spans(text, unit="chars", size=60, overlap=0)[0]
    assert first == (0, len(text))
    early = "aaa.\n\nbbbb cccc dddd eeee ffff gggg hhhh iiii"
    assert chunk_spans(early, unit="chars", size=30, overlap=0)[0] == (0, 30)


def test_prefers_a_sentence_end_when_no_paragraph_ends() -> None:
    text = "one two three four five six seven. eight nine ten eleven"
    first = chunk_spans(text, unit="words", size=9, overlap=0)[0]
    assert text[first[0] : first[1]] == "one two three four five six seven."
    quoted = 'a b c d e f g "said so." h i j'
    first = chunk_spans(quoted, unit="words", size=9, overlap=0)[0]
    assert quoted[first[0] : first[1]].endswith('"said so."')


def test_page_spans_of_chunks_across_pages() -> None:
    document = make_document("alpha", "", "beta gamma delta epsilon", first_page=7)
    chunks = run_chunk(document, "words", 3, 0)
    assert [(c.text, c.page_start, c.page_end) for c in chunks] == [
        (f"alpha{PAGE_SEPARATOR}{PAGE_SEPARATOR}beta gamma", 7, 9),
        ("delta epsilon", 9, 9),
    ]
    # A page break is a paragraph end, so a chunk that nearly fills stops there.
    document = make_document("alpha beta", "gamma delta epsilon", first_page=7)
    chunks = run_chunk(document, "words", 3, 0)
    assert [(c.text, c.page_start, c.page_end) for c in chunks] == [
        ("alpha beta", 7, 7),
        ("gamma delta epsilon", 8, 8),
    ]
    assert [c.chunk_id for c in chunks] == [f"{document.doc_id}:0", f"{document.doc_id}:1"]


@pytest.mark.parametrize(
    ("unit", "size", "overlap", "message"),
    [
        ("lines", 10, 0, "unit"),
        ("chars", 0, 0, "size"),
        ("words", 5, 5, "overlap"),
        ("chars", 5, -1, "overlap"),
    ],
)
def test_rejects_bad_options(unit: str, size: int, overlap: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        # Bad units come from untyped input (a config file), hence the cast.
        chunk_spans("some text", unit=cast(Unit, unit), size=size, overlap=overlap)


def test_hook_acts_only_for_its_step() -> None:
    document = make_document("some words here")
    chunk.ingest_transform(document=document, settings=make_settings("chars", 5, 0), step="dedup")
    assert document.chunks == []
    assert len(run_chunk(document, "chars", 5, 0)) == 3
    # Running it again replaces the chunks rather than adding to them.
    assert len(run_chunk(document, "chars", 5, 0)) == 3


def test_word_spans() -> None:
    assert word_spans(" a  bc\n\nd ") == [(1, 2), (4, 6), (8, 9)]


@pytest.mark.slow  # three documents of 1,000 pages
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("unit", "size", "overlap"), [("chars", 1000, 200), ("words", 200, 40), ("chars", 300, 290)]
)
def test_a_thousand_page_document_chunks_in_linear_time(
    unit: Unit, size: int, overlap: int
) -> None:
    line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. Sed do eiusmod tempor.\n"
    page = line * 25 + "\nIncididunt ut labore et dolore magna aliqua.\n"
    document = make_document(*[page] * 1000)
    assert len(document.text) > 2_000_000
    chunks = run_chunk(document, unit, size, overlap)
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(document.text.rstrip())
    assert chunks[-1].page_end == 1000


def test_hook_with_default_settings() -> None:
    """The defaults (1,200 characters, 150 shared) chunk a long page into bounded pieces."""
    defaults = Settings()
    document = make_document("word " * 1000, "tail words")
    chunk.ingest_transform(document=document, settings=defaults, step="chunk")
    check_invariants(
        document,
        document.chunks,
        defaults.chunk.unit,
        defaults.chunk.size,
        defaults.chunk.overlap,
    )
    assert len(document.chunks) == 5
    assert (document.chunks[-1].page_start, document.chunks[-1].page_end) == (1, 2)


def reference_chunk_spans(text: str, unit: Unit, size: int, overlap: int) -> list[tuple[int, int]]:
    """The chunking rules read word by word: every word tested for a break, every run
    measured from scratch; slow, and plain enough to check the module's searches against."""
    words = [m.span() for m in re.finditer(r"\S+", text)]

    def length(i: int, j: int) -> int:  # words i..j-1
        return words[j - 1][1] - words[i][0] if unit == "chars" else j - i

    def ends_paragraph(w: int) -> bool:
        return w + 1 < len(words) and text.count("\n", words[w][1], words[w + 1][0]) >= 2

    def ends_sentence(w: int) -> bool:
        word = text[words[w][0] : words[w][1]]
        return word.rstrip("\"')]}\u00bb\u201d\u2019")[-1:] in {".", "!", "?", "\u2026"}

    spans: list[tuple[int, int]] = []
    first, previous_stop = 0, 0
    min_fill = max(1, int(size * 0.8))
    while words:
        longest = first + 1
        while longest < len(words) and length(first, longest + 1) <= size:
            longest += 1
        stop = longest
        if longest < len(words):
            earliest = previous_stop + 1
            while length(first, earliest) < min_fill:
                earliest += 1
            for test in (ends_paragraph, ends_sentence):
                found = [w for w in range(earliest - 1, longest) if test(w)]
                if found:
                    stop = found[-1] + 1
                    break
        spans.append((words[first][0], words[stop - 1][1]))
        if stop == len(words):
            break
        first = next(
            (
                i
                for i in range(first + 1, stop)
                if length(i, stop) <= overlap and length(i, stop + 1) <= size
            ),
            stop,
        )
        previous_stop = stop
    return spans


_RICH = st.text(
    st.sampled_from(list("ab.!?\u2026\"')]}\u00bb\u201d\u2019 \n\t\u00a0\u2028\u3000x")),
    max_size=80,
)


@settings(max_examples=600, deadline=None)
@given(_RICH, chunk_options())
def test_chunk_spans_follow_the_rules_word_by_word(
    text: str, options: tuple[Unit, int, int]
) -> None:
    """The chunker finds breaks by searching the text where a chunk may end, not by testing
    every word; it must cut exactly where the word-by-word reading of the rules does."""
    unit, size, overlap = options
    assert chunk_spans(text, unit=unit, size=size, overlap=overlap) == reference_chunk_spans(
        text, unit, size, overlap
    )
    assert word_spans(text) == [m.span() for m in re.finditer(r"\S+", text)]
