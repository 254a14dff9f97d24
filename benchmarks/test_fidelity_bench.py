"""Fidelity: is the text right? Generated ground truth per layout feature, and the corpus
against two independent extractors; plus what the quality check and the layout cost.

* **Generated** (:mod:`_fidelity_docs`, fpdf2): one document per feature (one, two and three
  columns drawn out of order, footnotes drawn before the body, running headers and footers
  the same on every page or alternating with page numbers in several forms, hyphenated line
  ends, ligatures, CJK, right-to-left, rotated pages, pages repeated wholesale), through
  ``ingest.run`` with the default settings and a SQLite sink. Scored per feature against the
  ground truth (:mod:`_fidelity`): word recall and precision >= 0.99, reading order >= 0.98.
* **Corpus** (../shared/corpus): the default run's pages against pypdf's and pdfminer's text
  (their plain extraction functions, no transforms). Target: in the mean, recall and
  precision at least what pypdf and pdfminer reach against each other; for every document,
  within 0.05 of that, unless a reason the table names holds (:func:`_explanation`: the
  words went with running headers and footers, the reference repeats text PDFium merges, or
  the gap is at most two words).
* **Cost**: the quality check (the PDFium test for glyphs without text, the text tests, and
  the pages it reads again) in seconds over the corpus, against the default run's duration:
  at most 5%. The layout's cost (:func:`~ingest_plugins.pdfium_layout.page_text` against
  PDFium's plain text) is reported.

Run: ``pytest benchmarks/test_fidelity_bench.py -s`` (two to four minutes, pdfminer's pass
over the corpus dominating).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import ingest
import pytest
from _fidelity import Score, score, score_words, words
from _fidelity_docs import Doc, generate

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
RECALL = PRECISION = 0.99
ORDER = 0.98
SLACK = 0.05
COST = 0.05
ROUNDS = 3


def run_pages(paths: list[Path], workdir: Path, **settings: Any) -> dict[str, list[str]]:
    """``ingest.run`` in this process with a SQLite sink: each file's page texts."""
    database = workdir / "out.db"
    ingest.run(
        [str(path) for path in paths],
        sinks=[f"sqlite:{database}"],
        run={"workers": 0},
        cache={"enabled": False},
        progress="none",
        **settings,
    )
    connection = sqlite3.connect(database)
    try:
        pages: dict[str, list[str]] = {}
        rows = connection.execute(
            "SELECT d.source, p.text FROM pages p JOIN documents d USING (doc_id) "
            "ORDER BY d.source, p.number"
        )
        for source, text in rows:
            pages.setdefault(Path(source).name, []).append(text)
        return pages
    finally:
        connection.close()


# --------------------------------------------------------------------------------------------
# Generated ground truth
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Doc], list[str], dict]:
    folder = tmp_path_factory.mktemp("fidelity")
    docs, skipped = generate(folder / "docs")
    pages = run_pages([folder / "docs"], folder)
    return docs, skipped, pages


def test_generated_features(generated: tuple[list[Doc], list[str], dict]) -> None:
    docs, skipped, pages = generated
    rows: list[tuple[str, Score]] = []
    for doc in docs:
        got = "\n\n".join(pages.get(doc.path.name, []))
        rows.append((doc.feature, score(got, "\n\n".join(doc.pages))))
    print("\n\nfidelity on generated documents (ingest run, default settings)")
    print(f"{'feature':<28}{'recall':>8}{'precision':>11}{'order':>8}{'words':>8}")
    for feature, result in rows:
        print(
            f"{feature:<28}{result.recall:>8.3f}{result.precision:>11.3f}"
            f"{result.order:>8.3f}{result.reference_words:>8}"
        )
    for name in skipped:
        print(f"{name:<28} skipped: its font is not installed")
    misses = [
        feature
        for feature, result in rows
        if result.recall < RECALL or result.precision < PRECISION or result.order < ORDER
    ]
    assert not misses, f"below recall/precision {RECALL} or order {ORDER}: {misses}"


# --------------------------------------------------------------------------------------------
# Corpus against pypdf and pdfminer
# --------------------------------------------------------------------------------------------


