"""The ``chunk`` transform: cut a document's text into overlapping chunks for retrieval.

Text is seen as a sequence of *words*: maximal runs of non-whitespace characters. A chunk
is always a run of whole consecutive words, from the start of its first word to the end of
its last, so a word is never split and a chunk's text is exactly
``document.text[char_start:char_end]`` (offsets can be trusted; nothing is re-joined).

Sizes are measured in ``unit``:

* ``"chars"``: a chunk's length in characters, from its first word's start to its last
  word's end, is at most ``size``. A single word longer than ``size`` cannot be split, so it
  becomes a chunk on its own, the only case where a chunk is longer than ``size``.
* ``"words"``: a chunk holds at most ``size`` words.

Consecutive chunks overlap: the next chunk starts at the earliest word such that the shared
words measure at most ``overlap`` units, the next chunk still fits the word right after the
previous chunk, and the start moves forward by at least one word. So the overlap is never
more than ``overlap``, shares at least one word whenever those rules leave room for one, and
every chunk ends later than the one before (the loop always progresses, even with
``overlap == size - 1``).

Chunks end at natural breaks when one is close: if the longest chunk that fits would end
mid-paragraph, a chunk may end earlier, at the last paragraph end (a blank line, which
includes page breaks) within the last 20% of ``size``, or failing that at the last sentence
end (``.``, ``!``, ``?`` or ``…``, before closing quotes or brackets) there. The last chunk of
a document always runs to its end.

Each chunk carries the numbers of the first and last page its text overlaps, from
:meth:`~ingest.model.Document.page_spans`. Whitespace-only text gives no chunks. The work is
O(n log n) in the number of words (a binary search per chunk), with no quadratic slicing; the
natural breaks are searched for only in the text where a chunk may end.

What is cut is the document's text, or its Markdown with ``format: markdown`` (the
``structure`` step makes it; offsets then refer to ``Document.markdown``). When the document
has structure, each chunk carries ``headings``, the trail of section titles it sits under,
and ``chunk.by: section`` cuts by section instead
(:func:`ingest_plugins.structure.sections.section_spans`: a break at every heading, table
rows kept whole, a table's header repeated in the chunks that continue it).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, Literal

from ingest import Chunk, hookimpl

if TYPE_CHECKING:
    from ingest import Document, Settings

    from ingest_plugins.structure.sections import Heading, TableSpan

NAME = "chunk"

Unit = Literal["chars", "words"]
UNITS: tuple[Unit, ...] = ("chars", "words")

# re's \s is str.isspace's whitespace, so the words are those of str.split().
_SPACE_RUNS = re.compile(r"(\s+)")
# Closing quotes and brackets that may follow a sentence end: ASCII ones, guillemet, curly.
_CLOSERS = "\"')]}\u00bb\u201d\u2019"
# A word's end that ends a sentence: ".", "!", "?" or "…", then closers only.
_SENTENCE = re.compile(f"[.!?\u2026][{re.escape(_CLOSERS)}]*(?!\\S)")
# A gap between two words holding a blank line (two line breaks, whatever is between).
_PARAGRAPH_GAP = re.compile(r"\n\s*?\n")

# A chunk may end early at a natural break only if it still fills this share of ``size``.
_NATURAL_BREAK_FILL = 0.8


def word_spans(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` character offsets of every word of ``text``.

    :param text: any text.
    :returns: one span per maximal run of non-whitespace characters, in order.
    """
    starts, ends = _word_offsets(text)
    return list(zip(starts, ends, strict=True))


def _word_offsets(text: str) -> tuple[list[int], list[int]]:
    """The start and the end offsets of the words of ``text``, as two lists.

    Made without a Python step per word (the chunker's cost was mostly such steps): the text
    is split at its whitespace runs, and the pieces' lengths are summed up in C.
    """
    pieces = _SPACE_RUNS.split(text)  # word, gap, word, gap, ..., word; a word may be ""
    offsets = [0, *accumulate(map(len, pieces))]
    starts, ends = offsets[0:-1:2], offsets[1::2]
    # An empty first or last piece is no word: the text starts or ends with whitespace.
    first = 1 if not pieces[0] else 0
    last = len(ends) - 1 if not pieces[-1] else len(ends)
    return starts[first:last], ends[first:last]


