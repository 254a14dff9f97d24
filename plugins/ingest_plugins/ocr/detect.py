"""Which pages need OCR, and why: decided from the text alone wherever possible.

A page is OCR'd when (in this order of the reason recorded):

* ``no-text``: fewer usable characters than ``extract.min_chars_per_page``;
* ``garbage``: more than :data:`~ingest_plugins.pdf_common.GARBAGE_SHARE` of its glyphs are
  U+FFFD, controls, private-use characters or pdfminer ``(cid:NN)`` runs;
* ``flagged``: the extractor set ``needs_ocr`` by a rule of its own;
* ``sparse``: fewer letters than ``ocr.min_letters_per_sq_inch`` times the page's area, and
  images covering at least :data:`SCAN_IMAGE_SHARE` of it: a scan whose text layer is only
  a stamp ("Downloaded from ..."). A short page of real text has no such image, and stays.

The first three need the text only. ``sparse`` needs the page's layout, so only pages with
fewer letters than the rule allows on an A3 page (:data:`SPARSE_CHECK_AREA`) are measured,
and a document of ordinary text pages is never opened a second time.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ingest_plugins.pdf_common import garbage_count, text_needs_ocr, without_cid

if TYPE_CHECKING:
    from ingest import Page

__all__ = [
    "SCAN_IMAGE_SHARE",
    "SPARSE_CHECK_AREA",
    "clearly_readable",
    "garbage_count",
    "is_sparse",
    "letter_count",
    "may_be_sparse",
    "reason_from_text",
    "usable_count",
]

#: Share of the page that images must cover for the ``sparse`` rule: a scanned page is one
#: image over all of it; a figure with a caption on a text page covers less.
SCAN_IMAGE_SHARE = 0.5

#: Square inches of an A3 page: the largest page the ``sparse`` rule is sure to check.
SPARSE_CHECK_AREA = (297 / 25.4) * (420 / 25.4)

# Anything that could be garbage: one regex search, in C, clears an ordinary page at once.
_SUSPECT = re.compile(
    "[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff\ufffd\U000f0000-\U0010ffff]"
    r"|\(cid:\d"
)
_ASCII_NON_LETTERS = bytes(code for code in range(128) if not chr(code).isalpha())
# Every ASCII byte but the controls _SUSPECT matches (so \t \n \f \r are not garbage).
_ASCII_NON_CONTROLS = bytes(code for code in range(128) if not _SUSPECT.fullmatch(chr(code)))


def usable_count(text: str) -> int:
    """Letters and digits of ``text``, not counting the ones inside ``(cid:NN)`` runs."""
    return sum(map(str.isalnum, without_cid(text)[0]))


def letter_count(text: str) -> int:
    """Letters of ``text`` (any script), not counting the ones inside ``(cid:NN)`` runs."""
    return sum(map(str.isalpha, without_cid(text)[0]))


def clearly_readable(page: Page, *, min_chars: int, letters_per_sq_inch: float) -> bool:
    """A fast ``True`` for the common page: no flag, no possible garbage, and letters enough
    for every rule, so neither :func:`reason_from_text` nor the ``sparse`` rule can fire.

    A few microseconds for a dense ASCII page, where byte translation does the counting in
    C (text pages must cost nothing measurable); other pages take one regex
    search. ``False`` means only "look closer", never "needs OCR".
    """
    text = page.text
    if page.needs_ocr:
        return False
    needed = max(min_chars, letters_per_sq_inch * SPARSE_CHECK_AREA)
    if text.isascii():
        if "(cid:" in text:
            return False
        data = text.encode("ascii")
        if len(data.translate(None, _ASCII_NON_CONTROLS)):
            return False
        return len(data.translate(None, _ASCII_NON_LETTERS)) >= needed
    if _SUSPECT.search(text):
        return False
    return sum(map(str.isalpha, text)) >= needed


def reason_from_text(page: Page, *, min_chars: int) -> str | None:
    """Why ``page`` needs OCR judging by its text and flag alone, or ``None``.

    :param page: the page as the extractor returned it.
    :param min_chars: ``extract.min_chars_per_page``.
    :returns: ``no-text``, ``garbage``, ``flagged`` or ``None``.
    """
    if text_needs_ocr(page.text, min_chars):
        return "garbage" if garbage_count(page.text) else "no-text"
    if page.needs_ocr:
        return "flagged"
    return None


def may_be_sparse(page: Page, letters_per_sq_inch: float) -> bool:
    """Whether ``page`` could fail the ``sparse`` rule, so its size is worth measuring."""
    if letters_per_sq_inch <= 0:
        return False
    return letter_count(page.text) < letters_per_sq_inch * SPARSE_CHECK_AREA


def is_sparse(
    page: Page, letters_per_sq_inch: float, area_sq_inch: float, image_share: float
) -> bool:
    """Whether ``page`` looks like a scan: few letters for its ``area_sq_inch``, and images
    covering ``image_share`` (0 to 1) of it, at least :data:`SCAN_IMAGE_SHARE`."""
    if image_share < SCAN_IMAGE_SHARE:
        return False
    return letter_count(page.text) < letters_per_sq_inch * area_sq_inch
