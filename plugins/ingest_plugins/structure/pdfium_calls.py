"""PDFium functions called many times per page, without ctypes' argument conversion.

pypdfium2's bindings check and convert every argument; on calls made for each character,
line or path segment that conversion costs more than PDFium's own work. The prototypes here
take arguments exactly as the C signature wants them: handles as ``ctypes.c_void_p``,
numbers as ``int``, out-parameters by ``ctypes.byref``. A Python ``int`` passed as a handle
would be cut to 32 bits, so every handle a function returns (``restype`` ``c_void_p``, an
``int`` in Python) is wrapped in ``ctypes.c_void_p`` again before it is passed on.
"""

from __future__ import annotations

import ctypes
from typing import Any

import pypdfium2.raw as pdfium_c

__all__ = ["handle", "raw_call"]


def raw_call(function: Any, restype: Any) -> Any:
    """``function`` (a pypdfium2 binding) as a prototype that converts nothing.

    :param function: the binding, e.g. ``pypdfium2.raw.FPDFText_GetUnicode``.
    :param restype: its C return type, e.g. ``ctypes.c_uint``.
    :returns: a callable taking ctypes values as the C function does.
    """
    prototype = ctypes.CFUNCTYPE(restype)(ctypes.cast(function, ctypes.c_void_p).value)
    prototype.argtypes = None
    return prototype


def handle(value: Any) -> ctypes.c_void_p:
    """A pypdfium2 handle (a typed pointer) as a plain ``c_void_p`` for :func:`raw_call`."""
    return ctypes.c_void_p(ctypes.cast(value, ctypes.c_void_p).value)


_VOID_P, _INT, _UINT, _DOUBLE, _FLOAT = (
    ctypes.c_void_p, ctypes.c_int, ctypes.c_uint, ctypes.c_double, ctypes.c_float,
)  # fmt: skip

get_unicode = raw_call(pdfium_c.FPDFText_GetUnicode, _UINT)
get_char_box = raw_call(pdfium_c.FPDFText_GetCharBox, _INT)
get_char_angle = raw_call(pdfium_c.FPDFText_GetCharAngle, _FLOAT)
get_font_size = raw_call(pdfium_c.FPDFText_GetFontSize, _DOUBLE)
get_matrix = raw_call(pdfium_c.FPDFText_GetMatrix, _INT)
get_text_object = raw_call(pdfium_c.FPDFText_GetTextObject, _VOID_P)
get_font = raw_call(pdfium_c.FPDFTextObj_GetFont, _VOID_P)
count_rects = raw_call(pdfium_c.FPDFText_CountRects, _INT)
get_rect = raw_call(pdfium_c.FPDFText_GetRect, _INT)

count_objects = raw_call(pdfium_c.FPDFPage_CountObjects, _INT)
get_object = raw_call(pdfium_c.FPDFPage_GetObject, _VOID_P)
form_count_objects = raw_call(pdfium_c.FPDFFormObj_CountObjects, _INT)
form_get_object = raw_call(pdfium_c.FPDFFormObj_GetObject, _VOID_P)
object_type = raw_call(pdfium_c.FPDFPageObj_GetType, _INT)
object_bounds = raw_call(pdfium_c.FPDFPageObj_GetBounds, _INT)
object_matrix = raw_call(pdfium_c.FPDFPageObj_GetMatrix, _INT)
path_draw_mode = raw_call(pdfium_c.FPDFPath_GetDrawMode, _INT)
path_count_segments = raw_call(pdfium_c.FPDFPath_CountSegments, _INT)
path_segment = raw_call(pdfium_c.FPDFPath_GetPathSegment, _VOID_P)
segment_point = raw_call(pdfium_c.FPDFPathSegment_GetPoint, _INT)
segment_type = raw_call(pdfium_c.FPDFPathSegment_GetType, _INT)
segment_close = raw_call(pdfium_c.FPDFPathSegment_GetClose, _INT)
font_weight = raw_call(pdfium_c.FPDFFont_GetWeight, _INT)
font_flags = raw_call(pdfium_c.FPDFFont_GetFlags, _INT)
font_base_name = raw_call(pdfium_c.FPDFFont_GetBaseFontName, ctypes.c_ulong)
