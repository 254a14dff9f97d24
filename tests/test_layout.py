"""Reading order: the geometry of :mod:`ingest_plugins.layout` on lines made by hand, and
PDFium's pages through :mod:`ingest_plugins.pdfium_layout` on PDFs drawn with fpdf2 in a
content order that differs from the reading order."""

from __future__ import annotations

import random
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from fpdf import FPDF
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_plugins.layout import Line, find_gutter, group_blocks, order_lines, ordered_text
from ingest_plugins.pdfium_extractor import extract_with_pdfium
from ingest_plugins.pdfium_layout import may_have_columns, page_blocks, page_text

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
DEJAVU_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")


def column(x: float, top: float, count: int, tag: str, width: float = 200) -> list[Line]:
    """``count`` lines of a column at ``x``, each 12 high, text ``tag`` and its number."""
    return [
        Line(f"{tag} line {n} with some words to fill it", x, top + 12 * n, x + width,
             top + 12 * n + 10, size=10, source=n)
        for n in range(count)
    ]  # fmt: skip


def texts(lines: list[Line]) -> list[str]:
    return [line.text for line in lines]


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


def test_two_columns_drawn_right_first_read_left_first() -> None:
    left, right = column(50, 100, 8, "left"), column(300, 100, 8, "right")
    ordered = order_lines(right + left)
    assert texts(ordered) == texts(left) + texts(right)


def test_right_to_left_pages_read_the_right_column_first() -> None:
    left, right = column(50, 100, 8, "left"), column(300, 100, 8, "right")
    assert texts(order_lines(left + right, rtl=True)) == texts(right) + texts(left)


def test_a_title_across_the_gutter_comes_first_and_a_footer_last() -> None:
    left, right = column(50, 100, 8, "left"), column(300, 100, 8, "right")
    title = Line("A title over both columns", 50, 60, 500, 72, size=14, source=100)
    footer = Line("a footer line across the whole page", 50, 300, 500, 310, size=10, source=101)
    ordered = order_lines([footer, *right, title, *left])
    assert texts(ordered) == [title.text, *texts(left), *texts(right), footer.text]


def test_single_column_keeps_the_extractors_order() -> None:
    lines = column(50, 100, 10, "only")
    shuffled = lines[5:] + lines[:5]  # a content order that is not top to bottom
    assert order_lines(shuffled) == shuffled


def test_a_table_is_not_read_column_by_column() -> None:
    """Short cells leave gutters too; columns need lines of text on both sides."""
    cells = []
    for row in range(8):
        for col, x in enumerate((50, 200, 350)):
            cells.append(Line(f"r{row}c{col}", x, 100 + 12 * row, x + 30, 110 + 12 * row,
                              size=10, source=row * 3 + col))  # fmt: skip
    assert order_lines(cells) == cells


def test_footnotes_go_after_the_body_and_marginalia_after_them() -> None:
    left = column(50, 100, 10, "left")
    right = column(300, 100, 10, "right")
    notes = [
        Line(f"{n} a footnote in small print here", 50, 400 + 9 * n, 250, 407 + 9 * n,
             size=7, source=200 + n)
        for n in (1, 2)
    ]  # fmt: skip
    margin = Line("rotated note in the margin", 560, 100, 570, 400, size=8, source=300,
                  marginal=True)  # fmt: skip
    ordered = order_lines([margin, *notes, *left, *right])
    assert texts(ordered) == [*texts(left), *texts(right), *texts(notes), margin.text]
    assert [line.kind for line in ordered[-3:]] == ["footnote", "footnote", "marginal"]


def test_parts_of_one_extractor_line_are_joined_again() -> None:
    first = Line("left part ", 0, 0, 40, 10, source=7, part=0)
    second = Line("right part", 50, 0, 90, 10, source=7, part=1)
    other = Line("next line", 0, 12, 40, 22, source=8)
    assert ordered_text([first, second, other]) == "left part right part\nnext line"
    assert ordered_text([second, other]) == "right part\nnext line"


def test_blocks_carry_kind_box_size_and_weight() -> None:
    heading = Line("Heading", 50, 50, 200, 66, size=16, bold=True, source=0)
    body = column(50, 80, 4, "body")
    blocks = group_blocks(order_lines([heading, *body]))
    assert [block.kind for block in blocks] == ["body", "body"]
    assert blocks[0].bold and blocks[0].size == 16.0 and blocks[0].text == "Heading"
    assert not blocks[1].bold and blocks[1].size == 10.0
    assert blocks[1].bbox == (50, 80, 250, 80 + 12 * 3 + 10)
    assert blocks[1].text == "\n".join(texts(body))


