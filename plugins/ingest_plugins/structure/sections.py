"""Where the sections and tables are in the string chunks are cut from, and section chunks.

:func:`find_anchors` reads the headings and tables of a document's Markdown (the lines the
Markdown writer made: ``#`` headings, pipe tables, HTML tables) or, for plain text, finds
each heading block's and table block's text in its page's text (in order, from where the
last one was found; text the text transforms changed beyond recognition is not found and
gives no anchor).

:func:`headings_at` gives the trail of section titles in force at a position: each heading
closes the open ones of its level or deeper. A chunk's headings are the trail at its first
word that is not part of a heading line, so a chunk that opens with ``## 2 Methods`` sits
under "2 Methods".

:func:`section_spans` cuts by section (``chunk.by: section``):

1. sections start at every heading; a section holding only its heading line joins the next;
2. a section that fits in ``size`` is one chunk; a longer one is cut within the size as the
   ``chunk`` transform cuts text (paragraph ends, then sentence ends, in the last fifth;
   ``overlap`` shared), except that a chunk never ends inside a table row or inside a
   table's header, and a chunk that starts inside a table starts with the table's header
   rows, repeated (its offsets cover only the rows it holds). A row longer than ``size`` is
   a chunk of its own, as a word longer than ``size`` is.
"""

from __future__ import annotations

import itertools
import re
from bisect import bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ingest import Document

__all__ = [
    "Heading",
    "TableSpan",
    "find_anchors",
    "heading_trail",
    "headings_at",
    "section_spans",
]

Unit = Literal["chars", "words"]

_MD_HEADING = re.compile(r"^(#{1,6}) +(.+?)\s*$", re.MULTILINE)
_WORD = re.compile(r"\S+")
_SENTENCE_END = frozenset(".!?…")
_CLOSERS = "\"')]}\u00bb\u201d\u2019"
_FILL = 0.8


@dataclass(frozen=True, slots=True)
class Heading:
    """A heading in the chunked string: where its line starts and ends, level and title."""

    start: int
    end: int
    level: int
    title: str


@dataclass(frozen=True, slots=True)
class TableSpan:
    """A table in the chunked string, one row per line: where it starts, where its header
    ends (the text repeated in a chunk that continues it), and where it ends."""

    start: int
    header_end: int
    end: int


def find_anchors(document: Document, *, markdown: bool) -> tuple[list[Heading], list[TableSpan]]:
    """The headings and tables of a document in ``document.markdown`` (``markdown``) or in
    ``document.text``.

    :param document: the document, after the ``structure`` step.
    :param markdown: look in the Markdown rather than the text.
    :returns: headings and tables, in order; empty when no page has blocks or Markdown.
    """
    if markdown:
        if all(page.markdown is None for page in document.pages):
            return [], []
        return markdown_anchors(document.markdown)
    if not any(page.blocks for page in document.pages):
        return [], []
    return _text_anchors(document)


def markdown_anchors(text: str) -> tuple[list[Heading], list[TableSpan]]:
    """The ``#`` headings and the tables (pipe or HTML) of Markdown made by
    :mod:`ingest_plugins.structure.markdown`.

    :param text: the Markdown.
    """
    headings = [
        Heading(m.start(), m.end(), len(m[1]), m[2]) for m in _MD_HEADING.finditer(text)
    ]
    tables: list[TableSpan] = []
    lines = text.split("\n")
    offset = 0
    index = 0
    starts: list[int] = []
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    while index < len(lines):
        line = lines[index]
        if line.startswith("|"):
            end = index
            while end + 1 < len(lines) and lines[end + 1].startswith("|"):
                end += 1
            if end > index:
                header = min(index + 1, end)  # the header row and the |---| line
                tables.append(_span(starts, lines, index, header, end))
            index = end + 1
        elif line == "<table>":
            end = index
            while end + 1 < len(lines) and lines[end] != "</table>":
                end += 1
            tables.append(_span(starts, lines, index, min(index + 1, end), end))
            index = end + 1
        else:
            index += 1
    return headings, tables


def _span(starts: list[int], lines: list[str], first: int, header: int, last: int) -> TableSpan:
    return TableSpan(
        starts[first], starts[header] + len(lines[header]), starts[last] + len(lines[last])
    )


def _words_pattern(text: str, words: int = 6) -> re.Pattern[str] | None:
    parts = text.split()[:words]
    if not parts:
        return None
    return re.compile(r"\s+".join(re.escape(part) for part in parts))


