"""``ingest search postgresql://... QUERY``: the SQLite search's modes and output, over a schema
the ``postgresql`` sink wrote on a throwaway server (tests/pgserver.py)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import MISSING_EMBED
from ingest.cli import main
from ingest.errors import UsageError
from ingest_plugins.fusion import DEPTH, Hit, Mode
from ingest_plugins.hybrid_search import format_hits as format_found
from ingest_plugins.hybrid_search import search as search_sqlite_modes
from ingest_plugins.postgres import open_sink
from ingest_plugins.postgres import vectors as pg_vectors
from ingest_plugins.postgres.search import (
    PostgresSearcher,
    PostgresStore,
    search,
    search_modes,
    to_tsquery_text,
)
from ingest_plugins.sqlite_search import search as search_sqlite
from ingest_plugins.sqlite_sink import SqliteSink
from ingest_plugins.vectors import reciprocal_rank_fusion
from plugins.toy_embedder import NAME as TOY
from search_contract import KeywordSearchContract, Searched
from searchdocs import TEXTS
from searchdocs import make_doc as make_embedded_doc
from test_search import FILLER, build_db, make_doc


@pytest.fixture(scope="module")
def url(pg_server: Any) -> str:
    """A schema holding the documents of the SQLite search tests (test_search.build_db)."""
    store = pg_server.create_database("search")
    with open_sink(store) as sink:
        sink.write([
            make_doc("field-notes", [
                (f"{FILLER} herons herons herons nested by the weir", 3, 3),
                (f"{FILLER} one heron was seen", 3, 4),
            ], title="Field notes"),
            make_doc("budget", [(f"{FILLER} café prices rose", 1, 1)]),
        ])  # fmt: skip
        sink.write([make_doc("guide", [(f"{FILLER} neural networks, a guide", 2, 2)])])
    return str(store)


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_db(tmp_path_factory.mktemp("search") / "corpus.db")


def test_more_relevant_chunk_ranks_first(url: str) -> None:
    hits = search(url, "herons")
    assert [h.chunk_id.endswith(":0") for h in hits] == [True, False]  # 3 mentions beat 1
    assert {h.source for h in hits} == {"papers/field-notes.pdf"}
    assert hits[0].score > hits[1].score > 0
    assert [h.rank for h in hits] == [1, 2]
    assert "[herons]" in hits[0].snippet and "[heron]" in hits[1].snippet  # stemmed
    assert hits[0].title == "Field notes" and (hits[0].page_start, hits[1].page_end) == (3, 4)


def test_all_words_must_match_in_any_order(url: str) -> None:
    assert [h.source for h in search(url, "guide neural")] == ["papers/guide.pdf"]
    assert search(url, "neural herons") == []


def test_prefix_diacritics_and_limit(url: str) -> None:
    assert [h.source for h in search(url, "netw*")] == ["papers/guide.pdf"]
    assert [h.source for h in search(url, "cafe")] == ["papers/budget.pdf"]  # unaccent
    assert [h.source for h in search(url, "CAFÉ")] == ["papers/budget.pdf"]
    assert len(search(url, "report", limit=2)) == 2
    assert len(search(url, "report")) == 4


@pytest.mark.parametrize(
    "query", ["herons", "guide neural", "netw*", "report", "weir herons", "prices", "nothing"]
)
def test_words_find_the_same_chunks_as_in_sqlite(url: str, sqlite_db: Path, query: str) -> None:
    """Same mode, same store content: the same chunks match (ranking may differ)."""
    found = {h.chunk_id for h in search(url, query, limit=50)}
    assert found == {h.chunk_id for h in search_sqlite(sqlite_db, query, limit=50)}


def test_raw_tsquery_syntax(url: str) -> None:
    hits = search(url, "herons | café", raw=True)
    assert {h.source for h in hits} == {"papers/field-notes.pdf", "papers/budget.pdf"}
    assert [h.source for h in search(url, "neural <-> network", raw=True)] == ["papers/guide.pdf"]
    assert search(url, "herons & !weir", raw=True)[0].chunk_id.endswith(":1")
    with pytest.raises(UsageError, match=r"invalid search query.*tsquery syntax"):
        search(url, "herons &", raw=True)


def test_custom_highlight_markers(url: str) -> None:
    (hit,) = search(url, "weir", highlight=("<b>", "</b>"))
    assert "<b>weir</b>" in hit.snippet
    (hit,) = search(url, "weir", highlight=('"', '",'))  # quotes in ts_headline's options
    assert '"weir",' in hit.snippet


def test_to_tsquery_text_quotes_every_word() -> None:
    assert to_tsquery_text("it's") == "'it''s'"
    assert to_tsquery_text("neur*") == "'neur':*"
    assert to_tsquery_text("a\\b**") == "'a\\\\b':*"
    assert to_tsquery_text("**") == ""


@pytest.fixture(
    params=
    ['"', "AND", "OR OR", "*", "**", "NEAR(", "&", "|", "!", "<->", "a & ", ":*", "'", "(",
     ")", "\\", ":", "a:*b", "a\x00b", "herons\x00", "!!", "'''*", "x:A", "<1>", "-", "''"],
)  # fmt: skip
def hostile_query(request: pytest.FixtureRequest) -> str:
    """Queries in the syntax of PostgreSQL's tsquery and FTS5's, and bytes neither expects."""
    return str(request.param)


class TestPostgresSearchContract(KeywordSearchContract):
    @pytest.fixture
    def searched(self, url: str) -> Searched:
        return search, url


def test_a_schema_the_sink_did_not_write_is_a_usage_error_and_is_not_made(
    url: str, pg_server: Any
) -> None:
    with pytest.raises(UsageError, match="has no schema 'elsewhere'"):
        search(url + "?schema=elsewhere", "herons")
    made = pg_server.execute(
        "SELECT 1 FROM pg_namespace WHERE nspname = 'elsewhere'", database="search"
    )
    assert made == []


def test_the_cli_prints_as_for_sqlite(url: str, sqlite_db: Path) -> None:
    result = CliRunner().invoke(main, ["search", url, "herons"])
    assert result.exit_code == 0, result.output
    assert result.output == format_found(search_modes(url, "herons")) + "\n"
    lines = result.output.splitlines()
    sqlite_lines = CliRunner().invoke(main, ["search", str(sqlite_db), "herons"]).output
    # The same lines but for the scores.
    assert [line.partition("(score")[0] for line in lines[::2]] == [
        line.partition("(score")[0] for line in sqlite_lines.splitlines()[::2]
    ]
    assert lines[0].startswith(" 1. papers/field-notes.pdf, p. 3 — Field notes  (score ")
    assert lines[2].startswith(" 2. papers/field-notes.pdf, pp. 3\u20134 — Field notes")
    none = CliRunner().invoke(main, ["search", url, "zebras", "--limit", "3"])
    assert none.exit_code == 1 and none.output == "no match for 'zebras'\n"


def test_the_cli_gives_json_and_refuses_vectors_a_schema_lacks(url: str) -> None:
    result = CliRunner().invoke(main, ["search", url, "herons", "--json", "-n", "1"])
    assert result.exit_code == 0, result.output
    [found] = json.loads(result.output)
    [hit] = search(url, "herons", limit=1)
    assert found["chunk_id"] == hit.chunk_id and found["keyword_rank"] == 1
    assert found["semantic_rank"] is None and found["snippet"] == hit.snippet
    keyword = CliRunner().invoke(main, ["search", url, "herons", "--mode", "keyword"])
    assert keyword.output == CliRunner().invoke(main, ["search", url, "herons"]).output
    for mode in ("semantic", "hybrid"):
        refused = CliRunner().invoke(main, ["search", url, "herons", "--mode", mode])
        assert refused.exit_code == 4 and refused.output.count("\n") == 1, refused.output
        assert "holds no chunk vectors: ingest with --embed NAME" in refused.output
        assert f"--sink {url}, or search with --mode keyword" in refused.output


def test_the_cli_reports_a_missing_database_in_one_line(pg_server: Any) -> None:
    missing = pg_server.url("no_such_db").replace("postgres@", "postgres:pw-xyz-1@")
    result = CliRunner().invoke(main, ["search", missing, "herons"])
    assert result.exit_code == 4
    assert result.output.count("\n") == 1
    assert 'database "no_such_db" does not exist' in result.output
    assert "pw-xyz-1" not in result.output and "postgres:**********@" in result.output


# -- semantic, hybrid and auto: the same store in SQLite and PostgreSQL ------------------------

# Chunks sharing words with the others, so every ranking holds several chunks.
RIVER = [
    "the river rose after the spring rain and the weir overflowed",
    "herons and egrets fish below the weir when the river is low",
    "a footbridge crosses the river near the old mill",
]
# Queries whose keyword rankings agree between the stores' full-text engines. Elsewhere they
# differ by design: FTS5 ranks by bm25 over every token, unstemmed; PostgreSQL by ts_rank_cd
# over English stems, stop words dropped ("herons" finds "heron" there, "the" nothing).
AGREEING = [
    "council", "sourdough kitchen", "floods", "footbridge budget", "sourdough", "bread",
    "overnight kitchen bread",
]  # fmt: skip
# And some where they do not: the semantic ranking is the same whatever the words.
DISAGREEING = ["herons weir", "river spring", "the river", "forty nests in the heron colony"]


def twin_docs(label: str | None = TOY) -> list[Any]:
    docs = {**TEXTS, "river": RIVER}
    return [make_embedded_doc(name, texts, label=label) for name, texts in docs.items()]


@pytest.fixture(scope="module")
def twins(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One set of documents with toy vectors, in a PostgreSQL schema and an SQLite file."""
    pytest.importorskip("numpy", reason=MISSING_EMBED)
    store = pg_server.create_database("twins")
    with open_sink(store) as sink:
        sink.write(twin_docs())
    path = tmp_path_factory.mktemp("twins") / "store.db"
    with SqliteSink(path) as sink:
        sink.write(twin_docs())
    return str(store), path


