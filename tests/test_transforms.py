"""The text transforms: normalize, dehyphenate, strip_headers and dedup (chunk: test_chunker)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from types import ModuleType

import pluggy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest import hookspecs
from ingest.config import ChunkSettings, Settings
from ingest.model import Chunk, Document, Metadata, Page, Source
from ingest_plugins import chunk, dedup, dehyphenate, normalize, strip_headers
from ingest_plugins.artefacts import clean_extracted_text
from ingest_plugins.chunk import Unit
from ingest_plugins.dedup import dedup_chunks, dedup_key
from ingest_plugins.dehyphenate import dehyphenate_text
from ingest_plugins.normalize import normalize_text
from ingest_plugins.strip_headers import find_running_lines, line_key, strip_running_lines

TRANSFORMS: tuple[ModuleType, ...] = (normalize, dehyphenate, strip_headers, chunk, dedup)


def make_document(*texts: str) -> Document:
    source = Source(path=Path("x.pdf"), content_id="ab" * 32, size=1)
    pages = [Page(number=n, text=t, extractor="test") for n, t in enumerate(texts, start=1)]
    return Document(source=source, metadata=Metadata(page_count=len(pages)), pages=pages)


def make_settings(unit: Unit = "chars", size: int = 50, overlap: int = 10) -> Settings:
    return Settings(chunk=ChunkSettings(unit=unit, size=size, overlap=overlap))


def make_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for module in TRANSFORMS:
        manager.register(module, name=module.NAME)
    return manager


# --------------------------------------------------------------------------------------------
# normalize
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\ufb01nd the \ufb02ow", "find the flow"),  # ligatures fi, fl
        ("\uff21\uff22\uff23 \uff11\uff12", "ABC 12"),  # full-width letters and digits
        ("non\u00a0breaking\u202fnarrow\u2003em", "non breaking narrow em"),
        ("soft\u00adhyphen zero\u200bwidth \ufeffbom", "softhyphen zerowidth bom"),
        ("a\x00b\x07c\x1bd", "abcd"),  # control characters go
        ("line\r\nend\rold mac", "line\nend\nold mac"),
        ("form\ffeed\vvertical\u2028sep", "form\nfeed\nvertical\nsep"),
        ("many   spaces\t\tand\ttabs", "many spaces and tabs"),
        ("trailing   \nspaces \t\nhere", "trailing\nspaces\nhere"),
        ("one\n\ntwo\n\n\nthree\n \n \n\nfour", "one\n\ntwo\n\nthree\n\nfour"),
        ("  \n\n padded page \n\n ", "padded page"),
        ("e\u0301t\u00e9", "\u00e9t\u00e9"),  # combining accent composed
        ("  indented\n   twice", "indented\n twice"),  # inner indentation kept, collapsed
        (" \t\n\x00\u00ad\n", ""),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_normalize_is_idempotent_and_clean(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert once == once.strip()
    assert "\n\n\n" not in once
    assert "  " not in once
    assert not re.search(" $", once, re.MULTILINE)
    assert all(c in "\n" or not c.isspace() or c == " " for c in once)
    assert "\u00ad" not in once and "\r" not in once and "\t" not in once


def _normalize_rule_by_rule(text: str) -> str:
    """The module's five rules read literally, one whole-text pass each."""
    text = re.sub("\r\n|[\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]", "\n", text)
    text = "".join(c for c in clean_extracted_text(text) if c not in "\u00ad\u200b\u2060\ufeff")
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"[^\S\n]+", " ", text)
    text = re.sub(r" +$", "", text, flags=re.MULTILINE)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# Characters each rule is about, mixed with letters, so that runs and neighbours occur.
_NORMALIZE_ALPHABET = st.sampled_from(
    list(" \t\n\r\v\f\x00\x02\x1f\x7f\x85\xa0\xad\u1680\u2028\u200b\u2060\ufeff")
    + list("\ufb01\uff21\u0301\ufdd0\ufffe\U0001ffff-a9.")
)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=_NORMALIZE_ALPHABET, max_size=60) | st.text(max_size=60))
def test_normalize_matches_the_rules_read_literally(text: str) -> None:
    # The implementation skips the passes a page does not need; the text must not change.
    assert normalize_text(text) == _normalize_rule_by_rule(text)


