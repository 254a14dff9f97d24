"""Pages to images with PDFium, for OCR: open once per document, render only what is asked.

PDFium is not thread-safe; every call into it here holds the lock the ``pdfium`` extractor
holds, so a threaded backend never enters it twice at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from ingest_plugins import pdfium_extractor
from ingest_plugins.pdf_common import password_of

if TYPE_CHECKING:
    from pathlib import Path

    from PIL.Image import Image

__all__ = ["MAX_PIXELS", "open_pdf", "page_layout", "render_page"]

#: Pixels of one rendered page at most: 60 million is an A0 poster at 150 dpi, 60 MB in
#: grayscale. A larger page is rendered at a lower resolution (the provenance says which),
#: so a hostile MediaBox cannot make one page take gigabytes.
MAX_PIXELS = 60_000_000

# The lock of the pdfium extractor, which owns PDFium in this process (see its module).
_LOCK = pdfium_extractor.PDFIUM_LOCK


@contextmanager
def open_pdf(path: Path, settings: Any) -> Iterator[pdfium.PdfDocument]:
    """The PDF at ``path``, opened with the configured password if the empty one fails.

    :param settings: the run's settings (``extract.password``).
    """
    password = password_of(settings)
    with _LOCK:
        try:
            document = pdfium.PdfDocument(path)
        except pdfium.PdfiumError:
            if not password:
                raise
            document = pdfium.PdfDocument(path, password=password)
    try:
        yield document
    finally:
        with _LOCK:
            document.close()


def page_layout(pdf: pdfium.PdfDocument, number: int) -> tuple[float, float]:
    """The area of page ``number`` (1-based) in square inches, and the share of it that
    images cover (overlaps counted twice, capped at 1): a scan is one page-sized image."""
    with _LOCK:
        page = pdf[number - 1]
        try:
            width, height = page.get_size()
            covered = 0.0
            for image in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=4):
                left, bottom, right, top = image.get_bounds()
                # Clipped to the page: an image bleeding off the edge covers only the page.
                w = max(0.0, min(right, width) - max(left, 0.0))
                h = max(0.0, min(top, height) - max(bottom, 0.0))
                covered += w * h
        finally:
            page.close()
    area = abs(width * height)
    return area / (72.0 * 72.0), min(1.0, covered / area) if area else 0.0


def render_page(pdf: pdfium.PdfDocument, number: int, dpi: int) -> tuple[Image, int]:
    """Page ``number`` (1-based) as a grayscale image at ``dpi``, or lower for huge pages.

    :returns: the image and the resolution it was rendered at.
    """
    with _LOCK:
        page = pdf[number - 1]
        try:
            width, height = page.get_size()
            pixels = abs(width * height) / (72.0 * 72.0) * dpi * dpi
            if pixels > MAX_PIXELS:
                dpi = max(1, int(dpi * math.sqrt(MAX_PIXELS / pixels)))
            bitmap = page.render(scale=dpi / 72.0, grayscale=True, may_draw_forms=True)
            try:
                # A copy: the bitmap's buffer is PDFium's and goes away with it.
                image = bitmap.to_pil().copy()
            finally:
                bitmap.close()
        finally:
            page.close()
    return image, dpi
