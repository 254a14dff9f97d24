"""The ``dehyphenate`` transform: rejoin words that typesetting broke at a line end.

``"the infor-\\nmation is"`` becomes ``"the information\\nis"``: the rest of the broken word
moves up to the first line, and the line break stays, now after the whole word. When the
rest of the word was all of its line, that line disappears (``"infor-\\nmation\\nnext"`` →
``"information\\nnext"``), so no blank line, which would read as a paragraph break, is made.

A line end is joined only when all of these hold, because a hyphen at a line end is just as
often part of a real compound:

* the line ends with a hyphen (``-``, ``U+2010`` or a soft hyphen ``U+00AD``), optionally
  followed by spaces or tabs;
* the hyphen is preceded by at least two letters and the last of them is lowercase:
  typesetters never leave a single letter before a break (so ``e-\\nmail``, ``x-\\nray``
  stay), and an uppercase letter or a digit before the hyphen marks an acronym or a number
  (``COVID-\\n19``, ``NATO-\\nled``, ``2019-\\n2020`` stay);
* the next line starts (after spaces or tabs) with a lowercase letter: an uppercase letter
  starts a name or a proper-noun compound (``Jean-\\nPaul``, ``non-\\nEuropean`` stay), a
  digit a number, and an empty line a new paragraph.

What no rule without a dictionary can tell apart, such as ``well-\\nknown`` (a compound)
from ``infor-\\nmation`` (a break), is joined: breaks are far more common in running text.

The join works within a page only. A word broken across a page boundary stays broken,
because page texts are kept separate (chunks carry page numbers) and a page break usually
sits next to a header or footer that would first have to be removed.

The function is idempotent, and text without a hyphen at a line end is returned unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest import hookimpl

if TYPE_CHECKING:
    from ingest import Document, Settings

NAME = "dehyphenate"

HYPHENS = frozenset("-\u2010\u00ad")

_BLANKS = " \t"

# At least this many letters must precede the hyphen (TeX's \lefthyphenmin is 2 as well).
_MIN_LEFT_LETTERS = 2


def _joinable(line: str, following: str) -> bool:
    """Whether ``line`` ends with a word broken by a hyphen that continues on ``following``.

    :param line: the line that may end with a hyphen (trailing blanks allowed).
    :param following: the next line (leading blanks allowed).
    :returns: ``True`` when the two should be joined (the rules are in the module docstring).
    """
    head = line.rstrip(_BLANKS)
    if not head or head[-1] not in HYPHENS:
        return False
    letters = 0
    for char in reversed(head[:-1]):
        if not char.isalpha():
            break
        letters += 1
        if letters >= _MIN_LEFT_LETTERS:
            break
    if letters < _MIN_LEFT_LETTERS or not head[-2].islower():
        return False
    tail = following.lstrip(_BLANKS)
    return bool(tail) and tail[0].islower()


def _split_first_word(line: str) -> tuple[str, str]:
    """Split a line into its first word and the rest (leading blanks of both dropped).

    :param line: a line that starts, after blanks, with a word.
    :returns: ``(word, rest)``; ``rest`` is empty when the word was all of the line.
    """
    line = line.lstrip(_BLANKS)
    for position, char in enumerate(line):
        if char in _BLANKS:
            return line[:position], line[position:].lstrip(_BLANKS)
    return line, ""


def dehyphenate_text(text: str) -> str:
    """Join the words broken at line ends in ``text`` (the rules are in the module docstring).

    :param text: the text of one page; lines are separated by ``\\n``.
    :returns: the text with broken words joined.
    """
    lines = text.split("\n")
    if len(lines) < 2:
        return text
    out: list[str] = []
    current = lines[0]
    pending = 1
    # ``upcoming`` is the line after ``current``: normally the next input line, but after a
    # join that left part of a line behind, that remainder, which may itself need a join.
    upcoming: str | None = None
    while True:
        if upcoming is None:
            if pending == len(lines):
                break
            upcoming = lines[pending]
            pending += 1
        if _joinable(current, upcoming):
            word, rest = _split_first_word(upcoming)
            current = current.rstrip(_BLANKS)[:-1] + word
            # The joined word may end with a hyphen again ("well-known-\nness"), so the
            # remainder, or else the following line, is checked against it once more.
            upcoming = rest or None
            continue
        out.append(current)
        current, upcoming = upcoming, None
    out.append(current)
    return "\n".join(out)


@hookimpl
def ingest_transform(document: Document, settings: Settings, step: str) -> None:
    """Rejoin broken words on every page in place when the chain step is ``dehyphenate``.

    :param document: the document to change.
    :param settings: the run's settings (unused: the rules have no knobs).
    :param step: the chain step being run.
    :returns: nothing.
    """
    if step != NAME:
        return
    for page in document.pages:
        page.text = dehyphenate_text(page.text)