def test_normalize_hook_changes_every_page_only_for_its_step() -> None:
    document = make_document("\ufb01rst  page ", "second\r\npage\u00a0")
    normalize.ingest_transform(document=document, settings=make_settings(), step="dedup")
    assert document.pages[0].text == "\ufb01rst  page "
    normalize.ingest_transform(document=document, settings=make_settings(), step="normalize")
    assert [page.text for page in document.pages] == ["first page", "second\npage"]


# --------------------------------------------------------------------------------------------
# dehyphenate
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("the infor-\nmation is key", "the information\nis key"),
        ("infor-\nmation\nnext line", "information\nnext line"),
        ("infor-\nmation", "information"),
        ("infor-  \n  mation, which", "information,\nwhich"),
        ("hyphen\u2010\nation", "hyphenation"),
        ("soft\u00ad\nhyphen", "softhyphen"),
        ("a long-\nwinded, well-\nknown-\nness", "a longwinded,\nwellknownness"),
        ("ab-\ncd-\nef gh-\nij", "abcdef\nghij"),
        # Kept: real compounds, numbers, names, single letters, paragraph breaks.
        ("COVID-\n19 cases", "COVID-\n19 cases"),
        ("NATO-\nled forces", "NATO-\nled forces"),
        ("2019-\n2020", "2019-\n2020"),
        ("Jean-\nPaul", "Jean-\nPaul"),
        ("non-\nEuropean", "non-\nEuropean"),
        ("an e-\nmail", "an e-\nmail"),
        ("see page 3-\nfour", "see page 3-\nfour"),
        ("end of para-\n\nnext", "end of para-\n\nnext"),
        ("a dash --\nthen", "a dash --\nthen"),
        ("-\nalone", "-\nalone"),
        ("no hyphen\nhere", "no hyphen\nhere"),
        ("inline-hyphen stays\n", "inline-hyphen stays\n"),
    ],
)
def test_dehyphenate_text(raw: str, expected: str) -> None:
    assert dehyphenate_text(raw) == expected


_DEHYPHENATE_TEXT = st.text(alphabet="aBz1- \t\n\u00ad", max_size=60)


@settings(max_examples=400, deadline=None)
@given(_DEHYPHENATE_TEXT)
def test_dehyphenate_is_idempotent(text: str) -> None:
    once = dehyphenate_text(text)
    assert dehyphenate_text(once) == once


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_dehyphenate_leaves_text_without_a_line_end_hyphen_alone(text: str) -> None:
    if re.search("[-\u2010\u00ad][ \t]*\n", text):
        return
    assert dehyphenate_text(text) == text


@settings(max_examples=300, deadline=None)
@given(_DEHYPHENATE_TEXT)
def test_dehyphenate_only_removes_hyphens_and_blanks(text: str) -> None:
    """Joining moves words and line breaks; letters and digits survive in order."""
    once = dehyphenate_text(text)
    assert re.sub(r"[^a-zA-Z0-9]", "", once) == re.sub(r"[^a-zA-Z0-9]", "", text)
    assert once.count("\n") <= text.count("\n")


def test_dehyphenate_hook_works_per_page_not_across_pages() -> None:
    document = make_document("the infor-", "mation age-\nold ideas")
    dehyphenate.ingest_transform(document=document, settings=make_settings(), step="dehyphenate")
    assert [page.text for page in document.pages] == ["the infor-", "mation ageold\nideas"]


# --------------------------------------------------------------------------------------------
# strip_headers
# --------------------------------------------------------------------------------------------


def paper(pages: int, *, body_lines: int = 6) -> list[str]:
    """A synthetic paper: a running header, distinct body lines and a numbered footer."""
    return [
        "\n".join(
            ["Journal of Synthetic Results, Vol. 7", ""]
            + [f"Page {n} line {k}: {'lorem ipsum ' * (n % 3 + k % 2)}" for k in range(body_lines)]
            + ["", f"Page {n} of {pages}"]
        )
        for n in range(1, pages + 1)
    ]