def ranks(hits: list[Hit]) -> list[tuple[str, int | None, int | None]]:
    return [(h.chunk_id, h.keyword_rank, h.semantic_rank) for h in hits]


@pytest.mark.parametrize("query", AGREEING + DISAGREEING)
def test_semantic_hits_are_the_sqlite_stores(twins: tuple[str, Path], query: str) -> None:
    """Both stores encode the same vectors alike: the same hits, scores and snippets."""
    url, path = twins
    found = search_modes(url, query, mode="semantic", limit=20)
    assert len(found) == 8 and found == search_sqlite_modes(path, query, mode="semantic", limit=20)


@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid", "auto"])
@pytest.mark.parametrize("query", AGREEING)
def test_every_mode_finds_as_in_sqlite(twins: tuple[str, Path], query: str, mode: Mode) -> None:
    url, path = twins
    found = search_modes(url, query, mode=mode)
    expected = search_sqlite_modes(path, query, mode=mode)
    assert found and ranks(found) == ranks(expected)
    if mode != "keyword":  # keyword scores are bm25 in one store, ts_rank_cd in the other
        assert [h.score for h in found] == pytest.approx([h.score for h in expected], abs=1e-7)


@pytest.mark.parametrize("query", DISAGREEING)
def test_hybrid_fuses_the_stores_own_keyword_rankings(twins: tuple[str, Path], query: str) -> None:
    url, _ = twins
    hybrid = search_modes(url, query, mode="hybrid", limit=20)
    semantic = search_modes(url, query, mode="semantic", limit=20)
    with contextlib.closing(PostgresStore(url)) as store:
        every = store.ranking(query, DEPTH, every=True)
        some = store.ranking(query, DEPTH, every=False)
    fused = reciprocal_rank_fusion([every, some, [h.chunk_id for h in semantic]], limit=20)
    assert [h.chunk_id for h in hybrid] == [chunk_id for chunk_id, _ in fused]
    assert {h.chunk_id: h.keyword_rank for h in hybrid if h.keyword_rank} == {
        chunk_id: rank for rank, chunk_id in enumerate(some, 1)
    }
    assert all("[" in h.snippet for h in hybrid if h.keyword_rank)  # ts_headline's marks