def test_find_gutter() -> None:
    lines = [(0.0, 100.0)] * 8 + [(120.0, 220.0)] * 8
    gutter = find_gutter(lines, 10)
    assert gutter is not None and 95 <= gutter[0] <= 105 and 115 <= gutter[1] <= 125
    assert find_gutter([(0.0, 220.0), *lines], 10) is not None  # one line across it
    assert find_gutter(lines, 40) is None  # narrower than asked
    assert find_gutter([(0.0, 220.0)] * 8, 10) is None
    assert find_gutter([(0.0, 100.0)] * 2 + [(120.0, 220.0)] * 8, 10) is None  # one side thin


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 500), st.floats(0, 700), st.floats(1, 300)), max_size=60))
def test_order_is_a_permutation(boxes: list[tuple[float, float, float]]) -> None:
    lines = [
        Line(f"line {n} " + "x" * (n % 30), x, y, x + w, y + 10, size=10, source=n)
        for n, (x, y, w) in enumerate(boxes)
    ]
    ordered = order_lines(lines)
    assert sorted(id(line) for line in ordered) == sorted(id(line) for line in lines)


# --------------------------------------------------------------------------------------------
# PDFium pages
# --------------------------------------------------------------------------------------------


@pytest.fixture
def fonts() -> None:
    if not DEJAVU.is_file() or not DEJAVU_BOLD.is_file():
        pytest.skip("DejaVu Sans is not installed (Debian: fonts-dejavu-core)")


