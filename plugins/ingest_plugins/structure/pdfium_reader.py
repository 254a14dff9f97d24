"""The structure facts of PDF pages as PDFium sees them: fonts, rules, images, the outline.

:class:`PdfiumStructure` is made once per extraction of a document and reads each page
the ``pdfium`` extractor loads: the page's text comes out exactly as the plain extraction
gives it (:func:`~ingest_plugins.pdfium_layout.page_text_and_lines` reads the page once for
both), and the page's :class:`~ingest.Block` objects come from
:func:`ingest_plugins.structure.blocks.page_blocks` over the :class:`PageFacts` read here:

* each line's font size (as drawn: the size set in the content scaled by the text matrix)
  and weight, from up to three of its visible characters; a font is bold when its name says
  so (``Helvetica-Bold``, ``Arial,Black``...), its weight is 600 or more, or its flags force
  bold. PDFium reports no weight for the standard fonts, so the name matters;
* the runs of each line's text (one per text object, ``FPDFText_CountRects``): a line made
  of runs with wide gaps between them may be a table row, and its characters are then read
  one by one, when the analysis asks;
* straight rules: the horizontal and vertical segments of stroked paths, and filled
  rectangles thin enough to be a line (paths with curves are drawings, not rules);
* images, and the outline entries (bookmarks) pointing at the page.

Cost stays bounded on pages with thousands of drawing objects: at most
:data:`MAX_OBJECTS` objects and :data:`MAX_SEGMENTS` path segments are read per page.
"""

from __future__ import annotations

import ctypes
import math
import re
from typing import TYPE_CHECKING, Any

import pypdfium2.raw as pdfium_c

from ingest_plugins.pdfium_layout import page_text_and_lines
from ingest_plugins.structure.blocks import page_blocks
from ingest_plugins.structure.facts import Char, OutlineEntry, PageFacts, Rule

if TYPE_CHECKING:
    import pypdfium2 as pdfium
    from ingest import Block

    from ingest_plugins.layout import Line

__all__ = ["MAX_OBJECTS", "MAX_SEGMENTS", "PdfiumStructure", "read_outline"]

#: Page objects read at most per page (forms' objects included).
MAX_OBJECTS = 20_000
#: Path segments read at most per page.
MAX_SEGMENTS = 30_000
#: Outline entries read at most per document.
MAX_OUTLINE = 5_000
#: A filled rectangle at most this thick (points) is a rule.
RULE_THICKNESS = 2.5
#: Bold from this font weight on.
BOLD_WEIGHT = 600

_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demibold|demi\b|extrabold|ultrabold", re.I)
_FORCE_BOLD = 1 << 18
_SPACES = frozenset({0x20, 0xA0, 0x09, 0x0A, 0x0D, 0x2002, 0x2003, 0x2009, 0x3000})
_PATH, _IMAGE, _FORM = pdfium_c.FPDF_PAGEOBJ_PATH, pdfium_c.FPDF_PAGEOBJ_IMAGE, pdfium_c.FPDF_PAGEOBJ_FORM
_LINETO, _BEZIER, _MOVETO = (
    pdfium_c.FPDF_SEGMENT_LINETO, pdfium_c.FPDF_SEGMENT_BEZIERTO, pdfium_c.FPDF_SEGMENT_MOVETO,
)  # fmt: skip

Matrix = tuple[float, float, float, float, float, float]
_IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


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
        entries = self._outline.get(index, [])
        facts.outline = [
            OutlineEntry(level, title, None if y is None else top - y)
            for level, title, y in entries
        ]
        if not lines:
            return text, page_blocks(facts, tables=False)
        reader = _TextReader(textpage, left, top)
        upright = reader.upright()
        for line in lines:
            if upright:
                _to_page(line, left, top)
            else:
                line.y0, line.y1 = line.y0 + top, line.y1 + top
        reader.fonts(lines, ranges)
        if self.tables and upright:
            facts.rects = reader.rects(lines, ranges)
            facts.read_chars = lambda index: reader.chars(lines[index], ranges)
            facts.rules, facts.images = _drawings(page, left, top)
        return text, page_blocks(facts, tables=self.tables and upright)


def _to_page(line: Line, left: float, top: float) -> None:
    """A line's box from the reading frame of an upright page (``y`` is minus PDF's) to
    points from the page's top-left corner."""
    line.x0, line.x1 = line.x0 - left, line.x1 - left
    line.y0, line.y1 = top + line.y0, top + line.y1


