"""Text rules the structure analysis shares: list markers, captions, joining lines."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ingest_plugins.dehyphenate import dehyphenate_text
from ingest_plugins.normalize import normalize_text

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["CAPTION", "LIST_MARKER", "is_caption", "join_lines", "split_marker"]

_BULLETS = (
    "\u2022\u2023\u2043\u2219\u25aa\u25ab\u25cf\u25cb\u25a0\u25a1\u25e6\u25ba\u25b8\u25c6"
    "\u27a2\u2713\u2714\u00b7\u2013\u2014*\\-"
    "\uf0b7\uf0a7\uf076\uf0d8\uf0fc\uf06e\uf0a8\uf0a1"
)
#: A list item's marker at the start of a line: a bullet, or a number, a lower-case letter or
#: roman numeral followed by ``.`` or ``)``, or such within parentheses.
LIST_MARKER = re.compile(
    rf"\s*(?:(?P<bullet>[{_BULLETS}])|(?P<number>\((?:\d{{1,3}}|[a-zA-Z]|[ivxlc]{{1,5}})\)"
    rf"|(?:\d{{1,3}}|[a-z]|[ivxlc]{{1,5}})[.)]|[A-Z]\)))(?=\s|$)\s*"
)
CAPTION = re.compile(
    r"(?P<word>figure|fig\.|chart|image|photo|plate|illustration|exhibit|table|tab\.)"
    r"\s*[A-Z]?\d+(?:\.\d+)*[a-z]?\s*[:.\u2013\u2014-]?",
    re.IGNORECASE,
)


def is_caption(text: str) -> bool:
    """Whether a paragraph is a caption: ``Figure 3:``, ``Fig. 3.``, ``Table 2 -``, or such a
    label without punctuation on a short paragraph (``Figure 3 The pipeline``, not ``Figure
    3 shows that...`` in running text).

    :param text: the paragraph's text.
    """
    match = CAPTION.match(text)
    if match is None:
        return False
    return match.group().rstrip()[-1:] in ":.\u2013\u2014-" or len(text) <= 100


def split_marker(text: str) -> tuple[str, str] | None:
    """The list marker at the start of ``text`` and the rest, or ``None`` without one.

    :param text: a line or a list item's text.
    :returns: ``(marker, rest)``: ``("•", "first item")``, ``("2.", "second")``.
    """
    match = LIST_MARKER.match(text)
    if match is None or not text[match.end() :].strip():
        return None
    return (match["bullet"] or match["number"]), text[match.end() :]


def join_lines(texts: Sequence[str]) -> str:
    """Lines of one paragraph as one line: broken words joined, whitespace normalized.

    :param texts: the lines, in order.
    :returns: the paragraph's text.
    """
    return " ".join(dehyphenate_text(normalize_text("\n".join(texts))).split())
