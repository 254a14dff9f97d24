"""The per-page quality check: a page whose text is implausible is read again by the next
extractor of the chain, and the better text is kept.

An extractor that does not fail can still lose text: PDFium drops the glyphs of a CJK font it
cannot map (a page of dates and digits comes out of a page of Chinese), pads OCR layers with
spaces inside words (``Chin a Ocea n``), or reads text drawn twice for a bold effect twice
(``mmuunniicciippaalliittéé``). The fallback chain (``extract.fallback``) only runs when an
extractor raises, so such a page would go to the store as it is. Every page is therefore
judged as it comes out of the extractor; the reasons, cheapest first:

* ``glyphs-without-text``: the extractor saw text objects on the page that produced no
  characters (PDFium counts them; see :mod:`ingest_plugins.pdfium_extractor`), and says so in
  ``provenance["quality"]`` with its counts;
* ``garbage``: at least :data:`MIN_GARBAGE` glyphs and more than :data:`GARBAGE_SHARE` of
  them are U+FFFD, controls, private-use characters or ``(cid:NN)`` runs
  (:func:`~ingest_plugins.pdf_common.garbage_count`);
* ``split-words``: at least :data:`MIN_SPLITS` words of three or more letters followed by a
  lone letter (``Chin a``), more than :data:`SPLIT_SHARE` of the words of three letters or
  more (real single-letter words after a long one are rarer than that even in mathematics);
* ``doubled-glyphs``: at least :data:`MIN_DOUBLED` characters, and more than
  :data:`DOUBLED_SHARE` of the letters and digits, in runs of four letters each written
  twice (``mmuunn``).

A flagged page is extracted again by the next extractor of ``[extract.extractor,
*extract.fallback]`` after the one that made it (the first-party ``pdfium``, ``pypdf`` and
``pdfminer``; one blocked with ``-p no:NAME`` is skipped), page by page. Both texts are
scored by :func:`text_score` (letters and digits, less the garbage, the doubled and the split
letters); the alternative replaces the page only when it scores more than
:data:`BETTER_BY` times as much. Either way ``provenance["quality"]`` records the reason,
the measures, the extractor checked and the one kept (``kept``), and the sinks store it
(SQLite: ``pages.provenance``; JSONL: each chunk's ``page_provenance``).

Cost: the text tests are a few regular expressions over text already in memory; a flagged
page costs one more extraction of that page.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ingest import Page

from ingest_plugins.pdf_common import garbage_count

if TYPE_CHECKING:
    from pathlib import Path

    from ingest import Metadata

__all__ = [
    "QUALITY",
    "check_pages",
    "text_reason",
    "text_score",
]

#: The provenance key of the check's record.
QUALITY = "quality"

MIN_GARBAGE = 5
GARBAGE_SHARE = 0.05
MIN_SPLITS = 8
SPLIT_SHARE = 0.4
MIN_DOUBLED = 16
DOUBLED_SHARE = 0.05
#: An alternative text replaces the page only when it scores this much more.
BETTER_BY = 1.05

#: The first-party extractors the check can ask, by plugin name: module and function.
EXTRACTORS = {
    "pdfium": ("ingest_plugins.pdfium_extractor", "extract_with_pdfium"),
    "pypdf": ("ingest_plugins.pypdf_extractor", "extract_with_pypdf"),
    "pdfminer": ("ingest_plugins.pdfminer_extractor", "extract_with_pdfminer"),
}

_LONG_WORD = re.compile(r"[^\W\d_]{3,}")
# A word of three letters or more, a space, a lone letter: "Chin a", "Shippin g".
_SPLIT = re.compile(r"[^\W\d_]{3} [^\W\d_](?!\w)")
# Four letters in a row, each written twice: "mmuunn".
_DOUBLED = re.compile(r"([^\W\d_])\1([^\W\d_])\2([^\W\d_])\3([^\W\d_])\4")
_GARBAGE_CHAR = re.compile(
    "[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff\ufffd"
    "\U000f0000-\U000ffffd\U00100000-\U0010fffd]|\\(cid:"
)

_ASCII_GARBAGE = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]|\\(cid:")

# Cheap screens, one fast pass each: a lone letter after a space; two doubled characters.
_LONE_LETTER = re.compile(r" \w(?=[ \n])")
_DOUBLED_PAIR = re.compile(r"(.)\1(.)\2")


def _doubled(text: str) -> int:
    return sum(len(match.group()) for match in _DOUBLED.finditer(text))


def _measures(text: str) -> dict[str, int]:
    return {
        "chars": sum(map(str.isalnum, text)),
        "garbage": garbage_count(text),
        "split_words": len(_SPLIT.findall(text)),
        "long_words": len(_LONG_WORD.findall(text)),
        "doubled": _doubled(text),
    }


def text_reason(text: str) -> tuple[str, dict[str, int]] | None:
    """Why ``text`` is implausible as a page's text, judged by the text alone.

    Each test starts with a cheap pass that rules most pages out, so a plausible page costs
    three fast scans of its text.

    :param text: a page's text.
    :returns: ``(reason, measures)`` for the first reason that holds (see the module
        docstring), or ``None`` for a plausible text.
    """
    # ASCII text (most pages; Python knows it without a scan) can only hold the ASCII part.
    if (_ASCII_GARBAGE if text.isascii() else _GARBAGE_CHAR).search(text):
        garbage = garbage_count(text)
        if garbage >= MIN_GARBAGE:
            chars = sum(map(str.isalnum, text))
            if garbage > GARBAGE_SHARE * (garbage + chars):
                return "garbage", _measures(text)
    lone = len(_LONE_LETTER.findall(text))
    if lone >= MIN_SPLITS and lone > SPLIT_SHARE / 2 * text.count(" "):
        splits = len(_SPLIT.findall(text))
        if splits >= MIN_SPLITS and splits > SPLIT_SHARE * len(_LONG_WORD.findall(text)):
            return "split-words", _measures(text)
    if len(_DOUBLED_PAIR.findall(text)) * 4 >= MIN_DOUBLED:
        doubled = _doubled(text)
        if doubled >= MIN_DOUBLED and doubled > DOUBLED_SHARE * sum(map(str.isalnum, text)):
            return "doubled-glyphs", _measures(text)
    return None


def text_score(text: str) -> float:
    """How much usable text ``text`` holds: letters and digits, less twice the garbage, the
    letters of doubled runs and two per split word."""
    facts = _measures(text)
    return float(
        facts["chars"] - 2 * facts["garbage"] - facts["doubled"] - 2 * facts["split_words"]
    )


def _next_extractors(settings: Any, name: str) -> list[str]:
    extract = settings.extract
    first = getattr(extract, "extractor", name)
    chain = list(dict.fromkeys([first, *getattr(extract, "fallback", ())]))
    blocked = {spec[3:] for spec in getattr(settings, "plugins", []) if spec.startswith("no:")}
    after = chain[chain.index(name) + 1 :] if name in chain else []
    return [other for other in after if other in EXTRACTORS and other not in blocked]


def _plain(name: str) -> Callable[..., tuple[Metadata, list[Page]]]:
    module, function = EXTRACTORS[name]
    extract: Callable[..., tuple[Metadata, list[Page]]] = getattr(
        importlib.import_module(module), function
    )
    return extract


def check_pages(
    pages: list[Page],
    *,
    path: Path,
    settings: Any,
    name: str,
    password: str | None,
    min_chars: int,
) -> None:
    """Judge each page of ``pages`` and replace, in place, those the next extractor reads
    better (the rules are in the module docstring).

    :param pages: the pages the extractor ``name`` made.
    :param path: the PDF, for the next extractor.
    :param settings: the run's settings (``extract.extractor``, ``extract.fallback``,
        ``plugins``).
    :param name: the extractor that made the pages.
    :param password: the password, for the next extractor.
    :param min_chars: ``extract.min_chars_per_page``, for the pages made again.
    :returns: nothing; a page made again by another extractor carries its name.
    """
    flagged: dict[int, tuple[str, dict[str, Any]]] = {}
    for index, page in enumerate(pages):
        reported = page.provenance.get(QUALITY)
        if isinstance(reported, dict) and "reason" in reported and "kept" not in reported:
            facts = {key: value for key, value in reported.items() if key != "reason"}
            flagged[index] = (str(reported["reason"]), facts)
            continue
        found = text_reason(page.text)
        if found is not None:
            flagged[index] = (found[0], dict(found[1]))
    if not flagged:
        return
    alternatives = _next_extractors(settings, name)
    for index, (reason, facts) in flagged.items():
        page = pages[index]
        record: dict[str, Any] = {"reason": reason, **facts, "kept": name}
        for other in alternatives[:1]:
            record["checked"] = other
            try:
                _, found_pages = _plain(other)(
                    path,
                    password=password,
                    min_chars=min_chars,
                    pages=range(page.number, page.number + 1),
                )
            except Exception as exc:  # the page keeps its text; the record says why
                record["check_error"] = f"{type(exc).__name__}: {exc}"[:200]
                continue
            replacement = next((p for p in found_pages if p.number == page.number), None)
            if replacement is None:
                continue
            mine, theirs = text_score(page.text), text_score(replacement.text)
            record["score"] = round(mine, 1)
            record["checked_score"] = round(theirs, 1)
            if theirs > BETTER_BY * max(mine, 0.0) and theirs > mine:
                record["kept"] = other
                provenance = {**page.provenance, **replacement.provenance, QUALITY: record}
                pages[index] = Page(
                    number=page.number,
                    text=replacement.text,
                    extractor=other,
                    needs_ocr=replacement.needs_ocr,
                    provenance=provenance,
                )
                break
        if record["kept"] == name:
            page.provenance = {**page.provenance, QUALITY: record}
