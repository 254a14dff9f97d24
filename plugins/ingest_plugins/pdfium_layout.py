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

The hot calls go through prototypes without argument conversion (:func:`unchecked`), about
three times cheaper than pypdfium2's checked ones.
"""

from __future__ import annotations

import ctypes
import itertools
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
    may_reorder,
    order_lines,
    ordered_text,
)

__all__ = [
    "may_have_columns",
    "page_blocks",
    "page_lines",
    "page_text",
    "page_text_and_lines",
    "unchecked",
]

#: Bold from this font weight on (CSS numbers: 400 regular, 700 bold).
BOLD_WEIGHT = 600
#: Characters whose direction is read to tell a page with text in several directions.
SAMPLE_ANGLES = 12
#: A line whose first or last this many characters recur in it may hold a copy of its text.
ECHO = 4
#: Recurrences of a line's start or end looked at, at most, for a copy.
MAX_ECHOES = 4
#: A character stands where an equal one already is when both its left and bottom edges
#: are within this share of the line's height of the other's: a copy (text drawn again over
#: itself, slightly offset, for a bold effect).
SAME_PLACE = 0.1

# PDFium drops the line break after a hyphen it marks with U+FFFE: the marker ends a line.
_LINE_BREAK = re.compile("\ufffe(?:\r\n|\r|\n)?|\r\n|\r|\n")
_ENDS_LINE = re.compile(r"(?:\r\n|\r|\n)\Z")
# Hebrew, Arabic, Syriac, Thaana, N'Ko, and their presentation forms.
_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")

Box = tuple[float, float, float, float]


def unchecked(function: Any, restype: Any) -> Callable[..., Any]:
    """``function`` of pypdfium2's raw bindings without per-call argument conversion.

    The caller passes handles as ``ctypes.c_void_p``, numbers as ``int`` and out-parameters
    by ``ctypes.byref``, exactly as the C signature wants.
    """
    unchecked = ctypes.CFUNCTYPE(restype)(ctypes.cast(function, ctypes.c_void_p).value)
    unchecked.argtypes = None
    return unchecked


_count_rects = unchecked(pdfium_c.FPDFText_CountRects, ctypes.c_int)
_get_rect = unchecked(pdfium_c.FPDFText_GetRect, ctypes.c_int)
_loose_box = unchecked(pdfium_c.FPDFText_GetLooseCharBox, ctypes.c_int)
_font_size = unchecked(pdfium_c.FPDFText_GetFontSize, ctypes.c_double)
_font_weight = unchecked(pdfium_c.FPDFText_GetFontWeight, ctypes.c_int)
_char_angle = unchecked(pdfium_c.FPDFText_GetCharAngle, ctypes.c_float)
_char_index = unchecked(pdfium_c.FPDFText_GetCharIndexFromTextIndex, ctypes.c_int)
_char_matrix = unchecked(pdfium_c.FPDFText_GetMatrix, ctypes.c_int)


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
    breaks = text.count("\r\n")
    if "\ufffe" not in text and text.count("\r") == breaks == text.count("\n"):
        # Every line ends in CRLF, as PDFium writes them: split, no pattern to match.
        bodies = text.split("\r\n")
        if text.endswith("\r\n"):
            bodies.pop()
        starts = itertools.accumulate((len(body) + 2 for body in bodies), initial=0)
        return list(zip(starts, bodies, strict=False))
    spans: list[tuple[int, str]] = []
    position = 0
    for match in _LINE_BREAK.finditer(text):
        end = match.start() + (text[match.start()] == "\ufffe")
        spans.append((position, text[position:end]))
        position = match.end()
    if position < len(text):
        spans.append((position, text[position:]))
    return spans


class _Raw:
    """A line as first read: where its text is, its box in the page's frame, its turn."""

    __slots__ = ("body", "box", "edited", "first", "height", "index", "last", "start", "turn")

    def __init__(
        self, start: int, body: str, first: int, index: int, last: int, box: Box, turn: int,
        height: float,
    ) -> None:  # fmt: skip
        self.start, self.body, self.first = start, body, first
        self.index, self.last, self.box, self.turn = index, last, box, turn
        # The lower of the two characters' heights: the font's size, even where PDFium ran
        # two visual lines into one.
        self.height = height
        # Characters were taken out of the body (copies): text indexes past them are off.
        self.edited = False


