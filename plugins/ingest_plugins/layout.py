"""Reading order from geometry: lines with boxes → ordered lines → blocks.

Independent of any PDF library: an extractor turns a page into :class:`Line` objects (text,
box in a *reading frame* where text runs left to right and ``y`` grows downwards, font size,
weight, and which line of its own output each came from), and :func:`order_lines` puts them
in reading order; :func:`group_blocks` groups ordered lines into :class:`Block` objects
(paragraph-sized runs with one font size and weight), which later stages (Markdown structure,
tables) build on. :mod:`ingest_plugins.pdfium_layout` makes the lines for PDFium.

The order, for one page:

1. *Zones.* Lines whose direction differs from the page's (a rotated note in the margin) are
   marginalia; the rest is split by a recursive XY-cut:
2. *Columns.* A node of the cut is split at vertical gutters: bands of the node's full height
   that no line crosses, at least :data:`GUTTER_EM` of the body font size wide, with text on
   both sides (at least :data:`COLUMN_LINES` lines of :data:`COLUMN_CHARS` characters each:
   the cells of a table do not make columns). Columns are read left to right (right to left
   on a page of right-to-left script).
3. *Bands.* A node without a gutter is cut into horizontal bands at every gap no line
   crosses; consecutive bands are merged while they share the same column structure (both
   without a gutter, or with a gutter at the same place), and each merged group is cut
   again, top to bottom. A node that cannot be cut keeps the extractor's order: where the
   content stream is already in reading order, nothing changes.
4. *Footnotes.* Lines in a smaller font than the body (at most :data:`FOOTNOTE_SIZE` of it)
   in the lower part of the page, with no body-sized line below them in the same column, go
   after the body, and the marginalia after them.

Lines an extractor split in two (a line that ran across a gutter) and that stay next to each
other come out as one line again, in the extractor's own spelling.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "COLUMN_CHARS",
    "COLUMN_LINES",
    "FOOTNOTE_SIZE",
    "GUTTER_EM",
    "Block",
    "Line",
    "find_gutter",
    "group_blocks",
    "may_reorder",
    "order_lines",
    "ordered_text",
    "stacked_rows",
]

#: A gutter between columns is at least this many body font sizes wide.
GUTTER_EM = 0.8
#: Each side of a gutter needs this many lines of at least :data:`COLUMN_CHARS` characters.
COLUMN_LINES = 6
COLUMN_CHARS = 25
#: Lines at most this share of the body font size may be footnotes.
FOOTNOTE_SIZE = 0.9
#: Footnotes start below this share of the height of the page's text (from its top).
FOOTNOTE_TOP = 0.35


@dataclass(slots=True)
class Line:
    """One line (or part of one) of a page, in the page's reading frame.

    :param text: the line's text as the extractor spelled it (its trailing separator kept).
    :param x0: left edge; ``x1`` right edge; ``y0`` top; ``y1`` bottom (``y`` grows down).
    :param size: font size in points (0 when unknown).
    :param bold: whether the font is bold.
    :param source: the index of the extractor's line this comes from, so the parts of a line
        split at a gutter can be put together again.
    :param part: the index of this part within that line.
    :param marginal: the line runs in another direction than the page's text.
    """

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    size: float = 0.0
    bold: bool = False
    source: int = 0
    part: int = 0
    marginal: bool = False
    kind: str = "body"

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def chars(self) -> int:
        return len(self.text.strip())


@dataclass(slots=True)
class Block:
    """A run of consecutive lines in reading order, in one font size and weight.

    :param kind: ``body``, ``footnote`` or ``marginal``.
    :param lines: the lines, in reading order.
    """

    kind: str
    lines: list[Line] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The lines' text, one line each (parts of one extractor line joined)."""
        return ordered_text(self.lines)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` around every line, in the reading frame."""
        return (
            min(line.x0 for line in self.lines),
            min(line.y0 for line in self.lines),
            max(line.x1 for line in self.lines),
            max(line.y1 for line in self.lines),
        )

    @property
    def size(self) -> float:
        """The font size of most of the block's characters."""
        return _main_size(self.lines)

    @property
    def bold(self) -> bool:
        """Whether most of the block's characters are bold."""
        bold = sum(line.chars for line in self.lines if line.bold)
        return bold * 2 > sum(line.chars for line in self.lines)


def _main_size(lines: Sequence[Line]) -> float:
    weights: dict[float, int] = {}
    for line in lines:
        if line.size > 0:
            size = round(line.size, 1)
            weights[size] = weights.get(size, 0) + line.chars
    return max(weights, key=lambda size: (weights[size], size)) if weights else 0.0


def ordered_text(lines: Sequence[Line]) -> str:
    """The text of ``lines`` in the given order: one line each, except that the consecutive
    parts of one extractor line are joined as the extractor spelled them."""
    out: list[str] = []
    previous: Line | None = None
    for line in lines:
        if (
            previous is not None
            and line.source == previous.source
            and line.part == previous.part + 1
        ):
            out[-1] += line.text
        else:
            out.append(line.text)
        previous = line
    return "\n".join(out)


def order_lines(lines: Sequence[Line], *, rtl: bool = False) -> list[Line]:
    """Put the lines of one page in reading order (the steps are in the module docstring).

    :param lines: the lines in the extractor's order, with boxes in the reading frame.
    :param rtl: the page's text is mostly right-to-left script: columns read right to left.
    :returns: the same line objects, reordered, with ``kind`` set to ``body``, ``footnote``
        or ``marginal``.
    """
    main = [line for line in lines if not line.marginal]
    marginal = [line for line in lines if line.marginal]
    for line in marginal:
        line.kind = "marginal"
    body_size, zone = _body_size_and_zone(main)
    ordered = _cut(list(main), body_size, rtl, depth=0) or list(main)
    footnotes = _footnotes(ordered, body_size, zone)
    body = [line for line in ordered if line.kind != "footnote"]
    return body + footnotes + marginal


def may_reorder(lines: Sequence[Line]) -> bool:
    """Whether :func:`order_lines` could give ``lines`` another order than they come in: a
    few passes over the lines, so that a page that stays as it is skips the ordering.

    ``False`` is certain: no line runs in another direction, fewer than
    :data:`COLUMN_LINES` lines of :data:`COLUMN_CHARS` characters end before as many others
    start (the XY-cut needs that many on each side of a gutter), and no line is small
    enough, low enough on the page, to be a footnote. ``True`` only means the ordering has
    to look.

    :param lines: the lines in the extractor's order, with boxes in the reading frame.
    :returns: whether the lines need :func:`order_lines`.
    """
    if any(line.marginal for line in lines):
        return True
    long = [line for line in lines if len(line.text.strip()) >= COLUMN_CHARS]
    if len(long) >= 2 * COLUMN_LINES:
        # The sixth left edge from the right and the sixth right edge from the left: a
        # gutter with six lines on each side lies between them.
        ends = sorted(line.x1 for line in long)[COLUMN_LINES - 1]
        starts = sorted((line.x0 for line in long), reverse=True)[COLUMN_LINES - 1]
        if ends < starts + 1e-5:
            return True
    body_size, zone = _body_size_and_zone(lines)
    return bool(_small_lines(lines, body_size, zone))


def _body_size_and_zone(main: Sequence[Line]) -> tuple[float, float]:
    """The body font size of a page's lines and the top of the zone footnotes may be in."""
    top = min((line.y0 for line in main), default=0.0)
    height = max((line.y1 for line in main), default=0.0) - top
    zone = top + FOOTNOTE_TOP * height
    # Footnotes are small and many on some pages: the body's size is read in the upper half,
    # unless that holds too little text to tell (a page that starts with a large title).
    upper = [line for line in main if line.y1 <= top + 0.5 * height]
    if sum(line.chars for line in upper) * 5 < sum(line.chars for line in main):
        upper = main
    return _main_size(upper) or _main_size(main) or 10.0, zone


def _small_lines(lines: Sequence[Line], body_size: float, zone_top: float) -> list[Line]:
    """The lines that may be footnotes: in a smaller font than the body, in the zone."""
    limit = FOOTNOTE_SIZE * body_size
    return [
        line for line in lines if 0 < line.size <= limit and line.y0 >= zone_top and line.chars
    ]


def group_blocks(lines: Sequence[Line]) -> list[Block]:
    """Group lines already in reading order into blocks: a new block starts where the kind,
    font size or weight changes, or where the next line does not follow the previous one
    closely (a gap over one line height, or no horizontal overlap)."""
    blocks: list[Block] = []
    previous: Line | None = None
    for line in lines:
        if previous is None or not _same_block(previous, line):
            blocks.append(Block(kind=line.kind))
        blocks[-1].lines.append(line)
        previous = line
    return blocks


def _same_block(a: Line, b: Line) -> bool:
    if a.kind != b.kind or a.bold != b.bold:
        return False
    if a.size and b.size and abs(a.size - b.size) > 0.1 * max(a.size, b.size):
        return False
    if b.source == a.source and b.part == a.part + 1:
        return True
    height = max(a.height, b.height, 1.0)
    overlap = min(a.x1, b.x1) - max(a.x0, b.x0)
    return -0.5 * height <= b.y0 - a.y1 <= height and overlap > 0


# --------------------------------------------------------------------------------------------
# XY-cut
# --------------------------------------------------------------------------------------------


def _find_gutter(lines: list[Line], body_size: float) -> tuple[float, float] | None:
    """The gutter of a node's lines (see :func:`find_gutter`), at least :data:`GUTTER_EM`
    body sizes wide."""
    return find_gutter([(line.x0, line.x1) for line in lines], GUTTER_EM * body_size)


def find_gutter(
    intervals: Sequence[tuple[float, float]], minimum: float
) -> tuple[float, float] | None:
    """The widest deep valley of the x-coverage of ``intervals`` (the horizontal extents of
    a node's lines): an x-interval at least ``minimum`` wide and not at the node's edge,
    covered by at most half as many lines as the busiest place on each side of it (within
    the valley, the widest run at its lowest coverage). ``None`` when there is none.

    Coverage is counted in bins a quarter of ``minimum`` wide, with C-speed helpers
    (``itertools.accumulate``, a regular expression over the bins): a page's worth of lines
    costs tens of microseconds.

    :param intervals: ``(x0, x1)`` of each line (or any run of text).
    :param minimum: the narrowest gutter, in the same unit.
    :returns: the gutter's ``(left, right)``.
    """
    if len(intervals) < 2 or minimum <= 0:
        return None
    origin = min(x0 for x0, _ in intervals)
    width = max(x1 for _, x1 in intervals) - origin
    step = max(minimum / 3, width / 1000)
    bins = int(width / step) + 2
    if bins < 8:
        return None
    diff = [0] * (bins + 1)
    for x0, x1 in intervals:
        if x1 > x0:
            # A bin counts as covered when the interval reaches into it.
            diff[int((x0 - origin) / step)] += 1
            diff[int((x1 - origin) / step) + 1] -= 1
    coverage = list(itertools.accumulate(diff[:bins]))
    peak_left = itertools.accumulate(coverage, max)
    peak_right = list(itertools.accumulate(reversed(coverage), max))[::-1]
    # A bin is low when each side of it has a place covered by COLUMN_LINES lines or more,
    # and twice its coverage is at most the lower of the two: a deep valley between text.
    low = bytes(
        1 if side >= COLUMN_LINES and 2 * covered <= side else 0
        for covered, side in zip(coverage, map(min, peak_left, peak_right), strict=True)
    )
    found: tuple[float, float] | None = None
    found_key = (0, 0)
    for valley in _RUN.finditer(low):
        start, stop = valley.span()
        if start == 0 or stop == bins:
            continue  # at the node's edge: a margin, not a gutter
        lowest = min(coverage[start:stop])
        runs = bytes(1 if covered == lowest else 0 for covered in coverage[start:stop])
        for run in _RUN.finditer(runs):
            # Bins reached by a line's edge count as covered: the free width is a bin more.
            size = run.end() - run.start()
            key = (lowest, -size)
            if (size + 1) * step >= minimum and (found is None or key < found_key):
                left = origin + (start + run.start()) * step
                found, found_key = (left, left + size * step), key
    return found


_RUN = re.compile(b"\x01+")


def _is_column(lines: list[Line]) -> bool:
    return sum(1 for line in lines if line.chars >= COLUMN_CHARS) >= COLUMN_LINES


def _cut(lines: list[Line], body_size: float, rtl: bool, depth: int) -> list[Line] | None:
    """Order one node: split at its gutter into regions top to bottom (lines crossing the
    gutter, and runs of lines beside it, read column by column). ``None`` when the node has
    no gutter with text on both sides: the caller decides how to keep it."""
    if len(lines) < 2 * COLUMN_LINES or depth > 8:
        return None
    gutter = _find_gutter(lines, body_size)
    if gutter is None:
        return None
    left_edge, right_edge = gutter
    position = {id(line): index for index, line in enumerate(lines)}
    regions: list[tuple[bool, list[Line]]] = []
    for row in _row_groups(lines, position):
        crossing = any(
            line.x0 < right_edge - 1e-6 and line.x1 > left_edge + 1e-6 for line in row
        )
        if regions and regions[-1][0] == crossing:
            regions[-1][1].extend(row)
        else:
            regions.append((crossing, list(row)))
    split_any = False
    ordered: list[Line] = []
    for crossing, region in regions:
        if crossing:
            ordered.extend(_rows(region, position))
            continue
        left = [line for line in region if line.x1 <= left_edge + 1e-6]
        right = [line for line in region if line.x0 >= right_edge - 1e-6]
        if not (_is_column(left) and _is_column(right)):
            ordered.extend(_rows(region, position))
            continue
        split_any = True
        for column in [right, left] if rtl else [left, right]:
            inner = _cut(column, body_size, rtl, depth + 1)
            ordered.extend(_rows(column, position) if inner is None else inner)
    return ordered if split_any else None


def stacked_rows(lines: Sequence[Line]) -> list[list[int]]:
    """The positions of ``lines`` (sorted top to bottom) in rows: a line whose middle falls
    within the row above's height (a superscript, the cells of a table row, a page number
    beside a running header) joins that row.

    :param lines: lines sorted by their top.
    :returns: positions in ``lines``, row by row, each row in the order given.
    """
    rows: list[list[int]] = []
    bottom = float("-inf")
    for index, line in enumerate(lines):
        middle = (line.y0 + line.y1) / 2
        if rows and middle <= bottom:
            rows[-1].append(index)
            bottom = max(bottom, line.y1)
        else:
            rows.append([index])
            bottom = line.y1
    return rows


def _row_groups(lines: list[Line], position: dict[int, int]) -> list[list[Line]]:
    """``lines`` in rows, top to bottom (:func:`stacked_rows`); within a row the
    extractor's order is kept."""
    by_top = sorted(lines, key=lambda line: (line.y0, position[id(line)]))
    return [
        sorted((by_top[index] for index in row), key=lambda line: position[id(line)])
        for row in stacked_rows(by_top)
    ]


def _rows(lines: list[Line], position: dict[int, int]) -> list[Line]:
    """``lines`` top to bottom by rows (see :func:`_row_groups`)."""
    return [line for row in _row_groups(lines, position) for line in row]


# --------------------------------------------------------------------------------------------
# Footnotes
# --------------------------------------------------------------------------------------------


def _footnotes(ordered: list[Line], body_size: float, zone_top: float) -> list[Line]:
    """Mark and return the footnote lines of ``ordered`` (in their reading order)."""
    small = _small_lines(ordered, body_size, zone_top)
    if not small:
        return []
    # Body-sized text below a small line means it is not a footnote (a subscript, a caption);
    # a page number below footnotes does not count.
    body = [
        line for line in ordered if line.size > FOOTNOTE_SIZE * body_size and line.chars > 5
    ]
    # The lowest top of a body line over each of 64 slices of the page's width: a small
    # line is blocked when a slice it spans holds body text below it. Lines taken top down,
    # each overwriting its slices, leave the lowest top in each.
    left = min(line.x0 for line in ordered)
    width = max(line.x1 for line in ordered) - left or 1.0
    slices = 64
    lowest = [float("-inf")] * slices
    for other in sorted(body, key=lambda line: line.y0):
        first = int((other.x0 - left) / width * (slices - 1))
        last = int((other.x1 - left) / width * (slices - 1))
        lowest[first : last + 1] = [other.y0] * (last + 1 - first)
    found: list[Line] = []
    for line in small:
        first = int((line.x0 - left) / width * (slices - 1))
        last = int((line.x1 - left) / width * (slices - 1))
        if max(lowest[first : last + 1]) <= line.y1:
            found.append(line)
    # A lone small line (a caption, a date) is not a footnote zone.
    if len(found) < 2 and not _starts_with_marker(found):
        return []
    for line in found:
        line.kind = "footnote"
    return found


def _starts_with_marker(lines: list[Line]) -> bool:
    firsts = [line.text.lstrip()[:1] for line in lines]
    return any(first.isdigit() or (first and first in "*\u2020\u2021\u00a7") for first in firsts)


def median_height(lines: Sequence[Line]) -> float:
    """The median line height (1.0 for no lines), for callers tuning gaps to the page."""
    heights = [line.height for line in lines if line.height > 0]
    return statistics.median(heights) if heights else 1.0
