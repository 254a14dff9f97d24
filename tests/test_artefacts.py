"""Extractor artefacts: hyphenation markers (U+FFFE, U+0002, U+00AD) and non-characters are
resolved where they arise, and no record ever carries them (nor a C0 control but newline
and tab)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pdfgen
import pluggy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest import hookspecs
from ingest.config import ChunkSettings, Settings
from ingest.model import Document, Metadata, Page, Source
from ingest_plugins import chunk, dedup, dehyphenate, normalize, strip_headers
from ingest_plugins.artefacts import HYPHEN_MARKERS, NONCHARACTERS, clean_extracted_text
from ingest_plugins.jsonl_sink import records_of
from ingest_plugins.pdfium_extractor import extract_with_pdfium

TRANSFORMS = (normalize, dehyphenate, strip_headers, chunk, dedup)

# What no record may hold: C0 controls but \n and \t, and Unicode's non-characters.
FORBIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\ufdd0-\ufdef\ufffe\uffff"
    + "".join(chr((plane << 16) | 0xFFFE) + chr((plane << 16) | 0xFFFF) for plane in range(1, 17))
    + "]"
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # PDFium drops the line break after the hyphen it marks: the marker sits in the word.
        ("consectetuer adip\ufffeiscing elit", "consectetuer adipiscing elit"),
        # At a line end, the rest of the word moves up; the line break stays after it.
        ("the infor\ufffe\nmation is here", "the information\nis here"),
        ("the infor\x02\nmation", "the information"),
        ("the infor\u00ad  \n  mation is", "the information\nis"),
        # The next line does not continue a word: the marker goes, the lines stay.
        ("end of a line\ufffe\n\nNew paragraph", "end of a line\n\nNew paragraph"),
        ("last line\ufffe", "last line"),
        ("a word\ufffe\n- a list", "a word\n- a list"),
        # A word broken twice.
        ("in\ufffe\nfor\ufffe\nmation", "information"),
        # Non-characters go wherever they are.
        ("a\ufdd0b\U0001fffec\uffffd", "abcd"),
        ("plain text\nstays", "plain text\nstays"),
    ],
)
def test_clean_extracted_text(raw: str, expected: str) -> None:
    assert clean_extracted_text(raw) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from([*sorted(NONCHARACTERS), *HYPHEN_MARKERS, "\n", " ", "a"])))
def test_every_noncharacter_goes_and_nothing_else(text: str) -> None:
    # Pages are searched for non-characters only when they hold a character at or above
    # U+FDD0; that shortcut must find them all, in every plane.
    cleaned = clean_extracted_text(text)
    assert not NONCHARACTERS.intersection(cleaned)
    kept = "".join(c for c in text if c not in NONCHARACTERS)
    assert cleaned == clean_extracted_text(kept)
    assert not set(HYPHEN_MARKERS).intersection(cleaned)


def test_normalize_joins_markers_from_any_extractor() -> None:
    assert normalize.normalize_text("adip\ufffe\niscing elit") == "adipiscing\nelit"
    assert normalize.normalize_text("soft\u00ad\nhyphen") == "softhyphen"


def _pages_text() -> st.SearchStrategy[str]:
    markers = st.sampled_from([*HYPHEN_MARKERS, *sorted(NONCHARACTERS)[:6], "\x00", "\x1b"])
    pieces = st.one_of(st.text(max_size=12), markers, st.sampled_from(["\n", " ", "-\n", "ab"]))
    return st.lists(pieces, max_size=40).map("".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(_pages_text(), min_size=1, max_size=5))
def test_no_record_holds_markers_controls_or_noncharacters(texts: list[str]) -> None:
    """Whatever an extractor hands over, the records of the default chain are clean."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for module in TRANSFORMS:
        manager.register(module, name=module.NAME)
    source = Source(path=Path("x.pdf"), content_id="cd" * 32, size=1)
    pages = [Page(number=n, text=t, extractor="test") for n, t in enumerate(texts, start=1)]
    document = Document(source=source, metadata=Metadata(page_count=len(pages)), pages=pages)
    run_settings = Settings(chunk=ChunkSettings(size=40, overlap=5))
    for step in run_settings.transforms:
        manager.hook.ingest_transform(document=document, settings=run_settings, step=step)
    for record in records_of(document):
        assert not FORBIDDEN.search(record["text"]), repr(record["text"])
    for page in document.pages:
        assert not FORBIDDEN.search(page.text), repr(page.text)
        assert unicodedata.is_normalized("NFKC", page.text)


def test_extractor_pages_are_cleaned_at_the_source(tmp_path: Path) -> None:
    """A hyphen PDFium marks at a line end never reaches the page, the word is whole."""
    lines = ["Lorem ipsum dolor sit amet, consectetuer adip-", "iscing elit. Ut purus elit."]
    path = pdfgen.text_pdf(tmp_path / "hyphen.pdf", ["\n".join(lines)])
    _, pages = extract_with_pdfium(path, password=None, min_chars=16)
    assert "adipiscing" in pages[0].text
    assert not FORBIDDEN.search(pages[0].text)
