"""``ingest search`` (``ingest_plugins.sqlite_search``): bm25 ranking, snippets, formatting,
and queries that must not crash."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from ingest import Chunk, Document, Metadata, Page, Source, UsageError
from ingest_plugins.sqlite_search import SearchHit, format_hits, search, to_fts_query
from ingest_plugins.sqlite_sink import SqliteSink
from search_contract import KeywordSearchContract, Searched

FILLER = "the report covers budgets timelines staffing and general logistics for the year"


def make_doc(
    name: str, chunks: list[tuple[str, int, int]], *, title: str | None = None
) -> Document:
    """A document whose chunks are ``(text, page_start, page_end)``."""
    source = Source(
        path=Path(f"papers/{name}.pdf"),
        content_id=hashlib.sha256(name.encode()).hexdigest(),
        size=1,
    )
    last = max(end for _, _, end in chunks)
    pages = [Page(number=n, text=f"page {n}", extractor="test") for n in range(1, last + 1)]
    document = Document(source, Metadata(title=title, page_count=last), pages)
    document.chunks = [
        Chunk(document.doc_id, i, text, start, end, 0, len(text))
        for i, (text, start, end) in enumerate(chunks)
    ]
    return document


def build_db(path: Path) -> Path:
    with SqliteSink(path) as sink:
        sink.write([
            make_doc("field-notes", [
                (f"{FILLER} herons herons herons nested by the weir", 3, 3),
                (f"{FILLER} one heron was seen", 3, 4),
            ], title="Field notes"),
            make_doc("budget", [(f"{FILLER} café prices rose", 1, 1)]),
        ])
        sink.write([make_doc("guide", [(f"{FILLER} neural networks, a guide", 2, 2)])])
    return path


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_db(tmp_path_factory.mktemp("search") / "corpus.db")


def test_more_relevant_chunk_ranks_first(db: Path) -> None:
    hits = search(db, "herons")
    assert [h.chunk_id.endswith(":0") for h in hits] == [True, False]  # 3 mentions beat 1
    assert {h.source for h in hits} == {"papers/field-notes.pdf"}
    assert hits[0].score > hits[1].score > 0
    assert [h.rank for h in hits] == [1, 2]
    assert "[herons]" in hits[0].snippet and "[heron]" in hits[1].snippet  # porter stemming
    assert hits[0].title == "Field notes" and (hits[0].page_start, hits[1].page_end) == (3, 4)


def test_all_words_must_match_in_any_order(db: Path) -> None:
    assert [h.source for h in search(db, "guide neural")] == ["papers/guide.pdf"]
    assert search(db, "neural herons") == []


def test_prefix_diacritics_and_limit(db: Path) -> None:
    assert [h.source for h in search(db, "netw*")] == ["papers/guide.pdf"]
    assert [h.source for h in search(db, "cafe")] == ["papers/budget.pdf"]
    assert len(search(db, "report", limit=2)) == 2
    assert len(search(db, "report")) == 4


def test_raw_fts5_syntax(db: Path) -> None:
    hits = search(db, "herons OR café", raw=True)
    assert {h.source for h in hits} == {"papers/field-notes.pdf", "papers/budget.pdf"}
    with pytest.raises(UsageError, match="invalid search query"):
        search(db, '"unbalanced', raw=True)


def test_custom_highlight_markers(db: Path) -> None:
    (hit,) = search(db, "weir", highlight=("<b>", "</b>"))
    assert "<b>weir</b>" in hit.snippet


def test_to_fts_query_quotes_every_word() -> None:
    assert to_fts_query('say "hi" AND neur*') == '"say" """hi""" "AND" "neur"*'
    assert to_fts_query("*  \x00 ") == '"*"'
    assert to_fts_query("   ") == ""


@pytest.fixture(
    params=
    ['"', "AND", "OR OR", "*", "**", "NEAR(", "NEAR(a b", "col:x", "text:", "-x", "^", "a\x00b",
     "'", "(", ")", "+", "\\", ":", "a AND", '"""', "!!", "NOT", "herons\x00"],
)
def hostile_query(request: pytest.FixtureRequest) -> str:
    """Queries in FTS5's own syntax, and bytes it does not expect."""
    return str(request.param)


class TestSqliteSearchContract(KeywordSearchContract):
    @pytest.fixture
    def searched(self, db: Path) -> Searched:
        return search, db


def test_missing_database_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(UsageError, match=r"nope\.db"):
        search(missing, "x")
    assert not missing.exists()  # searching never creates a database


def test_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a file"):
        search(tmp_path, "x")


def test_not_a_database_is_a_usage_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("not sqlite at all " * 200)
    with pytest.raises(UsageError, match=r"notes\.db.*not an SQLite database"):
        search(text, "x")


def test_a_foreign_database_is_a_usage_error(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE things (x)")
    with pytest.raises(UsageError, match=r"other\.db.*chunks_fts"):
        search(other, "x")


def test_search_sees_upserts_and_runs_while_the_sink_is_open(tmp_path: Path) -> None:
    db = build_db(tmp_path / "corpus.db")
    with SqliteSink(db) as sink:
        sink.write([make_doc("guide", [("rewritten about kingfishers", 5, 5)])])
        (hit,) = search(db, "kingfishers")  # a reader beside the open writer (WAL)
        assert (hit.source, hit.page_start) == ("papers/guide.pdf", 5)
        assert search(db, "neural") == []


def test_format_hits(db: Path) -> None:
    text = format_hits(search(db, "herons"))
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith(" 1. papers/field-notes.pdf, p. 3 — Field notes  (score ")
    assert lines[1].startswith("    ") and "[herons]" in lines[1]
    assert lines[2].startswith(" 2. papers/field-notes.pdf, pp. 3\u20134 — Field notes")
    assert format_hits([]) == ""


def test_format_hits_keeps_snippets_on_one_line() -> None:
    hit = SearchHit(1, "d:0", "d", "a.pdf", None, 7, 7, 1.5, "two\nlines  and\tmore")
    assert format_hits([hit]) == " 1. a.pdf, p. 7  (score 1.50)\n    two lines and more"