def test_auto_is_hybrid_with_vectors_and_keyword_without(
    twins: tuple[str, Path], pg_url: str
) -> None:
    url, _ = twins
    (first, *_) = search_modes(url, "sourdough")
    assert first.keyword_rank == 1 and first.semantic_rank == 1
    with open_sink(pg_url) as sink:
        sink.write([make_embedded_doc("bakery", TEXTS["bakery"], label=None)])
    (hit,) = search_modes(pg_url, "sourdough")
    assert hit.semantic_rank is None and hit.keyword_rank == 1
    for mode in ("semantic", "hybrid"):
        with pytest.raises(UsageError, match=r"holds no chunk vectors: ingest with --embed NAME"):
            search_modes(pg_url, "bread", mode=mode)  # type: ignore[arg-type]  # both modes


def test_two_models_are_refused_as_in_sqlite(pg_url: str, tmp_path: Path) -> None:
    pytest.importorskip("numpy", reason=MISSING_EMBED)
    salted = make_embedded_doc("bakery", TEXTS["bakery"], label=f"{TOY}/salted", salt="salted")
    path = tmp_path / "store.db"
    for sink in (open_sink(pg_url), SqliteSink(path)):
        with sink:
            sink.write(
                [
                    make_embedded_doc(name, texts)
                    for name, texts in TEXTS.items()
                    if name != "bakery"
                ]
            )
            sink.write([salted])
    with pytest.raises(UsageError) as in_sqlite:
        search_sqlite_modes(path, "sourdough bread", mode="hybrid")
    with pytest.raises(UsageError) as in_postgres:
        search_modes(pg_url, "sourdough bread", mode="hybrid")
    assert str(in_postgres.value) == str(in_sqlite.value).replace(str(path), pg_url)
    assert f"holds vectors of 2 models ({TOY}@32: 4 chunks, {TOY}/salted@32: 1 chunks)" in str(
        in_postgres.value
    )
    (hit,) = search_modes(pg_url, TEXTS["bakery"][0], mode="semantic", model=f"{TOY}/salted")
    assert hit.source == "papers/bakery.pdf" and 0.999 < hit.score <= 1.0 + 1e-6
    with pytest.raises(UsageError, match=r"no vectors of model 'other'; it holds"):
        search_modes(pg_url, "bread", mode="semantic", model="other")


