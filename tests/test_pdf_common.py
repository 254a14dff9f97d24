"""The rules the PDF extractors share (``ingest_plugins.pdf_common``), as pure functions.

The OCR heuristic is checked with hypothesis: clean text with enough letters never needs OCR,
garbage above the threshold always does, a little garbage is tolerated.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest.errors import DocumentError
from ingest_plugins.pdf_common import (
    GARBAGE_SHARE,
    check_pdf_magic,
    normalize_newlines,
    pdf_date_to_iso,
    select_pages,
    text_needs_ocr,
)

_letters = st.text(alphabet=st.characters(categories=("Lu", "Ll", "Nd")), min_size=1)
_garbage_unit = st.sampled_from(["\ufffd", "(cid:42)", "\x01", "\x9c", "\ue000", "\U000f0001"])


@given(words=st.lists(_letters, min_size=1), min_chars=st.integers(0, 64))
def test_clean_text_with_enough_letters_needs_no_ocr(words: list[str], min_chars: int) -> None:
    text = " ".join(words)
    usable = sum(map(str.isalnum, text))
    assert text_needs_ocr(text, min_chars) is (usable < min_chars)


@given(letters=st.text(alphabet="abcdefghij", min_size=4, max_size=400), data=st.data())
def test_garbage_above_the_share_needs_ocr(letters: str, data: st.DataObject) -> None:
    # garbage > share * (garbage + usable)  <=>  garbage > usable * share / (1 - share)
    least = int(len(letters) * GARBAGE_SHARE / (1 - GARBAGE_SHARE)) + 1
    units = data.draw(st.lists(_garbage_unit, min_size=least, max_size=least + 50))
    positions = data.draw(
        st.lists(st.integers(0, len(letters)), min_size=len(units), max_size=len(units))
    )
    # Insert between letters of the original text, never inside an inserted "(cid:42)".
    pieces, start = [], 0
    for position, unit in sorted(zip(positions, units, strict=True)):
        pieces += [letters[start:position], unit]
        start = position
    text = "".join([*pieces, letters[start:]])
    assert text_needs_ocr(text, min_chars=1) is True


@given(letters=st.text(alphabet="abcdefghij", min_size=20, max_size=400), data=st.data())
def test_a_little_garbage_is_tolerated(letters: str, data: st.DataObject) -> None:
    most = (len(letters) - 1) // 4  # strictly below a fifth of all glyphs
    units = data.draw(st.lists(_garbage_unit, max_size=most))
    assert text_needs_ocr(letters + " " + " ".join(units), min_chars=16) is False


def test_cid_runs_do_not_count_as_letters() -> None:
    """``(cid:12)`` holds the letters c, i, d: they must not make the page look usable."""
    assert text_needs_ocr("(cid:12)" * 50, min_chars=16) is True


@pytest.mark.parametrize("text", ["", "   \n\n ", "- 12 -", "....,,,,;;;;", "Page 3"])
def test_too_few_usable_characters_need_ocr(text: str) -> None:
    assert text_needs_ocr(text, min_chars=16) is True


def test_whitespace_controls_are_not_garbage() -> None:
    text = "Tabs\tand\nnewlines\r\nand form feeds\x0c are normal text layout."
    assert text_needs_ocr(text, min_chars=16) is False


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("D:20240101120000+02'00'", "2024-01-01T12:00:00+02:00"),
        ("D:20240101120000+02'00", "2024-01-01T12:00:00+02:00"),
        ("D:20240101120000-05'30'", "2024-01-01T12:00:00-05:30"),
        ("D:20240101120000Z", "2024-01-01T12:00:00+00:00"),
        ("D:20240101120000Z00'00'", "2024-01-01T12:00:00+00:00"),
        ("D:20240101120000", "2024-01-01T12:00:00"),
        ("D:2024", "2024-01-01T00:00:00"),
        ("D:202403", "2024-03-01T00:00:00"),
        ("20240101120000+01'00'", "2024-01-01T12:00:00+01:00"),
        (" D:20240101120000+0200 ", "2024-01-01T12:00:00+02:00"),
        ("2024-01-01T12:00:00+02:00", "2024-01-01T12:00:00+02:00"),
        ("D:20241301000000", None),
        ("D:20240230000000", None),
        ("D:20240101250000", None),
        ("yesterday", None),
        ("", None),
        (None, None),
        (20240101, None),
    ],
)
def test_pdf_dates_to_iso(raw: object, iso: str | None) -> None:
    assert pdf_date_to_iso(raw) == iso


@settings(max_examples=200)
@given(
    moment=st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)),
    offset_minutes=st.integers(-23 * 60 - 59, 23 * 60 + 59),
)
def test_any_pdf_date_round_trips(moment: datetime, offset_minutes: int) -> None:
    moment = moment.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=offset_minutes)))
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    raw = f"D:{moment:%Y%m%d%H%M%S}{sign}{hours:02d}'{minutes:02d}'"
    assert pdf_date_to_iso(raw) == moment.isoformat()


def test_select_pages() -> None:
    assert select_pages(None, 3) == [1, 2, 3]
    assert select_pages(range(0, 3), 5) == [1, 2]
    assert select_pages(range(3, 0, -1), 5) == [1, 2, 3]
    assert select_pages(range(2, 9), 0) == []


def test_normalize_newlines() -> None:
    assert normalize_newlines("a\r\nb\rc\nd\r\n\r\n") == "a\nb\nc\nd\n\n"


@pytest.mark.parametrize(
    ("head", "is_pdf"),
    [
        (b"%PDF-1.7\n", True),
        (b"\xef\xbb\xbf%PDF-1.4\n", True),
        (b"x" * 1000 + b"%PDF-1.4\n", True),
        (b"x" * 1020 + b"%PDF-1.4\n", False),  # the whole marker must lie in the first 1024 bytes
        (b"", False),
        (b"%PDF", False),
        (b"%!PS-Adobe-3.0\n", False),
    ],
)
def test_pdf_magic(tmp_path: Path, head: bytes, is_pdf: bool) -> None:
    path = tmp_path / "file.pdf"
    path.write_bytes(head + b"\n" * 100)
    if is_pdf:
        check_pdf_magic(path, plugin="test")
        return
    with pytest.raises(DocumentError, match=r"file\.pdf: not a PDF") as info:
        check_pdf_magic(path, plugin="test")
    assert (info.value.reason, info.value.plugin) == ("not-a-pdf", "test")