def _reference(name: str) -> dict[str, str]:
    module = __import__(f"ingest_plugins.{name}_extractor", fromlist=["_"])
    extract = getattr(module, f"extract_with_{name}")
    texts: dict[str, str] = {}
    logging.disable(logging.CRITICAL)
    try:
        for path in sorted(CORPUS.glob("*.pdf")):
            try:
                _, pages = extract(path, password=None, min_chars=16)
            except Exception:  # a file this extractor cannot read has no reference
                continue
            texts[path.name] = "\n\n".join(page.text for page in pages)
    finally:
        logging.disable(logging.NOTSET)
    return texts


@pytest.mark.timeout(1800)  # pdfminer reads the whole corpus: minutes on a busy machine
@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not present")
def test_corpus_against_pypdf_and_pdfminer(tmp_path: Path) -> None:
    (tmp_path / "default").mkdir()
    (tmp_path / "kept").mkdir()
    ours = run_pages([CORPUS], tmp_path / "default")
    chain = ["normalize", "dehyphenate", "chunk", "dedup"]
    unstripped = run_pages([CORPUS], tmp_path / "kept", transforms=chain)
    pypdf, pdfminer = _reference("pypdf"), _reference("pdfminer")
    names = sorted(set(ours) & set(pypdf) & set(pdfminer))
    table: list[dict[str, Any]] = []
    for name in names:
        mine = words("\n\n".join(ours[name]))
        kept = words("\n\n".join(unstripped.get(name, ours[name])))
        row: dict[str, Any] = {"name": name}
        for label, ref, other in (("pypdf", pypdf, pdfminer), ("pdfminer", pdfminer, pypdf)):
            reference = words(ref[name])
            row[label] = score_words(mine, reference, order=False)
            row[f"{label} kept"] = score_words(kept, reference, order=False)
            row[f"{label} pair"] = score_words(words(other[name]), reference, order=False)
            row[f"{label} distinct"] = score_words(
                _distinct(mine), _distinct(reference), order=False
            )
        table.append(row)
    print(f"\n\ncorpus: {len(table)} documents; default run against each reference")
    header = f"{'':<18}{'recall':>8}{'precision':>11}   pair: recall precision"
    print(header)
    means: dict[str, tuple[float, float, float, float]] = {}
    for label in ("pypdf", "pdfminer"):
        recall = statistics.mean(row[label].recall for row in table)
        precision = statistics.mean(row[label].precision for row in table)
        pair_recall = statistics.mean(row[f"{label} pair"].recall for row in table)
        pair_precision = statistics.mean(row[f"{label} pair"].precision for row in table)
        means[label] = (recall, precision, pair_recall, pair_precision)
        print(
            f"against {label:<10}{recall:>8.3f}{precision:>11.3f}"
            f"{pair_recall:>15.3f}{pair_precision:>10.3f}"
        )
    outside: list[str] = []
    unexplained: list[str] = []
    for row in table:
        notes = []
        for label in ("pypdf", "pdfminer"):
            mine, kept, pair = row[label], row[f"{label} kept"], row[f"{label} pair"]
            for measure in ("recall", "precision"):
                value, floor = getattr(mine, measure), getattr(pair, measure) - SLACK
                if value >= floor:
                    continue
                why = _explanation(row, label, measure, floor)
                notes.append(f"{measure} vs {label} {value:.2f} < {floor + SLACK:.2f}: {why}")
                if why == "unexplained":
                    unexplained.append(f"{row['name']}: {notes[-1]}")
        if notes:
            outside.append(f"  {row['name']}: " + "; ".join(notes))
    print("documents outside 0.05 of the pair:" if outside else "no document outside 0.05")
    for line in outside:
        print(line)
    for label, (recall, precision, pair_recall, pair_precision) in means.items():
        assert recall >= pair_recall and precision >= pair_precision, label
    # The per-document floor holds except where the header/footer removal took the words.
    assert not unexplained, unexplained


# A word that is one shorter word written several times over: "2011201120112011".
_REPEATS = re.compile(r"(.+?)\1+")


