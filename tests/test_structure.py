"""The structure plugin's parts, on facts and blocks made by hand: tables, lists, headings,
Markdown, section chunks."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest import Block, Chunk, Document, Metadata, Page, Source, Table, TableCell
from ingest_plugins.chunk import build_section_chunks
from ingest_plugins.layout import Line
from ingest_plugins.structure.blocks import page_blocks
from ingest_plugins.structure.facts import Char, OutlineEntry, PageFacts, Rule, segments_of
from ingest_plugins.structure.headings import analyse_document, section_depth
from ingest_plugins.structure.markdown import page_markdown, table_markdown, text_markdown
from ingest_plugins.structure.sections import (
    find_anchors,
    headings_at,
    markdown_anchors,
    section_spans,
)
from ingest_plugins.structure.tables import find_tables

# --------------------------------------------------------------------------------------------
# Facts made by hand: one line per row, characters 6 points wide.
# --------------------------------------------------------------------------------------------

CHAR = 6.0


def line(text: str, x: float, y: float, *, size: float = 10.0, bold: bool = False,
         source: int = 0, kind: str = "body") -> Line:  # fmt: skip
    return Line(text, x, y, x + CHAR * len(text), y + size * 1.2, size, bold, source, 0,
                kind=kind)  # fmt: skip


def chars(text: str, x: float) -> list[Char]:
    return [Char(x + i * CHAR, x + (i + 1) * CHAR, c) for i, c in enumerate(text)]


def row_line(cells: list[str], xs: list[float], y: float, source: int,
             size: float = 10.0) -> tuple[Line, list[Char]]:  # fmt: skip
    """A table row: each cell's text starting at its column's x, as one extractor line."""
    found: list[Char] = []
    for text, x in zip(cells, xs, strict=True):
        if found:
            found.append(Char(found[-1].x1, found[-1].x1, " "))
        found.extend(chars(text, x))
    made = Line(" ".join(cells), xs[0], y, found[-1].x1, y + size * 1.2, size, False, source)
    return made, found


def facts_with_rows(rows: list[list[str]], xs: list[float], top: float = 100.0,
                    pitch: float = 16.0) -> PageFacts:  # fmt: skip
    facts = PageFacts(width=600, height=800, lines=[])
    for number, cells in enumerate(rows):
        made, found = row_line(cells, xs, top + number * pitch, number)
        facts.chars[number] = found
        facts.lines.append(made)
    return facts


def grid_rules(xs: list[float], ys: list[float]) -> list[Rule]:
    rules = [Rule(xs[0], y, xs[-1], y, True) for y in ys]
    rules += [Rule(x, ys[0], x, ys[-1], False) for x in xs]
    return rules


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def test_aligned_rows_make_a_table_with_their_cells() -> None:
    rows = [["Name", "Age", "City"], ["Alice", "30", "Paris"], ["Bob", "25", "Rome"],
            ["Carol", "41", "Oslo"]]  # fmt: skip
    facts = facts_with_rows(rows, [50, 200, 350])
    found = find_tables(facts, 10.0)
    assert len(found) == 1
    assert found[0].table.grid() == rows
    assert not found[0].table.ruled
    assert found[0].lines == {0, 1, 2, 3}


def test_a_list_with_a_wide_gap_after_its_bullets_is_no_table() -> None:
    rows = [["\u2022", "first item of the list"], ["\u2022", "second item"], ["\u2022", "third"]]
    facts = facts_with_rows(rows, [50, 80])
    assert find_tables(facts, 10.0) == []


def test_two_rows_are_not_enough_for_a_table_without_rules() -> None:
    facts = facts_with_rows([["a", "b"], ["c", "d"]], [50, 200])
    assert find_tables(facts, 10.0) == []


def test_ruled_grid_gives_cells_and_spans() -> None:
    # Three columns, three rows; the first row's first two cells are one (no rule at 200
    # in it), and the last column's last two rows are one (no rule at y 132 there).
    ys = [100.0, 116.0, 132.0, 148.0]
    facts = PageFacts(width=600, height=800, lines=[])
    rows = [
        (["Wide header", "Right"], [55, 355]),
        (["a", "b", "c"], [55, 205, 355]),
        (["d", "e"], [55, 205]),
    ]
    for number, (cells, starts) in enumerate(rows):
        made, found = row_line(cells, [float(x) for x in starts], ys[number] + 2, number)
        facts.lines.append(made)
        facts.chars[number] = found
    rules = [Rule(50, y, 500, y, True) for y in (100, 116, 148)]
    rules.append(Rule(50, 132, 350, 132, True))  # not under the last column
    rules += [Rule(x, 100, x, 148, False) for x in (50, 350, 500)]
    rules.append(Rule(200, 116, 200, 148, False))  # not in the first row
    facts.rules = rules
    found = find_tables(facts, 10.0)
    assert len(found) == 1
    table = found[0].table
    assert table.ruled and table.spans
    cells = {(c.row, c.col): (c.text, c.rowspan, c.colspan) for c in table.cells}
    assert cells[(0, 0)] == ("Wide header", 1, 2)
    assert cells[(1, 2)] == ("c", 2, 1)
    assert cells[(2, 0)] == ("d", 1, 1)
    assert "<td rowspan=\"2\">c</td>" in table_markdown(table)
    assert 'colspan="2"' in table_markdown(table)


def test_a_ruled_table_keeps_what_lies_outside_it_in_the_flow() -> None:
    """A row the extractor joined with text beside the table loses nothing."""
    xs, ys = [50.0, 150.0, 250.0], [100.0, 116.0, 132.0]
    facts = PageFacts(width=600, height=800, lines=[])
    for number, cells in enumerate([["H1", "H2"], ["v1", "v2"]]):
        made, found = row_line([*cells, "beside the table"], [55, 155, 300], ys[number] + 2,
                               number)  # fmt: skip
        facts.lines.append(made)
        facts.chars[number] = found
    facts.rules = grid_rules(xs, ys)
    blocks = page_blocks(facts)
    assert blocks[0].kind == "table"
    assert blocks[0].table is not None and blocks[0].table.grid() == [["H1", "H2"], ["v1", "v2"]]
    rest = " ".join(b.text for b in blocks[1:])
    assert rest.count("beside the table") == 2


def test_a_frame_around_a_paragraph_is_no_table() -> None:
    text = "A long paragraph of running text inside a box drawn around it, nothing more. " * 3
    facts = PageFacts(width=600, height=800, lines=[line(text, 60, 110)])
    facts.rules = grid_rules([50.0, 580.0], [100.0, 140.0])
    assert find_tables(facts, 10.0) == []


def test_segments_split_at_wide_gaps_only() -> None:
    found = chars("ab cd", 0) + chars("ef", 100)
    assert [s.text for s in segments_of(found, 9.0)] == ["ab cd", "ef"]
    assert [s.text for s in segments_of(found, 200.0)] == ["ab cdef"]


# --------------------------------------------------------------------------------------------
# Page blocks: paragraphs and lists
# --------------------------------------------------------------------------------------------


def page_of(lines: list[Line]) -> PageFacts:
    for number, made in enumerate(lines):
        made.source = number
    return PageFacts(width=600, height=800, lines=lines)


def test_lines_become_paragraphs_and_list_items_with_depths() -> None:
    lines = [
        line("Some running text that fills the whole line of the col-", 50, 100),
        line("umn and ends here.", 50, 112),
        line("\u2022 first item", 50, 130),
        line("\u2013 nested item", 70, 142),
        line("\u2022 second item", 50, 154),
        line("1. numbered", 50, 166),
    ]
    blocks = page_blocks(page_of(lines), tables=False)
    assert [(b.kind, b.level) for b in blocks] == [
        ("paragraph", 0), ("list_item", 0), ("list_item", 1), ("list_item", 0),
        ("list_item", 0),
    ]  # fmt: skip
    assert blocks[0].text == (
        "Some running text that fills the whole line of the column and ends here."
    )


def test_a_wrapped_item_continues_and_a_paragraph_after_it_does_not() -> None:
    lines = [
        line("\u2022 an item long enough to run to the edge of the column", 50, 100),
        line("and go on", 50, 112),
        line("A new paragraph starts here.", 50, 135),
    ]
    lines[0].x1 = 400.0
    lines[2].x1 = 400.0
    blocks = page_blocks(page_of(lines), tables=False)
    assert [b.kind for b in blocks] == ["list_item", "paragraph"]
    assert blocks[0].text.endswith("column and go on")


def test_outline_entries_become_headings_at_their_depth() -> None:
    facts = page_of([line("2.1 Results", 50, 100, bold=True), line("Body text.", 50, 118)])
    facts.outline = [OutlineEntry(1, "Results", 100.0)]
    blocks = page_blocks(facts, tables=False)
    assert (blocks[0].kind, blocks[0].level, blocks[0].text) == ("heading", 2, "2.1 Results")


def test_an_image_with_a_caption_below_is_a_figure_with_it() -> None:
    facts = page_of([line("Figure 3: The pipeline.", 60, 320), line("Text after.", 60, 360)])
    facts.images = [(60.0, 100.0, 300.0, 310.0)]
    blocks = page_blocks(facts, tables=False)
    assert [(b.kind, b.text) for b in blocks] == [
        ("figure", "Figure 3: The pipeline."), ("paragraph", "Text after.")
    ]  # fmt: skip
    assert page_markdown(blocks).startswith("![Figure 3: The pipeline.]()")


# --------------------------------------------------------------------------------------------
# Headings across a document
# --------------------------------------------------------------------------------------------


def block(text: str, size: float, *, bold: bool = False, y: float = 0.0,
          kind: str = "paragraph") -> Block:  # fmt: skip
    return Block(kind, text, (50.0, y, 400.0, y + size * 1.2), size=size, bold=bold)


def body(text: str = "Running text of the body. " * 6, y: float = 0.0) -> Block:
    return block(text, 10.0, y=y)


def test_levels_follow_sizes_and_section_numbers() -> None:
    blocks = [
        block("A Title", 20, bold=True, y=10), body(y=40),
        block("1 Introduction", 14, bold=True, y=100), body(y=120),
        block("1.1 Background", 12, bold=True, y=200), body(y=220),
        block("Details", 10, bold=True, y=300), body(y=315),
        block("2 Methods", 14, bold=True, y=400), body(y=420),
    ]  # fmt: skip
    page = Page(1, "", "pdfium", blocks=blocks)
    analyse_document([page])
    headings = [(b.text, b.level) for b in page.blocks if b.kind == "heading"]
    assert headings == [
        ("A Title", 1), ("1 Introduction", 2), ("1.1 Background", 3), ("Details", 4),
        ("2 Methods", 2),
    ]  # fmt: skip


def test_bold_boxes_of_a_flow_chart_are_no_headings() -> None:
    blocks = [block(f"Step {n}", 10, bold=True, y=100 + 30 * n) for n in range(4)]
    page = Page(1, "", "pdfium", blocks=[*blocks, body(y=300)])
    analyse_document([page])
    assert [b.kind for b in page.blocks].count("heading") <= 1


def test_running_headers_and_page_numbers_are_marked() -> None:
    pages = []
    for number in range(1, 6):
        blocks = [
            block("Journal of Things", 8, y=10),
            body(y=60),
            body(y=120),
            body(f"Different text {number}. " * 5, y=180),
            block(str(number), 8, y=780),
        ]
        pages.append(Page(number, "", "pdfium", blocks=blocks))
    analyse_document(pages)
    for page in pages:
        assert page.blocks[0].kind == "page_header"
        assert page.blocks[-1].kind == "page_footer"
        assert "Journal" not in page_markdown(page.blocks)


def test_section_depth() -> None:
    assert section_depth("2.1.3 Results") == 3
    assert section_depth("4 Discussion") == 1
    assert section_depth("Discussion") == 0
    assert section_depth("2019 was a year") == 0


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def test_markdown_of_each_kind() -> None:
    table = Table(2, 2, [TableCell(0, 0, "a|b"), TableCell(0, 1, "c"), TableCell(1, 0, "1"),
                         TableCell(1, 1, "2")])  # fmt: skip
    blocks = [
        Block("heading", "Title", level=1),
        Block("paragraph", "# not a heading"),
        Block("list_item", "\u2022 bullet"),
        Block("list_item", "3) third", level=1),
        Block("list_item", "(a) lettered"),
        Block("table", "", table=table),
        Block("figure", ""),
        Block("page_footer", "Page 3"),
    ]
    assert page_markdown(blocks) == (
        "# Title\n\n\\# not a heading\n\n- bullet\n  3) third\n- (a) lettered\n\n"
        "| a\\|b | c |\n|---|---|\n| 1 | 2 |\n\n![figure]()"
    )


def test_text_without_blocks_gets_paragraphs_and_list_items() -> None:
    text = "A para-\ngraph on two lines.\n\n\u2022 one\n\u2022 two\ncontinued"
    assert text_markdown(text) == "A paragraph on two lines.\n\n- one\n- two continued"


# --------------------------------------------------------------------------------------------
# Sections and chunks
# --------------------------------------------------------------------------------------------

MARKDOWN = """# Title

