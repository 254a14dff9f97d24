"""What OCR costs: seconds per OCR'd page for each engine, and nothing for text.

* ``test_seconds_per_ocr_page``: a 3-page image-only PDF (A4 pages of 12 pt prose at
  300 dpi, 35 lines and about 2,300 characters each) extracted with ``--plugin ocr`` in-process, the
  engine made beforehand (once per process in real runs); the median round's seconds divided
  by the pages. One thread per engine (``ocr.threads`` default), the process pinned to one
  CPU by the benchmarks' conftest, as one worker of a pool would be.
* ``test_text_pages_cost_nothing``: a 100-page PDF of dense text pages through
  ``ingest.run(..., run={"workers": 0})`` (collection, hashing, extraction, the default
  transforms, a JSONL sink) with and without ``plugins=["ocr"]``, interleaved round by
  round; the ratio of the medians must be within 5%.

Run: ``pytest benchmarks/test_ocr_bench.py -s`` (about 2 minutes).
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

import pytest
from helpers import MISSING_OCR

pytest.importorskip("rapidocr_onnxruntime", reason=MISSING_OCR)

import ingest
from fpdf import FPDF
from ingest.api import prepare
from ingest.model import Document, Source
from ingest.workers.pipeline import process_source
from ocrgen import Scan, scanned_pdf
from pytest_benchmark.fixture import BenchmarkFixture

ROUNDS = 5
TARGET = 1.05
OCR_PAGES = 3

PROSE = (
    "Recognition of printed text has become routine, yet it still costs far more than "
    "reading a text layer: every page is rendered to pixels, searched for lines of text, "
    "and each line is decoded by a neural network or a classic classifier. "
)
ENGINES = [
    pytest.param(
        "tesseract",
        marks=pytest.mark.skipif(shutil.which("tesseract") is None, reason="no tesseract"),
    ),
    "rapidocr",
]


def _dense_text(number: int) -> str:
    return f"Page {number}. " + PROSE * 12


def text_pdf(path: Path, pages: int) -> Path:
    """``pages`` A4 pages, each filled with about 2,300 characters of text."""
    pdf = FPDF(unit="pt", format="A4")
    pdf.set_auto_page_break(auto=False)
    pdf.set_font("Helvetica", size=10)
    for number in range(1, pages + 1):
        pdf.add_page()
        pdf.set_xy(56, 56)
        pdf.multi_cell(483, 13, _dense_text(number))
    pdf.output(str(path))
    return path


@pytest.mark.parametrize("engine", ENGINES)
def test_seconds_per_ocr_page(
    benchmark: BenchmarkFixture, engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pages = [Scan(text=_dense_text(n)) for n in range(1, OCR_PAGES + 1)]
    pdf = scanned_pdf(tmp_path / "scan.pdf", pages)
    prepared = prepare(
        plugins=["ocr"],
        cwd=tmp_path,
        environ={},
        cli={"run.workers": 0, "transforms": []},
        overrides=[f"ocr.engine={engine}"],
    )
    settings, source = prepared.loaded.settings, Source.from_path(pdf)
    from ingest_plugins.ocr import get_engine

    get_engine(settings.ocr)  # type: ignore[attr-defined]  # made once per worker in real runs

    def one_round() -> None:
        outcome = process_source(prepared.manager, settings, source)
        assert isinstance(outcome, Document), outcome
        assert all(page.extractor == "ocr" for page in outcome.pages)

    benchmark.group = "seconds per OCR'd page"
    benchmark.pedantic(one_round, rounds=3, iterations=1)
    per_page = benchmark.stats.stats.median / OCR_PAGES
    benchmark.extra_info["median_seconds_per_page"] = round(per_page, 3)
    with capsys.disabled():
        print(f"\n{engine}: {per_page:.2f} s per OCR'd page (median of 3 rounds of {OCR_PAGES})")


def _run(folder: Path, out: Path, plugins: list[str]) -> float:
    started = time.perf_counter()
    result = ingest.run(
        folder,
        plugins=plugins,
        run={"workers": 0},
        sinks=[f"jsonl:{out}"],
        cache={"enabled": False},
        progress="none",
    )
    seconds = time.perf_counter() - started
    assert (result.ingested, result.pages) == (1, 100), result.failures
    return seconds


def test_text_pages_cost_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    text_pdf(folder / "text.pdf", 100)
    without: list[float] = []
    with_ocr: list[float] = []
    _run(folder, tmp_path / "warm.jsonl", ["ocr"])  # imports and caches warm for both sides
    for number in range(ROUNDS):
        without.append(_run(folder, tmp_path / f"a{number}.jsonl", []))
        with_ocr.append(_run(folder, tmp_path / f"b{number}.jsonl", ["ocr"]))
    ratio = statistics.median(with_ocr) / statistics.median(without)
    with capsys.disabled():
        print(
            f"\n100 text pages, ingest.run --workers 0: without ocr "
            f"{statistics.median(without):.3f} s, with --plugin ocr "
            f"{statistics.median(with_ocr):.3f} s (medians of {ROUNDS}): ratio {ratio:.3f} "
            f"(target <= {TARGET})"
        )
    assert ratio <= TARGET
