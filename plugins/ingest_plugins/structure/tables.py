"""Tables on a page, from the rules drawn around their cells or from the alignment of text.

**Ruled tables.** The page's straight rules are merged where they continue each other, and
grouped where horizontal and vertical ones cross. A group with at least two of each is a
grid: its rows lie between the distinct heights of its horizontal rules, its columns between
the distinct positions of its vertical ones (the group's outer edges count where a side is
open). A grid cell merges with its right neighbour where no vertical rule separates them and
with the one below where no horizontal rule does: cells that span several columns or rows
come out as one cell with ``colspan`` / ``rowspan``. Each character of the lines inside the
grid goes to the cell under its centre; a cell's lines are joined with spaces. A grid of
fewer than two rows or two columns, or whose cells hold paragraphs (a frame around text),
is not a table. Rows and columns left entirely empty are dropped when no cell spans.

**Tables without rules.** Lines made of several runs of text with wide gaps between them
(at least :data:`GAP_EM` font sizes) are candidate rows; at least :data:`MIN_ROWS`
consecutive rows close together make a candidate table. Its columns are where the runs of
its rows cover the page's width, the gaps between them where at most one row in five crosses
(a title cell spanning columns); a run covering several columns is a spanning cell. It is a
table when it has two columns or more, most rows fill two cells or more, its cells are short
(:data:`MAX_CELL_CHARS` characters on average), and its first column is not made of list
markers (a list with a wide gap after its bullets). Lines read as one row where their
heights overlap.

The first row is the header (``header_rows=1``).
"""

from __future__ import annotations

import bisect
import copy
import itertools
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ingest import Table, TableCell
from ingest_plugins.structure.facts import Char, Segment, segments_of
from ingest_plugins.structure.text import LIST_MARKER

if TYPE_CHECKING:
    from ingest import BBox
    from ingest_plugins.layout import Line
    from ingest_plugins.structure.facts import PageFacts, Rule

__all__ = ["GAP_EM", "MAX_CELL_CHARS", "MIN_ROWS", "FoundTable", "find_tables", "table_text"]

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


def find_tables(facts: PageFacts, body_size: float) -> list[FoundTable]:
    """The tables of a page: ruled ones first, then ones found by alignment among the
    lines the ruled ones did not take.

    :param facts: the page.
    :param body_size: the page's body font size (0 when unknown).
    :returns: the tables, each with the lines it took.
    """
    found = _ruled_tables(facts)
    taken: set[int] = set()
    for table in found:
        taken |= table.lines
    found.extend(_aligned_tables(facts, body_size, taken))
    return found


# --------------------------------------------------------------------------------------------
# Ruled tables
# --------------------------------------------------------------------------------------------


def _merge(rules: list[tuple[float, float, float]]) -> list[list[float]]:
    """Collinear rules ``(position, start, end)`` merged where they overlap or nearly touch."""
    merged: list[list[float]] = []
    for position, start, end in sorted(rules):
        for other in reversed(merged[-8:]):
            if abs(other[0] - position) <= SNAP / 2 and start <= other[2] + SNAP:
                other[2] = max(other[2], end)
                break
        else:
            merged.append([position, start, end])
    return merged


def _cluster(values: list[float]) -> list[float]:
    out: list[float] = []
    for value in sorted(values):
        if out and value - out[-1] <= SNAP * 1.5:
            continue
        out.append(value)
    return out


class _Rules:
    """Merged rules of one direction, by position, to ask whether a stretch is ruled;
    ``virtual`` positions count as ruled everywhere (boundaries the text shows)."""

    def __init__(self, rules: list[list[float]], virtual: list[float] | None = None) -> None:
        self.virtual = virtual or []
        self.by_slot: dict[int, list[list[float]]] = {}
        for rule in rules:
            slot = round(rule[0] / SNAP)
            for near in (slot - 1, slot, slot + 1):
                self.by_slot.setdefault(near, []).append(rule)

    def covered(self, position: float, start: float, end: float) -> bool:
        """Whether rules at ``position`` cover most of ``start..end``."""
        length = end - start
        if length <= 0 or any(abs(position - v) < 1e-6 for v in self.virtual):
            return True
        covered = sum(
            max(0.0, min(end, rule[2]) - max(start, rule[1]))
            for rule in self.by_slot.get(round(position / SNAP), ())
            if abs(rule[0] - position) <= SNAP * 1.5
        )
        return covered >= 0.6 * length