## 1 Intro

First words of the introduction, long enough to matter here.

## 2 Data

### 2.1 Table

| Name | Value |
|---|---|
| alpha | 1 |
| beta | 2 |
| gamma | 3 |
| delta | 4 |
| epsilon | 5 |

Closing words."""


def test_markdown_anchors_and_heading_trails() -> None:
    headings, tables = markdown_anchors(MARKDOWN)
    assert [(h.level, h.title) for h in headings] == [
        (1, "Title"), (2, "1 Intro"), (2, "2 Data"), (3, "2.1 Table")
    ]  # fmt: skip
    assert len(tables) == 1
    header = MARKDOWN[tables[0].start : tables[0].header_end]
    assert header == "| Name | Value |\n|---|---|"
    at = MARKDOWN.index("alpha")
    assert headings_at(headings, MARKDOWN, at, at + 5) == ["Title", "2 Data", "2.1 Table"]
    # A chunk opening with a heading sits under it.
    start = MARKDOWN.index("## 1 Intro")
    assert headings_at(headings, MARKDOWN, start, start + 40) == ["Title", "1 Intro"]


def test_section_chunks_break_at_headings_and_keep_rows_whole() -> None:
    headings, tables = markdown_anchors(MARKDOWN)
    spans = section_spans(MARKDOWN, headings, tables, unit="chars", size=60, overlap=0)
    texts = [prefix + MARKDOWN[start:end] for start, end, prefix in spans]
    # "# Title" holds only its heading: it opens the first section with "## 1 Intro".
    assert texts[0].startswith("# Title\n\n## 1 Intro")
    assert not any("## 2 Data" in text and "Intro" in text for text in texts)
    table_chunks = [text for text in texts if "| " in text]
    assert len(table_chunks) >= 2
    for text in table_chunks:
        for row in re.findall(r"^\|.*$", text, re.MULTILINE):
            assert row.endswith("|")  # never cut inside a row
    later = [t for t in table_chunks if "alpha" not in t and "| Name | Value |" in t]
    assert later, "a chunk continuing the table repeats its header"
    assert all(t.startswith("| Name | Value |\n|---|---|\n") for t in later)


@settings(max_examples=60, deadline=None)
@given(
    sections=st.lists(
        st.tuples(st.integers(1, 3), st.lists(st.sampled_from(
            ["word", "longer", "text.", "here", "x" * 30]), min_size=0, max_size=40)),
        min_size=1, max_size=6),
    size=st.integers(20, 200),
    overlap=st.integers(0, 19),
)  # fmt: skip
def test_section_chunks_cover_every_word_within_their_sections(
    sections: list[tuple[int, list[str]]], size: int, overlap: int
) -> None:
    parts = []
    for number, (level, words) in enumerate(sections):
        parts.append("#" * level + f" Heading {number}\n\n" + " ".join(words))
    text = "\n\n".join(parts)
    headings, tables = markdown_anchors(text)
    spans = section_spans(text, headings, tables, unit="chars", size=size, overlap=overlap)
    # Sections start at each heading, except one right after a heading with nothing under it.
    starts = [
        h.start for i, h in enumerate(headings)
        if i == 0 or text[headings[i - 1].end : h.start].strip()
    ]  # fmt: skip
    covered: set[int] = set()
    for start, end, prefix in spans:
        assert prefix == ""
        assert text[start:end] == text[start:end].strip()
        assert not any(start < s < end for s in starts), "a chunk crosses a section start"
        covered.update(range(start, end))
    for match in re.finditer(r"\S+", text):
        assert match.start() in covered


def test_build_section_chunks_carry_pages_and_headings() -> None:
    pages = [Page(1, "", "pdfium", markdown="# A\n\nfirst page words."),
             Page(2, "", "pdfium", markdown="## B\n\nsecond page words.")]  # fmt: skip
    document = Document(Source(Path("a.pdf"), "0" * 64, 0), Metadata(page_count=2), pages)
    headings, tables = find_anchors(document, markdown=True)
    chunks = build_section_chunks("d", document.markdown, document.page_spans(markdown=True),
                                  headings, tables, unit="chars", size=100, overlap=0)  # fmt: skip
    assert [(c.page_start, c.page_end, c.headings) for c in chunks] == [
        (1, 1, ["A"]), (2, 2, ["A", "B"])
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


def test_pages_with_blocks_pickle_and_documents_join_markdown() -> None:
    table = Table(1, 2, [TableCell(0, 0, "a"), TableCell(0, 1, "b", colspan=1)])
    page = Page(1, "text", "pdfium", blocks=[Block("table", "a | b", (1, 2, 3, 4), table=table)],
                markdown="| a | b |\n|---|---|")  # fmt: skip
    assert pickle.loads(pickle.dumps(page)) == page
    other = Page(2, "plain", "ocr")
    document = Document(Source(Path("a.pdf"), "0" * 64, 0), Metadata(), [page, other])
    assert document.markdown == "| a | b |\n|---|---|\n\nplain"
    assert document.page_spans(markdown=True) == [(1, 0, 19), (2, 21, 26)]
    assert [number for number, _ in document.tables()] == [1]
    chunk = Chunk("d", 0, "t", 1, 1, 0, 1)
    assert chunk.headings == []


@pytest.mark.parametrize("kind", ["heading", "paragraph", "list_item", "table", "figure"])
def test_block_kinds_are_documented(kind: str) -> None:
    from ingest import BLOCK_KINDS

    assert kind in BLOCK_KINDS
