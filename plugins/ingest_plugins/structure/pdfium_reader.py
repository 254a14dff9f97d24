"""The structure facts of PDF pages as PDFium sees them: fonts, text runs, drawings, outline.

:class:`PdfiumStructure` is made once per extraction of a document and reads each page the
``pdfium`` extractor loads. The page's text comes out exactly as the plain extraction gives
it (:func:`~ingest_plugins.pdfium_layout.page_text_and_lines` reads the page once for both),
and its :class:`~ingest.Block` objects come from
:func:`ingest_plugins.structure.blocks.page_blocks` over the facts read here:

* each line's font size (as drawn: the size set in the content scaled by the text matrix)
  and weight, from its first and its middle visible character: the size of the middle
  one, bold when both are. A font is bold when its name says so (``Helvetica-Bold``,
  ``Arial,Black``...), its weight is 600 or more, or its flags force bold; PDFium reports
  no weight for the standard fonts, so the name matters;
* the text runs (one per text object, ``FPDFText_CountRects``) of each line that is wide
  for its characters (at least :data:`SPREAD` font sizes per character: wider gaps than
  words have), where a table's row may be; the characters of a line one by one only when
  the table analysis asks for them;
* rules and images (:mod:`ingest_plugins.structure.pdfium_drawings`); rules only on pages
  with at least two lines of several runs (a ruled table's rows are such lines too), since
  pages of drawings hold thousands of paths;
* the outline entries (bookmarks) pointing at the page.

Pages whose text mostly runs in another direction than left to right get blocks from their
lines only: no tables, no figures.
"""

from __future__ import annotations

import ctypes
import math
import re
from typing import TYPE_CHECKING, Any

import pypdfium2.raw as pdfium_c

from ingest_plugins.pdfium_layout import page_text_and_lines
from ingest_plugins.structure import pdfium_calls as call
from ingest_plugins.structure.blocks import page_blocks
from ingest_plugins.structure.facts import Char, OutlineEntry, PageFacts
from ingest_plugins.structure.pdfium_drawings import drawings

if TYPE_CHECKING:
    import pypdfium2 as pdfium
    from ingest import Block

    from ingest_plugins.layout import Line

__all__ = ["MAX_OUTLINE", "SPREAD", "PdfiumStructure", "read_outline"]

#: Outline entries read at most per document.
MAX_OUTLINE = 5_000
#: A line at least this many font sizes wide per character may be a table row.
SPREAD = 0.6
#: Bold from this font weight on.
BOLD_WEIGHT = 600

_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demibold|demi\b|extrabold|ultrabold", re.I)
_FORCE_BOLD = 1 << 18
_SPACES = frozenset({0x20, 0xA0, 0x09, 0x0A, 0x0D, 0x2002, 0x2003, 0x2009, 0x3000})

Ranges = list[tuple[int, int]]


class PdfiumStructure:
    """Reads the structure of the pages of one open document.

    :param document: the open document (its outline is read here, once).
    :param tables: look for tables.
    :param outline: read the outline.
    """

    def __init__(self, document: pdfium.PdfDocument, *, tables: bool, outline: bool) -> None:
        self.tables = tables
        self._outline = read_outline(document) if outline else {}

    def read(
        self, page: pdfium.PdfPage, textpage: pdfium.PdfTextPage, index: int
    ) -> tuple[str, list[Block]]:
        """The text of ``page`` (as :func:`~ingest_plugins.pdfium_layout.page_text`) and its
        blocks in reading order.

        :param page: the loaded page.
        :param textpage: its text page.
        :param index: the page's 0-based index in the document.
        :returns: ``(text, blocks)``.
        """
        text, lines, ranges = page_text_and_lines(textpage)
        left, bottom, right, top = page.get_bbox()
        facts = PageFacts(width=right - left, height=top - bottom, lines=lines)
        facts.outline = [
            OutlineEntry(level, title, None if y is None else top - y)
            for level, title, y in self._outline.get(index, [])
        ]
        if not lines:
            return text, []
        reader = _TextReader(textpage, left)
        upright = reader.upright()
        for line in lines:
            # The reading frame of an upright page is PDF space with y negated.
            line.x0, line.x1 = line.x0 - left, line.x1 - left
            line.y0, line.y1 = top + line.y0, top + line.y1
        reader.fonts(lines, ranges)
        tables = self.tables and upright
        if tables:
            facts.rects = reader.runs(lines, ranges)
            facts.read_chars = lambda position: reader.chars(lines[position], ranges)
        if upright:
            # A ruled table's rows are lines of several text runs too: a page without two
            # such lines has no table to find among its paths, which can be many thousands.
            ruled = tables and len(facts.rects) >= 2
            facts.rules, facts.images = drawings(page, left, top, rules=ruled)
        return text, page_blocks(facts, tables=tables)