def _text_anchors(document: Document) -> tuple[list[Heading], list[TableSpan]]:
    headings: list[Heading] = []
    tables: list[TableSpan] = []
    for page, (_, start, _end) in zip(
        document.pages, document.page_spans(), strict=True
    ):
        text = page.text
        cursor = 0
        for block in page.blocks:
            if block.kind == "heading":
                found = _find(text, block.text, cursor)
                if found is not None:
                    line_end = text.find("\n", found[1])
                    line_end = len(text) if line_end < 0 else line_end
                    end = max(found[1], line_end)
                    headings.append(Heading(start + found[0], start + end, block.level,
                                            " ".join(block.text.split())))  # fmt: skip
                    cursor = end
            elif block.kind == "table" and block.table is not None:
                grid = block.table.grid()
                first_row = " ".join(cell for cell in grid[0] if cell)
                last_row = " ".join(cell for cell in grid[-1] if cell)
                head = _find(text, first_row, cursor)
                if head is None:
                    continue
                tail = _find(text, last_row, head[1]) if len(grid) > 1 else head
                if tail is None:
                    continue
                header_end = text.find("\n", head[0])
                header_end = tail[1] if header_end < 0 else min(header_end, tail[1])
                tables.append(TableSpan(start + head[0], start + header_end, start + tail[1]))
                cursor = tail[1]
    return headings, tables


def _find(text: str, wanted: str, cursor: int) -> tuple[int, int] | None:
    pattern = _words_pattern(wanted, words=len(wanted.split()) if len(wanted) < 200 else 8)
    if pattern is None:
        return None
    match = pattern.search(text, cursor) or pattern.search(text)
    return match.span() if match is not None else None


def heading_trail(headings: Sequence[Heading], upto: int) -> list[str]:
    """The titles of the sections open at ``upto``: the headings starting at or before it,
    each closing the open ones of its level or deeper.

    :param headings: the headings, in order.
    :param upto: an offset in the chunked string.
    :returns: the titles, outermost first.
    """
    stack: list[Heading] = []
    for heading in headings:
        if heading.start > upto:
            break
        while stack and stack[-1].level >= heading.level:
            stack.pop()
        stack.append(heading)
    return [heading.title for heading in stack]


def headings_at(headings: Sequence[Heading], text: str, start: int, end: int) -> list[str]:
    """The headings a chunk ``text[start:end]`` sits under: the trail at its first word
    outside a heading line (at its end when it holds only headings).

    :param headings: the headings of ``text``, in order.
    :param text: the chunked string.
    :param start: the chunk's start offset.
    :param end: its end offset.
    """
    if not headings:
        return []
    starts = [heading.start for heading in headings]
    position = start
    while position < end:
        index = bisect_right(starts, position) - 1
        if index >= 0 and headings[index].start <= position < headings[index].end:
            position = headings[index].end
            while position < end and text[position].isspace():
                position += 1
            continue
        break
    return heading_trail(headings, min(position, max(start, end - 1)))


# --------------------------------------------------------------------------------------------
# Section chunks
# --------------------------------------------------------------------------------------------


def section_spans(
    text: str,
    headings: Sequence[Heading],
    tables: Sequence[TableSpan],
    *,
    unit: Unit,
    size: int,
    overlap: int,
) -> list[tuple[int, int, str]]:
    """Cut ``text`` by section (the rules are in the module docstring).

    :param text: the chunked string.
    :param headings: its headings, in order.
    :param tables: its tables, in order.
    :param unit: ``"chars"`` or ``"words"``.
    :param size: the largest chunk, in ``unit``.
    :param overlap: the most two consecutive chunks of one section share, in ``unit``.
    :returns: ``(start, end, prefix)`` for each chunk: its offsets in ``text``, and the
        table header it starts with when it continues a table (else ``""``).
    """
    words = [match.span() for match in _WORD.finditer(text)]
    if not words:
        return []
    bounds = _section_bounds(text, headings)
    word_starts = [start for start, _ in words]
    spans: list[tuple[int, int, str]] = []
    for section_start, section_end in itertools.pairwise(bounds):
        first = bisect_right(word_starts, section_start - 1)
        stop = bisect_right(word_starts, section_end - 1)
        if first < stop:
            spans.extend(
                _cut(text, words, word_starts, first, stop, tables, unit, size, overlap)
            )
    return spans


