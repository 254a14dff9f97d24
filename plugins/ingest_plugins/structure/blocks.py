"""One page's blocks from its facts: paragraphs, list items, tables, figures, captions.

:func:`page_blocks` works on :class:`~ingest_plugins.structure.facts.PageFacts`, whatever
library read them. In order:

1. *Tables* (:mod:`ingest_plugins.structure.tables`) take their lines out of the flow.
2. The other lines of the body are grouped (:func:`ingest_plugins.layout.group_blocks`:
   one font size and weight, lines close together), and each group is cut into
   paragraphs and list items, line by line:

   * a line that starts with a bullet (``•``, ``◦``, ``▪``, an en dash, ``*``, and the private-use
     bullets of Symbol and Wingdings fonts) or a list number (``1.``, ``2)``, ``(a)``,
     ``iv.``) starts a list item; its depth is the number of distinct marker positions to
     its left in the same list;
   * a line without a marker continues the item above it when it is indented past the
     item's marker or the line above ran to the right edge (it wrapped); else the list ends;
   * in body text, a new paragraph starts after a line that ends a sentence well before
     the right edge, and at a first-line indent.

   Each paragraph's lines are joined with spaces, the words broken at line ends joined
   again (:func:`ingest_plugins.dehyphenate.dehyphenate_text`), and normalized as the
   ``normalize`` transform does the page's text.
3. *Outline entries* pointing at the page are matched with the first lines of the groups
   (ignoring case, punctuation and a leading section number); a match becomes a heading
   whose level is its depth in the outline (the ``structure`` transform may shift it).
4. *Figures*: images of at least :data:`FIGURE_MIN` points each way that do not cover most
   of the page (a scanned page under its text layer is not a figure). A paragraph starting
   with ``Figure 3``, ``Fig. 3`` (and a few other words) within three lines above or below
   an image is its caption, and the figure's text; other such paragraphs, and those starting
   with ``Table 2``, are captions.
5. Footnotes and marginalia (as the reading order marked their lines) come last, in that
   order, as blocks of their own kinds.
"""

from __future__ import annotations

import itertools
import re
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest import Block

from ingest_plugins.layout import group_blocks
from ingest_plugins.structure.tables import find_tables
from ingest_plugins.structure.text import CAPTION, is_caption, join_lines, split_marker

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ingest import BBox

    from ingest_plugins.layout import Line
    from ingest_plugins.structure.facts import OutlineEntry, PageFacts

__all__ = ["FIGURE_MAX_SHARE", "FIGURE_MIN", "page_blocks"]

#: An image smaller than this (points) either way is a glyph, a logo or a rule, not a figure.
FIGURE_MIN = 36.0
#: An image covering more than this share of the page is a background or a scan.
FIGURE_MAX_SHARE = 0.8

_NOT_WORD = re.compile(r"[\W_]+")
_SECTION_NUMBER = re.compile(r"\s*(?:\d+(?:\.\d+)*|[A-Z]|[IVXLC]+)[.)]?\s+")
_SENTENCE_END = tuple(".!?:;\u2026\"')\u201d")


def page_blocks(facts: PageFacts, *, tables: bool = True) -> list[Block]:
    """The blocks of one page in reading order (the steps are in the module docstring).

    :param facts: what the page shows.
    :param tables: look for tables.
    :returns: the blocks, with kinds ``heading`` (from the outline only), ``paragraph``,
        ``list_item``, ``table``, ``figure``, ``caption``, ``footnote`` and ``marginal``.
    """
    lines = facts.lines
    body_size = _body_size(lines)
    placed: list[tuple[float, Block]] = []
    taken: set[int] = set()
    rest: dict[int, Line] = {}
    if tables:
        for found in find_tables(facts, body_size):
            taken |= found.lines
            rest.update(found.rest)
            block = Block("table", found.text, found.bbox, table=found.table)
            placed.append((_table_place(lines, found.lines, found.bbox), block))
    position = {id(line): index for index, line in enumerate(lines)}
    position.update({id(line): index for index, line in rest.items()})
    # What a table did not take of a line it crossed stays in the flow.
    flow = [rest.get(i, ln) for i, ln in enumerate(lines) if i not in taken or i in rest]
    outline = list(facts.outline)
    for kind in ("body", "footnote", "marginal"):
        chosen = [ln for ln in flow if ln.kind == kind]
        state = _ListState()
        for group in group_blocks(chosen):
            for first, block in _group_blocks(group.lines, kind, body_size, outline, state):
                placed.append((position[id(first)], block))
    placed.sort(key=lambda item: item[0])
    blocks = [block for _, block in placed]
    return _with_figures(blocks, facts)


def _table_place(lines: Sequence[Line], held: set[int], bbox: BBox) -> float:
    """Where a table goes in the reading order: at its first line of body text; a table
    set in a small font (its lines read as footnotes) before the first body line that
    starts below its top, beside it."""
    body = [index for index in held if lines[index].kind == "body"]
    if body:
        return float(min(body))
    for index, line in enumerate(lines):
        if (
            line.kind == "body"
            and index not in held
            and line.y0 >= bbox[1]
            and min(line.x1, bbox[2]) > max(line.x0, bbox[0])
        ):
            return index - 0.5
    return float(min(held))