class _TextReader:
    """A text page, read for fonts, text runs and characters."""

    def __init__(self, textpage: pdfium.PdfTextPage, left: float) -> None:
        self.raw = call.handle(textpage.raw)
        self.count = textpage.count_chars()
        self.left = left
        self.matrix = pdfium_c.FS_MATRIX()
        self.matrix_ref = ctypes.byref(self.matrix)
        self.doubles = [ctypes.c_double() for _ in range(4)]
        self.refs = [ctypes.byref(value) for value in self.doubles]
        self.bold_of: dict[int | None, bool] = {}

    def upright(self) -> bool:
        """Whether most of the page's text runs left to right, unturned."""
        if self.count == 0:
            return True
        angles = [call.get_char_angle(self.raw, (self.count * k) // 9) for k in range(9)]
        turned = sum(1 for angle in angles if 0.1 < angle < 2 * math.pi - 0.1)
        return turned * 2 <= len(angles)

    def _visible(self, index: int) -> bool:
        return call.get_unicode(self.raw, index) not in _SPACES

    def font(self, index: int) -> tuple[float, bool]:
        """The size as drawn and the boldness of the font of character ``index``."""
        size = float(call.get_font_size(self.raw, index))
        if call.get_matrix(self.raw, index, self.matrix_ref):
            m = self.matrix
            size *= math.sqrt(abs(m.a * m.d - m.b * m.c))
        obj = call.get_text_object(self.raw, index)
        font = call.get_font(ctypes.c_void_p(obj)) if obj else None
        bold = self.bold_of.get(font)
        if bold is None:
            bold = self.bold_of[font] = _is_bold(font)
        return size, bold

    def fonts(self, lines: list[Line], ranges: Ranges) -> None:
        """Set each line's ``size`` and ``bold`` (see the module docstring)."""
        split = {line.source for line in lines if line.part}
        for line in lines:
            first, last = _range(ranges, line)
            if first < 0:
                continue
            if line.source in split:
                picks = self._within(line, first, last)
            else:
                picks = []
                for start in (first, (first + last) // 2):
                    index = next(
                        (i for i in range(start, min(start + 4, last + 1)) if self._visible(i)),
                        None,
                    )
                    if index is not None and index not in picks:
                        picks.append(index)
            fonts = [self.font(index) for index in picks]
            if fonts:
                line.size = fonts[-1][0]
                line.bold = all(bold for _, bold in fonts)

    def _within(self, line: Line, first: int, last: int) -> list[int]:
        """Two visible characters of ``first..last`` inside ``line``'s extent: the part of
        a line split at a gutter has its own font."""
        found: list[int] = []
        left, right = self.doubles[0], self.doubles[1]  # GetCharBox: left, right, bottom, top
        for index in range(first, last + 1):
            if self._visible(index) and call.get_char_box(self.raw, index, *self.refs):
                middle = (left.value + right.value) / 2 - self.left
                if line.x0 - 1 <= middle <= line.x1 + 1:
                    found.append(index)
                    if len(found) == 2:
                        break
        return found

    def runs(self, lines: list[Line], ranges: Ranges) -> dict[int, list[tuple[float, float]]]:
        """The horizontal extents of the text runs of the lines that are wide for their
        characters, by line position; lines of one run are left out."""
        left, right = self.doubles[0], self.doubles[2]  # GetRect: left, top, right, bottom
        out: dict[int, list[tuple[float, float]]] = {}
        for position, line in enumerate(lines):
            first, last = _range(ranges, line)
            chars = line.chars
            if first < 0 or chars < 2:
                continue
            if line.x1 - line.x0 < SPREAD * max(line.size, 1.0) * chars:
                continue
            found = call.count_rects(self.raw, first, last - first + 1)
            if found <= 1:
                continue
            runs: list[tuple[float, float]] = []
            for number in range(found):
                if call.get_rect(self.raw, number, *self.refs):
                    x0, x1 = left.value - self.left, right.value - self.left
                    if line.x0 - 1 <= (x0 + x1) / 2 <= line.x1 + 1:
                        runs.append((x0, x1))
            if len(runs) > 1:
                out[position] = sorted(runs)
        return out

    def chars(self, line: Line, ranges: Ranges) -> list[Char]:
        """The characters of ``line`` with their horizontal extents, in text order; a space
        is a zero-width character where it stands."""
        first, last = _range(ranges, line)
        if first < 0:
            return []
        left, right = self.doubles[0], self.doubles[1]  # GetCharBox: left, right, bottom, top
        raw, refs, offset = self.raw, self.refs, self.left
        low, high = line.x0 - 1, line.x1 + 1
        chars: list[Char] = []
        pending = 0
        for index in range(first, last + 1):
            code = call.get_unicode(raw, index)
            if 0xD800 <= code < 0xDC00:
                pending = code
                continue
            if 0xDC00 <= code < 0xE000 and pending:
                code = 0x10000 + ((pending - 0xD800) << 10) + (code - 0xDC00)
            pending = 0
            if code in _SPACES or code < 0x20:
                if chars and chars[-1].text != " ":
                    chars.append(Char(chars[-1].x1, chars[-1].x1, " "))
                continue
            if not call.get_char_box(raw, index, *refs):
                continue
            x0, x1 = left.value - offset, right.value - offset
            if low <= (x0 + x1) / 2 <= high:
                chars.append(Char(x0, x1, chr(code)))
        return chars


def _range(ranges: Ranges, line: Line) -> tuple[int, int]:
    return ranges[line.source] if line.source < len(ranges) else (-1, -1)


def _is_bold(font: Any) -> bool:
    if not font:
        return False
    handle = ctypes.c_void_p(font)
    if call.font_weight(handle) >= BOLD_WEIGHT:
        return True
    if call.font_flags(handle) & _FORCE_BOLD:
        return True
    size = call.font_base_name(handle, None, ctypes.c_ulong(0))
    if size <= 0 or size > 4096:
        return False
    buffer = ctypes.create_string_buffer(size)
    call.font_base_name(handle, buffer, ctypes.c_ulong(size))
    return bool(_BOLD_NAME.search(buffer.value.decode("latin-1")))


def read_outline(
    document: pdfium.PdfDocument,
) -> dict[int, list[tuple[int, str, float | None]]]:
    """The outline (bookmarks) of a document by 0-based page index.

    :param document: the open document.
    :returns: for each page an outline entry points at, ``(level, title, y)`` in outline
        order (``y`` in PDF user space, ``None`` when the destination has no position). At
        most :data:`MAX_OUTLINE` entries; a broken outline gives what was read before it.
    """
    found: dict[int, list[tuple[int, str, float | None]]] = {}
    try:
        for number, bookmark in enumerate(document.get_toc(max_depth=8)):
            if number >= MAX_OUTLINE:
                break
            title = " ".join((bookmark.get_title() or "").split())
            destination = bookmark.get_dest()
            if not title or destination is None:
                continue
            index = destination.get_index()
            if index is None or index < 0:
                continue
            y: float | None = None
            mode, view = destination.get_view()
            if mode == pdfium_c.PDFDEST_VIEW_XYZ and len(view) >= 2 and view[1]:
                y = float(view[1])
            found.setdefault(index, []).append((bookmark.level, title, y))
    except Exception:  # a malformed outline is no reason to lose the page's text
        pass
    return found