def _section_bounds(text: str, headings: Sequence[Heading]) -> list[int]:
    """Section starts and the text's end: every heading opens a section, except one right
    after a heading with nothing under it (the two share a section)."""
    bounds = [0]
    for index, heading in enumerate(headings):
        if index and not text[headings[index - 1].end : heading.start].strip():
            continue
        if heading.start > bounds[-1]:
            bounds.append(heading.start)
    bounds.append(len(text))
    return bounds


def _measure(unit: Unit, words: list[tuple[int, int]], first: int, stop: int) -> int:
    if unit == "words":
        return stop - first
    return words[stop - 1][1] - words[first][0]


def _cut(
    text: str,
    words: list[tuple[int, int]],
    starts: list[int],
    first: int,
    stop: int,
    tables: Sequence[TableSpan],
    unit: Unit,
    size: int,
    overlap: int,
) -> list[tuple[int, int, str]]:
    """Chunks of the words ``first..stop-1`` (one section)."""
    # A chunk may end after word w only outside a table's header and at a row's end.
    blocked: set[int] = set()
    table_of: dict[int, TableSpan] = {}
    for table in tables:
        if table.end <= words[first][0] or table.start >= words[stop - 1][1]:
            continue
        for w in range(bisect_right(starts, table.start - 1), bisect_right(starts, table.end - 1)):
            end = words[w][1]
            table_of[w] = table
            following = words[w + 1][0] if w + 1 < len(words) else len(text)
            row_end = "\n" in text[end:following] or following >= table.end
            if not (row_end and end > table.header_end):
                blocked.add(w)
    out: list[tuple[int, int, str]] = []
    begin = first
    previous_stop = first
    while begin < stop:
        prefix = ""
        table = table_of.get(begin)
        if table is not None and words[begin][0] > table.header_end:
            prefix = text[table.start : table.header_end] + "\n"
        taken = len(prefix) if unit == "chars" else len(prefix.split())
        room = max(1, size - taken)
        end = _stop(text, words, begin, stop, blocked, unit, room, previous_stop)
        out.append((words[begin][0], words[end - 1][1], prefix))
        if end >= stop:
            break
        begin, previous_stop = _next_start(words, begin, end, blocked, unit, overlap), end
    return out


def _stop(
    text: str,
    words: list[tuple[int, int]],
    begin: int,
    stop: int,
    blocked: set[int],
    unit: Unit,
    room: int,
    previous_stop: int,
) -> int:
    """The (exclusive) end word of the chunk starting at ``begin``."""
    longest = begin
    for end in range(begin + 1, stop + 1):
        if _measure(unit, words, begin, end) > room:
            break
        if end - 1 not in blocked or end == stop:
            longest = end
    if longest == begin:
        # Nothing fits: up to the first place a chunk may end (a long word or row).
        longest = next(
            (e for e in range(begin + 1, stop + 1) if e - 1 not in blocked or e == stop), stop
        )
        return longest
    if longest == stop:
        return stop
    earliest = max(previous_stop + 1, begin + 1)
    fill = max(1, int(room * _FILL))
    for breaks in (_paragraph_end, _sentence_end):
        for end in range(longest, earliest - 1, -1):
            if _measure(unit, words, begin, end) < fill:
                break
            if end - 1 not in blocked and breaks(text, words, end - 1):
                return end
    return longest


def _paragraph_end(text: str, words: list[tuple[int, int]], w: int) -> bool:
    following = words[w + 1][0] if w + 1 < len(words) else len(text)
    return text.count("\n", words[w][1], following) >= 2


def _sentence_end(text: str, words: list[tuple[int, int]], w: int) -> bool:
    start, end = words[w]
    return text[start:end].rstrip(_CLOSERS)[-1:] in _SENTENCE_END


def _next_start(
    words: list[tuple[int, int]], begin: int, end: int, blocked: set[int], unit: Unit, overlap: int
) -> int:
    """The first word of the next chunk: the earliest after ``begin`` where a chunk may
    start and the words shared with the chunk ending at ``end`` measure at most
    ``overlap``; ``end`` when there is none."""
    if overlap <= 0:
        return end
    for start in range(begin + 1, end):
        if start - 1 in blocked:
            continue
        if _measure(unit, words, start, end) <= overlap:
            return start
    return end