def _read(page: _Page, text: str) -> tuple[list[tuple[int, str]], list[_Raw | None]]:
    """PDFium's lines and, for each with visible text, its box from the loose boxes of its
    first and last character (``None`` for a blank line). A line whose two ends are not on
    one baseline runs in another direction than the page's: its own is read."""
    exact = len(text) == page.count  # else some characters have no text, indexes differ
    spans = _spans(text)
    raws: list[_Raw | None] = []
    append = raws.append
    raw, box_ref, box = page.raw, page.box_ref, page.box
    turn = page.turn
    loose_box = _loose_box
    echoes: list[int] = []
    for start, body in spans:
        stripped = body.strip()
        if not stripped:
            append(None)
            continue
        size = len(stripped)
        if size >= 2 * ECHO and (
            stripped.find(stripped[:ECHO], 1) > 0
            or stripped.rfind(stripped[-ECHO:], 0, size - 1) >= 0
        ):
            echoes.append(len(raws))
        first = start + body.find(stripped[0])
        index = first if exact else _char_index(raw, first)
        last = first + len(stripped) - 1
        if not exact:
            last = _char_index(raw, last)
        if not loose_box(raw, index, box_ref):
            append(None)
            continue
        left, top, right, bottom = box.left, box.top, box.right, box.bottom
        if last != index and loose_box(raw, last, box_ref):
            left2, top2, right2, bottom2 = box.left, box.top, box.right, box.bottom
        else:
            left2, top2, right2, bottom2 = left, top, right, bottom
        line_turn = turn
        if turn == 0 and abs(top2 - top) <= 0.6 * (top - bottom) and right2 >= left:
            line_box = (
                min(left, left2), -max(top, top2), max(right, right2), -min(bottom, bottom2)
            )
            height = min(top - bottom, top2 - bottom2)
        else:
            head = _frame(turn, left, top, right, bottom)
            tail = _frame(turn, left2, top2, right2, bottom2)
            height = max(head[3] - head[1], tail[3] - tail[1], 1e-3)
            if abs(tail[1] - head[1]) > 0.6 * height or tail[2] < head[0]:
                line_turn = _quarter(_char_angle(raw, index))
                if line_turn != turn:
                    head = page.char_box(index, line_turn) or head
                    tail = page.char_box(last, line_turn) or tail
            line_box = (
                min(head[0], tail[0]), min(head[1], tail[1]),
                max(head[2], tail[2]), max(head[3], tail[3]),
            )  # fmt: skip
            height = min(head[3] - head[1], tail[3] - tail[1])
        append(_Raw(start, body, first, index, last, line_box, line_turn, height))
    for number in echoes:
        line = raws[number]
        if line is not None and _copied(page, line, exact):
            body = _without_copies(page, line, exact)
            if body != line.body:
                line.body, line.edited = body, True
                spans[number] = (line.start, body)
    return spans, raws


def _char_at(page: _Page, position: int, exact: bool) -> tuple[float, float] | None:
    """Where the character at text index ``position`` starts: its loose box's left and
    bottom edges (``None`` when it has no box)."""
    index = position if exact else _char_index(page.raw, position)
    if index < 0 or not _loose_box(page.raw, index, page.box_ref):
        return None
    return page.box.left, page.box.bottom


def _same_place(a: tuple[float, float] | None, b: tuple[float, float] | None, near: float) -> bool:
    return a is not None and b is not None and abs(a[0] - b[0]) <= near and abs(a[1] - b[1]) <= near