def _body_size(lines: Sequence[Line]) -> float:
    weights: dict[float, int] = {}
    for line in lines:
        if line.kind == "body" and line.size > 0:
            size = round(line.size, 1)
            weights[size] = weights.get(size, 0) + line.chars
    return max(weights, key=lambda size: (weights[size], -size)) if weights else 0.0


def _bbox(lines: Sequence[Line]) -> BBox:
    return (
        min(line.x0 for line in lines),
        min(line.y0 for line in lines),
        max(line.x1 for line in lines),
        max(line.y1 for line in lines),
    )


def _continues(previous: Line | None, line: Line) -> bool:
    """Whether ``line`` is the next part of the extractor line ``previous`` is part of."""
    if previous is None:
        return False
    return line.source == previous.source and line.part == previous.part + 1


def _texts(lines: Sequence[Line]) -> list[str]:
    """The lines' texts, the parts of one extractor line put together again."""
    out: list[str] = []
    previous: Line | None = None
    for line in lines:
        if _continues(previous, line):
            out[-1] += line.text
        else:
            out.append(line.text)
        previous = line
    return out


@dataclass
class _Item:
    kind: str
    lines: list[Line]
    level: int = 0


class _ListState:
    """The list being read across the groups of one kind: its markers' positions."""

    def __init__(self) -> None:
        self.stack: list[float] = []
        self.top = 0.0

    def level(self, x: float, top: float, tolerance: float) -> int:
        """The depth of an item whose marker is at ``x`` and whose line starts at ``top``.
        An item above the one before continues the list in the next column or page: its
        position says nothing about its depth there, so it keeps the depth it has."""
        if self.stack and top < self.top - tolerance:
            depth = len(self.stack) - 1
            self.stack = [x - 1000.0] * depth + [x]
        while self.stack and x < self.stack[-1] - tolerance:
            self.stack.pop()
        if not self.stack or x > self.stack[-1] + tolerance:
            self.stack.append(x)
        self.top = top
        return min(len(self.stack) - 1, 5)

    def end(self) -> None:
        self.stack.clear()


def _group_blocks(
    group: list[Line],
    kind: str,
    body_size: float,
    outline: list[OutlineEntry],
    state: _ListState,
) -> list[tuple[Line, Block]]:
    """Cut one group of lines into headings (from the outline), list items and paragraphs."""
    out: list[tuple[Line, Block]] = []
    heading = _outline_heading(group, outline)
    if heading is not None:
        count, level = heading
        head = group[:count]
        made = Block("heading", join_lines(_texts(head)), _bbox(head), level=level,
                     size=_size(head), bold=_bold(head))  # fmt: skip
        out.append((head[0], made))
        group = group[count:]
        state.end()
        if not group:
            return out
    paragraph_kind = "paragraph" if kind == "body" else kind
    size = _size(group) or body_size or 10.0
    left = min(line.x0 for line in group)
    right = max(line.x1 for line in group)
    splittable = kind == "body" and not _bold(group) and abs(size - body_size) <= 0.06 * size
    gaps = [b.y0 - a.y1 for a, b in itertools.pairwise(group) if b.source != a.source]
    spacing = statistics.median(gaps) if gaps else 0.0
    items: list[_Item] = []
    previous: Line | None = None
    for line in group:
        continuing = previous is not None and line.source == previous.source
        marker = None if continuing else split_marker(line.text)
        if marker is not None and kind == "body":
            items.append(_Item("list_item", [line], state.level(line.x0, line.y0, 0.3 * size)))
        elif continuing or not items:
            if not items:
                items.append(_Item(paragraph_kind, [line]))
                state.end()
            else:
                items[-1].lines.append(line)
        elif items[-1].kind == "list_item" and previous is not None:
            marker_x = items[-1].lines[0].x0
            close = line.y0 - previous.y1 <= spacing + 0.35 * size
            hanging = line.x0 > marker_x + 0.3 * size
            wrapped = _wrapped(previous, line, right) and line.x0 >= marker_x - 0.3 * size
            if close and (hanging or wrapped):
                items[-1].lines.append(line)
            else:
                items.append(_Item(paragraph_kind, [line]))
                state.end()
        elif (
            splittable
            and previous is not None
            and _new_paragraph(previous, line, left, right, size)
        ):
            items.append(_Item(paragraph_kind, [line]))
        else:
            items[-1].lines.append(line)
        previous = line
    for item in items:
        text = join_lines(_texts(item.lines))
        if not text:
            continue
        block_kind = item.kind
        if block_kind == "paragraph" and is_caption(text):
            block_kind = "caption"
        made = Block(block_kind, text, _bbox(item.lines), level=item.level,
                     size=_size(item.lines), bold=_bold(item.lines))  # fmt: skip
        out.append((item.lines[0], made))
    return out


