"""The ocr plugin on real PDFs with real engines.

Pages are pictures of :data:`ocrgen.KNOWN_TEXT` at 300 dpi; what the engines read is held
to a character error rate under 5%. Tesseract tests skip when the program is missing (CI
installs it); RapidOCR needs only the ``ocr`` extra.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers import MISSING_OCR

pytest.importorskip("rapidocr_onnxruntime", reason=MISSING_OCR)

import ingest
from ingest.api import prepare
from ingest.model import Document, Failure, Source
from ingest.workers.pipeline import process_source
from ingest_plugins.ocr import fill_document
from ocrgen import KNOWN_TEXT, UNICODE_FONT, Scan, Text, cer, scanned_pdf

pytestmark = pytest.mark.slow

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="the tesseract program is not installed (apt-get install tesseract-ocr)",
)

SECOND = "Second scanned page: seven green bottles were standing on the wall in 2021."
TEXT_A = "A page of ordinary text, extracted from its text layer and never recognised. " * 6
TEXT_B = "Another text page follows the scan; its words come from the PDF as they are. " * 6


def extract(path: Path, *overrides: str, plugins: tuple[str, ...] = ("ocr",)) -> Document:
    """Extract ``path`` as a worker does (extractor chain plus the ocr wrapper), no transforms."""
    prepared = prepare(
        plugins=plugins,
        cwd=path.parent,
        environ={},
        cli={"run.workers": 0, "transforms": []},
        overrides=overrides,
    )
    outcome = process_source(prepared.manager, prepared.loaded.settings, Source.from_path(path))
    assert isinstance(outcome, Document), outcome
    return outcome


@pytest.mark.parametrize(
    "engine", [pytest.param("tesseract", marks=needs_tesseract), pytest.param("rapidocr")]
)
def test_engine_reads_a_clean_300_dpi_scan(tmp_path: Path, engine: str) -> None:
    pdf = scanned_pdf(tmp_path / "scan.pdf", [Scan()])
    (page,) = extract(pdf, f"ocr.engine={engine}").pages
    assert page.extractor == "ocr"
    assert not page.needs_ocr
    facts = page.provenance["ocr"]
    assert (facts["engine"], facts["dpi"], facts["reason"]) == (engine, 300, "no-text")
    assert facts["text_layer_extractor"] == "pdfium"
    assert 0.8 < facts["confidence"] <= 1.0
    assert cer(page.text, KNOWN_TEXT) < 0.05, page.text


@needs_tesseract
def test_mixed_document_fills_image_pages_and_leaves_text_pages(tmp_path: Path) -> None:
    pdf = scanned_pdf(tmp_path / "mixed.pdf", [Text(TEXT_A), Scan(), Text(TEXT_B)])
    plain = extract(pdf, plugins=())
    filled = extract(pdf)
    assert [p.number for p in filled.pages] == [1, 2, 3]
    for index in (0, 2):
        before, after = plain.pages[index], filled.pages[index]
        assert after.text.encode() == before.text.encode()
        assert (after.extractor, after.provenance, after.needs_ocr) == ("pdfium", {}, False)
    assert plain.pages[1].needs_ocr and plain.pages[1].text.strip() == ""
    assert filled.pages[1].extractor == "ocr"
    assert cer(filled.pages[1].text, KNOWN_TEXT) < 0.05


@needs_tesseract
@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param("(cid:12)(cid:7)(cid:91) " * 30, id="cid-runs"),
        pytest.param(
            "\ufffd" * 200,
            id="replacement-characters",
            marks=pytest.mark.skipif(
                not UNICODE_FONT.is_file(), reason=f"{UNICODE_FONT} is not installed"
            ),
        ),
    ],
)
def test_a_garbage_text_layer_over_a_scan_is_replaced(tmp_path: Path, garbage: str) -> None:
    pdf = scanned_pdf(tmp_path / "garbage.pdf", [Scan(layer=garbage)])
    plain = extract(pdf, plugins=())
    assert plain.pages[0].text.strip(), "the invisible layer must be there to be garbage"
    (page,) = extract(pdf).pages
    assert (page.extractor, page.provenance["ocr"]["reason"]) == ("ocr", "garbage")
    assert cer(page.text, KNOWN_TEXT) < 0.05


@needs_tesseract
def test_a_scan_with_a_small_stamped_text_layer_is_ocred(tmp_path: Path) -> None:
    """A page-sized image whose only text is a one-line stamp: too few letters for A4."""
    stamp = "This content downloaded from 192.0.2.1 on Mon, 01 Jan 2024 12:00:00 UTC"
    pdf = scanned_pdf(tmp_path / "stamp.pdf", [Scan(layer=stamp), Text(TEXT_A[:70])])
    scan, short_text_page = extract(pdf).pages
    assert (scan.extractor, scan.provenance["ocr"]["reason"]) == ("ocr", "sparse")
    assert cer(scan.text, KNOWN_TEXT) < 0.05
    # As few letters, but no image under them: a short page of real text stays as it is.
    assert (short_text_page.extractor, short_text_page.provenance) == ("pdfium", {})


@needs_tesseract
def test_mode_never_leaves_every_page_and_always_reads_text_pages_too(tmp_path: Path) -> None:
    pdf = scanned_pdf(tmp_path / "mixed.pdf", [Text(TEXT_A), Scan()])
    never = extract(pdf, "ocr.mode=never")
    assert [(p.extractor, p.needs_ocr, p.provenance) for p in never.pages] == [
        ("pdfium", False, {}),
        ("pdfium", True, {}),
    ]
    always = extract(pdf, "ocr.mode=always")
    assert [p.extractor for p in always.pages] == ["ocr", "ocr"]
    assert [p.provenance["ocr"]["reason"] for p in always.pages] == ["always", "no-text"]
    assert cer(always.pages[0].text, TEXT_A) < 0.05


@needs_tesseract
def test_a_page_range_reads_the_asked_pages_by_their_numbers(tmp_path: Path) -> None:
    """Ranges are 1-based: asked for page 2 only, the plugin must render the PDF's page 2."""
    pdf = scanned_pdf(tmp_path / "two.pdf", [Scan(), Scan(text=SECOND)])
    prepared = prepare(plugins=["ocr"], cwd=tmp_path, environ={}, cli={"run.workers": 0})
    document = prepared.manager.hook.ingest_extract(
        source=Source.from_path(pdf),
        settings=prepared.loaded.settings,
        extractor="pdfium",
        pages=range(2, 3),
    )
    (page,) = document.pages
    assert (page.number, page.extractor) == (2, "ocr")
    assert cer(page.text, SECOND) < 0.05


