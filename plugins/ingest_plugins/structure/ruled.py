"""Tables from the rules drawn around their cells (see :mod:`ingest_plugins.structure.tables`)."""

from __future__ import annotations

import bisect
import copy
import itertools
import statistics
from typing import TYPE_CHECKING

from ingest import Table, TableCell

from ingest_plugins.structure.cells import (
    MAX_RULED_CELL_CHARS,
    MIN_RULE,
    SNAP,
    FoundTable,
    column_of,
    columns_of,
    line_segments,
    rows_of,
)

if TYPE_CHECKING:
    from ingest_plugins.layout import Line
    from ingest_plugins.structure.facts import Char, PageFacts, Rule

__all__ = ["ruled_tables"]


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


def ruled_tables(facts: PageFacts) -> list[FoundTable]:
    """The ruled tables of a page (the rules are in :mod:`ingest_plugins.structure.tables`)."""
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
    cells = (len(xs) - 1) * (len(ys) - 1)
    if sum(facts.lines[i].chars for i in taken) > MAX_RULED_CELL_CHARS * cells:
        return None
    extra_x = _unruledcolumns_of(facts, taken, xs)
    extra_y = _unruledrows_of(facts, taken, xs, ys)
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
        inside, outside = _split_bycolumns_of(facts, index, xs)
        for col, text in inside:
            texts.setdefault(owner[row][col], []).append((index, text))
        if outside and "".join(c.text for c in outside).strip():
            remainder = copy.copy(line)
            remainder.text = "".join(c.text for c in outside).strip()
            remainder.x0 = min(c.x0 for c in outside if c.text.strip())
            remainder.x1 = max(c.x1 for c in outside if c.text.strip())
            rest[index] = remainder
    cells = [
        TableCell(r, c, _joined(texts.get((r, c), [])), rowspan=height, colspan=width)
        for (r, c), (height, width) in sorted(spans.items())
    ]
    table = _compact(_drop_empty(Table(rows, cols, cells, header_rows=1, ruled=True)))
    filled = [cell for cell in table.cells if cell.text]
    if table.rows < 2 or table.cols < 2 or len(filled) < 2:
        return None
    if statistics.fmean(len(cell.text) for cell in filled) > MAX_RULED_CELL_CHARS:
        return None
    return FoundTable(table, (left, top, right, bottom), set(taken), rest)


def _joined(parts: list[tuple[int, str]]) -> str:
    """A cell's text: its lines' parts in reading order, joined by spaces."""
    return " ".join(text.strip() for _, text in sorted(parts) if text.strip())


def _unruledcolumns_of(facts: PageFacts, taken: list[int], xs: list[float]) -> list[float]:
    """Boundaries inside the grid's columns where every line with text there leaves the
    same wide gap (a column whose rule is not drawn)."""
    extra: list[float] = []
    segments = {index: line_segments(facts, index) for index in taken}
    for left, right in itertools.pairwise(xs):
        rows = [
            [s for s in segments[index] if left <= (s.x0 + s.x1) / 2 < right]
            for index in taken
        ]
        rows = [row for row in rows if row]
        if len(rows) < 2 or sum(1 for row in rows if len(row) >= 2) < 0.8 * len(rows):
            continue
        for start, end in columns_of([s for row in rows for s in row], 0, 0.0)[1:]:
            extra.append(start - 0.5)
            del end
    return extra


def _unruledrows_of(
    facts: PageFacts, taken: list[int], xs: list[float], ys: list[float]
) -> list[float]:
    """Boundaries inside the grid's rows between bands of lines that each fill two cells
    or more (rows whose rule is not drawn); a row of wrapped cells is left whole."""
    extra: list[float] = []
    lines = facts.lines
    for top, bottom in itertools.pairwise(ys):
        inside = [i for i in taken if top <= (lines[i].y0 + lines[i].y1) / 2 < bottom]
        bands = rows_of(lines, inside)
        if len(bands) < 2:
            continue
        filled = [
            len({column_of(xs, (s.x0 + s.x1) / 2) for i in band for s in line_segments(facts, i)})
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


def _split_bycolumns_of(
    facts: PageFacts, index: int, xs: list[float]
) -> tuple[list[tuple[int, str]], list[Char]]:
    """The text of line ``index`` cut at the columns ``xs``: ``(column, text)`` pairs, and
    the characters that lie outside the columns."""
    line = facts.lines[index]
    chars = facts.chars_of(index)
    if not chars:
        middle = (line.x0 + line.x1) / 2
        return [(column_of(xs, middle), line.text)], []
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
        last = column_of(xs, middle)
        parts.setdefault(last, []).append(char.text)
    return [(col, "".join(text)) for col, text in sorted(parts.items())], outside


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