def _components(
    horizontal: list[list[float]], vertical: list[list[float]]
) -> list[tuple[list[list[float]], list[list[float]]]]:
    parent = list(range(len(horizontal) + len(vertical)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for h_index, (y, x0, x1) in enumerate(horizontal):
        for v_index, (x, y0, y1) in enumerate(vertical):
            if x0 - SNAP <= x <= x1 + SNAP and y0 - SNAP <= y <= y1 + SNAP:
                parent[root(h_index)] = root(len(horizontal) + v_index)
    groups: dict[int, tuple[list[list[float]], list[list[float]]]] = {}
    for index, rule in enumerate(horizontal):
        groups.setdefault(root(index), ([], []))[0].append(rule)
    for index, rule in enumerate(vertical):
        groups.setdefault(root(len(horizontal) + index), ([], []))[1].append(rule)
    return [group for group in groups.values() if len(group[0]) >= 2 and len(group[1]) >= 2]


def _ruled_tables(facts: PageFacts) -> list[FoundTable]:
    rules: list[Rule] = facts.rules
    if len(rules) < 4:
        return []
    # Rules shorter than a cell can be are tick marks and glyph strokes.
    horizontal = [r for r in _merge([(r.y0, r.x0, r.x1) for r in rules if r.horizontal])
                  if r[2] - r[1] >= MIN_RULE]  # fmt: skip
    vertical = [r for r in _merge([(r.x0, r.y0, r.y1) for r in rules if not r.horizontal])
                if r[2] - r[1] >= MIN_RULE]  # fmt: skip
    if len(horizontal) < 2 or len(vertical) < 2 or len(horizontal) * len(vertical) > 250_000:
        return []
    found: list[FoundTable] = []
    for hs, vs in _components(horizontal, vertical):
        xs = _cluster([v[0] for v in vs] + [min(h[1] for h in hs), max(h[2] for h in hs)])
        ys = _cluster([h[0] for h in hs] + [min(v[1] for v in vs), max(v[2] for v in vs)])
        if len(xs) < 3 or len(ys) < 3:
            continue
        table = _grid_table(facts, hs, vs, xs, ys)
        if table is not None:
            found.append(table)
    return found


def _grid_table(
    facts: PageFacts,
    hs: list[list[float]],
    vs: list[list[float]],
    xs: list[float],
    ys: list[float],
) -> FoundTable | None:
    left, top, right, bottom = xs[0], ys[0], xs[-1], ys[-1]
    taken: list[int] = []
    for index, line in enumerate(facts.lines):
        middle = (line.y0 + line.y1) / 2
        # Inside a grid is table content, whatever the reading order made of a small font.
        if line.kind == "marginal" or not top < middle < bottom:
            continue
        if min(line.x1, right) - max(line.x0, left) < 0.5 * max(line.x1 - line.x0, 1e-3):
            continue
        taken.append(index)
    if not taken:
        return None
    # A frame around paragraphs is not a table: judged before any character is read.
    if sum(facts.lines[i].chars for i in taken) > MAX_RULED_CELL_CHARS * (len(xs) - 1) * (len(ys) - 1):
        return None
    extra_x = _unruled_columns(facts, taken, xs)
    extra_y = _unruled_rows(facts, taken, xs, ys)
    xs, ys = sorted([*xs, *extra_x]), sorted([*ys, *extra_y])
    verticals, horizontals = _Rules(vs, extra_x), _Rules(hs, extra_y)
    rows, cols = len(ys) - 1, len(xs) - 1
    owner: list[list[tuple[int, int]]] = [[(-1, -1)] * cols for _ in range(rows)]
    spans: dict[tuple[int, int], tuple[int, int]] = {}
    for r in range(rows):
        for c in range(cols):
            if owner[r][c] != (-1, -1):
                continue
            width = 1
            while (
                c + width < cols
                and owner[r][c + width] == (-1, -1)
                and not verticals.covered(xs[c + width], ys[r], ys[r + 1])
            ):
                width += 1
            height = 1
            while r + height < rows and all(
                owner[r + height][k] == (-1, -1)
                and not horizontals.covered(ys[r + height], xs[k], xs[k + 1])
                for k in range(c, c + width)
            ):
                height += 1
            for rr in range(r, r + height):
                for cc in range(c, c + width):
                    owner[rr][cc] = (r, c)
            spans[(r, c)] = (height, width)
    texts: dict[tuple[int, int], list[tuple[int, str]]] = {}
    rest: dict[int, Line] = {}
    for index in taken:
        line = facts.lines[index]
        middle = (line.y0 + line.y1) / 2
        row = min(max(bisect.bisect_right(ys, middle) - 1, 0), rows - 1)
        inside, outside = _split_by_columns(facts, index, xs)
        for col, text in inside:
            texts.setdefault(owner[row][col], []).append((index, text))
        if outside and "".join(c.text for c in outside).strip():
            remainder = copy.copy(line)
            remainder.text = "".join(c.text for c in outside).strip()
            remainder.x0 = min(c.x0 for c in outside if c.text.strip())
            remainder.x1 = max(c.x1 for c in outside if c.text.strip())
            rest[index] = remainder
    cells = [
        TableCell(r, c, " ".join(t.strip() for _, t in sorted(texts.get((r, c), [])) if t.strip()),
                  rowspan=height, colspan=width)  # fmt: skip
        for (r, c), (height, width) in sorted(spans.items())
    ]
    table = _compact(_drop_empty(Table(rows, cols, cells, header_rows=1, ruled=True)))
    filled = [cell for cell in table.cells if cell.text]
    if table.rows < 2 or table.cols < 2 or len(filled) < 2:
        return None
    if statistics.fmean(len(cell.text) for cell in filled) > MAX_RULED_CELL_CHARS:
        return None
    return FoundTable(table, (left, top, right, bottom), set(taken), rest)


def _line_segments(facts: PageFacts, index: int) -> list[Segment]:
    line = facts.lines[index]
    chars = facts.chars_of(index)
    if not chars:
        return [Segment(line.x0, line.x1, line.text.strip())]
    return segments_of(chars, GAP_EM * (line.size or 10.0))


def _unruled_columns(facts: PageFacts, taken: list[int], xs: list[float]) -> list[float]:
    """Boundaries inside the grid's columns where every line with text there leaves the
    same wide gap (a column whose rule is not drawn)."""
    extra: list[float] = []
    segments = {index: _line_segments(facts, index) for index in taken}
    for left, right in itertools.pairwise(xs):
        rows = [
            [s for s in segments[index] if left <= (s.x0 + s.x1) / 2 < right]
            for index in taken
        ]
        rows = [row for row in rows if row]
        if len(rows) < 2 or sum(1 for row in rows if len(row) >= 2) < 0.8 * len(rows):
            continue
        for start, end in _columns([s for row in rows for s in row], 0, 0.0)[1:]:
            extra.append(start - 0.5)
            del end
    return extra


def _unruled_rows(
    facts: PageFacts, taken: list[int], xs: list[float], ys: list[float]
) -> list[float]:
    """Boundaries inside the grid's rows between bands of lines that each fill two cells
    or more (rows whose rule is not drawn); a row of wrapped cells is left whole."""
    extra: list[float] = []
    lines = facts.lines
    for top, bottom in itertools.pairwise(ys):
        inside = [i for i in taken if top <= (lines[i].y0 + lines[i].y1) / 2 < bottom]
        bands = _rows(lines, inside)
        if len(bands) < 2:
            continue
        filled = [
            len({_column(xs, (s.x0 + s.x1) / 2) for i in band for s in _line_segments(facts, i)})
            for band in bands
        ]
        if min(filled) >= 2:
            for upper, lower in itertools.pairwise(bands):
                extra.append(
                    (max(lines[i].y1 for i in upper) + min(lines[i].y0 for i in lower)) / 2
                )
    return extra


def _compact(table: Table) -> Table:
    """``table`` without the grid rows where no cell starts (every position covered by a
    cell from above): those are artefacts of rules that stop short, not rows."""
    starting = {cell.row for cell in table.cells}
    if len(starting) == table.rows:
        return table
    keep = sorted(starting)
    new_row = {row: index for index, row in enumerate(keep)}
    cells = []
    for cell in table.cells:
        last = cell.row + cell.rowspan - 1
        span = sum(1 for row in keep if cell.row <= row <= last)
        cells.append(TableCell(new_row[cell.row], cell.col, cell.text, max(1, span), cell.colspan))
    return Table(len(keep), table.cols, cells, table.header_rows, table.ruled)


def _split_by_columns(
    facts: PageFacts, index: int, xs: list[float]
) -> tuple[list[tuple[int, str]], list[Char]]:
    """The text of line ``index`` cut at the columns ``xs``: ``(column, text)`` pairs, and
    the characters that lie outside the columns."""
    line = facts.lines[index]
    chars = facts.chars_of(index)
    if not chars:
        middle = (line.x0 + line.x1) / 2
        return [(_column(xs, middle), line.text)], []
    parts: dict[int, list[str]] = {}
    outside: list[Char] = []
    last = -1
    low, high = xs[0] - 1, xs[-1] + 1
    for char in chars:
        middle = (char.x0 + char.x1) / 2
        if not char.text.strip():
            if outside and middle > high:
                outside.append(char)
            elif last >= 0:
                parts[last].append(" ")
            continue
        if not low <= middle <= high:
            outside.append(char)
            continue
        last = _column(xs, middle)
        parts.setdefault(last, []).append(char.text)
    return [(col, "".join(text)) for col, text in sorted(parts.items())], outside


def _column(xs: list[float], x: float) -> int:
    return min(max(bisect.bisect_right(xs, x) - 1, 0), len(xs) - 2)


def _drop_empty(table: Table) -> Table:
    """``table`` without the rows and columns where no cell has text (when nothing spans)."""
    if table.spans:
        return table
    grid = table.grid()
    keep_rows = [r for r in range(table.rows) if any(grid[r])]
    keep_cols = [c for c in range(table.cols) if any(grid[r][c] for r in range(table.rows))]
    if len(keep_rows) == table.rows and len(keep_cols) == table.cols:
        return table
    cells = [
        TableCell(new_r, new_c, grid[r][c])
        for new_r, r in enumerate(keep_rows)
        for new_c, c in enumerate(keep_cols)
    ]
    return Table(len(keep_rows), len(keep_cols), cells, table.header_rows, table.ruled)


# --------------------------------------------------------------------------------------------
# Tables without rules
# --------------------------------------------------------------------------------------------


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


def _aligned_tables(facts: PageFacts, body_size: float, taken: set[int]) -> list[FoundTable]:
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
            and len(_line_segments(facts, above)) >= 2
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
    rows = _rows(lines, run)
    if len(rows) < MIN_ROWS:
        return None
    columns = _columns([s for index in run for s in segments[index]], len(rows), body_size)
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


def _rows(lines: list[Line], run: list[int]) -> list[list[int]]:
    rows: list[list[int]] = []
    bottom = float("-inf")
    for index in sorted(run, key=lambda i: (lines[i].y0, i)):
        line = lines[index]
        middle = (line.y0 + line.y1) / 2
        if rows and middle <= bottom:
            rows[-1].append(index)
            bottom = max(bottom, line.y1)
        else:
            rows.append([index])
            bottom = line.y1
    return rows


def _columns(segments: list[Segment], rows: int, body_size: float) -> list[tuple[float, float]]:
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


def _overlapping(columns: list[tuple[float, float]], starts: list[float], x0: float, x1: float) -> int:
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
        for cell, following in zip(row, row[1:], strict=False):
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
