"""Markdown from blocks, and from plain text where a page has no blocks.

* heading: as many ``#`` as its level, and its text;
* paragraph, caption, footnote, marginal note: the text as one line; a line that Markdown
  would read as something else (``# not a heading``, ``1. not a list``, ``| not a table``)
  gets a backslash before its first character;
* list item: two spaces per depth, then ``-`` for a bullet or the item's own number
  (``3.``, ``3)``); other markers (``(a)``, ``iv.``) follow a ``-``;
* table: a pipe table (GitHub's), the first row as its header; a table with spanning cells
  as HTML (``colspan``, ``rowspan``), one row per line. ``|`` inside a cell is escaped;
* figure: ``![caption]()`` (``![figure]()`` without a caption);
* running headers and footers: left out, as the ``strip_headers`` transform leaves them out
  of the text.

Blocks are separated by a blank line, the items of one list by a line break. A page without
blocks (read by OCR or by an extractor without positions) is turned into paragraphs at its
blank lines, lines joined, and lines starting with a bullet become list items.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

from ingest_plugins.structure.text import join_lines, split_marker

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ingest import Block, Table

__all__ = ["SKIPPED_KINDS", "page_markdown", "table_markdown", "text_markdown"]

#: Block kinds not written to Markdown.
SKIPPED_KINDS = frozenset({"page_header", "page_footer"})

_NEEDS_ESCAPE = re.compile(r"(?:#{1,6}(?:\s|$)|[>|]|[-+*](?:\s|$)|\d{1,9}[.)](?:\s|$)|<)")
_NUMBER = re.compile(r"\d{1,9}[.)]")


def escape_line(text: str) -> str:
    """``text`` with a backslash before its first character when Markdown would otherwise
    read the line as a heading, quote, list, table or HTML."""
    stripped = text.lstrip()
    if _NEEDS_ESCAPE.match(stripped):
        return "\\" + stripped
    return stripped


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|")


def table_markdown(table: Table) -> str:
    """A table as a pipe table, or as HTML when a cell spans rows or columns.

    :param table: the table.
    :returns: the Markdown, one row per line.
    """
    if table.spans:
        return _table_html(table)
    grid = table.grid()
    if not grid:
        return ""
    lines = ["| " + " | ".join(_cell(text) for text in grid[0]) + " |"]
    lines.append("|" + "|".join("---" for _ in grid[0]) + "|")
    lines.extend("| " + " | ".join(_cell(text) for text in row) + " |" for row in grid[1:])
    return "\n".join(lines)


def _table_html(table: Table) -> str:
    rows: dict[int, list[str]] = {}
    for cell in sorted(table.cells, key=lambda c: (c.row, c.col)):
        tag = "th" if cell.row < table.header_rows else "td"
        spans = ""
        if cell.rowspan > 1:
            spans += f' rowspan="{cell.rowspan}"'
        if cell.colspan > 1:
            spans += f' colspan="{cell.colspan}"'
        text = html.escape(" ".join(cell.text.split()), quote=False)
        rows.setdefault(cell.row, []).append(f"<{tag}{spans}>{text}</{tag}>")
    lines = ["<table>"]
    lines.extend(f"<tr>{''.join(rows.get(r, []))}</tr>" for r in range(table.rows))
    lines.append("</table>")
    return "\n".join(lines)


def _list_item(block: Block) -> str:
    indent = "  " * block.level
    found = split_marker(block.text)
    if found is None:
        return f"{indent}- {escape_line(block.text)}"
    marker, rest = found
    rest = escape_line(rest)
    if _NUMBER.fullmatch(marker):
        return f"{indent}{marker} {rest}"
    if len(marker) == 1 and not marker.isalnum():
        return f"{indent}- {rest}"
    return f"{indent}- {marker} {rest}"


def block_markdown(block: Block) -> str:
    """One block as Markdown (see the module docstring); empty for skipped kinds."""
    kind = block.kind
    if kind in SKIPPED_KINDS:
        return ""
    if kind == "heading":
        return "#" * min(6, max(1, block.level)) + " " + " ".join(block.text.split())
    if kind == "list_item":
        return _list_item(block)
    if kind == "table" and block.table is not None:
        return table_markdown(block.table)
    if kind == "figure":
        caption = " ".join(block.text.split()).replace("[", "\\[").replace("]", "\\]")
        return f"![{caption or 'figure'}]()"
    return escape_line(" ".join(block.text.split()))


def page_markdown(blocks: Sequence[Block]) -> str:
    """A page's blocks as Markdown.

    :param blocks: the blocks in reading order.
    :returns: the Markdown; blocks separated by a blank line, list items by a line break.
    """
    out: list[str] = []
    previous: Block | None = None
    for block in blocks:
        text = block_markdown(block)
        if not text:
            continue
        if out:
            together = previous is not None and previous.kind == block.kind == "list_item"
            out.append("\n" if together else "\n\n")
        out.append(text)
        previous = block
    return "".join(out)


def text_markdown(text: str) -> str:
    """Markdown from a page's plain text alone: paragraphs at blank lines, their lines
    joined, lines starting with a bullet or list number as list items.

    :param text: the page's text.
    :returns: the Markdown.
    """
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line for line in paragraph.split("\n") if line.strip()]
        if not lines:
            continue
        items: list[list[str]] = []
        for line in lines:
            if split_marker(line) is not None or not items:
                items.append([line])
            else:
                items[-1].append(line)
        rendered: list[str] = []
        for item in items:
            joined = join_lines(item)
            found = split_marker(joined)
            if found is None:
                rendered.append(escape_line(joined))
                continue
            marker, rest = found
            if _NUMBER.fullmatch(marker):
                rendered.append(f"{marker} {escape_line(rest)}")
            elif len(marker) == 1 and not marker.isalnum():
                rendered.append(f"- {escape_line(rest)}")
            else:
                rendered.append(f"- {marker} {escape_line(rest)}")
        out.append("\n".join(rendered) if len(items) > 1 else rendered[0])
    return "\n\n".join(out)
