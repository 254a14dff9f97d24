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

from typing import TYPE_CHECKING

from ingest_plugins.structure.aligned import aligned_tables
from ingest_plugins.structure.cells import (
    GAP_EM,
    MAX_CELL_CHARS,
    MIN_ROWS,
    FoundTable,
    table_text,
)
from ingest_plugins.structure.ruled import ruled_tables

if TYPE_CHECKING:
    from ingest_plugins.structure.facts import PageFacts

__all__ = ["GAP_EM", "MAX_CELL_CHARS", "MIN_ROWS", "FoundTable", "find_tables", "table_text"]


def find_tables(facts: PageFacts, body_size: float) -> list[FoundTable]:
    """The tables of a page: ruled ones first, then ones found by alignment among the
    lines the ruled ones did not take.

    :param facts: the page.
    :param body_size: the page's body font size (0 when unknown).
    :returns: the tables, each with the lines it took.
    """
    found = ruled_tables(facts)
    taken: set[int] = set()
    for table in found:
        taken |= table.lines
    found.extend(aligned_tables(facts, body_size, taken))
    return found