def _natural_break(
    text: str, word_starts: Sequence[int], word_ends: Sequence[int], low: int, high: int
) -> int | None:
    """The last word in ``low..high`` after which a paragraph ends, else the last one that
    ends a sentence, else ``None`` (``high`` is not the text's last word).

    Only the text of those words is searched: the few hundred characters where a chunk may
    end early, not every word of the document.
    """
    gaps = list(_PARAGRAPH_GAP.finditer(text, word_ends[low], word_starts[high + 1]))
    if gaps:
        return bisect_right(word_ends, gaps[-1].start()) - 1
    sentences = list(_SENTENCE.finditer(text, word_starts[low], word_ends[high]))
    if sentences:
        return bisect_left(word_ends, sentences[-1].end())
    return None


def _validate(unit: str, size: int, overlap: int) -> None:
    if unit not in UNITS:
        raise ValueError(f"chunk unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if size <= 0:
        raise ValueError(f"chunk size must be > 0, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"chunk overlap must be >= 0 and < size ({size}), got {overlap}")


def chunk_spans(text: str, *, unit: Unit, size: int, overlap: int) -> list[tuple[int, int]]:
    """Cut ``text`` into chunks; the rules are in the module docstring.

    :param text: the text to cut.
    :param unit: ``"chars"`` or ``"words"``, what ``size`` and ``overlap`` count.
    :param size: the largest chunk, in ``unit`` (> 0).
    :param overlap: the most two consecutive chunks share, in ``unit`` (>= 0, < ``size``).
    :returns: the ``(char_start, char_end)`` offsets of each chunk in ``text``, in order.
    :raises ValueError: if ``unit``, ``size`` or ``overlap`` is out of range.
    """
    _validate(unit, size, overlap)
    word_starts, word_ends = _word_offsets(text)
    count = len(word_ends)
    if not count:
        return []
    # Word positions measured in the unit; a run of words i..j-1 measures ends[j-1]-starts[i].
    starts: Sequence[int]
    ends: Sequence[int]
    if unit == "chars":
        starts, ends = word_starts, word_ends
    else:
        starts, ends = range(count), range(1, count + 1)

    min_fill = max(1, int(size * _NATURAL_BREAK_FILL))

    spans: list[tuple[int, int]] = []
    first, previous_stop = 0, 0
    while True:
        # Longest run from ``first`` that fits, at least one word (a too-long word alone).
        longest = max(first + 1, bisect_right(ends, starts[first] + size, first))
        stop = longest
        if longest < count:
            # The earliest stop that still fills the chunk enough and ends after the
            # previous chunk; a natural break at or after it wins over the longest fit.
            earliest = max(
                previous_stop + 1,
                bisect_left(ends, starts[first] + min_fill, first) + 1,
            )
            natural = _natural_break(text, word_starts, word_ends, earliest - 1, longest - 1)
            if natural is not None:
                stop = natural + 1
        spans.append((word_starts[first], word_ends[stop - 1]))
        if stop == count:
            return spans
        # The next chunk starts at the earliest word after ``first`` such that the shared
        # words measure at most ``overlap`` and the word at ``stop`` still fits with them.
        threshold = max(ends[stop - 1] - overlap, ends[stop] - size)
        first, previous_stop = bisect_left(starts, threshold, first + 1, stop), stop


def _page_index(page_starts: Sequence[int], offset: int) -> int:
    """The index of the page holding the character at ``offset`` (a non-separator offset)."""
    return max(0, bisect_right(page_starts, offset) - 1)


def _chunks_of(
    doc_id: str,
    text: str,
    page_spans: Sequence[tuple[int, int, int]],
    spans: Iterable[tuple[int, int, str]],
    headings_of: Callable[[int, int], list[str]] | None = None,
) -> list[Chunk]:
    """One chunk per ``(char_start, char_end, prefix)`` of ``text``, its text the prefix
    and that slice, its pages found from ``page_spans``, its headings from ``headings_of``
    (given the span)."""
    page_starts = [start for _, start, _ in page_spans]
    chunks: list[Chunk] = []
    for index, (char_start, char_end, prefix) in enumerate(spans):
        # Chunks start and end on non-whitespace, so never on a page separator.
        first = _page_index(page_starts, char_start)
        last = _page_index(page_starts, char_end - 1)
        chunks.append(
            Chunk(
                doc_id=doc_id,
                index=index,
                text=prefix + text[char_start:char_end],
                page_start=page_spans[first][0],
                page_end=page_spans[last][0],
                char_start=char_start,
                char_end=char_end,
                headings=[] if headings_of is None else headings_of(char_start, char_end),
            )
        )
    return chunks


def build_chunks(
    doc_id: str,
    text: str,
    page_spans: Sequence[tuple[int, int, int]],
    *,
    unit: Unit,
    size: int,
    overlap: int,
) -> list[Chunk]:
    """Cut a document's text into :class:`~ingest.model.Chunk` records.

    :param doc_id: the document id the chunks belong to.
    :param text: the document's text (``Document.text``).
    :param page_spans: the pages' offsets in ``text`` (``Document.page_spans()``).
    :param unit: ``"chars"`` or ``"words"``.
    :param size: the largest chunk, in ``unit``.
    :param overlap: the most two consecutive chunks share, in ``unit``.
    :returns: the chunks, indexed 0..n-1 in text order.
    :raises ValueError: as :func:`chunk_spans`.
    """
    spans = chunk_spans(text, unit=unit, size=size, overlap=overlap)
    return _chunks_of(doc_id, text, page_spans, ((start, end, "") for start, end in spans))


def build_section_chunks(
    doc_id: str,
    text: str,
    page_spans: Sequence[tuple[int, int, int]],
    headings: Sequence[Heading],
    tables: Sequence[TableSpan],
    *,
    unit: Unit,
    size: int,
    overlap: int,
) -> list[Chunk]:
    """Cut a document's text by section (``chunk.by: section``) into chunks.

    :param doc_id: the document id the chunks belong to.
    :param text: the string cut (``Document.text`` or ``Document.markdown``).
    :param page_spans: the pages' offsets in ``text``.
    :param headings: the headings in ``text``, in order.
    :param tables: the tables in ``text``, in order.
    :param unit: ``"chars"`` or ``"words"``.
    :param size: the largest chunk, in ``unit`` (a table row longer than it is kept whole).
    :param overlap: the most two consecutive chunks of a section share, in ``unit``.
    :returns: the chunks, indexed 0..n-1 in text order, each with its ``headings``.
    :raises ValueError: as :func:`chunk_spans`.
    """
    from ingest_plugins.structure.sections import headings_at, section_spans

    _validate(unit, size, overlap)
    spans = section_spans(text, headings, tables, unit=unit, size=size, overlap=overlap)
    return _chunks_of(
        doc_id, text, page_spans, spans, lambda start, end: headings_at(headings, text, start, end)
    )


@hookimpl
def ingest_transform(document: Document, settings: Settings, step: str) -> None:
    """Replace the document's chunks when the chain step is ``chunk``.

    :param document: the document to chunk; its pages are read, ``chunks`` is replaced.
    :param settings: the run's settings: ``settings.chunk.unit``, ``.size``, ``.overlap``
        and ``.by``, and ``settings.format``.
    :param step: the chain step being run.
    :returns: nothing.
    :raises ValueError: if the chunk settings are out of range.
    """
    if step != NAME:
        return
    from ingest_plugins.structure.sections import find_anchors, headings_at

    options = settings.chunk
    markdown = getattr(settings, "format", "text") == "markdown"
    text = document.markdown if markdown else document.text
    page_spans = document.page_spans(markdown=markdown)
    headings, tables = find_anchors(document, markdown=markdown)
    if getattr(options, "by", "size") == "section":
        document.chunks = build_section_chunks(
            document.doc_id,
            text,
            page_spans,
            headings,
            tables,
            unit=options.unit,
            size=options.size,
            overlap=options.overlap,
        )
        return
    document.chunks = build_chunks(
        document.doc_id,
        text,
        page_spans,
        unit=options.unit,
        size=options.size,
        overlap=options.overlap,
    )
    if headings:
        for chunk in document.chunks:
            chunk.headings = headings_at(headings, text, chunk.char_start, chunk.char_end)
