"""Scoring the structure found in a document against what was written into it.

Texts are compared after Unicode NFKC, case folding, and keeping only letters, digits and
single spaces; a list item's marker (a bullet, a dash, ``3.``) is not part of its text.

* headings: precision, recall and F1 of the headings found, matched by text (each written
  heading matches at most one found, as a bag); level accuracy: the share of the matched
  headings found at the level written;
* list items: precision, recall and F1 of the list items found, matched by text;
* tables: cell accuracy, the share of the written cells found with the same text at the
  same row and column, in the found table of the same page that agrees best with the
  written one (each found table serves one written table; a table not found scores 0 for
  all its cells). Found tables that match no written table are counted apart.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ingest_plugins.structure.text import split_marker

_NOT_WORD = re.compile(r"[\W_]+")


def norm(text: str) -> str:
    """``text`` as the scores compare it."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NOT_WORD.sub(" ", text).split())


def item_text(text: str) -> str:
    """A list item's text without its marker, as the scores compare it."""
    found = split_marker(text)
    return norm(found[1] if found is not None else text)


@dataclass
class Matches:
    """Counts behind a precision, a recall and an F1."""

    found: int = 0
    wanted: int = 0
    matched: int = 0

    def add(self, other: Matches) -> None:
        self.found += other.found
        self.wanted += other.wanted
        self.matched += other.matched

    @property
    def precision(self) -> float:
        return self.matched / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.wanted if self.wanted else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def bag_matches(found: Sequence[str], wanted: Sequence[str]) -> Matches:
    """How many of ``found`` and ``wanted`` match as bags of normalized texts."""
    common = Counter(found) & Counter(wanted)
    return Matches(len(found), len(wanted), sum(common.values()))


def heading_scores(
    found: Sequence[tuple[str, int]], wanted: Sequence[tuple[str, int]]
) -> tuple[Matches, int, int]:
    """``(matches, matched with the right level, matched)`` for one document's headings."""
    matches = bag_matches([norm(t) for t, _ in found], [norm(t) for t, _ in wanted])
    levels: dict[str, list[int]] = {}
    for text, level in found:
        levels.setdefault(norm(text), []).append(level)
    right = total = 0
    for text, level in wanted:
        candidates = levels.get(norm(text))
        if not candidates:
            continue
        total += 1
        if level in candidates:
            candidates.remove(level)
            right += 1
        else:
            candidates.pop(0)
    return matches, right, total


def cell_agreement(found: Sequence[Sequence[str]], wanted: Sequence[Sequence[str]]) -> int:
    """How many cells of ``wanted`` have the same text at the same place in ``found``."""
    return sum(
        1
        for r, row in enumerate(wanted)
        for c, text in enumerate(row)
        if r < len(found) and c < len(found[r]) and norm(found[r][c]) == norm(text)
    )


def table_scores(
    found: Sequence[tuple[int, list[list[str]]]], wanted: Sequence[tuple[int, list[list[str]]]]
) -> tuple[int, int, int]:
    """``(cells right, cells written, found tables matching none)`` for one document."""
    used: set[int] = set()
    right = cells = 0
    for page, grid in wanted:
        cells += sum(len(row) for row in grid)
        best, best_index = 0, -1
        for index, (found_page, found_grid) in enumerate(found):
            if index in used or found_page != page:
                continue
            agree = cell_agreement(found_grid, grid)
            if agree > best:
                best, best_index = agree, index
        if best_index >= 0:
            used.add(best_index)
            right += best
    return right, cells, len(found) - len(used)
