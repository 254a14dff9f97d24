"""What a page shows, as the structure analysis reads it, independent of any PDF library.

An extractor turns a page into :class:`PageFacts`: its lines in reading order (with boxes,
font size and weight), the characters of the lines where columns of a table may be, the
straight rules drawn on it, its images and the outline entries that point at it. All
coordinates are points from the page's top-left corner, ``y`` growing downwards.
:mod:`ingest_plugins.structure.pdfium_reader` makes them with PDFium; tests make them by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest import BBox

    from ingest_plugins.layout import Line

__all__ = ["Char", "OutlineEntry", "PageFacts", "Rule", "Segment", "segments_of"]


@dataclass(slots=True)
class Char:
    """One character of a line with its horizontal extent (spaces included, as read)."""

    x0: float
    x1: float
    text: str


@dataclass(slots=True)
class Segment:
    """A run of a line's text with no wide gap inside: a table cell's share of the line."""

    x0: float
    x1: float
    text: str


@dataclass(slots=True)
class Rule:
    """A straight horizontal or vertical line drawn on the page (a table's ruling).

    :param horizontal: ``True`` for a horizontal rule (``y0 == y1``), else vertical.
    """

    x0: float
    y0: float
    x1: float
    y1: float
    horizontal: bool


@dataclass(slots=True)
class OutlineEntry:
    """A bookmark of the PDF's outline pointing at this page.

    :param level: its depth in the outline (0 for the top).
    :param title: its title.
    :param y: where on the page it points (``None`` when the destination has no position).
    """

    level: int
    title: str
    y: float | None = None


@dataclass(slots=True)
class PageFacts:
    """Everything the analysis of one page reads.

    :param width: the page's width; ``height`` its height.
    :param lines: its lines in reading order, with ``kind`` body, footnote or marginal.
    :param chars: for some lines (by their position in ``lines``), their characters: the
        lines that may be table rows.
    :param rects: for each line (by position), the horizontal extents of its runs of text
        as the extractor grouped them (one per text object); empty when not read.
    :param rules: straight rules.
    :param images: boxes of the images drawn on the page.
    :param outline: the outline entries pointing at the page.
    :param read_chars: reads the characters of a line (by position) that ``chars`` lacks.
    """

    width: float
    height: float
    lines: list[Line]
    chars: dict[int, list[Char]] = field(default_factory=dict)
    rects: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    images: list[BBox] = field(default_factory=list)
    outline: list[OutlineEntry] = field(default_factory=list)
    read_chars: Callable[[int], list[Char]] | None = None

    def chars_of(self, index: int) -> list[Char]:
        """The characters of line ``index``, read once when ``chars`` lacks them.

        :returns: the characters; empty when nobody can read them.
        """
        found = self.chars.get(index)
        if found is None:
            found = self.read_chars(index) if self.read_chars is not None else []
            self.chars[index] = found
        return found


def segments_of(chars: list[Char], gap: float) -> list[Segment]:
    """Cut a line's characters into segments at every gap at least ``gap`` wide.

    :param chars: the characters in reading order (spaces may be included; their boxes do
        not count, only the visible characters' do).
    :param gap: the narrowest gap that separates two segments.
    :returns: the segments, their text stripped; empty for a line of spaces.
    """
    segments: list[Segment] = []
    text: list[str] = []
    x0 = x1 = 0.0
    for char in chars:
        if not char.text.strip():
            if text:
                text.append(char.text)
            continue
        if text and char.x0 - x1 >= gap:
            segments.append(Segment(x0, x1, "".join(text).strip()))
            text = []
        if not text:
            x0 = char.x0
        text.append(char.text)
        x1 = max(x1, char.x1) if len(text) > 1 else char.x1
    if text:
        segments.append(Segment(x0, x1, "".join(text).strip()))
    return segments
