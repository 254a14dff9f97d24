"""``ingest search postgresql://... QUERY``: the SQLite search's modes and output, over a schema
the ``postgresql`` sink wrote on a throwaway server (tests/pgserver.py)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest.cli import main
from ingest.errors import UsageError
from ingest_plugins.hybrid_search import format_hits as format_found
from ingest_plugins.postgres import open_sink
from ingest_plugins.postgres.search import search, search_modes, to_tsquery_text
from ingest_plugins.sqlite_search import SearchHit
from ingest_plugins.sqlite_search import search as search_sqlite
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


@pytest.mark.parametrize(
    "query",
    ['"', "AND", "OR OR", "*", "**", "NEAR(", "&", "|", "!", "<->", "a & ", ":*", "'", "(",
     ")", "\\", ":", "a:*b", "a\x00b", "herons\x00", "!!", "'''*", "x:A", "<1>", "-", "''"],
)  # fmt: skip
@pytest.mark.parametrize("raw", [False, True])
def test_hostile_queries_never_raise_database_errors(url: str, query: str, raw: bool) -> None:
    try:
        hits = search(url, query, raw=raw)
    except UsageError:
        assert raw, "a query of words is never a syntax error"
    else:
        assert all(isinstance(hit, SearchHit) for hit in hits)


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_is_a_usage_error(url: str, query: str) -> None:
    with pytest.raises(UsageError, match="empty"):
        search(url, query)


def test_bad_limit_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError, match="limit"):
        search(url, "herons", limit=0)


# The module's database is only read, so reusing it across examples is safe.
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=st.text(), raw=st.booleans())
def test_arbitrary_queries_raise_only_usage_errors(url: str, query: str, raw: bool) -> None:
    with contextlib.suppress(UsageError):  # anything else fails the test
        search(url, query, raw=raw, limit=3)


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


def test_the_cli_gives_json_and_keyword_search_only(url: str) -> None:
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
        assert f"--mode {mode}" in refused.output and "--mode keyword" in refused.output


def test_the_cli_reports_a_missing_database_in_one_line(pg_server: Any) -> None:
    missing = pg_server.url("no_such_db").replace("postgres@", "postgres:pw-xyz-1@")
    result = CliRunner().invoke(main, ["search", missing, "herons"])
    assert result.exit_code == 4
    assert result.output.count("\n") == 1
    assert 'database "no_such_db" does not exist' in result.output
    assert "pw-xyz-1" not in result.output and "postgres:**********@" in result.output
