"""The per-page quality check: implausible pages are read again by the next extractor, the
better text is kept, and the reason and the choice reach both sinks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import ingest
import pdfgen
import pytest
from ingest.config import Settings
from ingest_plugins.page_quality import QUALITY, check_pages, text_reason, text_score
from ingest_plugins.pdfium_extractor import extract_with_pdfium
from ingest_plugins.pypdf_extractor import extract_with_pypdf

PROSE = "The river runs past the old stone harbour where lanterns glow at night. " * 6


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (PROSE, None),
        ("Chin a Ocea n Shippin g Compan y Limite d Plaz a Avenu e Distric t " * 3, "split-words"),
        ("mmuunniicciippaalliittéé ddee ssaaiinntt ssaauuvveeuurr " * 2 + PROSE, "doubled-glyphs"),
        ("\ue001\ue002\ue003\ufffd\ufffd\ufffd letters " * 4, "garbage"),
        # Mathematics has lone letters, but not after most long words.
        ("Sei n eine Zahl und x ein Punkt, dann gilt f x = y für alle a b c d. " * 5, None),
        # A little garbage in a long text is tolerated; bookkeeping is not doubled glyphs.
        (PROSE + "\ufffd bookkeeper", None),
    ],
)
def test_text_reason(text: str, reason: str | None) -> None:
    found = text_reason(text)
    assert (found[0] if found else None) == reason


def test_text_score_prefers_whole_words() -> None:
    assert text_score("China Ocean Shipping") > text_score("Chin a Ocea n Shippin g")
    assert text_score("municipalité") > text_score("mmuunniicciippaalliittéé")
    assert text_score("名称 股份") > text_score("\ue001\ue002 \ufffd\ufffd")


def test_a_plausible_page_is_left_alone(tmp_path: Path) -> None:
    path = pdfgen.text_pdf(tmp_path / "plain.pdf", [PROSE])
    _, pages = extract_with_pdfium(path, password=None, min_chars=16)
    before = [(page.text, page.extractor, dict(page.provenance)) for page in pages]
    check_pages(pages, path=path, settings=Settings(), name="pdfium", password=None, min_chars=16)
    assert [(page.text, page.extractor, page.provenance) for page in pages] == before


def test_a_flagged_page_keeps_its_text_when_the_next_is_no_better(tmp_path: Path) -> None:
    """Both extractors read the doubled letters alike: PDFium's text stays, and the check
    says what it looked at and chose, in the SQLite and the JSONL records alike."""
    doubled = "Welcome to ssaaiinntt ssaauuvveeuurr and mmuunniicciippaalliittee today."
    path = pdfgen.text_pdf(tmp_path / "doubled.pdf", [f"{doubled}\n{PROSE[:60]}"] * 2)
    result = ingest.run(
        [str(path)],
        sinks=[f"sqlite:{tmp_path / 'out.db'}", f"jsonl:{tmp_path / 'out.jsonl'}"],
        run={"workers": 0},
        progress="none",
    )
    assert result.exit_code == 0
    connection = sqlite3.connect(tmp_path / "out.db")
    rows = connection.execute("SELECT number, extractor, provenance FROM pages").fetchall()
    connection.close()
    assert [(number, extractor) for number, extractor, _ in rows] == [(1, "pdfium"), (2, "pdfium")]
    record = json.loads(rows[0][2])[QUALITY]
    assert record["reason"] == "doubled-glyphs"
    assert record["checked"] == "pypdf" and record["kept"] == "pdfium"
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert lines and all(line["page_provenance"]["1"][QUALITY] == record for line in lines)


def test_no_next_extractor_records_the_reason_only(tmp_path: Path) -> None:
    doubled = "Welcome to ssaaiinntt ssaauuvveeuurr and mmuunniicciippaalliittee today."
    path = pdfgen.text_pdf(tmp_path / "doubled.pdf", [doubled])
    _, pages = extract_with_pdfium(path, password=None, min_chars=16)
    settings = Settings(extract={"fallback": []})
    check_pages(pages, path=path, settings=settings, name="pdfium", password=None, min_chars=16)
    assert pages[0].provenance[QUALITY]["kept"] == "pdfium"
    assert "checked" not in pages[0].provenance[QUALITY]
    # A blocked plugin is not asked either.
    _, pages = extract_with_pdfium(path, password=None, min_chars=16)
    blocked = Settings(plugins=["no:pypdf"])
    check_pages(pages, path=path, settings=blocked, name="pdfium", password=None, min_chars=16)
    assert "checked" not in pages[0].provenance[QUALITY]


@pytest.mark.parametrize(
    ("name", "number", "reason", "words"),
    [
        # PDFium puts spaces inside the words of this OCR layer.
        ("pypdf__resources_indirect-rotation.pdf", 1, "split-words", "China Ocean Shipping"),
        # Labels whose letters PDFium reads twice.
        ("pdfminer__samples_contrib_issue-1008-inline-ascii85.pdf", 1, "doubled-glyphs",
         "Municipalité"),
    ],
)  # fmt: skip
def test_real_pages_are_read_again_by_pypdf(
    corpus: Path, name: str, number: int, reason: str, words: str
) -> None:
    path = corpus / name
    _, pages = extract_with_pdfium(path, password=None, min_chars=16)
    page = pages[number - 1]
    assert words not in page.text
    check_pages(pages, path=path, settings=Settings(), name="pdfium", password=None, min_chars=16)
    page = pages[number - 1]
    assert page.extractor == "pypdf"
    assert words in page.text
    record = page.provenance[QUALITY]
    assert record["reason"] == reason and record["kept"] == "pypdf"
    assert record["checked_score"] > record["score"]


def test_text_drawn_twice_for_bold_is_not_taken_for_lost_glyphs(corpus: Path) -> None:
    """PDFium merges text drawn over itself (pypdf and pdfminer repeat it): its objects
    without characters have another object's characters at their place, so the page is
    not flagged and keeps PDFium's single copy."""
    path = corpus / "pdfplumber__tests_pdfs_issue-71-duplicate-chars.pdf"
    _, pages = extract_with_pdfium(path, password=None, min_chars=16)
    assert all(QUALITY not in page.provenance for page in pages)
    _, repeated = extract_with_pypdf(path, password=None, min_chars=16)
    assert 0 < pages[0].text.count("项目描述") < repeated[0].text.count("项目描述")
