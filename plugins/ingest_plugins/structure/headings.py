"""The document-wide part of the structure: running headers and footers, headings, levels.

Run on a whole document (its page ranges merged), because a heading is only larger than
the *document's* body text, and a header only repeats across its pages.

* **Running headers and footers**: a block among the first two or last two of its page
  (top to bottom; text larger than the body is a title, never a running header) whose
  text, with digits masked, recurs in that place on at least
  :data:`MIN_PAGES` pages and on :data:`RUNNING_SHARE` of the pages, and never elsewhere,
  becomes ``page_header`` or ``page_footer``. The text transforms remove the same lines from
  the pages' text (``strip_headers``).
* **Body size**: the font size of most characters of the paragraphs and list items.
* **Headings**: a paragraph or list item of at most :data:`MAX_HEADING_CHARS` characters and
  four lines, with a letter, not ending with ``,`` or ``;`` (a list item only when numbered
  like a section), that is either :data:`LARGER` times the body size or more, or bold at
  about the body size, numbered (``2.1 Methods``) or short and not ending with a full stop,
  and standing above content of its own: the next block starts below it within four lines,
  overlaps it, and is not another bold block of its size (the boxes of a flow chart).
  Headings the outline named (see :mod:`ingest_plugins.structure.blocks`) are kept.
* **Levels**: the heading *styles* (size to half a point, bold) are ranked, largest first.
  A heading numbered ``2.1.3`` says its depth (3), moved by the difference between depth
  and outline level most headings with both show; an outline heading says its own level;
  those are *anchors*. Every style takes the level its anchors say most often; a style without
  anchors takes one more than the style ranked above it (1 for the largest). When styles
  without anchors rank above the first anchored one (a title above numbered sections), all
  anchored levels move down to make room. A numbered heading keeps its own depth's level.
  Levels are clipped to 1..6.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ingest import Block, Page

__all__ = [
    "LARGER",
    "MAX_HEADING_CHARS",
    "MIN_PAGES",
    "RUNNING_SHARE",
    "analyse_document",
    "body_size",
    "section_depth",
]

#: A block at least this many times the body size may be a heading.
LARGER = 1.12
#: The longest heading.
MAX_HEADING_CHARS = 200
#: A running header or footer recurs on at least this many pages...
MIN_PAGES = 3
#: ...and this share of the pages with blocks.
RUNNING_SHARE = 0.4

_DIGITS = re.compile(r"\d+")
_NUMBERED = re.compile(r"\s*(\d{1,2}(?:\.\d{1,2}){0,5})\.?(?=\s+\S)")
_LETTER = re.compile(r"[^\W\d_]")
_STRUCTURE = ("paragraph", "list_item")


def section_depth(text: str) -> int:
    """The depth a section number at the start of ``text`` says: ``2.1.3 Results`` is 3,
    ``4 Discussion`` is 1, no number is 0."""
    match = _NUMBERED.match(text)
    return match[1].count(".") + 1 if match else 0


def body_size(blocks: Sequence[Block]) -> float:
    """The font size of most characters of the paragraphs and list items of ``blocks``."""
    weights: Counter[float] = Counter()
    for block in blocks:
        if block.kind in _STRUCTURE and block.size > 0:
            weights[round(block.size * 2) / 2] += len(block.text)
    return max(weights, key=lambda size: (weights[size], -size)) if weights else 0.0


def analyse_document(pages: Sequence[Page]) -> None:
    """Mark running headers and footers, and decide the headings and their levels, in the
    blocks of ``pages`` (in place; the rules are in the module docstring).

    :param pages: the document's pages; those without blocks are left alone.
    """
    analysed = [page for page in pages if page.blocks]
    if not analysed:
        return
    blocks = [block for page in analysed for block in page.blocks]
    body = body_size(blocks)
    _mark_running(analysed, body)
    found: list[Block] = []
    for page in analysed:
        chosen = [
            index
            for index, block in enumerate(page.blocks)
            if block.kind in _STRUCTURE and _is_heading(block, body, _after(page.blocks, index))
        ]
        for index in chosen:
            page.blocks[index].kind = "heading"
            page.blocks[index].level = 0  # decided below
    for block in blocks:
        if block.kind == "heading":
            found.append(block)
    _assign_levels(found)


def _key(text: str) -> str:
    return _DIGITS.sub("#", " ".join(text.split())).casefold()


def _edges(page: Page, body: float) -> tuple[list[int], list[int]]:
    """The indexes of the top two and the bottom two blocks of a page (tables, figures and
    text larger than the body, which is a title, excluded), and of the others."""
    order = sorted(
        (
            i
            for i, b in enumerate(page.blocks)
            if b.kind in (*_STRUCTURE, "heading", "marginal")
            and (body <= 0 or b.size < LARGER * body)
        ),
        key=lambda i: page.blocks[i].bbox[1],
    )
    if len(order) <= 4:
        return order, []
    return order[:2] + order[-2:], order[2:-2]


def _mark_running(pages: Sequence[Page], body: float) -> None:
    if len(pages) < MIN_PAGES:
        return
    edge_pages: Counter[str] = Counter()
    inner: set[str] = set()
    for page in pages:
        edges, others = _edges(page, body)
        edge_pages.update({_key(page.blocks[i].text) for i in edges})
        inner.update(_key(page.blocks[i].text) for i in others)
    needed = max(MIN_PAGES, math.ceil(RUNNING_SHARE * len(pages)))
    running = {key for key, count in edge_pages.items() if count >= needed and key not in inner}
    if not running:
        return
    for page in pages:
        edges, _ = _edges(page, body)
        if not edges:
            continue
        tops = sorted(page.blocks[i].bbox[1] for i in edges)
        middle = (tops[0] + tops[-1]) / 2
        for index in edges:
            block = page.blocks[index]
            if _key(block.text) in running:
                block.kind = "page_header" if block.bbox[1] <= middle else "page_footer"
                block.level = 0


def _lines(block: Block) -> float:
    height = block.bbox[3] - block.bbox[1]
    return height / max(block.size * 1.15, 1.0) if block.size else 1.0


def _after(blocks: list[Block], index: int) -> Block | None:
    """The block read after ``blocks[index]`` in the same flow (footnotes, marginalia and
    running headers and footers skipped); ``None`` at the end of the page."""
    for block in blocks[index + 1 :]:
        if block.kind in ("footnote", "marginal", "page_header", "page_footer"):
            continue
        return block
    return None


def _leads(block: Block, following: Block | None) -> bool:
    """Whether ``block`` stands above content of its own: the next block is not another
    short bold block of the same size (the boxes of a flow chart), starts below it within
    a few lines, and overlaps it horizontally."""
    if following is None:
        return True
    if following.kind in _STRUCTURE and following.bold and abs(following.size - block.size) < 0.5:
        return False
    gap = following.bbox[1] - block.bbox[3]
    if gap < -2 and following.bbox[0] > block.bbox[2]:
        return True  # the heading ends its column; its text goes on at the next one's top
    overlap = min(following.bbox[2], block.bbox[2]) - max(following.bbox[0], block.bbox[0])
    return -2 <= gap <= 4 * max(block.size, 6.0) and overlap > 0


def _is_heading(block: Block, body: float, following: Block | None) -> bool:
    text = block.text.strip()
    if not text or len(text) > MAX_HEADING_CHARS or not _LETTER.search(text):
        return False
    if block.kind == "list_item" and not section_depth(text):
        return False  # a bulleted item is a list item however it is set
    if text.endswith((",", ";")) or _lines(block) > 4.5:
        return False
    if body <= 0 or block.size <= 0:
        return False
    if block.size >= LARGER * body:
        return True
    if not block.bold or block.size < 0.9 * body or not _leads(block, following):
        return False
    if section_depth(text):
        return True
    return len(text) <= 120 and not text.endswith(".") and _lines(block) <= 2.5


def _style(block: Block) -> tuple[float, bool]:
    return (round(block.size * 2) / 2, block.bold)


def _assign_levels(headings: list[Block]) -> None:
    if not headings:
        return
    styles = sorted({_style(h) for h in headings}, key=lambda s: (-s[0], not s[1]))
    anchors: dict[tuple[float, bool], Counter[int]] = {}
    own: dict[int, int] = {}
    # Section numbers count depth from the sections' own top; the outline counts from its
    # top, which may hold a title above them: the usual difference between the two, where
    # a heading has both, says how deep a numbered heading outside the outline sits.
    shifts = Counter(
        h.level - section_depth(h.text) for h in headings if h.level > 0 and section_depth(h.text)
    )
    shift = shifts.most_common(1)[0][0] if shifts else 0
    for heading in headings:
        depth = section_depth(heading.text)
        level = heading.level if heading.level > 0 else (depth + shift if depth else 0)
        if level > 0:
            own[id(heading)] = level
            anchors.setdefault(_style(heading), Counter())[level] += 1
    level_of: dict[tuple[float, bool], int] = {}
    previous = 0
    offset = 0
    if anchors:
        first = next(i for i, style in enumerate(styles) if style in anchors)
        first_level = anchors[styles[first]].most_common(1)[0][0]
        # Styles above the first anchored one need levels above it.
        offset = max(0, first - (first_level - 1))
    for style in styles:
        if style in anchors:
            previous = anchors[style].most_common(1)[0][0] + offset
        else:
            previous += 1
        level_of[style] = previous
    for heading in headings:
        level = own.get(id(heading))
        heading.level = min(6, max(1, level + offset if level else level_of[_style(heading)]))
