"""The ``strip_headers`` transform: remove running headers and footers repeated on pages.

A running header ("Journal of Things, Vol. 3"), footer ("Page 4 of 10") or bare page number
is noise in every chunk it lands in, and it breaks sentences that flow across pages. Removing
text is the one thing a transform must never get wrong, so a line goes only when all of this
holds, for the pages that hold any text:

* The document has at least :data:`MIN_PAGES` such pages: with fewer, a repetition is not
  evidence of anything.
* The line is in the *edge zone* of its page: its first or last ``edge_lines`` non-empty
  lines. The rest of the page's non-empty lines are its *body*.
* The same line, compared by :func:`line_key` (whitespace collapsed, every page number
  replaced by ``#``: digit runs and roman numerals, so ``3``, ``Page 3 of 9``, ``- 3 -``
  and ``xii`` each match their counterparts on other pages), stands in the same zone at the
  same place (one line up or down allowed) on enough other pages: at least
  ``max(MIN_PAGES, ceil(min_fraction * n))`` of the ``n`` text pages, counted over all pages
  or over the odd and the even pages separately, since books and journals alternate their
  running heads (``47699 Federal Register`` on the left, ``Federal Register 47700`` on the
  right).
* Pages that repeat wholesale count once: pages that share at least half their lines are
  one page for that count, so a document that prints the same page again (or the same text
  laid out twice) loses nothing. (A running header and footer are two lines of a page.)
* The line never occurs in any page's body: a chapter title that is also the running header
  stays where the chapter opens, and a table of bare numbers keeps its numbers when page
  numbers are bare numbers too.
* Headers and footers frame a page's content, so a page is never emptied: where every line
  of a page qualifies (short pages whose lines differ from page to page only by numbers,
  such as "Slide 3 of the deck, revision 3"), only its bare page numbers go (lines that are
  nothing but numbers, punctuation and the words "page" and "of").

On a page that lost a line, the blank lines left at its start and end are removed too; other
pages are returned unchanged. Pages without text (scans waiting for OCR) are neither counted
nor changed.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest import hookimpl

if TYPE_CHECKING:
    from ingest import Document, Settings

NAME = "strip_headers"

MIN_PAGES = 3
EDGE_LINES = 3
MIN_FRACTION = 0.5
#: Pages sharing at least this share of their lines are one page for the count.
SAME_PAGE = 0.5
#: Pages compared pairwise at most: past this many distinct pages only equal ones merge.
MAX_FUZZY_BODIES = 300

_DIGITS = re.compile(r"\d+")
# A roman numeral on its own up to 399 (i, iv, XII...), the page numbers of front matter;
# without m and d, so that words such as "mix" stay words.
_ROMAN = re.compile(
    r"(?<![^\W\d_])(?=[ivxlc]+(?![^\W\d_])|[IVXLC]+(?![^\W\d_]))"
    r"(?i:c{0,3}(?:x[cl]|l?x{0,3})(?:i[xv]|v?i{0,3}))(?![^\W\d_])"
)


def line_key(line: str) -> str:
    """The key under which lines count as the same running header or footer.

    :param line: one line of a page.
    :returns: the line with whitespace collapsed and page numbers (digit runs, roman
        numerals standing alone) replaced by ``#``; empty for a blank line.
    """
    text = " ".join(line.split())
    text = _DIGITS.sub("#", text)
    if any(char in "ivxlcIVXLC" for char in text):
        text = _ROMAN.sub(lambda match: "#" if match.group() else "", text)
    return text


@dataclass(slots=True)
class _Page:
    """A page with text: its lines, where its edge zones are, where its body is."""

    index: int
    lines: list[str]
    top: list[int]  # indexes of the top zone's lines, top down
    bottom: list[int]  # indexes of the bottom zone's lines, bottom up
    filled: frozenset[str]  # the page's non-empty lines, whitespace collapsed
    body: list[int]  # indexes of the non-empty lines outside the edge zones
    filled_lines: list[int]  # indexes of the non-empty lines


def _pages(texts: Sequence[str], edge_lines: int) -> list[_Page]:
    pages: list[_Page] = []
    for index, text in enumerate(texts):
        lines = text.split("\n")
        filled = [number for number, line in enumerate(lines) if line.strip()]
        if not filled:
            continue
        top = filled[:edge_lines]
        bottom = filled[::-1][:edge_lines]
        inner = filled[edge_lines:-edge_lines] if len(filled) > 2 * edge_lines else []
        page_lines = frozenset(" ".join(lines[n].split()) for n in filled)
        pages.append(_Page(index, lines, top, bottom, page_lines, inner, filled))
    return pages


def _same_page_groups(pages: list[_Page]) -> list[int]:
    """For each page, the number of the group of pages it repeats (pages sharing at least
    :data:`SAME_PAGE` of their lines; equal pages always): the first group, in page order,
    whose first page it repeats.

    Only groups that hold one of the page's rarest lines are compared: a group sharing
    ``t`` of the page's ``n`` lines holds at least one of any ``n - t + 1`` of them."""
    groups: list[int] = []
    representatives: list[frozenset[str]] = []
    exact: dict[frozenset[str], int] = {}
    holders: dict[str, list[int]] = defaultdict(list)  # line -> groups whose first page has it
    frequency = Counter(line for page in pages for line in page.filled)
    for page in pages:
        body = page.filled
        group = exact.get(body)
        if group is None and body and len(representatives) <= MAX_FUZZY_BODIES:
            shared = math.ceil(SAME_PAGE * len(body))
            rarest = sorted(body, key=frequency.__getitem__)[: len(body) - shared + 1]
            for number in sorted({number for line in rarest for number in holders[line]}):
                other = representatives[number]
                if len(body & other) >= SAME_PAGE * max(len(body), len(other)):
                    group = number
                    break
        if group is None:
            group = len(representatives)
            representatives.append(body)
            for line in body:
                holders[line].append(group)
        exact.setdefault(body, group)
        groups.append(group)
    return groups