def _paragraph(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _two_column_pdf(path: Path) -> tuple[list[str], list[str], list[str]]:
    """A page with a bold title, two columns drawn right first, and footnotes drawn first."""
    rng = random.Random(7)
    pdf = FPDF(unit="pt", format="A4")
    pdf.add_font("dejavu", fname=str(DEJAVU))
    pdf.add_font("dejavu", style="B", fname=str(DEJAVU_BOLD))
    pdf.set_auto_page_break(False)
    pdf.add_page()
    left = [_paragraph(rng, 5) for _ in range(30)]
    right = [_paragraph(rng, 5) for _ in range(30)]
    notes = [f"{n} " + _paragraph(rng, 8) for n in (1, 2)]
    pdf.set_font("dejavu", size=7)
    for number, note in enumerate(notes):
        pdf.text(50, 780 + 9 * number, note)
    pdf.set_font("dejavu", size=10)
    for x, lines in ((310, right), (50, left)):
        for number, line in enumerate(lines):
            pdf.text(x, 120 + 13 * number, line)
    pdf.set_font("dejavu", style="B", size=16)
    pdf.text(50, 80, "A Title Over Both Columns")
    pdf.output(str(path))
    return left, right, notes


def test_pdfium_page_in_reading_order(fonts: None, tmp_path: Path) -> None:
    left, right, notes = _two_column_pdf(tmp_path / "two.pdf")
    document = pdfium.PdfDocument(tmp_path / "two.pdf")
    try:
        textpage = document[0].get_textpage()
        assert may_have_columns(textpage)
        lines = [line.strip() for line in page_text(textpage).split("\n")]
        blocks = page_blocks(textpage)
    finally:
        document.close()
    assert lines == ["A Title Over Both Columns", *left, *right, *notes]
    title = blocks[0]
    assert title.text.strip() == "A Title Over Both Columns"
    assert title.bold and title.size == pytest.approx(16, abs=0.5)
    assert blocks[-1].kind == "footnote" and blocks[-1].size == pytest.approx(7, abs=0.5)
    body = [block for block in blocks if block.kind == "body" and not block.bold]
    assert all(block.size == pytest.approx(10, abs=0.5) for block in body)
    # Left column first: its blocks sit left of the right column's.
    assert body[0].bbox[2] < body[-1].bbox[0]


def test_pdfium_keeps_a_page_already_in_order(fonts: None, tmp_path: Path) -> None:
    """A single column in reading order comes out exactly as PDFium spells it."""
    rng = random.Random(3)
    pdf = FPDF(unit="pt", format="A4")
    pdf.add_font("dejavu", fname=str(DEJAVU))
    pdf.set_font("dejavu", size=10)
    pdf.add_page()
    for number in range(40):
        pdf.text(50, 60 + 14 * number, _paragraph(rng, 9))
    pdf.output(str(tmp_path / "one.pdf"))
    document = pdfium.PdfDocument(tmp_path / "one.pdf")
    try:
        textpage = document[0].get_textpage()
        assert not may_have_columns(textpage)
        assert page_text(textpage) == textpage.get_text_range().replace("\r\n", "\n")
    finally:
        document.close()


def test_pdfium_reads_a_rotated_page(fonts: None, tmp_path: Path) -> None:
    """Text running up the page, drawn last line first, reads top line first."""
    rng = random.Random(5)
    lines = [_paragraph(rng, 8) for _ in range(12)]
    pdf = FPDF(unit="pt", format="A4")
    pdf.add_font("dejavu", fname=str(DEJAVU))
    pdf.set_font("dejavu", size=10)
    pdf.add_page()
    for number in reversed(range(len(lines))):
        x, y = 60 + 14 * number, 780
        with pdf.rotation(90, x, y):
            pdf.text(x, y, lines[number])
    pdf.output(str(tmp_path / "rotated.pdf"))
    _, pages = extract_with_pdfium(tmp_path / "rotated.pdf", password=None, min_chars=16)
    assert [line.strip() for line in pages[0].text.split("\n")] == lines


# --------------------------------------------------------------------------------------------
# Text drawn over itself
# --------------------------------------------------------------------------------------------


def _overprinted_pdf(path: Path, line: str, offsets: list[tuple[float, float, str]]) -> None:
    """``line`` drawn once per offset ``(dx, dy, appended text)``, each a text object of its
    own, as a fake bold effect draws it; then a line drawn once."""
    pdf = FPDF(unit="pt", format="A4")
    pdf.set_font("helvetica", size=14)
    pdf.add_page()
    for dx, dy, extra in offsets:
        pdf.text(60 + dx, 100 + dy, line + extra)
    pdf.text(60, 130, "The next line is drawn once only.")
    pdf.output(str(path))


def _pdfium_lines(path: Path) -> list[str]:
    _, pages = extract_with_pdfium(path, password=None, min_chars=16)
    return [line.strip() for line in pages[0].text.split("\n") if line.strip()]


FAKE_BOLD = [(0.0, 0.0, ""), (-0.24, 0.24, ""), (0.0, 0.24, ""), (-0.24, 0.0, " ")]


def test_a_line_drawn_over_itself_is_read_once(tmp_path: Path) -> None:
    """PDFium merges a copy of a text object only when it is the same object (or a few
    characters); the fourth copy here has a trailing space, and PDFium kept the line twice
    on one line of its text. The copies stand where the first characters are: dropped."""
    line = "Quarterly report of the artificial leather company"
    _overprinted_pdf(tmp_path / "bold.pdf", line, FAKE_BOLD)
    assert _pdfium_lines(tmp_path / "bold.pdf") == [line, "The next line is drawn once only."]


@pytest.mark.parametrize(
    "line",
    [
        "report report report, said the report of the reporting office",
        "ABCD 1234 ABCD 1234 ABCD",
    ],
)
def test_repeated_words_at_other_places_are_kept(tmp_path: Path, line: str) -> None:
    """A line that repeats its own start or end in the text, drawn once, is not a copy."""
    _overprinted_pdf(tmp_path / "once.pdf", line, [(0.0, 0.0, "")])
    assert _pdfium_lines(tmp_path / "once.pdf") == [line, "The next line is drawn once only."]


def test_copies_a_page_draws_over_itself_are_read_once(corpus: Path) -> None:
    """A report cover that draws each string four times, slightly offset: PDFium kept two
    copies of three lines (pypdf and pdfminer keep all four)."""
    path = corpus / "pdfplumber__tests_pdfs_issue-842-example.pdf"
    _, pages = extract_with_pdfium(path, password=None, min_chars=16)
    text = pages[0].text
    assert text.count("ANHUI ANLI ARTIFICIAL LEATHER CO.,LTD.") == 1
    assert text.count("年年度报告") == 1
    assert text.count("300218") == 1
    assert "安徽安利合成革股份有限公司" in text and "股票简称" in text