class _TextReader:
    """PDFium's text page, read for fonts, runs and characters."""

    def __init__(self, textpage: pdfium.PdfTextPage, left: float, top: float) -> None:
        self.raw = textpage.raw
        self.count = textpage.count_chars()
        self.left, self.top = left, top
        self.matrix = pdfium_c.FS_MATRIX()
        self.doubles = [ctypes.c_double() for _ in range(4)]
        self.bold_of: dict[int | None, bool] = {}

    def upright(self) -> bool:
        """Whether most of the page's text runs left to right, unturned."""
        if self.count == 0:
            return True
        samples = [
            pdfium_c.FPDFText_GetCharAngle(self.raw, (self.count * k) // 9) for k in range(9)
        ]
        turned = sum(1 for angle in samples if angle > 0.1 and abs(angle - 2 * math.pi) > 0.1)
        return turned * 2 <= len(samples)

    def _visible(self, index: int) -> bool:
        return pdfium_c.FPDFText_GetUnicode(self.raw, index) not in _SPACES

    def font(self, index: int) -> tuple[float, bool]:
        """The size as drawn and the boldness of the font of character ``index``."""
        size = float(pdfium_c.FPDFText_GetFontSize(self.raw, index))
        if pdfium_c.FPDFText_GetMatrix(self.raw, index, self.matrix):
            m = self.matrix
            size *= math.sqrt(abs(m.a * m.d - m.b * m.c))
        obj = pdfium_c.FPDFText_GetTextObject(self.raw, index)
        font = pdfium_c.FPDFTextObj_GetFont(obj) if obj else None
        key = ctypes.cast(font, ctypes.c_void_p).value if font else None
        bold = self.bold_of.get(key)
        if bold is None:
            bold = self.bold_of[key] = _is_bold(font)
        return size, bold

    def fonts(self, lines: list[Line], ranges: list[tuple[int, int]]) -> None:
        """Set each line's ``size`` and ``bold`` from up to three of its visible characters
        (the first, the middle and the last), by majority."""
        for line in lines:
            first, last = ranges[line.source] if line.source < len(ranges) else (-1, -1)
            if first < 0:
                continue
            picks: list[int] = []
            if line.part or _has_parts(line, lines):
                picks = [c for c in self._indexes_within(line, first, last)][:3]
            else:
                middle = (first + last) // 2
                for start in (first, middle, last):
                    for index in range(start, min(start + 4, last + 1)):
                        if self._visible(index):
                            picks.append(index)
                            break
            fonts = [self.font(index) for index in dict.fromkeys(picks)]
            if not fonts:
                continue
            sizes = sorted(size for size, _ in fonts)
            line.size = sizes[len(sizes) // 2]
            line.bold = 2 * sum(1 for _, bold in fonts if bold) > len(fonts)

    def _indexes_within(self, line: Line, first: int, last: int) -> list[int]:
        """Visible characters of ``first..last`` whose box lies within ``line``'s extent
        (a line split at a gutter: the part's own characters)."""
        found: list[int] = []
        # FPDFText_GetCharBox fills left, right, bottom, top (not FPDFText_GetRect's order).
        left, right, bottom, top = self.doubles
        refs = [ctypes.byref(value) for value in self.doubles]
        for index in range(first, last + 1):
            if not self._visible(index):
                continue
            if pdfium_c.FPDFText_GetCharBox(self.raw, index, *refs):
                middle = (left.value + right.value) / 2 - self.left
                if line.x0 - 1 <= middle <= line.x1 + 1:
                    found.append(index)
                    if len(found) >= 3:
                        break
        return found

    def rects(
        self, lines: list[Line], ranges: list[tuple[int, int]]
    ) -> dict[int, list[tuple[float, float]]]:
        """For each line, the horizontal extents of its text runs (text objects)."""
        left, top, right, bottom = self.doubles
        refs = [ctypes.byref(value) for value in self.doubles]
        out: dict[int, list[tuple[float, float]]] = {}
        for position, line in enumerate(lines):
            first, last = ranges[line.source] if line.source < len(ranges) else (-1, -1)
            if first < 0:
                continue
            found = pdfium_c.FPDFText_CountRects(self.raw, first, last - first + 1)
            if found <= 1:
                continue
            runs: list[tuple[float, float]] = []
            for number in range(found):
                if pdfium_c.FPDFText_GetRect(self.raw, number, *refs):
                    x0, x1 = left.value - self.left, right.value - self.left
                    if line.x0 - 1 <= (x0 + x1) / 2 <= line.x1 + 1:
                        runs.append((x0, x1))
            if len(runs) > 1:
                out[position] = sorted(runs)
        return out

    def chars(self, line: Line, ranges: list[tuple[int, int]]) -> list[Char]:
        """The characters of ``line`` with their horizontal extents, in text order."""
        first, last = ranges[line.source] if line.source < len(ranges) else (-1, -1)
        if first < 0:
            return []
        left, right, bottom, top = self.doubles  # FPDFText_GetCharBox's order
        refs = [ctypes.byref(value) for value in self.doubles]
        chars: list[Char] = []
        pending_high = 0
        for index in range(first, last + 1):
            code = pdfium_c.FPDFText_GetUnicode(self.raw, index)
            if 0xD800 <= code < 0xDC00:
                pending_high = code
                continue
            if 0xDC00 <= code < 0xE000 and pending_high:
                code = 0x10000 + ((pending_high - 0xD800) << 10) + (code - 0xDC00)
            pending_high = 0
            if code in _SPACES or code < 0x20:
                if chars:
                    chars.append(Char(chars[-1].x1, chars[-1].x1, " "))
                continue
            if not pdfium_c.FPDFText_GetCharBox(self.raw, index, *refs):
                continue
            x0, x1 = left.value - self.left, right.value - self.left
            if line.x0 - 1 <= (x0 + x1) / 2 <= line.x1 + 1:
                chars.append(Char(x0, x1, chr(code)))
        return chars


def _has_parts(line: Line, lines: list[Line]) -> bool:
    # Only the first part of a split line has part 0; its sibling follows it closely.
    return any(other.source == line.source and other.part for other in lines)


def _is_bold(font: Any) -> bool:
    if not font:
        return False
    if pdfium_c.FPDFFont_GetWeight(font) >= BOLD_WEIGHT:
        return True
    if pdfium_c.FPDFFont_GetFlags(font) & _FORCE_BOLD:
        return True
    size = pdfium_c.FPDFFont_GetBaseFontName(font, None, 0)
    if size <= 0:
        return False
    buffer = ctypes.create_string_buffer(size)
    pdfium_c.FPDFFont_GetBaseFontName(font, buffer, size)
    return bool(_BOLD_NAME.search(buffer.value.decode("latin-1")))


# --------------------------------------------------------------------------------------------
# Drawings: rules and images
# --------------------------------------------------------------------------------------------


def _compose(inner: Matrix, outer: Matrix) -> Matrix:
    """The matrix applying ``inner`` then ``outer``."""
    a, b, c, d, e, f = inner
    A, B, C, D, E, F = outer
    return (a * A + b * C, a * B + b * D, c * A + d * C, c * B + d * D,
            e * A + f * C + E, e * B + f * D + F)  # fmt: skip


def _matrix_of(obj: Any, out: Any) -> Matrix:
    if not pdfium_c.FPDFPageObj_GetMatrix(obj, out):
        return _IDENTITY
    return (out.a, out.b, out.c, out.d, out.e, out.f)


def _drawings(page: pdfium.PdfPage, left: float, top: float) -> tuple[list[Rule], list[Any]]:
    """The straight rules and the image boxes of a page, in page coordinates."""
    rules: list[Rule] = []
    images: list[tuple[float, float, float, float]] = []
    matrix = pdfium_c.FS_MATRIX()
    point_x, point_y = ctypes.c_float(), ctypes.c_float()
    fill, stroke = ctypes.c_int(), ctypes.c_int()
    budget = [MAX_OBJECTS, MAX_SEGMENTS]
    root = page.raw
    todo: list[tuple[Any, int, int, Matrix]] = [
        (root, pdfium_c.FPDFPage_CountObjects(root), 0, _IDENTITY)
    ]
    while todo:
        parent, count, depth, outer = todo.pop()
        get = pdfium_c.FPDFPage_GetObject if depth == 0 else pdfium_c.FPDFFormObj_GetObject
        for index in range(count):
            if budget[0] <= 0:
                return rules, images
            budget[0] -= 1
            obj = get(parent, index)
            kind = pdfium_c.FPDFPageObj_GetType(obj)
            if kind == _FORM and depth < 3:
                # A form's objects are in its own space; its matrix maps them to the parent's.
                inner = _compose(_matrix_of(obj, matrix), outer)
                todo.append((obj, pdfium_c.FPDFFormObj_CountObjects(obj), depth + 1, inner))
            elif kind == _IMAGE:
                box = _image_box(obj, outer, depth)
                if box is not None:
                    x0, y0, x1, y1 = box
                    images.append((x0 - left, top - y1, x1 - left, top - y0))
            elif kind == _PATH and budget[1] > 0:
                full = _compose(_matrix_of(obj, matrix), outer)
                pdfium_c.FPDFPath_GetDrawMode(obj, ctypes.byref(fill), ctypes.byref(stroke))
                if fill.value or stroke.value:
                    _path_rules(obj, full, bool(stroke.value), budget, point_x, point_y, rules)
    for rule in rules:
        rule.x0, rule.x1 = rule.x0 - left, rule.x1 - left
        rule.y0, rule.y1 = top - rule.y1, top - rule.y0
    return rules, images


def _image_box(obj: Any, outer: Matrix, depth: int) -> tuple[float, float, float, float] | None:
    values = [ctypes.c_float() for _ in range(4)]
    if not pdfium_c.FPDFPageObj_GetBounds(obj, *(ctypes.byref(v) for v in values)):
        return None
    x0, y0, x1, y1 = (v.value for v in values)
    if depth:
        corners = [_apply(outer, x, y) for x in (x0, x1) for y in (y0, y1)]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
    return x0, y0, x1, y1


def _apply(m: Matrix, x: float, y: float) -> tuple[float, float]:
    return m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]


def _path_rules(
    obj: Any,
    m: Matrix,
    stroked: bool,
    budget: list[int],
    point_x: ctypes.c_float,
    point_y: ctypes.c_float,
    rules: list[Rule],
) -> None:
    """Add the rules of one path: its straight axis-aligned segments when stroked, its thin
    rectangles when only filled. A path with a curve is a drawing: nothing."""
    count = pdfium_c.FPDFPath_CountSegments(obj)
    if count <= 0 or count > budget[1]:
        budget[1] = 0 if count > budget[1] else budget[1]
        return
    budget[1] -= count
    subpaths: list[list[tuple[float, float]]] = []
    x_ref, y_ref = ctypes.byref(point_x), ctypes.byref(point_y)
    for index in range(count):
        segment = pdfium_c.FPDFPath_GetPathSegment(obj, index)
        kind = pdfium_c.FPDFPathSegment_GetType(segment)
        if kind == _BEZIER:
            return
        pdfium_c.FPDFPathSegment_GetPoint(segment, x_ref, y_ref)
        point = _apply(m, point_x.value, point_y.value)
        if kind == _MOVETO or not subpaths:
            subpaths.append([point])
        else:
            subpaths[-1].append(point)
        if pdfium_c.FPDFPathSegment_GetClose(segment) and subpaths[-1]:
            subpaths[-1].append(subpaths[-1][0])
    for points in subpaths:
        if stroked:
            for (xa, ya), (xb, yb) in zip(points, points[1:], strict=False):
                _add_segment(rules, xa, ya, xb, yb)
        elif len(points) >= 3:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
            if y1 - y0 <= RULE_THICKNESS and x1 - x0 > 2 * RULE_THICKNESS:
                middle = (y0 + y1) / 2
                rules.append(Rule(x0, middle, x1, middle, True))
            elif x1 - x0 <= RULE_THICKNESS and y1 - y0 > 2 * RULE_THICKNESS:
                middle = (x0 + x1) / 2
                rules.append(Rule(middle, y0, middle, y1, False))


def _add_segment(rules: list[Rule], xa: float, ya: float, xb: float, yb: float) -> None:
    if abs(ya - yb) <= 0.8 and abs(xa - xb) >= 2:
        middle = (ya + yb) / 2
        rules.append(Rule(min(xa, xb), middle, max(xa, xb), middle, True))
    elif abs(xa - xb) <= 0.8 and abs(ya - yb) >= 2:
        middle = (xa + xb) / 2
        rules.append(Rule(middle, min(ya, yb), middle, max(ya, yb), False))


# --------------------------------------------------------------------------------------------
# Outline
# --------------------------------------------------------------------------------------------


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