def test_a_document_without_a_page_to_ocr_is_not_opened_again(tmp_path: Path) -> None:
    """Full text pages cost nothing: the file is not read again (here it is gone, so a read
    would fail), whereas a page that needs OCR does read it."""
    pdf = scanned_pdf(tmp_path / "text.pdf", [Text(TEXT_A * 4), Text(TEXT_B * 4)])
    document = extract(pdf)
    settings = prepare(plugins=["ocr"], cwd=tmp_path, environ={}).loaded.settings
    pdf.unlink()
    assert fill_document(document, settings) is document
    assert [p.provenance for p in document.pages] == [{}, {}]
    document.pages[1].text, document.pages[1].needs_ocr = "", True
    with pytest.raises(Exception, match=r"text\.pdf"):
        fill_document(document, settings)


def _pages(database: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute("SELECT number, text, extractor FROM pages ORDER BY number")
        return [dict(row) for row in rows]


@needs_tesseract
def test_ocr_runs_in_a_worker_process(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    pdf = scanned_pdf(tmp_path / "in" / "mixed.pdf", [Text(TEXT_A), Scan()])
    database = tmp_path / "out.db"
    result = ingest.run(
        pdf.parent,
        plugins=["ocr"],
        run={"workers": 1},
        sinks=[f"sqlite:{database}"],
        transforms=[],
        cache={"enabled": False},
    )
    assert (result.ingested, result.failed) == (1, 0), result.failures
    first, second = _pages(database)
    assert first["extractor"] == "pdfium"
    assert second["extractor"] == "ocr"
    assert cer(second["text"], KNOWN_TEXT) < 0.05


@needs_tesseract
def test_a_page_over_its_timeout_fails_the_document_naming_the_page(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    scanned_pdf(tmp_path / "in" / "slow.pdf", [Text(TEXT_A), Scan()])
    result = ingest.run(
        tmp_path / "in",
        plugins=["ocr"],
        run={"workers": 1},
        sinks=[f"sqlite:{tmp_path / 'out.db'}"],
        cache={"enabled": False},
        overrides={"ocr.page_timeout": 0.01},
    )
    (failure,) = result.failures
    assert isinstance(failure, Failure)
    assert (failure.reason, failure.plugin) == ("timeout", "ocr")
    assert "OCR of page 2 took longer than ocr.page_timeout=0.01s" in failure.message


def test_rapidocr_pages_over_the_timeout_fail_when_the_page_is_done(tmp_path: Path) -> None:
    """onnxruntime cannot be interrupted, so RapidOCR's time is judged after the page."""
    pdf = scanned_pdf(tmp_path / "scan.pdf", [Scan()])
    prepared = prepare(
        plugins=["ocr"],
        cwd=tmp_path,
        environ={},
        cli={"run.workers": 0, "transforms": [], "extract.fallback": []},
        overrides=["ocr.engine=rapidocr", "ocr.dpi=72", "ocr.page_timeout=0.001"],
    )
    outcome = process_source(prepared.manager, prepared.loaded.settings, Source.from_path(pdf))
    assert isinstance(outcome, Failure)
    assert (outcome.reason, outcome.plugin) == ("timeout", "ocr")
    assert (
        "OCR of page 1 took longer than ocr.page_timeout=0.001s (rapidocr took" in outcome.message
    )
