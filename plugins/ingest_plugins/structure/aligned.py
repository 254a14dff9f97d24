"""Tables from the alignment of text, without rules (see
:mod:`ingest_plugins.structure.tables`)."""

from __future__ import annotations

import bisect
import itertools
import statistics
from typing import TYPE_CHECKING

from ingest import Table, TableCell

from ingest_plugins.structure.cells import (
    GAP_EM,
    MAX_CELL_CHARS,
    MIN_ROWS,
    FoundTable,
    columns_of,
    line_segments,
    rows_of,
)
from ingest_plugins.structure.facts import Segment, segments_of
from ingest_plugins.structure.text import LIST_MARKER

if TYPE_CHECKING:
    from ingest_plugins.layout import Line
    from ingest_plugins.structure.facts import Char, PageFacts

__all__ = ["aligned_tables"]


def _gap(line: Line, body_size: float) -> float:
    return GAP_EM * (line.size or body_size or 10.0)


def _runs(facts: PageFacts, index: int, gap: float) -> int:
    """How many runs of text separated by at least ``gap`` line ``index`` has (cheap: from
    the extractor's text runs, or the characters when they are known)."""
    rects = facts.rects.get(index)
    if rects:
        count, end = 1, rects[0][1]
        for x0, x1 in rects[1:]:
            if x0 - end >= gap:
                count += 1
            end = max(end, x1)
        return count
    chars = facts.chars.get(index)
    return len(segments_of(chars, gap)) if chars else 1


def aligned_tables(facts: PageFacts, body_size: float, taken: set[int]) -> list[FoundTable]:
    """The tables without rules among the lines of a page not in ``taken`` (the rules are
    in :mod:`ingest_plugins.structure.tables`)."""
    lines = facts.lines
    if not facts.rects and not facts.chars:
        return []
    runs = {
        index: _runs(facts, index, _gap(line, body_size))
        for index, line in enumerate(lines)
        if index not in taken and line.kind in ("body", "footnote")
    }
    candidates = [index for index, count in runs.items() if count >= 2]
    found: list[FoundTable] = []
    for run in _consecutive(lines, candidates, taken):
        # A table in a smaller font low on the page reads as footnotes by its size; notes
        # with a wide gap after their number read as rows of two cells: such rows need a
        # row of body text with them, or three cells.
        if all(lines[i].kind == "footnote" for i in run) and min(runs.get(i, 1) for i in run) < 3:
            continue
        # The header row above is often bold, dense enough to pass for prose by its width:
        # its own gaps decide.
        above = run[0] - 1
        if (
            above >= 0
            and above not in taken
            and lines[above].kind in ("body", "footnote")
            and _close(lines[above], lines[run[0]])
            and len(line_segments(facts, above)) >= 2
        ):
            run.insert(0, above)
        table = _aligned_table(facts, run, body_size)
        if table is not None:
            found.append(table)
    return found


def _consecutive(lines: list[Line], candidates: list[int], taken: set[int]) -> list[list[int]]:
    """Runs of candidate rows that follow each other closely in reading order; a single
    line without a gap between two candidates (a row with one cell) stays in the run."""
    runs: list[list[int]] = []
    wanted = set(candidates)
    current: list[int] = []
    index = 0
    while index < len(lines):
        if index in wanted:
            if current and not _close(lines[current[-1]], lines[index]):
                runs.append(current)
                current = []
            current.append(index)
        elif (
            current
            and index + 1 in wanted
            and index not in taken
            and lines[index].kind in ("body", "footnote")
            and _close(lines[current[-1]], lines[index])
            and _close(lines[index], lines[index + 1])
        ):
            current.append(index)
        elif current:
            runs.append(current)
            current = []
        index += 1
    if current:
        runs.append(current)
    return [run for run in runs if sum(1 for i in run if i in wanted) >= MIN_ROWS - 1]


def _close(above: Line, below: Line) -> bool:
    height = max(above.y1 - above.y0, below.y1 - below.y0, 1.0)
    return -0.5 * height <= below.y0 - above.y1 <= 1.2 * height


def _aligned_table(facts: PageFacts, run: list[int], body_size: float) -> FoundTable | None:
    lines = facts.lines
    segments: dict[int, list[Segment]] = {}
    for index in run:
        chars: list[Char] = facts.chars_of(index)
        line = lines[index]
        found = segments_of(chars, _gap(line, body_size)) if chars else []
        segments[index] = found or [Segment(line.x0, line.x1, line.text.strip())]
    rows = rows_of(lines, run)
    if len(rows) < MIN_ROWS:
        return None
    columns = columns_of([s for index in run for s in segments[index]], len(rows), body_size)
    if len(columns) < 2:
        return None
    starts = [start for start, _ in columns]
    cells: list[TableCell] = []
    for r, row in enumerate(rows):
        parts: dict[int, tuple[int, list[str]]] = {}
        for index in row:
            for segment in segments[index]:
                first = _overlapping(columns, starts, segment.x0, segment.x1)
                last = first
                while last + 1 < len(columns) and columns[last + 1][0] < segment.x1 - 1:
                    last += 1
                width, texts = parts.get(first, (1, []))
                parts[first] = (max(width, last - first + 1), [*texts, segment.text])
        for c, (width, texts) in sorted(parts.items()):
            cells.append(TableCell(r, c, " ".join(texts), colspan=width))
    table = Table(len(rows), len(columns), _no_overlaps(cells), header_rows=1, ruled=False)
    if not _plausible(table):
        return None
    boxes = [lines[index] for index in run]
    bbox = (min(b.x0 for b in boxes), min(b.y0 for b in boxes),
            max(b.x1 for b in boxes), max(b.y1 for b in boxes))  # fmt: skip
    return FoundTable(table, bbox, set(run))


def _overlapping(
    columns: list[tuple[float, float]], starts: list[float], x0: float, x1: float
) -> int:
    index = max(0, bisect.bisect_right(starts, x0 + 1) - 1)
    while index + 1 < len(columns) and columns[index][1] < x0 and columns[index + 1][0] <= x1:
        index += 1
    return index


def _no_overlaps(cells: list[TableCell]) -> list[TableCell]:
    """Drop the spans that would cover a cell of their own row (keep the text)."""
    by_row: dict[int, list[TableCell]] = {}
    for cell in cells:
        by_row.setdefault(cell.row, []).append(cell)
    for row in by_row.values():
        row.sort(key=lambda cell: cell.col)
        for cell, following in itertools.pairwise(row):
            cell.colspan = max(1, min(cell.colspan, following.col - cell.col))
    return cells


def _plausible(table: Table) -> bool:
    grid = table.grid()
    filled_rows = sum(1 for row in grid if sum(1 for cell in row if cell) >= 2)
    if filled_rows < max(2, 0.6 * table.rows):
        return False
    texts = [cell.text for cell in table.cells if cell.text]
    if statistics.fmean(len(text) for text in texts) > MAX_CELL_CHARS:
        return False
    first = [row[0] for row in grid if row[0]]
    markers = sum(1 for text in first if LIST_MARKER.fullmatch(text + " ") is not None)
    return markers * 10 < 7 * max(1, len(first))
