"""Extractor artefacts in page text: hyphenation markers and characters no text is made of.

Extractors mark a word broken at a line end in their own ways. PDFium replaces the hyphen with
``U+FFFE`` (and usually drops the line break after it, so the marker sits inside the word:
``adip\\ufffeiscing``); fonts without a Unicode map give ``U+0002`` for the hyphen glyph; and
text typeset with soft hyphens keeps ``U+00AD`` where the line broke. None of them belongs in
the text, and left alone they split words (full-text search misses ``adipiscing``) or glue a
word to the next line.

:func:`resolve_hyphen_markers` applies one rule to all three:

* a marker at a line end (spaces or tabs may follow it) after a letter or digit is a
  hyphenation point: when the next line starts with a letter or digit, the word is joined and
  the rest of it moves up to the first line (``adip\\ufffe\\niscing elit`` becomes
  ``adipiscing\\nelit``, as :mod:`ingest_plugins.dehyphenate` joins ``-``); otherwise the
  marker is dropped;
* a marker anywhere else is removed, so ``adip\\ufffeiscing`` becomes ``adipiscing``.

:func:`clean_extracted_text` does that and removes the Unicode non-characters
(``U+FDD0``-``U+FDEF`` and the last two code points of every plane), which no font maps a
glyph to on purpose. The extractors apply it to every page (after judging the raw text for
OCR, whose garbage count these characters belong to); the ``normalize`` transform applies it
again, for text that came from elsewhere.
"""

from __future__ import annotations

import re

__all__ = [
    "HYPHEN_MARKERS",
    "NONCHARACTERS",
    "clean_extracted_text",
    "resolve_hyphen_markers",
]

#: Characters extractors leave where a word was hyphenated at a line end.
HYPHEN_MARKERS = "\ufffe\x02\u00ad"

#: Unicode's non-characters: U+FDD0..U+FDEF and U+xFFFE, U+xFFFF in each of the 17 planes.
NONCHARACTERS = frozenset(
    [*map(chr, range(0xFDD0, 0xFDF0))]
    + [chr((plane << 16) | low) for plane in range(17) for low in (0xFFFE, 0xFFFF)]
)

_BLANKS = " \t"
_HAS_MARKER = re.compile(f"[{HYPHEN_MARKERS}]")
_NONCHARACTER = re.compile(
    "[\ufdd0-\ufdef\ufffe\uffff"
    + "".join(
        f"{chr((plane << 16) | 0xFFFE)}{chr((plane << 16) | 0xFFFF)}" for plane in range(1, 17)
    )
    + "]"
)
# One fast pass tells most pages have nothing to clean: a class of a few ranges is cheap,
# one that lists the 32 astral non-characters one by one costs ten times as much, so
# those are looked for only in text with a character beyond the BMP.
_BMP_ARTEFACT = re.compile(f"[{HYPHEN_MARKERS}\ufdd0-\ufdef\uffff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_BMP_NONCHARACTER = re.compile("[\ufdd0-\ufdef\ufffe\uffff]")


def _without_markers(text: str) -> str:
    # str.replace per marker, not str.translate: translate with a table looks every
    # character up, thirty times slower on a page of text.
    for marker in HYPHEN_MARKERS:
        if marker in text:
            text = text.replace(marker, "")
    return text


def _continues(line: str, following: str) -> bool:
    head = line.rstrip(_BLANKS)
    if not head or head[-1] not in HYPHEN_MARKERS:
        return False
    before = head.rstrip(HYPHEN_MARKERS)
    tail = following.lstrip(_BLANKS)
    return bool(before) and before[-1].isalnum() and bool(tail) and tail[0].isalnum()


def _first_word(line: str) -> tuple[str, str]:
    line = line.lstrip(_BLANKS)
    for position, char in enumerate(line):
        if char in _BLANKS:
            return line[:position], line[position:].lstrip(_BLANKS)
    return line, ""


def resolve_hyphen_markers(text: str) -> str:
    """Join the words a hyphenation marker broke at a line end, and remove every other marker.

    :param text: the text of one page, lines separated by ``\\n``.
    :returns: the text without :data:`HYPHEN_MARKERS` (the rules are in the module
        docstring); text without a marker is returned as it is.
    """
    if not _HAS_MARKER.search(text):
        return text
    lines = text.split("\n")
    out: list[str] = []
    current = lines[0]
    index = 1
    upcoming: str | None = None
    while True:
        if upcoming is None:
            if index == len(lines):
                break
            upcoming = lines[index]
            index += 1
        if _continues(current, upcoming):
            word, rest = _first_word(upcoming)
            current = current.rstrip(_BLANKS).rstrip(HYPHEN_MARKERS) + word
            # The moved word may end with a marker itself (a word broken twice).
            upcoming = rest or None
            continue
        out.append(current)
        current, upcoming = upcoming, None
    out.append(current)
    return _without_markers("\n".join(out))


def clean_extracted_text(text: str) -> str:
    """The text of a page without extractor artefacts (see the module docstring).

    :param text: a page's text with ``\\n`` line ends.
    :returns: the text with hyphenation markers resolved and non-characters removed.
    """
    if not _BMP_ARTEFACT.search(text) and not _ASTRAL.search(text):
        return text
    text = resolve_hyphen_markers(text)
    if _BMP_NONCHARACTER.search(text) or (_ASTRAL.search(text) and _NONCHARACTER.search(text)):
        text = _NONCHARACTER.sub("", text)
    return text