def test_line_key_ignores_digits_and_spacing() -> None:
    assert line_key("  Page 3  of 10 ") == line_key("Page 4 of 12") == "Page # of #"
    assert line_key("   ") == ""


def test_strip_headers_removes_running_header_and_footer() -> None:
    pages = paper(5)
    stripped = strip_running_lines(pages)
    for number, text in enumerate(stripped, start=1):
        assert "Journal of Synthetic Results" not in text
        assert f"of {len(pages)}" not in text
        assert text.startswith(f"Page {number} line 0:")
        assert text.split("\n")[-1].startswith(f"Page {number} line 5:")


def test_strip_headers_removes_bare_page_numbers() -> None:
    pages = [f"Section {n} says {'a ' * n}\nbody {'b' * n}\n\n{n}" for n in range(1, 7)]
    assert strip_running_lines(pages) == [p.rsplit("\n\n", 1)[0] for p in pages]


def test_strip_headers_never_touches_documents_under_three_pages() -> None:
    for count in (1, 2):
        pages = paper(count)
        assert strip_running_lines(pages) == pages
        assert find_running_lines(pages) == frozenset()


def test_strip_headers_needs_half_the_pages_and_at_least_three() -> None:
    pages = paper(10)
    # A "draft" banner on the first four pages only: 4 < 50% of 10, so it stays.
    drafted = [("DRAFT\n" + p if n < 4 else p) for n, p in enumerate(pages)]
    assert "DRAFT" not in find_running_lines(drafted)
    # On five of ten pages it is a running header.
    drafted = [("DRAFT\n" + p if n < 5 else p) for n, p in enumerate(pages)]
    assert "DRAFT" in find_running_lines(drafted)
    # In a four-page document, two pages are half but fewer than three.
    small = [("DRAFT\n" + p if n < 2 else p) for n, p in enumerate(paper(4))]
    assert "DRAFT" not in find_running_lines(small)


def test_strip_headers_keeps_a_line_that_also_occurs_in_the_body() -> None:
    pages = paper(4, body_lines=8)
    # The header text also appears mid-page on the last page: body text is never removed.
    lines = pages[3].split("\n")
    lines.insert(6, "Journal of Synthetic Results, Vol. 7")
    pages[3] = "\n".join(lines)
    stripped = strip_running_lines(pages)
    assert all(text.startswith("Journal of Synthetic Results") for text in stripped)
    assert all("Page 1 of 4" not in text for text in stripped[:1])


def test_strip_headers_only_looks_at_the_edge_zone() -> None:
    # "Figure" lines recur on every page but deep in the body: not a header.
    pages = [
        "\n".join(
            [
                "Head",
                *[f"text {n}.{k} {'x' * k}" for k in range(4)],
                "Figure",
                "",
                *[f"more {n}.{k} {'y' * k}" for k in range(4)],
                "Foot",
            ]
        )
        for n in range(5)
    ]
    stripped = strip_running_lines(pages)
    assert all("Figure" in text for text in stripped)
    assert all("Head" not in text and "Foot" not in text for text in stripped)


def test_strip_headers_ignores_pages_without_text() -> None:
    pages = ["", *paper(3), "  \n"]
    stripped = strip_running_lines(pages)
    assert stripped[0] == "" and stripped[-1] == "  \n"
    assert all("Journal" not in text for text in stripped[1:4])
    # Two text pages among blank ones are still fewer than three.
    assert strip_running_lines(["", "", *paper(2)]) == ["", "", *paper(2)]


def test_strip_headers_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="edge_lines"):
        find_running_lines(paper(3), edge_lines=-1)
    with pytest.raises(ValueError, match="min_fraction"):
        find_running_lines(paper(3), min_fraction=1.5)