# What line_key keeps of a line once page numbers and whitespace are gone: two lines with
# the same key have the same skeleton, so a line whose skeleton no candidate has is not one.
_NOT_SKELETON = re.compile(r"[\s\d#ivxlcIVXLC]+")


def _body_keys(pages: list[_Page], candidates: set[str]) -> set[str]:
    """The keys among ``candidates`` that some page's body holds."""
    skeletons = {_NOT_SKELETON.sub("", key) for key in candidates}
    found: set[str] = set()
    for page in pages:
        for number in page.body:
            line = page.lines[number]
            if _NOT_SKELETON.sub("", line) in skeletons:
                key = line_key(line)
                if key in candidates:
                    found.add(key)
    return found


def _needed(pages: int, min_fraction: float) -> int:
    return max(MIN_PAGES, math.ceil(min_fraction * pages))


def _running(
    texts: Sequence[str], edge_lines: int, min_fraction: float
) -> dict[int, set[int]]:
    """The lines to remove: for each page index, the indexes of its running lines."""
    if edge_lines < 0:
        raise ValueError(f"edge_lines must be >= 0, got {edge_lines}")
    if not 0.0 <= min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be within [0, 1], got {min_fraction}")
    pages = _pages(texts, edge_lines)
    if len(pages) < MIN_PAGES or edge_lines == 0:
        return {}
    groups = _same_page_groups(pages)
    parity_pages = [sum(1 for page in pages if page.index % 2 == p) for p in (0, 1)]
    need_all = _needed(len(pages), min_fraction)
    need_parity = [_needed(count, min_fraction) for count in parity_pages]
    # (zone, key) -> [(position in zone, page's place in `pages`)]
    seen: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for place, page in enumerate(pages):
        for zone, indexes in (("top", page.top), ("bottom", page.bottom)):
            for position, number in enumerate(indexes):
                key = line_key(page.lines[number])
                if key:
                    seen[(zone, key)].append((position, place))
    # Lines that cannot qualify anywhere are settled cheaply: the common case. Only the
    # others are looked for in the pages' bodies.
    fewest = min(need_all, *need_parity)
    candidates = {
        (zone, key): where
        for (zone, key), where in seen.items()
        if len({groups[place] for _, place in where}) >= fewest
    }
    in_body = _body_keys(pages, {key for _, key in candidates})
    found: dict[int, set[int]] = defaultdict(set)
    for (zone, key), where in candidates.items():
        if key in in_body:
            continue
        for position, place in where:
            near = [other for spot, other in where if abs(spot - position) <= 1]
            parity = pages[place].index % 2
            all_groups = {groups[other] for other in near}
            parity_groups = {groups[other] for other in near if pages[other].index % 2 == parity}
            if len(all_groups) >= need_all or len(parity_groups) >= need_parity[parity]:
                page = pages[place]
                indexes = page.top if zone == "top" else page.bottom
                found[page.index].add(indexes[position])
    for page in pages:
        drop = found.get(page.index)
        if drop is not None and len(drop) == len(page.filled_lines):
            found[page.index] = {n for n in drop if _bare_page_number(page.lines[n])}
    return {index: drop for index, drop in found.items() if drop}


