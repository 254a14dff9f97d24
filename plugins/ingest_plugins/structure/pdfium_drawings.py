"""The rules and images PDFium finds among a page's objects.

Rules are the straight horizontal and vertical segments of paths that are stroked, and
filled rectangles thin enough to be a line (at most :data:`RULE_THICKNESS` points). A path
with a curve is a drawing, not a rule. Forms (XObjects) are entered three levels deep, their
matrices applied.

Cost stays bounded on pages of drawings (maps, CAD plans, charts): a path's box is read
first; a thin box is a rule by itself, and the segments are read only of a stroked path
that may be a table's frame: at most :data:`GRID_PATH` segments (some writers draw a whole
grid as one path). At most :data:`MAX_OBJECTS` objects and :data:`MAX_SEGMENTS` segments are
read per page.
"""

from __future__ import annotations

import ctypes
import itertools
from typing import TYPE_CHECKING

import pypdfium2.raw as pdfium_c

from ingest_plugins.structure import pdfium_calls as call
from ingest_plugins.structure.facts import Rule

if TYPE_CHECKING:
    import pypdfium2 as pdfium
    from ingest import BBox

__all__ = ["GRID_PATH", "MAX_OBJECTS", "MAX_SEGMENTS", "RULE_THICKNESS", "drawings"]

#: Page objects read at most per page (forms' objects included).
MAX_OBJECTS = 20_000
#: Path segments read at most per page.
MAX_SEGMENTS = 20_000
#: A filled rectangle at most this thick (points) is a rule.
RULE_THICKNESS = 2.5
#: Stroked paths of at most this many segments are read (a grid drawn as one path).
GRID_PATH = 400

_PATH, _IMAGE, _FORM = (
    pdfium_c.FPDF_PAGEOBJ_PATH, pdfium_c.FPDF_PAGEOBJ_IMAGE, pdfium_c.FPDF_PAGEOBJ_FORM,
)  # fmt: skip
_BEZIER, _MOVETO = pdfium_c.FPDF_SEGMENT_BEZIERTO, pdfium_c.FPDF_SEGMENT_MOVETO

Matrix = tuple[float, float, float, float, float, float]
_IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def _compose(inner: Matrix, outer: Matrix) -> Matrix:
    """The matrix applying ``inner``, then ``outer``."""
    a, b, c, d, e, f = inner
    A, B, C, D, E, F = outer  # the matrix entries' usual names
    return (a * A + b * C, a * B + b * D, c * A + d * C, c * B + d * D,
            e * A + f * C + E, e * B + f * D + F)  # fmt: skip


def _apply(m: Matrix, x: float, y: float) -> tuple[float, float]:
    return m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]


class _Reader:
    """Out-parameters shared by the calls, and what is left of the page's budget."""

    def __init__(self) -> None:
        self.matrix = pdfium_c.FS_MATRIX()
        self.matrix_ref = ctypes.byref(self.matrix)
        self.bounds = [ctypes.c_float() for _ in range(4)]
        self.bounds_refs = [ctypes.byref(value) for value in self.bounds]
        self.x, self.y = ctypes.c_float(), ctypes.c_float()
        self.xy_refs = (ctypes.byref(self.x), ctypes.byref(self.y))
        self.fill, self.stroke = ctypes.c_int(), ctypes.c_int()
        self.mode_refs = (ctypes.byref(self.fill), ctypes.byref(self.stroke))
        self.objects = MAX_OBJECTS
        self.segments = MAX_SEGMENTS

    def matrix_of(self, obj: ctypes.c_void_p) -> Matrix:
        if not call.object_matrix(obj, self.matrix_ref):
            return _IDENTITY
        m = self.matrix
        return (m.a, m.b, m.c, m.d, m.e, m.f)

    def box(self, obj: ctypes.c_void_p, outer: Matrix) -> BBox | None:
        """The object's box in page space (``outer`` maps its container's space there)."""
        if not call.object_bounds(obj, *self.bounds_refs):
            return None
        x0, y0, x1, y1 = (value.value for value in self.bounds)
        if outer is not _IDENTITY:
            corners = [_apply(outer, x, y) for x in (x0, x1) for y in (y0, y1)]
            xs, ys = [c[0] for c in corners], [c[1] for c in corners]
            x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        return x0, y0, x1, y1


