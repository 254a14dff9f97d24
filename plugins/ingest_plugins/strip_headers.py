"""The ``strip_headers`` transform: remove running headers and footers repeated on pages.

A running header ("Journal of Things, Vol. 3"), footer ("Page 4 of 10") or bare page number
is noise in every chunk it lands in, and it breaks sentences that flow across pages. The
rule, for the pages that hold any text:

* Only documents with at least :data:`MIN_PAGES` such pages are touched: with fewer, a
  repetition is not evidence of anything.
* The *edge zone* of a page is its first and last ``edge_lines`` non-empty lines; the rest
  of its non-empty lines are its *body*.
* Lines are compared by a key: surrounding whitespace stripped, inner runs of whitespace
  collapsed and every run of digits replaced by ``#``, so that "Page 3 of 10" and "Page 4 of
  10" (or the page numbers 3 and 4) are the same line.
* A key is a running header or footer when it occurs in the edge zone of at least
  ``max(MIN_PAGES, ceil(min_fraction * pages))`` pages and never in any page's body. The
  second condition keeps a chapter title that is also the running header where it opens the
  chapter, and a table of bare numbers when page numbers are also bare numbers: removing
  body text is worse than keeping a header.
* Only edge-zone lines with such a key are removed. On a page that lost a line, the blank
  lines left at its start and end are removed too; other pages are returned unchanged.

Pages without text (scans waiting for OCR) are neither counted nor changed.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ingest import hookimpl

if TYPE_CHECKING:
    from ingest import Document, Settings

NAME = "strip_headers"

MIN_PAGES = 3
EDGE_LINES = 3
MIN_FRACTION = 0.5

_DIGITS = re.compile(r"\d+")


def line_key(line: str) -> str:
    """The key under which lines count as the same running header or footer.

    :param line: one line of a page.
    :returns: the line with whitespace collapsed and digit runs replaced by ``#``; empty for
        a blank line.
    """
    return _DIGITS.sub("#", " ".join(line.split()))


def _edge_indexes(lines: Sequence[str], edge_lines: int) -> tuple[set[int], list[int]]:
    """Split a page's non-empty lines into edge zone and body.

    :param lines: the page's lines.
    :param edge_lines: how many non-empty lines at each end form the edge zone.
    :returns: the indexes (into ``lines``) of the edge-zone lines, and of the body lines.
    """
    filled = [index for index, line in enumerate(lines) if line.strip()]
    if len(filled) <= 2 * edge_lines:
        return set(filled), []
    edges = set(filled[:edge_lines]) | set(filled[-edge_lines:])
    return edges, filled[edge_lines:-edge_lines]


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
    :param min_fraction: the share of the pages with text a key must occur on.
    :returns: the keys to remove; empty for documents with fewer than :data:`MIN_PAGES` pages
        with text.
    :raises ValueError: if ``edge_lines`` is negative or ``min_fraction`` is not in [0, 1].
    """
    if edge_lines < 0:
        raise ValueError(f"edge_lines must be >= 0, got {edge_lines}")
    if not 0.0 <= min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be within [0, 1], got {min_fraction}")
    edge_counts: Counter[str] = Counter()
    body_keys: set[str] = set()
    text_pages = 0
    for text in pages:
        lines = text.split("\n")
        edges, body = _edge_indexes(lines, edge_lines)
        if not edges and not body:
            continue
        text_pages += 1
        # A page counts once per key, however often the key occurs in its edge zone.
        edge_counts.update({line_key(lines[index]) for index in edges})
        body_keys.update(line_key(lines[index]) for index in body)
    if text_pages < MIN_PAGES:
        return frozenset()
    needed = max(MIN_PAGES, math.ceil(min_fraction * text_pages))
    return frozenset(
        key for key, count in edge_counts.items() if count >= needed and key not in body_keys
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
    :param min_fraction: the share of the pages with text a line must recur on.
    :returns: the new text of each page, same length and order as ``pages``.
    :raises ValueError: as :func:`find_running_lines`.
    """
    running = find_running_lines(pages, edge_lines=edge_lines, min_fraction=min_fraction)
    if not running:
        return list(pages)
    result: list[str] = []
    for text in pages:
        lines = text.split("\n")
        edges, _ = _edge_indexes(lines, edge_lines)
        drop = {index for index in edges if line_key(lines[index]) in running}
        if not drop:
            result.append(text)
            continue
        kept = [line for index, line in enumerate(lines) if index not in drop]
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
