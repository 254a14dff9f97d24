"""Vectors in the SQLite store and ``ingest search --mode keyword|semantic|hybrid|auto``.

Stores are written by the real ``sqlite`` sink; query vectors come from the third-party
toy embedder (``tests/plugins/toy_embedder.py``), which the searcher loads by the name the
store records, as it would any embedder.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import MISSING_EMBED
from ingest.cli import main
from ingest.errors import UsageError
from ingest_plugins.sqlite_search import search as keyword_search
from ingest_plugins.sqlite_sink import SqliteSink
from plugins.toy_embedder import NAME as TOY
from searchdocs import TEXTS, make_doc

pytest.importorskip("numpy", reason=MISSING_EMBED)

from ingest_plugins.hybrid_search import Searcher, format_hits, search


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    with SqliteSink(path) as sink:
        sink.write([make_doc(name, texts) for name, texts in TEXTS.items()])
    return path


def chunk_text(path: Path, chunk_id: str) -> str:
    with sqlite3.connect(path) as connection:
        (text,) = connection.execute(
            "SELECT text FROM chunks WHERE chunk_id = ?", (chunk_id,)
        ).fetchone()
    return str(text)


# -- storage ---------------------------------------------------------------------------------


def test_the_sink_stores_one_compact_row_per_document(store: Path) -> None:
    with sqlite3.connect(store) as connection:
        assert connection.execute("SELECT label, dim FROM vector_models").fetchall() == [(TOY, 32)]
        rows = connection.execute(
            "SELECT d.chunk_count, v.count, length(v.vectors), length(v.scales) "
            "FROM chunk_vectors v JOIN documents d USING (doc_id)"
        ).fetchall()
        # one chunk's vector, in SQL, from the document's row
        (blob,) = connection.execute(
            "SELECT substr(v.vectors, c.idx * 32 + 1, 32) FROM chunks c "
            "JOIN chunk_vectors v USING (doc_id) WHERE c.idx = 1 AND c.text LIKE '%colony%'"
        ).fetchone()
    assert sorted(rows) == sorted((n, n, 32 * n, 4 * n) for n in (2, 2, 1))
    assert len(blob) == 32 and max(abs(b - 256 if b > 127 else b) for b in blob) == 127


def test_replacing_a_document_without_vectors_drops_its_old_ones(store: Path) -> None:
    with SqliteSink(store) as sink:
        sink.write([make_doc("herons", ["only one chunk now, and no vector"], label=None)])
    with sqlite3.connect(store) as connection:
        counts = connection.execute("SELECT SUM(count), COUNT(*) FROM chunk_vectors").fetchone()
    assert counts == (3, 2)  # bridge and bakery keep theirs; the herons' are gone
    hits = search(store, "herons nest weir", mode="semantic")
    assert all(not hit.source.endswith("herons.pdf") for hit in hits)


def test_a_batch_that_fails_leaves_neither_chunks_nor_vectors(tmp_path: Path) -> None:
    broken = make_doc("broken", ["first chunk", "second chunk"])
    broken.chunks[1].embedding = None
    path = tmp_path / "store.db"
    with SqliteSink(path) as sink, pytest.raises(ValueError, match="1 of 2 chunks have no vec"):
        sink.write([make_doc("fine", ["a fine chunk"]), broken])
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM chunks").fetchone() == (0,)
        assert connection.execute("SELECT COUNT(*) FROM chunk_vectors").fetchone() == (0,)


def test_the_run_writes_vectors_to_both_sinks(tmp_path: Path) -> None:
    import pdfgen

    folder = tmp_path / "in"
    folder.mkdir()
    pdfgen.text_pdf(folder / "a.pdf", [" ".join(TEXTS["herons"] * 6)])
    db, out = tmp_path / "store.db", tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main,
        ["run", str(folder), "-p", TOY, "--embed", TOY, "--workers", "0", "--progress", "none",
         "--sink", f"sqlite:{db}", "--sink", f"jsonl:{out}", "-o", "chunk.size=120",
         "-o", "chunk.overlap=10"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) > 2
    with Searcher(db) as searcher:
        for record in records:
            hits = searcher.search(record["text"], mode="semantic", limit=1)
            assert 0.999 < hits[0].score <= 1.0 + 1e-6
            assert chunk_text(db, hits[0].chunk_id) == record["text"]


# -- the modes ---------------------------------------------------------------------------------


def test_keyword_mode_is_the_full_text_search(store: Path) -> None:
    hits = search(store, "river spring", mode="keyword")
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in keyword_search(store, "river spring")]
    assert all(h.keyword_rank == h.rank and h.semantic_rank is None for h in hits)


def test_semantic_mode_ranks_by_cosine(store: Path) -> None:
    hits = search(store, "forty nests in the heron colony this spring", mode="semantic", limit=3)
    assert chunk_text(store, hits[0].chunk_id) == TEXTS["herons"][1]
    assert [h.semantic_rank for h in hits] == [1, 2, 3] and hits[0].keyword_rank is None
    assert hits[0].score > hits[1].score >= hits[2].score
    assert hits[0].snippet.startswith("the heron colony")  # its opening words
    assert hits[0].source == "papers/herons.pdf" and hits[0].title == "Herons"


def test_hybrid_fuses_both_and_finds_chunks_missing_a_word(store: Path) -> None:
    # "kingfishers" is in no chunk: every-word keyword search finds nothing at all.
    assert search(store, "herons weir kingfishers", mode="keyword") == []
    hits = search(store, "herons weir kingfishers", mode="hybrid", limit=2)
    assert chunk_text(store, hits[0].chunk_id) == TEXTS["herons"][0]
    assert hits[0].keyword_rank == 1 and hits[0].semantic_rank == 1
    assert "[herons]" in hits[0].snippet and "[weir]" in hits[0].snippet
    assert hits[0].score == pytest.approx(2 / 61)  # any-word and semantic rankings, both first


def test_hybrid_counts_a_chunk_with_every_word_twice(store: Path) -> None:
    (first, *_) = search(store, "footbridge budget", mode="hybrid")
    assert chunk_text(store, first.chunk_id) == TEXTS["bridge"][0]
    assert first.score == pytest.approx(3 / 61)


def test_auto_is_hybrid_with_vectors_and_keyword_without(store: Path, tmp_path: Path) -> None:
    assert search(store, "sourdough")[0].semantic_rank == 1
    plain = tmp_path / "plain.db"
    with SqliteSink(plain) as sink:
        sink.write([make_doc("bakery", TEXTS["bakery"], label=None)])
    (hit,) = search(plain, "sourdough")
    assert hit.semantic_rank is None and hit.keyword_rank == 1


def test_a_searcher_loads_once_and_closes(store: Path) -> None:
    with Searcher(store) as searcher:
        first = searcher.search("bread kitchen", mode="semantic")
        index = searcher._index
        assert searcher.search("bread kitchen", mode="semantic") == first
        assert searcher._index is index and searcher.has_vectors
    with pytest.raises(UsageError, match="is closed"):
        searcher.search("bread", mode="semantic")


# -- refusals ----------------------------------------------------------------------------------


def test_semantic_search_without_vectors_says_how_to_make_them(tmp_path: Path) -> None:
    plain = tmp_path / "plain.db"
    with SqliteSink(plain) as sink:
        sink.write([make_doc("bakery", TEXTS["bakery"], label=None)])
    for mode in ("semantic", "hybrid"):
        with pytest.raises(UsageError, match=r"holds no chunk vectors: ingest with --embed NAME"):
            search(plain, "bread", mode=mode)  # type: ignore[arg-type]  # both modes


def test_two_models_are_never_mixed(store: Path) -> None:
    with SqliteSink(store) as sink:
        sink.write([make_doc("bakery", TEXTS["bakery"], label=f"{TOY}/salted", salt="salted")])
    expected = rf"holds vectors of 2 models \({TOY}@32: 4 chunks, {TOY}/salted@32: 1 chunks\)"
    with pytest.raises(UsageError, match=expected):
        search(store, "sourdough bread", mode="hybrid")
    # The query is embedded with the salted model too: the chunk's own text matches it fully.
    (hit,) = search(store, TEXTS["bakery"][0], mode="semantic", model=f"{TOY}/salted", limit=5)
    assert hit.source == "papers/bakery.pdf" and 0.999 < hit.score <= 1.0 + 1e-6
    assert all(
        not h.source.endswith("bakery.pdf")
        for h in search(store, "sourdough bread", mode="semantic", model=f"{TOY}@32")
    )
    with pytest.raises(UsageError, match=r"no vectors of model 'other'; it holds"):
        search(store, "bread", mode="semantic", model="other")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "fuzzy"}, "unknown search mode 'fuzzy'"),
        ({"limit": 0}, "the search limit must be at least 1"),
        ({"query": "  "}, "the search query is empty"),
    ],
)
def test_bad_arguments_are_usage_errors(
    store: Path, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"query": "bread", **kwargs}
    query = str(arguments.pop("query"))
    with pytest.raises(UsageError, match=message):
        search(store, query, **arguments)  # type: ignore[arg-type]  # deliberately wrong


def test_a_missing_or_foreign_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no database at '.*nowhere\.db'"):
        search(tmp_path / "nowhere.db", "x", mode="semantic")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(UsageError, match="is not an SQLite database"):
        search(junk, "x", mode="semantic")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(UsageError, match="is not a database of ingest's sqlite sink"):
        search(other, "x", mode="hybrid")


# -- the command -------------------------------------------------------------------------------


def test_cli_modes_limit_and_json(store: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(main, ["search", str(store), "herons weir", "--mode", "hybrid", "-n", "2",
                                "--json"])
    assert done.exit_code == 0, done.output
    hits = json.loads(done.output)
    assert len(hits) == 2 and hits[0]["rank"] == 1
    assert set(hits[0]) == {
        "rank", "chunk_id", "doc_id", "source", "title", "page_start", "page_end", "score",
        "snippet", "keyword_rank", "semantic_rank",
    }
    text = runner.invoke(main, ["search", str(store), "herons weir", "--mode", "semantic"])
    assert text.exit_code == 0 and text.output.startswith(" 1. papers/herons.pdf, p. 1")
    none = runner.invoke(main, ["search", str(store), "zeppelin", "--mode", "keyword"])
    assert none.exit_code == 1 and "no match for 'zeppelin'" in none.output
    empty = runner.invoke(main, ["search", str(store), "zeppelin", "--mode", "keyword", "--json"])
    assert empty.exit_code == 1 and json.loads(empty.output) == []


def test_cli_errors_exit_4_in_one_line(tmp_path: Path) -> None:
    plain = tmp_path / "plain.db"
    with SqliteSink(plain) as sink:
        sink.write([make_doc("bakery", TEXTS["bakery"], label=None)])
    done = CliRunner().invoke(main, ["search", str(plain), "bread", "--mode", "semantic"])
    assert done.exit_code == 4
    (line,) = done.output.strip().splitlines()
    assert line.startswith("ERROR: ") and "--embed NAME" in line
    bad = CliRunner().invoke(main, ["search", str(plain), "bread", "--mode", "fuzzy"])
    assert bad.exit_code == 2 and "Invalid value for '--mode'" in bad.output


def test_format_hits_shows_both_ranks_of_a_fused_hit(store: Path) -> None:
    text = format_hits(search(store, "herons weir", mode="hybrid", limit=1))
    first, snippet = text.splitlines()
    assert first.startswith(" 1. papers/herons.pdf, p. 1 \u2014 Herons  (score 0.04918; ")
    assert first.endswith("keyword 1, semantic 1)") and "[herons]" in snippet
