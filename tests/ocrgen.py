"""Scanned-looking PDFs with known text, for the OCR tests.

Text is drawn with a real TrueType font (DejaVu Serif when the system has it, else the
Aileron font Pillow ships) onto a white A4 image at 300 dpi, and the image is placed over a
whole fpdf2 page, as a scanner's PDF does. :func:`cer` measures what OCR read against it.
"""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import TextMode
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "KNOWN_TEXT",
    "UNICODE_FONT",
    "Scan",
    "Text",
    "cer",
    "font",
    "levenshtein",
    "page_image",
    "scanned_pdf",
]

#: English prose with digits and punctuation: what every scanned test page says.
KNOWN_TEXT = (
    "Optical character recognition reads a picture of a page and turns it back into text. "
    "The quick brown fox jumps over the lazy dog near the river bank in 1984. "
    "Scanned reports, old theses and faxed invoices rarely carry a text layer, "
    "so a search index without recognition never finds them."
)

_DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf")

#: The font of non-ASCII invisible layers (Debian: fonts-dejavu-core); tests that need it
#: skip without it.
UNICODE_FONT = _DEJAVU.with_name("DejaVuSans.ttf")
_A4_PT = (595.28, 841.89)


def font(pixels: int) -> ImageFont.FreeTypeFont:
    """A TrueType font ``pixels`` tall: DejaVu Serif if installed, else Pillow's own."""
    if _DEJAVU.is_file():
        return ImageFont.truetype(str(_DEJAVU), pixels)
    bundled = ImageFont.load_default(size=pixels)
    assert isinstance(bundled, ImageFont.FreeTypeFont), "Pillow was built without FreeType"
    return bundled


def page_image(text: str, *, dpi: int = 300, points: float = 12.0) -> Image.Image:
    """An A4 page at ``dpi`` with ``text`` wrapped in ``points``-sized type, black on white."""
    width, height = (round(side / 72 * dpi) for side in _A4_PT)
    image = Image.new("L", (width, height), color=255)
    draw = ImageDraw.Draw(image)
    size = round(points / 72 * dpi)
    face = font(size)
    margin = dpi  # one inch
    y = margin
    for paragraph in text.split("\n\n"):
        for line in textwrap.wrap(paragraph, width=68):
            draw.text((margin, y), line, fill=0, font=face)
            y += round(size * 1.5)
        y += size
    return image


@dataclass(frozen=True)
class Scan:
    """A page that is one image of ``text``; ``layer`` is drawn invisibly over it, as the
    text layer of a scanner whose own OCR went wrong (``None``: no text layer)."""

    text: str = KNOWN_TEXT
    layer: str | None = None


@dataclass(frozen=True)
class Text:
    """A page of ordinary text in Helvetica."""

    text: str


def scanned_pdf(path: Path, pages: Sequence[Scan | Text], *, dpi: int = 300) -> Path:
    """Write a PDF of ``pages`` in order to ``path`` and return it."""
    pdf = FPDF(unit="pt", format="A4")
    pdf.set_auto_page_break(auto=False)
    pdf.set_creator("tests/ocrgen.py")
    for page in pages:
        pdf.add_page()
        if isinstance(page, Text):
            pdf.set_font("Helvetica", size=11)
            pdf.set_xy(72, 72)
            pdf.multi_cell(451, 15, page.text)
            continue
        buffer = io.BytesIO()
        page_image(page.text, dpi=dpi).save(buffer, format="PNG")
        buffer.seek(0)
        pdf.image(buffer, x=0, y=0, w=_A4_PT[0], h=_A4_PT[1])
        if page.layer is not None:
            _invisible_layer(pdf, page.layer)
    pdf.output(str(path))
    return path


def _invisible_layer(pdf: FPDF, layer: str) -> None:
    if layer.isascii():
        pdf.set_font("Helvetica", size=11)
    else:
        # U+FFFD needs a Unicode font that has the glyph (fpdf2 drops missing ones).
        pdf.add_font("Layer", fname=str(UNICODE_FONT))
        pdf.set_font("Layer", size=11)
    pdf.text_mode = TextMode.INVISIBLE
    pdf.set_xy(72, 72)
    pdf.multi_cell(451, 15, layer)
    pdf.text_mode = TextMode.FILL


def levenshtein(a: str, b: str) -> int:
    """Edits (insertions, deletions, substitutions) that turn ``a`` into ``b``."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        previous = current
    return previous[-1]


def cer(read: str, truth: str) -> float:
    """Character error rate of ``read`` against ``truth``, whitespace runs counting as one
    space (line breaks are layout, not text)."""
    a, b = (re.sub(r"\s+", " ", s).strip() for s in (read, truth))
    return levenshtein(a, b) / max(1, len(b))
