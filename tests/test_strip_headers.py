"""Header and footer removal that never removes unique content: odd and even pages counted
apart, page numbers in any form, the same place on the page, and repeated pages counted once.
(The basic rules are in test_transforms.)"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest.config import Settings
from ingest.model import Document, Metadata, Page, Source
from ingest_plugins import strip_headers
from ingest_plugins.strip_headers import line_key, strip_running_lines

WORDS = ("river", "stone", "lantern", "meadow", "copper", "signal", "window", "garden", "pocket")


def body(rng: random.Random, lines: int = 8) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(7)) for _ in range(lines)]


def roman(number: int) -> str:
    return ["i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x"][number - 1]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("3", "4"),
        ("Page 3 of 9", "Page 4 of 9"),
        ("- 3 -", "- 4 -"),
        ("iii", "iv"),
        ("Page xii", "Page xiii"),
        ("Annual Report 2020 | 3", "Annual Report 2020 | 4"),
    ],
)
def test_page_numbers_in_any_form_share_a_key(first: str, second: str) -> None:
    assert line_key(first) == line_key(second)


def test_words_that_look_roman_are_not_numbers() -> None:
    assert line_key("civil mix dim") == "civil mix dim"


def test_alternating_headers_are_removed_on_their_own_pages() -> None:
    """Each of two headers stands on every other page: under half of all pages, but on all
    of its own side; their page numbers (digits on one side, roman on the other) go too."""
    rng = random.Random(1)
    pages = []
    for number in range(1, 10):
        header = f"Chapter Two: Rivers {number}" if number % 2 else f"{number} A. Author"
        footer = f"- {number} -" if number % 2 else roman(number)
        pages.append("\n".join([header, "", *body(rng), "", footer]))
    stripped = strip_running_lines(pages)
    for number, text in enumerate(stripped, start=1):
        lines = text.split("\n")
        assert "Chapter Two" not in text and "A. Author" not in text, number
        assert lines == body(random.Random(0), 0) or len(lines) == 8


def test_a_line_elsewhere_on_the_page_is_not_a_header() -> None:
    """The same words at the top of one page and at the bottom of the others are content."""
    rng = random.Random(2)
    pages = ["\n".join(["Summary of the findings", *body(rng)]) for _ in range(2)]
    pages += ["\n".join([*body(rng), "Summary of the findings"]) for _ in range(2)]
    assert strip_running_lines(pages) == pages


def test_repeated_pages_lose_nothing() -> None:
    """A document that prints the same page again (or the same text laid out anew) keeps
    every line, though each recurs at the page edges."""
    rng = random.Random(3)
    page = "\n".join(body(rng, 12))
    reflowed = " ".join(page.split("\n")).replace(" copper ", " copper\n")
    pages = [page, page, reflowed, page, page, reflowed]
    assert strip_running_lines(pages) == pages


def test_repeated_pages_with_a_real_header_keep_the_header() -> None:
    """Two copies of a three-page report: the header recurs on three distinct pages and
    goes; the copies do not make the body's lines headers."""
    rng = random.Random(4)
    report = ["\n".join(["Report header", *body(rng), f"Page {n}"]) for n in (1, 2, 3)]
    stripped = strip_running_lines(report + report)
    assert all("Report header" not in text and "Page" not in text for text in stripped)
    assert all(len(text.split("\n")) == 8 for text in stripped)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.text("abc \n", max_size=30), max_size=8), max_size=8))
def test_only_lines_recurring_at_the_same_place_are_removed(
    pages_lines: list[list[str]],
) -> None:
    pages = ["\n".join(lines) for lines in pages_lines]
    stripped = strip_running_lines(pages)
    assert len(stripped) == len(pages)
    for before, after in zip(pages, stripped, strict=True):
        kept = [line for line in after.split("\n") if line.strip()]
        original = [line for line in before.split("\n") if line.strip()]
        # What stays is the page's lines in order, less some of its edge lines.
        assert all(line in original for line in kept)
        removed = len(original) - len(kept)
        assert removed <= 2 * strip_headers.EDGE_LINES
        for line in set(original) - set(kept):
            key = line_key(line)
            # A removed line recurs on at least MIN_PAGES pages.
            assert sum(key in map(line_key, page.split("\n")) for page in pages) >= 3


@given(
    st.lists(st.sampled_from(["Slide", "Chart", "Page", "p.", "-", "Figure"]), min_size=1,
             max_size=3),
    st.integers(3, 12),
)
def test_a_page_is_never_emptied_of_more_than_its_page_numbers(
    words: list[str], count: int
) -> None:
    # Every line recurs at the same place on every page, differing only by numbers: all of
    # them qualify as running lines, so only bare page numbers may go.
    pages = [
        "\n".join(f"{word} {number} of the deck, revision {number}" for word in words)
        + f"\n{number}"
        for number in range(1, count + 1)
    ]
    for before, after in zip(pages, strip_running_lines(pages), strict=True):
        assert after == before.rsplit("\n", 1)[0]


def test_short_pages_of_numbered_lines_keep_their_text() -> None:
    pages = [
        f"Page {n} of the sample document, marker-{n:04d}.\n"
        f"The quick brown fox jumps over the lazy dog {n} times."
        for n in range(1, 6)
    ]
    assert strip_running_lines(pages) == pages
    # With a body between them, the same lines are a running header and footer.
    bodies = ["alpha beta", "gamma delta", "epsilon zeta", "eta theta", "iota kappa"]
    framed = [
        f"{header}\n{body}\n{footer}"
        for (header, footer), body in zip(
            (page.split("\n") for page in pages), bodies, strict=True
        )
    ]
    assert strip_running_lines(framed) == bodies


def test_hook_on_a_document() -> None:
    rng = random.Random(5)
    texts = ["\n".join(["Running head", *body(rng), str(n)]) for n in range(1, 5)]
    source = Source(path=Path("x.pdf"), content_id="ef" * 32, size=1)
    document = Document(
        source=source,
        metadata=Metadata(page_count=4),
        pages=[Page(number=n, text=t, extractor="test") for n, t in enumerate(texts, 1)],
    )
    strip_headers.ingest_transform(document=document, settings=Settings(), step="strip_headers")
    assert all(not page.text.startswith("Running head") for page in document.pages)
    assert all(len(page.text.split("\n")) == 8 for page in document.pages)


def _groups_pairwise(pages: list[frozenset[str]]) -> list[int]:
    """The repeated-page groups by their definition: each page against every group's first
    page, in order."""
    groups: list[int] = []
    firsts: list[frozenset[str]] = []
    for lines in pages:
        group = next(
            (
                number
                for number, other in enumerate(firsts)
                if len(lines & other) >= strip_headers.SAME_PAGE * max(len(lines), len(other))
            ),
            None,
        )
        if group is None:
            group = len(firsts)
            firsts.append(lines)
        groups.append(group)
    return groups


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([f"line {n}" for n in range(12)]), min_size=1, max_size=8),
        min_size=1,
        max_size=25,
    )
)
def test_repeated_pages_found_through_an_index_are_those_compared_pairwise(
    pages: list[list[str]],
) -> None:
    """Only groups holding one of a page's rarest lines are compared: the same groups as
    comparing the page with every group."""
    made = strip_headers._pages(["\n".join(lines) for lines in pages], strip_headers.EDGE_LINES)
    assert strip_headers._same_page_groups(made) == _groups_pairwise(
        [page.filled for page in made]
    )