def test_vectors_are_read_batch_by_batch(
    twins: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, path = twins
    monkeypatch.setattr(pg_vectors, "BATCH", 3)  # 8 vectors: batches of 3, 3 and 2
    with PostgresSearcher(url) as searcher:
        found = searcher.search("footbridge budget", mode="semantic", limit=20)
        index = searcher._index
        assert searcher.search("bread", mode="hybrid") == search_sqlite_modes(path, "bread")
        assert searcher._index is index and searcher.has_vectors  # read once
    assert found == search_sqlite_modes(path, "footbridge budget", mode="semantic", limit=20)
    with pytest.raises(UsageError, match="is closed"):
        searcher.search("bread", mode="semantic")


def test_a_damaged_vector_is_a_one_line_error(pg_url: str, pg_server: Any) -> None:
    pytest.importorskip("numpy", reason=MISSING_EMBED)
    with open_sink(pg_url) as sink:
        sink.write([make_embedded_doc(name, texts) for name, texts in TEXTS.items()])
    database = pg_url.rsplit("/", 1)[-1]
    pg_server.execute(
        "UPDATE ingest.chunks SET embedding[2] = NULL WHERE idx = 1", database=database
    )
    result = CliRunner().invoke(main, ["search", pg_url, "bread", "--mode", "semantic"])
    assert result.exit_code == 4 and result.output.count("\n") == 1, result.output
    assert "are damaged; search again" in result.output


def test_the_cli_prints_fused_hits_and_json_as_for_sqlite(twins: tuple[str, Path]) -> None:
    url, path = twins
    runner = CliRunner()
    for args in (["--mode", "hybrid"], ["--json", "-n", "3"], ["--mode", "semantic", "--json"]):
        done = runner.invoke(main, ["search", url, "footbridge budget", *args])
        in_sqlite = runner.invoke(main, ["search", str(path), "footbridge budget", *args])
        assert done.exit_code == 0 == in_sqlite.exit_code, done.output
        if "--json" in args:
            hits, expected = json.loads(done.output), json.loads(in_sqlite.output)
            assert [{**h, "score": round(h["score"], 6), "snippet": ""} for h in hits] == [
                {**h, "score": round(h["score"], 6), "snippet": ""} for h in expected
            ]
        else:
            lines = done.output.splitlines()
            assert lines[0].startswith(" 1. papers/bridge.pdf, p. 1 \u2014 Bridge  (score 0.04")
            assert lines[0].endswith("; keyword 1, semantic 1)") and "[footbridge]" in lines[1]
            assert lines[::2] == in_sqlite.output.splitlines()[::2]
