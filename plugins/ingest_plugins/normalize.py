"""The ``normalize`` transform: make each page's text canonical before anything reads it.

Extractors hand back text full of typesetting artefacts: ligatures (``ﬁ``), full-width
letters, non-breaking and odd-width spaces, soft hyphens, stray control characters and
``\\r\\n`` line ends. Later steps (dehyphenation, header detection, chunking, dedup) compare
text, so they need one spelling of it. The rules, applied to each page in this order:

1. Line breaks: ``\\r\\n``, ``\\r`` and every other character :meth:`str.splitlines` breaks
   on (vertical tab, form feed, ``U+0085``, ``U+2028``, ``U+2029``...) become ``\\n``, so a
   form feed between two words does not glue them together.
2. Extractor artefacts are resolved (:mod:`ingest_plugins.artefacts`): a hyphenation marker
   (``U+FFFE``, ``U+0002``, a soft hyphen ``U+00AD``) at a line end joins the broken word
   when the next line continues it, any other marker goes, and so do Unicode non-characters.
   Extractors do this already; text from elsewhere gets the same rule here.
3. Invisible characters are removed: soft hyphens (``U+00AD``), zero-width spaces, the
   word joiner and byte-order marks, and every control character except ``\\n`` and ``\\t``.
   This happens before step 4 so that a removed character cannot hide a composition.
4. Unicode NFKC: ligatures split (``ﬁ`` → ``fi``), full-width forms narrow (``U+FF21`` → ``A``),
   non-breaking and other fixed-width spaces become plain spaces.
5. Whitespace: any remaining non-newline whitespace (tabs included) becomes a space, runs of
   spaces collapse to one, spaces at line ends go, more than one blank line in a row becomes
   a single blank line (a paragraph break stays a paragraph break), and the page is stripped.

The result is idempotent: normalizing twice gives the same text as normalizing once.
Leading spaces of a line are collapsed but kept, since they may be meaningful indentation.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from ingest import hookimpl

from ingest_plugins.artefacts import clean_extracted_text

if TYPE_CHECKING:
    from ingest import Document, Settings

NAME = "normalize"

# Everything str.splitlines() treats as a line boundary, longest first so "\r\n" wins.
_LINE_BREAKS = re.compile("\r\n|[\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")

# Format characters that are invisible in print and only split words apart for a reader
# of the raw text. ZWJ/ZWNJ are kept: they change how Indic and Persian text is spelled.
_INVISIBLE = "\u00ad\u200b\u2060\ufeff"

# The invisible characters and the control characters (Unicode category Cc is exactly
# U+0000-U+001F and U+007F-U+009F) except newline and tab. A regular expression rather than a
# str.translate table: translate looks every character up, many times slower on a page.
_DELETE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_INVISIBLE}]")

# re's \s is Unicode whitespace (the same set as str.isspace), so these catch tabs and the
# spaces NFKC leaves alone (U+1680...). A run to rewrite is one holding a blank other than a
# space, or two spaces or more: single spaces between words, nearly all of a page's blanks,
# are not matched one by one only to be replaced by themselves.
_ODD_BLANK = re.compile(r"[^\S\n ]")
_BLANK_RUNS = re.compile(r" *[^\S\n ][^\S\n]*| {2,}")
_BLANK_LINE_RUNS = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """Normalize one page of text (the rules are in the module docstring).

    :param text: the raw text of a page.
    :returns: the normalized text; empty when the page held only whitespace and controls.
    """
    text = clean_extracted_text(_LINE_BREAKS.sub("\n", text))
    if _DELETE.search(text):
        text = _DELETE.sub("", text)
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    if "  " in text or _ODD_BLANK.search(text):
        text = _BLANK_RUNS.sub(" ", text)
    # Every blank run is now one space, so a line's trailing blanks are one space before
    # its newline (or at the end, which strip() takes).
    text = text.replace(" \n", "\n")
    if "\n\n\n" in text:
        text = _BLANK_LINE_RUNS.sub("\n\n", text)
    return text.strip()


@hookimpl
def ingest_transform(document: Document, settings: Settings, step: str) -> None:
    """Normalize every page's text in place when the chain step is ``normalize``.

    :param document: the document to change.
    :param settings: the run's settings (unused: the rules have no knobs).
    :param step: the chain step being run.
    :returns: nothing.
    """
    if step != NAME:
        return
    for page in document.pages:
        page.text = normalize_text(page.text)
