"""PDFium's text of a page in reading order, and its lines and blocks with boxes.

PDFium returns a page's text in content-stream order, one line per run of text it found on
one baseline. Two-column papers, footnotes and government gazettes often draw their text in
another order (footnotes first, the right column before the left). This module gives each of
PDFium's lines a box and hands them to :mod:`ingest_plugins.layout`, which orders them.

Cost is what matters here, since every page of a default run goes through it: a call into
PDFium through ctypes costs about a microsecond, and a page holds thousands of characters.
So nothing is read per character:

* :func:`may_have_columns` first reads a sample of the page's *text rectangles* (one per run
  of characters of one text object, ``FPDFText_CountRects``/``FPDFText_GetRect``) and the
  direction of a few characters. A page whose text runs one way and leaves no gutter keeps
  PDFium's order, and no line is built: most pages of most documents.
* Otherwise each of PDFium's lines gets its box from the loose boxes of its first and last
  character (font ascent to descent, so a line's height follows its font size). Only a line
  that crosses the gutter the sample found is read rectangle by rectangle, and split where
  its rectangles leave the gutter free (PDFium joins the lines of two columns that share a
  baseline).
* Font size and weight are read only for :func:`page_blocks`, where later stages need them.

The hot calls go through prototypes without argument conversion (:func:`_unchecked`), about
three times cheaper than pypdfium2's checked ones.
"""

from __future__ import annotations

import ctypes
import math
import re
from collections.abc import Callable
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from ingest_plugins.layout import (
    COLUMN_LINES,
    GUTTER_EM,
    Block,
    Line,
    find_gutter,
    group_blocks,
    order_lines,
    ordered_text,
)

__all__ = ["may_have_columns", "page_blocks", "page_lines", "page_text"]

#: Bold from this font weight on (CSS numbers: 400 regular, 700 bold).
BOLD_WEIGHT = 600
#: At most this many text rectangles of a page are read to look for a gutter.
SAMPLE_RECTS = 100
#: Characters whose direction is read to tell a page with text in several directions.
SAMPLE_ANGLES = 12

# PDFium drops the line break after a hyphen it marks with U+FFFE: the marker ends a line.
_LINE_BREAK = re.compile("\ufffe(?:\r\n|\r|\n)?|\r\n|\r|\n")
# Hebrew, Arabic, Syriac, Thaana, N'Ko, and their presentation forms.
_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")

Box = tuple[float, float, float, float]


def _unchecked(function: Any, restype: Any) -> Callable[..., Any]:
    """``function`` of pypdfium2's raw bindings without per-call argument conversion.

    The caller passes handles as ``ctypes.c_void_p``, numbers as ``int`` and out-parameters
    by ``ctypes.byref``, exactly as the C signature wants.
    """
    unchecked = ctypes.CFUNCTYPE(restype)(ctypes.cast(function, ctypes.c_void_p).value)
    unchecked.argtypes = None
    return unchecked


_count_rects = _unchecked(pdfium_c.FPDFText_CountRects, ctypes.c_int)
_get_rect = _unchecked(pdfium_c.FPDFText_GetRect, ctypes.c_int)
_loose_box = _unchecked(pdfium_c.FPDFText_GetLooseCharBox, ctypes.c_int)
_font_size = _unchecked(pdfium_c.FPDFText_GetFontSize, ctypes.c_double)
_font_weight = _unchecked(pdfium_c.FPDFText_GetFontWeight, ctypes.c_int)
_char_angle = _unchecked(pdfium_c.FPDFText_GetCharAngle, ctypes.c_float)
_char_index = _unchecked(pdfium_c.FPDFText_GetCharIndexFromTextIndex, ctypes.c_int)
_char_matrix = _unchecked(pdfium_c.FPDFText_GetMatrix, ctypes.c_int)


def _quarter(angle: float) -> int:
    """A character angle (radians, counter-clockwise) as quarter turns 0-3."""
    if angle < 0:  # PDFium says -1 when it cannot tell
        return 0
    return round(angle / (math.pi / 2)) % 4


def _frame(turn: int, left: float, top: float, right: float, bottom: float) -> Box:
    """A box in PDF user space (``y`` up) as ``(x0, y0, x1, y1)`` in the reading frame of
    text turned ``turn`` quarter turns counter-clockwise (left to right, ``y`` down)."""
    if turn == 0:
        x0, y0, x1, y1 = left, -top, right, -bottom
    elif turn == 1:  # text runs up the page
        x0, y0, x1, y1 = bottom, left, top, right
    elif turn == 2:
        x0, y0, x1, y1 = -right, bottom, -left, top
    else:  # text runs down the page
        x0, y0, x1, y1 = -top, -right, -bottom, -left
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