def _copied(page: _Page, raw: _Raw, exact: bool) -> bool:
    """Whether the line's text repeats its own start or end where that start or end is
    drawn (the screen in :func:`_read` found the repeated text)."""
    visible = raw.body.strip()
    near = SAME_PLACE * raw.height
    head, tail = visible[:ECHO], visible[-ECHO:]
    start = _char_at(page, raw.first, exact)
    found = visible.find(head, 1)
    for _ in range(MAX_ECHOES):
        if found < 0:
            break
        if _same_place(start, _char_at(page, raw.first + found, exact), near):
            return True
        found = visible.find(head, found + 1)
    end = _char_at(page, raw.first + len(visible) - 1, exact)
    found = visible.rfind(tail, 0, len(visible) - 1)
    for _ in range(MAX_ECHOES):
        if found < 0:
            break
        if _same_place(end, _char_at(page, raw.first + found + ECHO - 1, exact), near):
            return True
        found = visible.rfind(tail, 0, found + ECHO - 1)
    return False


def _without_copies(page: _Page, raw: _Raw, exact: bool) -> str:
    """The line's text without the characters drawn where the same character of the line
    already stands, and without the spaces the copies leave doubled."""
    near = SAME_PLACE * raw.height
    placed: dict[str, list[tuple[float, float]]] = {}
    out: list[str] = []
    after_copy = False
    for offset, char in enumerate(raw.body):
        if char.isspace():
            if not (after_copy and out and out[-1].isspace()):
                out.append(char)
            continue
        where = _char_at(page, raw.start + offset, exact)
        if where is not None:
            seen = placed.setdefault(char, [])
            if any(_same_place(where, other, near) for other in seen):
                after_copy = True
                continue
            seen.append(where)
        out.append(char)
        after_copy = False
    return "".join(out)