def _distinct(words_: list[str]) -> list[str]:
    """The distinct words, each word made of one word written several times counted as that
    word: an extractor that repeats text drawn over itself glues the copies of a number
    together (pypdf: ``2011201120112011`` for ``2011`` drawn four times)."""
    return sorted({(match.group(1) if (match := _REPEATS.fullmatch(word)) else word)
                   for word in words_})  # fmt: skip


def _explanation(row: dict[str, Any], label: str, measure: str, floor: float) -> str:
    """Why a document's score falls below the pair's less 0.05, when a reason holds:

    * ``running lines``: without ``strip_headers`` it would not (the words went with lines
      repeated at the same place on other pages);
    * ``the reference repeats text``: counted over distinct words it would not (pypdf and
      pdfminer repeat text drawn twice over itself for a bold effect, gluing the copies of
      a number into one word; PDFium merges it: see :func:`_distinct`);
    * ``tiny``: the difference is at most two words (a document of a few dozen words).
    """
    mine, kept = row[label], row[f"{label} kept"]
    if getattr(kept, measure) >= floor:
        return "running lines"
    distinct = row[f"{label} distinct"]
    if getattr(distinct, measure) >= floor:
        return "the reference repeats text"
    words_short = (floor - getattr(mine, measure)) * (
        mine.reference_words if measure == "recall" else mine.words
    )
    if words_short <= 2:
        return "tiny"
    return "unexplained"


# --------------------------------------------------------------------------------------------
# Cost
# --------------------------------------------------------------------------------------------


def _extract_all(check: bool) -> float:
    from ingest.config import Settings
    from ingest_plugins import pdfium_extractor
    from ingest_plugins.page_quality import check_pages

    settings = Settings()
    silent = pdfium_extractor.silent_text_objects
    if not check:
        pdfium_extractor.silent_text_objects = lambda page, textpage: None  # type: ignore[assignment]
    started = time.process_time()
    try:
        for path in sorted(CORPUS.glob("*.pdf")):
            try:
                _, pages = pdfium_extractor.extract_with_pdfium(path, password=None, min_chars=16)
            except Exception:
                continue
            if check:
                check_pages(
                    pages, path=path, settings=settings, name="pdfium", password=None,
                    min_chars=16,
                )  # fmt: skip
    finally:
        pdfium_extractor.silent_text_objects = silent
    return time.process_time() - started


def _text_all(layout: bool) -> float:
    import pypdfium2 as pdfium
    from ingest_plugins.pdfium_layout import page_text

    started = time.process_time()
    for path in sorted(CORPUS.glob("*.pdf")):
        try:
            document = pdfium.PdfDocument(path)
        except Exception:
            continue
        try:
            for number in range(len(document)):
                page = document[number]
                textpage = page.get_textpage()
                if layout:
                    page_text(textpage)
                else:
                    textpage.get_text_range()
                textpage.close()
                page.close()
        finally:
            document.close()
    return time.process_time() - started


@pytest.mark.timeout(1800)
@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not present")
def test_cost_of_the_quality_check_and_the_layout(tmp_path: Path) -> None:
    runs: list[float] = []
    times: dict[str, list[float]] = {"with": [], "without": [], "layout": [], "plain": []}
    for round_number in range(ROUNDS):
        workdir = tmp_path / str(round_number)
        workdir.mkdir()
        started = time.process_time()
        run_pages([CORPUS], workdir)
        runs.append(time.process_time() - started)
        # Interleaved, so a burst of noise hits both sides.
        times["without"].append(_extract_all(check=False))
        times["with"].append(_extract_all(check=True))
        times["plain"].append(_text_all(layout=False))
        times["layout"].append(_text_all(layout=True))
    run = statistics.median(runs)
    check = statistics.median(times["with"]) - statistics.median(times["without"])
    layout = statistics.median(times["layout"]) - statistics.median(times["plain"])
    print(f"\n\ncost over the corpus (CPU seconds, medians of {ROUNDS}):")
    print(f"  ingest run, default settings, in-process: {run:.2f}")
    print(f"  quality check: {check:+.3f} ({check / run:.1%} of the run)")
    print(f"  layout (page_text against PDFium's plain text): {layout:+.3f} ({layout / run:.1%})")
    assert check <= COST * run