def test_strip_headers_hook() -> None:
    document = make_document(*paper(3))
    strip_headers.ingest_transform(document=document, settings=make_settings(), step="chunk")
    assert document.pages[0].text == paper(3)[0]
    strip_headers.ingest_transform(
        document=document, settings=make_settings(), step="strip_headers"
    )
    assert [page.text for page in document.pages] == strip_running_lines(paper(3))
    assert all("Journal" not in page.text for page in document.pages)


# --------------------------------------------------------------------------------------------
# dedup
# --------------------------------------------------------------------------------------------


def make_chunk(index: int, text: str) -> Chunk:
    return Chunk(
        doc_id="d",
        index=index,
        text=text,
        page_start=1,
        page_end=1,
        char_start=index * 10,
        char_end=index * 10 + len(text),
    )


def test_dedup_keeps_first_occurrence_and_original_indexes() -> None:
    chunks = [
        make_chunk(0, "Copyright 2024 ACME"),
        make_chunk(1, "real text"),
        make_chunk(2, "Copyright  2024\nACME "),
        make_chunk(3, "other text"),
        make_chunk(4, "real text"),
    ]
    kept = dedup_chunks(chunks)
    assert [chunk.index for chunk in kept] == [0, 1, 3]
    assert [chunk.chunk_id for chunk in kept] == ["d:0", "d:1", "d:3"]
    assert kept[0] is chunks[0]


def test_dedup_is_case_and_punctuation_sensitive() -> None:
    chunks = [make_chunk(0, "Real text."), make_chunk(1, "real text."), make_chunk(2, "Real text")]
    assert dedup_chunks(chunks) == chunks
    assert dedup_key(" a \n\t b ") == "a b"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "a ", "b", " b\n", "c d", "c  d"]), max_size=12))
def test_dedup_keys_are_unique_and_order_kept(texts: list[str]) -> None:
    chunks = [make_chunk(i, text) for i, text in enumerate(texts)]
    kept = dedup_chunks(chunks)
    keys = [dedup_key(chunk.text) for chunk in kept]
    assert len(keys) == len(set(keys)) == len({dedup_key(t) for t in texts})
    assert [chunk.index for chunk in kept] == sorted(chunk.index for chunk in kept)
    assert dedup_chunks(kept) == kept


# --------------------------------------------------------------------------------------------
# the chain, through a real plugin manager
# --------------------------------------------------------------------------------------------


def test_each_transform_acts_only_on_its_own_step() -> None:
    manager = make_manager()
    raw = ["\ufb01rst   infor-\nmation\n\n\n\nend", "second page"]
    document = make_document(*raw)
    manager.hook.ingest_transform(document=document, settings=make_settings(), step="unknown")
    assert [page.text for page in document.pages] == raw and document.chunks == []
    manager.hook.ingest_transform(document=document, settings=make_settings(), step="normalize")
    assert document.pages[0].text == "first infor-\nmation\n\nend"
    assert document.chunks == []


def test_the_whole_chain_in_order() -> None:
    manager = make_manager()
    names = ("alpha", "beta", "gamma", "delta")
    pages = [
        f"Running Title\n\n{name} infor-\nmation in   {name}.\n\nSame three words.\n\n"
        f"More about {name}.\nEnd of {name}.\n\n{number}"
        for number, name in enumerate(names, start=1)
    ]
    document = make_document(*pages)
    chain_settings = make_settings(unit="words", size=4, overlap=0)
    # The default chain of the settings: normalize, dehyphenate, strip_headers, chunk, dedup.
    for step in chain_settings.transforms:
        manager.hook.ingest_transform(document=document, settings=chain_settings, step=step)
    assert document.pages[0].text == (
        "alpha information\nin alpha.\n\nSame three words.\n\nMore about alpha.\nEnd of alpha."
    )
    texts = [chunk.text for chunk in document.chunks]
    assert texts.count("Same three words.") == 1
    indexes = [chunk.index for chunk in document.chunks]
    assert indexes == sorted(indexes) and indexes[-1] > len(indexes) - 1
    assert document.chunks[-1].page_start == document.chunks[-1].page_end == 4