class _Page:
    """One text page's handle and the out-parameters the calls fill."""

    __slots__ = ("bottom", "box", "box_ref", "count", "left", "matrix", "matrix_ref", "raw",
                 "refs", "right", "top", "turn")  # fmt: skip

    def __init__(self, textpage: pdfium.PdfTextPage) -> None:
        self.raw = ctypes.c_void_p(ctypes.cast(textpage.raw, ctypes.c_void_p).value)
        self.count = textpage.count_chars()
        self.left, self.top, self.right, self.bottom = (ctypes.c_double() for _ in range(4))
        self.refs = tuple(map(ctypes.byref, (self.left, self.top, self.right, self.bottom)))
        self.box = pdfium_c.FS_RECTF()
        self.box_ref = ctypes.byref(self.box)
        self.matrix = pdfium_c.FS_MATRIX()
        self.matrix_ref = ctypes.byref(self.matrix)
        self.turn = 0

    def turns(self) -> list[int]:
        """The directions of :data:`SAMPLE_ANGLES` characters spread over the page."""
        count = max(1, self.count)
        return [
            _quarter(_char_angle(self.raw, (count * k) // SAMPLE_ANGLES))
            for k in range(SAMPLE_ANGLES)
        ]


    def rects(self, start: int, count: int, *, sample: int = 0) -> list[Box]:
        """The text rectangles of characters ``start..start+count`` (``count`` -1: to the
        end), in the reading frame; with ``sample``, at most about that many, spread out."""
        found = _count_rects(self.raw, start, count)
        step = max(1, found // sample) if sample else 1
        left, top, right, bottom = self.refs
        turn = self.turn
        out: list[Box] = []
        for number in range(0, max(0, found), step):
            if _get_rect(self.raw, number, left, top, right, bottom):
                out.append(
                    _frame(turn, self.left.value, self.top.value, self.right.value,
                           self.bottom.value)
                )  # fmt: skip
        return out

    def char_box(self, index: int, turn: int) -> Box | None:
        """The loose box of character ``index`` (ascent to descent of its font)."""
        if not _loose_box(self.raw, index, self.box_ref):
            return None
        box = self.box
        return _frame(turn, box.left, box.top, box.right, box.bottom)

    def font(self, index: int) -> tuple[float, bool]:
        """The font size of character ``index`` as drawn (the size set in the content, often
        1, scaled by the character's matrix) and whether its font is bold."""
        size = float(_font_size(self.raw, index))
        if _char_matrix(self.raw, index, self.matrix_ref):
            m = self.matrix
            size *= math.sqrt(abs(m.a * m.d - m.b * m.c))
        return size, _font_weight(self.raw, index) >= BOLD_WEIGHT


def _main_turn(page: _Page) -> int:
    """The direction most of the sampled characters run in."""
    turns = page.turns()
    return max(set(turns), key=turns.count)


def _spans(text: str) -> list[tuple[int, str]]:
    """PDFium's lines as ``(text index, text without the line break)``."""
    spans: list[tuple[int, str]] = []
    position = 0
    for match in _LINE_BREAK.finditer(text):
        end = match.start() + (text[match.start()] == "\ufffe")
        spans.append((position, text[position:end]))
        position = match.end()
    if position < len(text):
        spans.append((position, text[position:]))
    return spans


def _gutter(page: _Page) -> tuple[float, float] | None:
    """The gutter a sample of the page's rectangles leaves, in the reading frame (see
    :func:`may_have_columns`); ``None`` if there is none."""
    rects = page.rects(0, -1, sample=SAMPLE_RECTS)
    if len(rects) < 2 * COLUMN_LINES:
        return None
    heights = sorted(rect[3] - rect[1] for rect in rects)
    minimum = GUTTER_EM * heights[len(heights) // 2]
    return find_gutter([(rect[0], rect[2]) for rect in rects], minimum)


def may_have_columns(textpage: pdfium.PdfTextPage) -> bool:
    """Whether a page needs its lines ordered: its text runs in more than one direction, or
    a sample of at most :data:`SAMPLE_RECTS` of its text rectangles leaves a gutter.

    :param textpage: the page's text page.
    :returns: ``False`` when PDFium's order is kept as it is.
    """
    return _survey(_Page(textpage)) is not None


_NO_GUTTER = (0.0, 0.0)


def _survey(page: _Page) -> tuple[float, float] | None:
    """Set ``page.turn``; return the gutter the sample of rectangles leaves (``(0, 0)`` for
    a page in several directions without one), or ``None`` when the page keeps PDFium's
    order."""
    if page.count == 0:
        return None
    turns = page.turns()
    page.turn = max(set(turns), key=turns.count)
    gutter = _gutter(page)
    if gutter is None and len(set(turns)) > 1:
        return _NO_GUTTER
    return gutter


def page_lines(
    textpage: pdfium.PdfTextPage, *, fonts: bool = False, _page: _Page | None = None,
    _gutter_found: tuple[float, float] | None = _NO_GUTTER,
) -> tuple[list[Line], bool]:
    """The lines of a text page, in PDFium's order, with boxes in the page's reading frame.

    :param textpage: the page's text page.
    :param fonts: read each line's font size and weight (a few calls per line); without,
        a line's size is its height (ascent to descent) and it is not bold.
    :returns: the lines (a line PDFium ran across a gutter comes as parts), and whether the
        page's text is mostly right-to-left script.
    """
    text = textpage.get_text_range()
    if _page is None:
        page = _Page(textpage)
        page.turn = _main_turn(page)
        gutter = _gutter(page)
    else:
        page, gutter = _page, (None if _gutter_found == _NO_GUTTER else _gutter_found)
    exact = len(text) == page.count  # else some characters have no text, indexes differ
    lines: list[Line] = []
    line_turns: list[int] = []
    pending = ""  # blank lines before the first line with a box
    turn_chars = [0, 0, 0, 0]
    for number, (start, body) in enumerate(_spans(text)):
        first = start + (len(body) - len(body.lstrip()))
        length = len(body.rstrip()) - (first - start)
        parts = None
        if length > 0:
            index = first if exact else _char_index(page.raw, first)
            last = first + length - 1 if exact else _char_index(page.raw, first + length - 1)
            turn = _quarter(_char_angle(page.raw, index))
            turn_chars[turn] += length
            parts = _line_parts(page, body, start, index, last, turn, gutter, exact)
        if not parts:
            # Nothing to place (blank, or only invisible characters): it stays after the
            # line before it, so blank lines between paragraphs stay where they were.
            if lines:
                lines[-1].text += "\n" + body
            else:
                pending += body + "\n"
            continue
        if fonts:
            size, bold = page.font((index + last) // 2)
        for part_number, (part_text, (x0, y0, x1, y1)) in enumerate(parts):
            if not fonts:
                size, bold = y1 - y0, False
            lines.append(Line(pending + part_text, x0, y0, x1, y1, size, bold, number, part_number))
            line_turns.append(turn)
            pending = ""
    main = max(range(4), key=turn_chars.__getitem__)
    for line, turn in zip(lines, line_turns, strict=True):
        line.marginal = turn != main
    rtl = False
    if _RTL.search(text):
        rtl = 2 * len(_RTL.findall(text)) > sum(map(str.isalpha, text))
    return lines, rtl


def _line_parts(
    page: _Page,
    body: str,
    start: int,
    index: int,
    last: int,
    turn: int,
    gutter: tuple[float, float] | None,
    exact: bool,
) -> list[tuple[str, Box]] | None:
    """The line as one part with its box, or as parts split at the page's gutter."""
    head, tail = page.char_box(index, turn), page.char_box(last, turn)
    if head is None or tail is None:
        return None
    x0, y0 = min(head[0], tail[0]), min(head[1], tail[1])
    x1, y1 = max(head[2], tail[2]), max(head[3], tail[3])
    if gutter is None or not exact or turn != page.turn or not (x0 < gutter[0] < gutter[1] < x1):
        return [(body, (x0, y0, x1, y1))]
    # The line crosses the gutter: where do its rectangles leave it free?
    rects = page.rects(index, last - index + 1)
    left = [rect for rect in rects if rect[2] <= gutter[0] + 1e-6]
    right = [rect for rect in rects if rect[0] >= gutter[1] - 1e-6]
    if not left or not right or len(left) + len(right) < len(rects):
        return [(body, (x0, y0, x1, y1))]
    # The first character past the gutter starts the second part.
    middle = (gutter[0] + gutter[1]) / 2
    for offset in range(index - start, len(body)):
        if body[offset].isspace():
            continue
        box = page.char_box(start + offset, turn)
        if box is not None and box[0] >= middle:
            break
    else:
        return [(body, (x0, y0, x1, y1))]
    return [
        (body[:offset], _union(left)),
        (body[offset:], _union(right)),
    ]


def _union(rects: list[Box]) -> Box:
    return (
        min(rect[0] for rect in rects),
        min(rect[1] for rect in rects),
        max(rect[2] for rect in rects),
        max(rect[3] for rect in rects),
    )


def _break(match: re.Match[str]) -> str:
    return "\ufffe\n" if match.group().startswith("\ufffe") else "\n"


def page_text(textpage: pdfium.PdfTextPage) -> str:
    """The text of a page in reading order (the lines' own text; ``\\n`` between lines).

    :param textpage: the page's text page.
    :returns: the text; where PDFium's order is kept (:func:`may_have_columns` is false, or
        the layout finds nothing to reorder), PDFium's own text with ``\\r\\n`` turned into
        ``\\n`` and a line break after each ``U+FFFE``.
    """
    page = _Page(textpage)
    gutter = _survey(page)
    if gutter is None:
        return _LINE_BREAK.sub(_break, textpage.get_text_range())
    lines, rtl = page_lines(textpage, _page=page, _gutter_found=gutter)
    return ordered_text(order_lines(lines, rtl=rtl))


def page_blocks(textpage: pdfium.PdfTextPage) -> list[Block]:
    """The blocks of a page in reading order, each with kind, text, box, font size and bold.

    :param textpage: the page's text page.
    :returns: the blocks; boxes are in the reading frame (points, ``y`` growing downwards,
        origin where PDF user space has it, turned so the page's text runs left to right).
    """
    lines, rtl = page_lines(textpage, fonts=True)
    return group_blocks(order_lines(lines, rtl=rtl))