def drawings(
    page: pdfium.PdfPage, left: float, top: float, *, rules: bool = True
) -> tuple[list[Rule], list[BBox]]:
    """The rules and the image boxes of a page.

    :param page: the loaded page.
    :param left: the page box's left edge in PDF user space; ``top`` its top edge.
    :param rules: read the paths for rules (else only images are looked for).
    :returns: rules and image boxes, in points from the page's top-left corner.
    """
    found: list[Rule] = []
    reader = _Reader()
    if not rules:
        reader.segments = 0
    images: list[BBox] = []
    root = call.handle(page.raw)
    todo: list[tuple[ctypes.c_void_p, int, int, Matrix]] = [
        (root, call.count_objects(root), 0, _IDENTITY)
    ]
    while todo:
        parent, count, depth, outer = todo.pop()
        for index in range(min(count, reader.objects)):
            reader.objects -= 1
            if depth == 0:
                obj = ctypes.c_void_p(call.get_object(parent, index))
            else:  # this one takes an unsigned long
                obj = ctypes.c_void_p(call.form_get_object(parent, ctypes.c_ulong(index)))
            kind = call.object_type(obj)
            if kind == _PATH:
                if reader.segments > 0:
                    _path(reader, obj, outer, found)
            elif kind == _IMAGE:
                box = reader.box(obj, outer)
                if box is not None:
                    images.append((box[0] - left, top - box[3], box[2] - left, top - box[1]))
            elif kind == _FORM and depth < 3:
                # A form's objects are in its own space; its matrix maps them to the parent's.
                inner = _compose(reader.matrix_of(obj), outer)
                todo.append((obj, call.form_count_objects(obj), depth + 1, inner))
        if reader.objects <= 0:
            break
    for rule in found:
        rule.x0, rule.x1 = rule.x0 - left, rule.x1 - left
        rule.y0, rule.y1 = top - rule.y1, top - rule.y0
    return found, images


def _path(reader: _Reader, obj: ctypes.c_void_p, outer: Matrix, rules: list[Rule]) -> None:
    """Add the rules of one path (see the module docstring)."""
    call.path_draw_mode(obj, *reader.mode_refs)
    filled, stroked = bool(reader.fill.value), bool(reader.stroke.value)
    if not (filled or stroked):
        return
    count = call.path_count_segments(obj)
    if count <= 1:
        return
    box = reader.box(obj, outer)
    if box is None:
        return
    x0, y0, x1, y1 = box
    if min(x1 - x0, y1 - y0) <= RULE_THICKNESS:
        # A line, or a rectangle thin enough to be one: its box says all.
        if x1 - x0 > 2 * RULE_THICKNESS and x1 - x0 >= y1 - y0:
            rules.append(Rule(x0, (y0 + y1) / 2, x1, (y0 + y1) / 2, True))
        elif y1 - y0 > 2 * RULE_THICKNESS:
            rules.append(Rule((x0 + x1) / 2, y0, (x0 + x1) / 2, y1, False))
        return
    if not stroked or count > GRID_PATH:
        return
    if count > reader.segments:
        reader.segments = 0
        return
    reader.segments -= count
    m = _compose(reader.matrix_of(obj), outer)
    subpaths: list[list[tuple[float, float]]] = []
    x, y = reader.x, reader.y
    for index in range(count):
        segment = ctypes.c_void_p(call.path_segment(obj, index))
        kind = call.segment_type(segment)
        if kind == _BEZIER:
            return
        call.segment_point(segment, *reader.xy_refs)
        point = _apply(m, x.value, y.value)
        if kind == _MOVETO or not subpaths:
            subpaths.append([point])
        else:
            subpaths[-1].append(point)
        if call.segment_close(segment):
            subpaths[-1].append(subpaths[-1][0])
    for points in subpaths:
        for (xa, ya), (xb, yb) in itertools.pairwise(points):
            _add(rules, xa, ya, xb, yb)


def _add(rules: list[Rule], xa: float, ya: float, xb: float, yb: float) -> None:
    if abs(ya - yb) <= 0.8 and abs(xa - xb) >= 2:
        middle = (ya + yb) / 2
        rules.append(Rule(min(xa, xb), middle, max(xa, xb), middle, True))
    elif abs(xa - xb) <= 0.8 and abs(ya - yb) >= 2:
        middle = (xa + xb) / 2
        rules.append(Rule(middle, min(ya, yb), middle, max(ya, yb), False))