# What is left of a bare page-number line ("3", "- 3 -", "Page 3 of 9", "xii") once its
# numbers and punctuation are gone.
_PAGE_WORDS = frozenset({"", "page", "pageof", "p"})


def _bare_page_number(line: str) -> bool:
    letters = "".join(char for char in line_key(line).casefold() if char.isalpha())
    return letters in _PAGE_WORDS


def find_running_lines(
    pages: Sequence[str],
    *,
    edge_lines: int = EDGE_LINES,
    min_fraction: float = MIN_FRACTION,
) -> frozenset[str]:
    """Find the keys (see :func:`line_key`) of the running headers and footers of a document.

    :param pages: the text of each page, in order.
    :param edge_lines: how many non-empty lines at the top and at the bottom of a page may be
        a header or footer.
    :param min_fraction: the share of the pages with text (or of the odd or the even ones) a
        line must recur on.
    :returns: the keys of the lines :func:`strip_running_lines` removes on some page; empty
        for documents with fewer than :data:`MIN_PAGES` pages with text.
    :raises ValueError: if ``edge_lines`` is negative or ``min_fraction`` is not in [0, 1].
    """
    running = _running(pages, edge_lines, min_fraction)
    return frozenset(
        line_key(pages[index].split("\n")[number])
        for index, numbers in running.items()
        for number in numbers
    )


def strip_running_lines(
    pages: Sequence[str],
    *,
    edge_lines: int = EDGE_LINES,
    min_fraction: float = MIN_FRACTION,
) -> list[str]:
    """Remove the running headers and footers from the pages of one document.

    :param pages: the text of each page, in order.
    :param edge_lines: how many non-empty lines at the top and at the bottom of a page may be
        a header or footer.
    :param min_fraction: the share of the pages with text (or of the odd or the even ones) a
        line must recur on.
    :returns: the new text of each page, same length and order as ``pages``.
    :raises ValueError: as :func:`find_running_lines`.
    """
    running = _running(pages, edge_lines, min_fraction)
    if not running:
        return list(pages)
    result: list[str] = []
    for index, text in enumerate(pages):
        drop = running.get(index)
        if not drop:
            result.append(text)
            continue
        kept = [line for number, line in enumerate(text.split("\n")) if number not in drop]
        # Trim the blank lines that separated the removed header or footer from the body.
        first = next((i for i, line in enumerate(kept) if line.strip()), len(kept))
        last = next((i for i in range(len(kept), first, -1) if kept[i - 1].strip()), first)
        result.append("\n".join(kept[first:last]))
    return result


@hookimpl
def ingest_transform(document: Document, settings: Settings, step: str) -> None:
    """Remove running headers and footers in place when the chain step is ``strip_headers``.

    :param document: the document to change.
    :param settings: the run's settings (unused: the defaults of this module apply).
    :param step: the chain step being run.
    :returns: nothing.
    """
    if step != NAME:
        return
    texts = strip_running_lines([page.text for page in document.pages])
    for page, text in zip(document.pages, texts, strict=True):
        page.text = text
