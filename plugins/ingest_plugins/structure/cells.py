"""What the two ways of finding tables share: the found table, and rows and columns of
text runs. See :mod:`ingest_plugins.structure.tables`."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ingest_plugins.layout import stacked_rows
from ingest_plugins.structure.facts import Segment, segments_of

if TYPE_CHECKING:
    from ingest import BBox, Table

    from ingest_plugins.layout import Line
    from ingest_plugins.structure.facts import PageFacts

__all__ = [
    "GAP_EM",
    "MAX_CELL_CHARS",
    "MAX_RULED_CELL_CHARS",
    "MIN_ROWS",
    "MIN_RULE",
    "SNAP",
    "FoundTable",
    "column_of",
    "columns_of",
    "line_segments",
    "rows_of",
    "table_text",
]

#: The narrowest gap between two cells of a row without rules, in font sizes.
GAP_EM = 0.9
#: Rows a table without rules needs.
MIN_ROWS = 3
#: The longest mean cell of a table without rules (longer cells are prose in columns).
MAX_CELL_CHARS = 60
#: The longest mean cell of a ruled table (longer: a frame around paragraphs).
MAX_RULED_CELL_CHARS = 400
#: Rules closer than this (points) are one; gaps up to it in a rule are closed.
SNAP = 2.0
#: Shorter rules (points) are not a table's: tick marks, strokes of drawn glyphs.
MIN_RULE = 6.0


@dataclass
class FoundTable:
    """A table found on a page.

    :param table: its cells.
    :param bbox: where it is.
    :param lines: the positions (in :attr:`PageFacts.lines`) of the lines it holds.
    :param rest: for a line that runs out of the table (the extractor joined a row with the
        text beside the table), a line holding what lies outside, by the line's position.
    """

    table: Table
    bbox: BBox
    lines: set[int] = field(default_factory=set)
    rest: dict[int, Line] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The table as plain text (see :func:`table_text`)."""
        return table_text(self.table)


def table_text(table: Table) -> str:
    """A table as plain text: one line per row, cells separated by `` | ``.

    :param table: the table.
    :returns: the text.
    """
    return "\n".join(" | ".join(row) for row in table.grid())


def line_segments(facts: PageFacts, index: int) -> list[Segment]:
    """The segments of line ``index``: its characters cut at gaps of :data:`GAP_EM` font
    sizes (the whole line as one segment when its characters cannot be read)."""
    line = facts.lines[index]
    chars = facts.chars_of(index)
    if not chars:
        return [Segment(line.x0, line.x1, line.text.strip())]
    return segments_of(chars, GAP_EM * (line.size or 10.0))


def column_of(xs: list[float], x: float) -> int:
    """The column (between consecutive ``xs``) holding ``x``, clamped to the grid."""
    return min(max(bisect.bisect_right(xs, x) - 1, 0), len(xs) - 2)


def rows_of(lines: list[Line], run: list[int]) -> list[list[int]]:
    """The lines ``run`` (positions) in rows, top to bottom: lines whose heights overlap
    are one row (:func:`ingest_plugins.layout.stacked_rows`)."""
    order = sorted(run, key=lambda i: (lines[i].y0, i))
    return [[order[i] for i in row] for row in stacked_rows([lines[i] for i in order])]


def columns_of(
    segments: list[Segment], rows: int, body_size: float
) -> list[tuple[float, float]]:
    """The columns (``(x0, x1)``) the segments make: covered stretches of the width, split
    at gaps that at most one row in five crosses."""
    if not segments:
        return []
    allowed = rows // 5
    edges: list[tuple[float, int]] = []
    for segment in segments:
        edges.append((segment.x0, 1))
        edges.append((segment.x1, -1))
    edges.sort(key=lambda edge: (edge[0], -edge[1]))
    minimum = 0.5 * (body_size or 10.0)
    columns: list[tuple[float, float]] = []
    depth = 0
    start: float | None = None
    low_since: float | None = None
    for x, step in edges:
        before = depth
        depth += step
        if start is None:
            start, low_since = x, None
            continue
        if before > allowed and depth <= allowed:
            low_since = x
        elif before <= allowed < depth and low_since is not None:
            if x - low_since >= minimum:
                columns.append((start, low_since))
                start = x
            low_since = None
    if start is not None:
        end = max(segment.x1 for segment in segments)
        columns.append((start, low_since if low_since is not None else end))
    return columns
