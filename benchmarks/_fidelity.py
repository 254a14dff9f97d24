"""Scoring text against a reference: word recall, precision and reading order.

Both sides go through the same steps before they are compared: Unicode NFKC, case folding,
words broken at a line end joined again (a hyphen, a soft hyphen or an extractor's
hyphenation marker before the line break, a lowercase letter after it), extractor markers
removed. Words are runs of letters and digits; every CJK ideograph, kana or hangul syllable
counts as a word of its own, since those scripts put no spaces between words and extractors
disagree about where they insert some.

* recall: the share of the reference's words (as a bag: each occurrence counts) found in the
  text; precision: the share of the text's words found in the reference;
* order: how much of the reference's word sequence the text keeps in the same order, as
  ``difflib``'s ratio of the two word lists (1.0: the same sequence).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

# A hyphen (or one of the markers extractors put at a line-end hyphenation point) between
# two letters across a line break: the typesetter's break of one word.
_BROKEN = re.compile(r"(?<=[^\W\d_])[-\u2010\u00ad\ufffe\x02][ \t]*\r?\n[ \t]*(?=[^\W\d_])")
_MARKERS = re.compile("[\u00ad\ufffe\ufeff\x02\u200b]")
_CJK = (
    "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    "\U00020000-\U0002fa1f"
)
_WORD = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


def words(text: str) -> list[str]:
    """The words of ``text``, in order, as the scores compare them."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _BROKEN.sub("", text)
    text = _MARKERS.sub("", text)
    return _WORD.findall(text)


@dataclass(frozen=True)
class Score:
    """How a text compares with its reference."""

    recall: float
    precision: float
    order: float
    reference_words: int
    words: int


def score(text: str, reference: str, *, order: bool = True) -> Score:
    """Compare ``text`` with ``reference`` (see the module docstring).

    :param order: also compute the order similarity (quadratic in the worst case; skip it
        for long texts where only the bags matter).
    :returns: the scores; an empty reference gives recall 1.0, an empty text precision 1.0.
    """
    got, ref = words(text), words(reference)
    return score_words(got, ref, order=order)


def score_words(got: Sequence[str], ref: Sequence[str], *, order: bool = True) -> Score:
    """:func:`score` on word lists already made by :func:`words`."""
    common = sum((Counter(got) & Counter(ref)).values())
    recall = common / len(ref) if ref else 1.0
    precision = common / len(got) if got else 1.0
    similarity = float("nan")
    if order:
        if not got and not ref:
            similarity = 1.0
        else:
            similarity = difflib.SequenceMatcher(None, got, ref, autojunk=False).ratio()
    return Score(recall, precision, similarity, len(ref), len(got))