def _page_gutter(page: _Page, raws: list[_Raw | None]) -> tuple[float, float] | None:
    """The gutter PDFium's lines in the page's direction leave, at least :data:`GUTTER_EM`
    of their median height wide."""
    boxes = [raw.box for raw in raws if raw is not None and raw.turn == page.turn]
    if len(boxes) < 2 * COLUMN_LINES:
        return None
    left = min(box[0] for box in boxes)
    right = max(box[2] for box in boxes)
    # Columns need lines narrower than the page's text on both sides: a page of full-width
    # lines is settled without counting coverage.
    half = left + 0.55 * (right - left)
    narrow_left = sum(1 for box in boxes if box[2] < half)
    narrow_right = sum(1 for box in boxes if box[0] > right - (half - left))
    if narrow_left < COLUMN_LINES or narrow_right < COLUMN_LINES:
        return None
    heights = sorted(box[3] - box[1] for box in boxes)
    minimum = GUTTER_EM * heights[len(heights) // 2]
    return find_gutter([(box[0], box[2]) for box in boxes], minimum)


def may_have_columns(textpage: pdfium.PdfTextPage) -> bool:
    """Whether a page needs its lines ordered: some of its text runs in another direction
    than the rest, or its lines leave a gutter.

    :param textpage: the page's text page.
    :returns: ``False`` when PDFium's order is kept as it is.
    """
    page = _Page(textpage)
    if page.count == 0:
        return False
    page.turn = _main_turn(page)
    _, raws = _read(page, textpage.get_text_range())
    return _needs_order(page, raws, _page_gutter(page, raws))


def _needs_order(page: _Page, raws: list[_Raw | None], gutter: tuple[float, float] | None) -> bool:
    """Whether the page's lines may need ordering: some run in another direction, the
    content goes back up the page (footnotes or a column drawn before the text above them),
    or the lines leave a gutter."""
    if gutter is not None:
        return True
    previous: Box | None = None
    for raw in raws:
        if raw is None:
            continue
        if raw.turn != page.turn:
            return True
        box = raw.box
        if previous is not None and box[3] < previous[1] - 2 * (previous[3] - previous[1]):
            return True
        previous = box
    return False


def _lines(
    page: _Page,
    spans: list[tuple[int, str]],
    raws: list[_Raw | None],
    *,
    fonts: bool,
    gutter: tuple[float, float] | None,
) -> list[Line]:
    """:class:`Line` objects for the page's lines; a line crossing the page's ``gutter`` is
    split where its rectangles leave the gutter free."""
    turn_chars = [0, 0, 0, 0]
    for raw in raws:
        if raw is not None:
            turn_chars[raw.turn] += raw.last - raw.index + 1
    main = max(range(4), key=turn_chars.__getitem__)
    lines: list[Line] = []
    pending = ""  # blank lines before the first line with a box
    for number, ((_, body), raw) in enumerate(zip(spans, raws, strict=True)):
        if raw is None:
            # Nothing to place (blank, or only invisible characters): it stays after the
            # line before it, so blank lines between paragraphs stay where they were.
            if lines:
                lines[-1].text += "\n" + body
            else:
                pending += body + "\n"
            continue
        size, bold = page.font((raw.index + raw.last) // 2) if fonts else (0.0, False)
        for part, (text, (x0, y0, x1, y1)) in enumerate(_line_parts(page, raw, gutter)):
            lines.append(
                Line(pending + text, x0, y0, x1, y1, size if fonts else raw.height, bold,
                     number, part, raw.turn != main)
            )  # fmt: skip
            pending = ""
    return lines


def _line_parts(
    page: _Page, raw: _Raw, gutter: tuple[float, float] | None
) -> list[tuple[str, Box]]:
    """The line as one part with its box, or as two parts split at the page's gutter."""
    body, box = raw.body, raw.box
    whole = [(body, box)]
    if gutter is None or raw.turn != page.turn or not (box[0] < gutter[0] < gutter[1] < box[2]):
        return whole
    exact = raw.first == raw.index
    if not exact or raw.edited:
        return whole
    # The line crosses the gutter: do its rectangles leave it free?
    rects = page.rects(raw.index, raw.last - raw.index + 1)
    left = [rect for rect in rects if rect[2] <= gutter[0] + 1e-6]
    right = [rect for rect in rects if rect[0] >= gutter[1] - 1e-6]
    if not left or not right or len(left) + len(right) < len(rects):
        return whole
    # The first character past the gutter starts the second part.
    middle = (gutter[0] + gutter[1]) / 2
    for offset in range(raw.first - raw.start, len(body)):
        if body[offset].isspace():
            continue
        char = page.char_box(raw.start + offset, raw.turn)
        if char is not None and char[0] >= middle:
            break
    else:
        return whole
    return [(body[:offset], _union(left)), (body[offset:], _union(right))]


def _union(rects: list[Box]) -> Box:
    return (
        min(rect[0] for rect in rects),
        min(rect[1] for rect in rects),
        max(rect[2] for rect in rects),
        max(rect[3] for rect in rects),
    )


# Alef forms after a lam: in a right-to-left line PDFium gives the two characters of a lam-alef
# ligature glyph in reverse (the glyph is one box, its text two characters).
_ALEF_LAM = re.compile("[\u0622\u0623\u0625\u0627]\u0644")


def _ligatures_in_order(page: _Page, text: str) -> str:
    """``text`` with the characters of each lam-alef ligature glyph PDFium reversed put back
    in order: an alef and a lam that share one box are one glyph, lam first."""
    if len(text) != page.count or not _ALEF_LAM.search(text):
        return text
    chars = list(text)
    box = page.box
    for match in _ALEF_LAM.finditer(text):
        index = match.start()
        if not _loose_box(page.raw, index, page.box_ref):
            continue
        first = (box.left, box.top, box.right, box.bottom)
        if _loose_box(page.raw, index + 1, page.box_ref) and first == (
            box.left, box.top, box.right, box.bottom
        ):
            chars[index], chars[index + 1] = chars[index + 1], chars[index]
    return "".join(chars)


def _rtl(text: str) -> bool:
    return bool(_RTL.search(text)) and 2 * len(_RTL.findall(text)) > sum(map(str.isalpha, text))


def page_lines(textpage: pdfium.PdfTextPage, *, fonts: bool = False) -> tuple[list[Line], bool]:
    """The lines of a text page, in PDFium's order, with boxes in the page's reading frame.

    :param textpage: the page's text page.
    :param fonts: read each line's font size and weight (three calls per line); without,
        a line's size is the height of its characters (ascent to descent of its font) and it
        is not bold.
    :returns: the lines (a line PDFium ran across a gutter comes as parts), and whether the
        page's text is mostly right-to-left script.
    """
    page = _Page(textpage)
    text = textpage.get_text_range()
    if page.count == 0:
        return [], False
    if _RTL.search(text):
        text = _ligatures_in_order(page, text)
    page.turn = _main_turn(page)
    spans, raws = _read(page, text)
    return _lines(page, spans, raws, fonts=fonts, gutter=_page_gutter(page, raws)), _rtl(text)


def _break(match: re.Match[str]) -> str:
    return "\ufffe\n" if match.group().startswith("\ufffe") else "\n"


def page_text(textpage: pdfium.PdfTextPage) -> str:
    """The text of a page in reading order (the lines' own text; ``\\n`` between lines).

    Characters PDFium kept twice where text is drawn over itself (a copy of a run of the
    line, at the same place) are left out.

    :param textpage: the page's text page.
    :returns: the text; where PDFium's order is kept (one direction, no gutter, or the
        layout finds nothing to reorder), PDFium's own text with ``\\r\\n`` turned into
        ``\\n`` and a line break after each ``U+FFFE``.
    """
    text = textpage.get_text_range()
    page = _Page(textpage)
    if page.count == 0:
        return _LINE_BREAK.sub(_break, text)
    if _RTL.search(text):
        text = _ligatures_in_order(page, text)
    page.turn = _main_turn(page)
    spans, raws = _read(page, text)
    text = _without_edits(text, spans, raws)
    gutter = _page_gutter(page, raws)
    if not _needs_order(page, raws, gutter):
        return _LINE_BREAK.sub(_break, text)
    lines = _lines(page, spans, raws, fonts=False, gutter=gutter)
    if not may_reorder(lines):
        return _LINE_BREAK.sub(_break, text)
    return ordered_text(order_lines(lines, rtl=_rtl(text)))



def _without_edits(text: str, spans: list[tuple[int, str]], raws: list[_Raw | None]) -> str:
    """``text`` again from its lines when copies were taken out of some (:func:`_read`)."""
    if not any(raw is not None and raw.edited for raw in raws):
        return text
    return "\n".join(body for _, body in spans) + ("\n" if _ENDS_LINE.search(text) else "")


def page_blocks(textpage: pdfium.PdfTextPage) -> list[Block]:
    """The blocks of a page in reading order, each with kind, text, box, font size and bold.

    :param textpage: the page's text page.
    :returns: the blocks; boxes are in the reading frame (points, ``y`` growing downwards,
        origin where PDF user space has it, turned so the page's text runs left to right).
    """
    lines, rtl = page_lines(textpage, fonts=True)
    return group_blocks(order_lines(lines, rtl=rtl))


def page_text_and_lines(
    textpage: pdfium.PdfTextPage,
) -> tuple[str, list[Line], list[tuple[int, int]]]:
    """The text of a page exactly as :func:`page_text` gives it, with its lines in reading
    order and where each line's characters are, from one reading of the page.

    Fonts are not read (a line's ``size`` is its height): the caller reads what it needs for
    the lines it keeps, with the character ranges.

    :param textpage: the page's text page.
    :returns: the text; the lines, ordered by :func:`~ingest_plugins.layout.order_lines`
        with ``kind`` set; and for each of PDFium's lines (a line's ``source``) the indexes
        of its first and last visible character, ``(-1, -1)`` for a blank line.
    """
    text = textpage.get_text_range()
    page = _Page(textpage)
    if page.count == 0:
        return _LINE_BREAK.sub(_break, text), [], []
    page.turn = _main_turn(page)
    spans, raws = _read(page, text)
    text = _without_edits(text, spans, raws)
    rtl = _rtl(text)
    gutter = _page_gutter(page, raws)
    lines = _lines(page, spans, raws, fonts=False, gutter=gutter)
    keep = not (_needs_order(page, raws, gutter) and may_reorder(lines))
    ordered = order_lines(lines, rtl=rtl)
    text = _LINE_BREAK.sub(_break, text) if keep else ordered_text(ordered)
    ranges = [(-1, -1) if raw is None else (raw.index, raw.last) for raw in raws]
    return text, ordered, ranges