def _wrapped(previous: Line, line: Line, right: float) -> bool:
    """Whether ``previous`` ended because the first word of ``line`` did not fit on it."""
    text = line.text.strip()
    if not text:
        return False
    per_char = (line.x1 - line.x0) / max(1, len(text))
    first = len(text.split(maxsplit=1)[0]) + 1
    # Widths are estimated, and writers keep a margin inside the column: a word counts as
    # fitting only with room to spare (about an em).
    return previous.x1 + first * per_char > right - 2.5 * per_char


def _new_paragraph(previous: Line, line: Line, left: float, right: float, size: float) -> bool:
    ended = previous.text.rstrip().endswith(_SENTENCE_END)
    short = not _wrapped(previous, line, right)
    indented = line.x0 > left + 0.8 * size and previous.x0 <= left + 0.3 * size
    return short and (ended or indented)


def _size(lines: Sequence[Line]) -> float:
    sizes = [line.size for line in lines if line.size > 0]
    return round(statistics.median(sizes), 2) if sizes else 0.0


def _bold(lines: Sequence[Line]) -> bool:
    bold = sum(line.chars for line in lines if line.bold)
    return bold * 2 > sum(line.chars for line in lines)


def _key(text: str) -> str:
    return _NOT_WORD.sub("", text).casefold()


def _outline_heading(group: list[Line], outline: list[OutlineEntry]) -> tuple[int, int] | None:
    """``(lines, level)`` when the group's first lines are the title of an outline entry
    (the entry is used up)."""
    if not outline:
        return None
    titles = [
        {_key(entry.title), _key(_SECTION_NUMBER.sub("", entry.title, count=1))} - {""}
        for entry in outline
    ]
    texts = _texts(group[:3])
    for count in range(1, len(texts) + 1):
        joined = " ".join(texts[:count])
        candidates = {_key(joined), _key(_SECTION_NUMBER.sub("", joined, count=1))}
        for number, entry in enumerate(outline):
            if not titles[number] & candidates:
                continue
            if entry.y is not None and abs(entry.y - group[0].y0) > 200:
                continue
            del outline[number]
            return _lines_for(group, count), entry.level + 1
    return None


def _lines_for(group: list[Line], texts: int) -> int:
    """How many of ``group``'s lines make its first ``texts`` texts (see :func:`_texts`)."""
    seen = 0
    previous: Line | None = None
    for index, line in enumerate(group):
        if not _continues(previous, line):
            seen += 1
            if seen > texts:
                return index
        previous = line
    return len(group)


def _with_figures(blocks: list[Block], facts: PageFacts) -> list[Block]:
    """Put the page's figures among the blocks, each with its caption when one is near."""
    area = facts.width * facts.height
    figures = [
        box
        for box in facts.images
        if box[2] - box[0] >= FIGURE_MIN
        and box[3] - box[1] >= FIGURE_MIN
        and (area <= 0 or (box[2] - box[0]) * (box[3] - box[1]) <= FIGURE_MAX_SHARE * area)
    ]
    if not figures:
        return blocks
    figures = _merge_boxes(figures)
    out = list(blocks)
    for box in sorted(figures, key=lambda b: (b[1], b[0])):
        figure = Block("figure", "", box)
        caption = _caption_near(out, box)
        if caption is not None:
            figure.text = caption.text
            out[out.index(caption)] = figure
            continue
        # Before the first block that starts below the figure's top and beside it.
        at = next(
            (
                index
                for index, block in enumerate(out)
                if block.kind not in ("footnote", "marginal")
                and block.bbox[1] >= box[1]
                and min(block.bbox[2], box[2]) > max(block.bbox[0], box[0])
            ),
            None,
        )
        if at is None:
            at = next(
                (i for i, block in enumerate(out) if block.kind in ("footnote", "marginal")),
                len(out),
            )
        out.insert(at, figure)
    return out


def _caption_near(blocks: list[Block], box: BBox) -> Block | None:
    best: tuple[float, Block] | None = None
    for block in blocks:
        word = CAPTION.match(block.text)
        if block.kind != "caption" or word is None:
            continue
        if word["word"].lower().startswith("tab"):
            continue
        reach = 3 * max(block.size, 8.0) * 1.2
        below = block.bbox[1] - box[3]
        above = box[1] - block.bbox[3]
        distance = below if below >= -2 else above
        overlap = min(block.bbox[2], box[2]) - max(block.bbox[0], box[0])
        if -2 <= distance <= reach and overlap > 0 and (best is None or distance < best[0]):
            best = (distance, block)
    return None if best is None else best[1]


def _merge_boxes(boxes: list[BBox]) -> list[BBox]:
    """Images that touch or overlap are one figure (a figure drawn as tiles)."""
    merged: list[list[float]] = []
    for box in sorted(boxes):
        for other in merged:
            if (
                box[0] <= other[2] + 1
                and box[2] >= other[0] - 1
                and box[1] <= other[3] + 1
                and box[3] >= other[1] - 1
            ):
                other[:] = [min(other[0], box[0]), min(other[1], box[1]),
                            max(other[2], box[2]), max(other[3], box[3])]  # fmt: skip
                break
        else:
            merged.append(list(box))
    return [(b[0], b[1], b[2], b[3]) for b in merged]
