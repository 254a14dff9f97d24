"""The ``postgresql`` sink against a real, throwaway PostgreSQL server (tests/pgserver.py).

Every test gets a new database on one server for the session; the tests skip, with the
reason, where the server programs or psycopg are missing.
"""

from __future__ import annotations

import json
import sys
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pgserver
import psycopg
import pytest
from click.testing import CliRunner
from helpers import EXAMPLES
from ingest import Embedding, mask_secrets
from ingest.cli import main
from ingest.errors import UsageError
from ingest.testing import SinkReport, check_sink, sample_document
from ingest_plugins.postgres import Target, is_url, open_sink
from ingest_plugins.postgres.sink import PostgresSink
from test_sinks import make_doc


def rows(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(Target.parse(url).conninfo, autocommit=True) as connection:
        cursor = connection.execute(sql, args or None)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def held(url: str, schema: str = "ingest") -> dict[str, list[str]]:
    """Each document id to its chunks' texts, in order; checks that pages, chunks and the
    documents' rows agree."""
    found: dict[str, list[str]] = {}
    for doc_id, text in rows(url, f"SELECT doc_id, text FROM {schema}.chunks ORDER BY doc_id, idx"):
        found.setdefault(doc_id, []).append(text)
    documents = dict(rows(url, f"SELECT doc_id, chunk_count FROM {schema}.documents"))
    assert {d: n for d, n in documents.items() if n} == {d: len(t) for d, t in found.items()}
    paged = {d for (d,) in rows(url, f"SELECT DISTINCT doc_id FROM {schema}.pages")}
    assert paged <= set(documents)
    return found


def state(url: str, schema: str = "ingest") -> tuple[str, int]:
    [(store, writes)] = rows(url, f"SELECT store, writes FROM {schema}.ingest_state")
    return store, writes


@pytest.fixture
def sink(pg_url: str) -> Iterator[PostgresSink]:
    with open_sink(pg_url) as opened:
        yield opened


# --------------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------------


def test_urls_are_recognised_masked_and_stripped_of_ingest_s_own_parameters() -> None:
    assert is_url("postgresql://u@h/db") and is_url("postgres://h/db")
    assert not is_url("postgresql:db") and not is_url("sqlite:x.db")
    assert mask_secrets("postgresql://u:s3cret@h/db?password=again") == (
        "postgresql://u:**********@h/db?password=**********"
    )
    target = Target.parse("postgres://u:s3cret@h:5433/db?schema=team_a&retry=2.5&sslmode=disable")
    assert (target.schema, target.retry_s, target.password) == ("team_a", 2.5, "s3cret")
    assert target.conninfo == (
        "postgresql://u:s3cret@h:5433/db?sslmode=disable&connect_timeout=10"
    )
    assert target.shown == "postgres://u:**********@h:5433/db?schema=team_a&retry=2.5&sslmode=disable"
    assert Target.parse("postgresql://h/db?connect_timeout=3").conninfo.endswith("?connect_timeout=3")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u:pw99@h/db?schema=Team", "schema 'Team' is not a plain name"),
        ("postgresql://u:pw99@h/db?schema=a;drop", "is not a plain name"),
        ("postgresql://u:pw99@h/db?retry=soon", "retry='soon' is not a number of seconds"),
        ("postgresql://u:pw99@h/db?retry=-1", "retry='-1' is not a number"),
        ("postgresql://u:pw99@h/db?shcema=x", 'invalid URI query parameter: "shcema"'),
    ],
)
def test_bad_urls_are_usage_errors_naming_the_part(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        Target.parse(url)
    assert "pw99" not in str(caught.value)


# --------------------------------------------------------------------------------------------
# Tables, rows, replace, delete
# --------------------------------------------------------------------------------------------


def test_the_first_open_makes_the_schema_tables_index_and_state(sink: PostgresSink) -> None:
    url = sink.target.conninfo
    tables = {
        t for (t,) in rows(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'ingest'")
    }
    assert tables == {"documents", "pages", "chunks", "ingest_state"}
    indexes = dict(
        rows(url, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks'")
    )
    assert "USING gin (tsv)" in indexes["chunks_tsv"]
    store, writes = state(url)
    assert sink.ingest_sink_state() == (store, 0) and writes == 0 and len(store) == 32
    columns = dict(
        rows(
            url,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'ingest' AND table_name = 'chunks'",
        )
    )
    assert columns["embedding"] == "ARRAY" and columns["tsv"] == "tsvector"


def test_writes_documents_pages_and_chunks(sink: PostgresSink) -> None:
    url = sink.target.conninfo
    document = make_doc("alpha", ["first page", "second page"], title="Alpha")
    document.pages[1].provenance = {"engine": "test", "confidence": 0.5}
    sink.write([document])
    [(source, title, pages, chunks, metadata, encrypted)] = rows(
        url,
        "SELECT source, title, page_count, chunk_count, metadata, encrypted "
        "FROM ingest.documents",
    )
    assert (source, title, pages, chunks, encrypted) == ("alpha.pdf", "Alpha", 2, 2, False)
    assert metadata == {**document.metadata.to_dict()}
    assert rows(url, "SELECT number, text, provenance FROM ingest.pages ORDER BY number") == [
        (1, "first page", {}),
        (2, "second page", {"engine": "test", "confidence": 0.5}),
    ]
    stored = rows(
        url,
        "SELECT chunk_id, idx, text, page_start, page_end, char_start, char_end, embedding "
        "FROM ingest.chunks ORDER BY idx",
    )
    assert stored == [
        (c.chunk_id, c.index, c.text, c.page_start, c.page_end, c.char_start, c.char_end, None)
        for c in document.chunks
    ]
    assert sink.ingest_sink_state() == (state(url)[0], 1) == state(url)


def test_a_document_written_again_replaces_its_chunks_pages_and_index(sink: PostgresSink) -> None:
    url = sink.target.conninfo
    sink.write([make_doc("alpha", ["old herons", "old weir", "old bank"])])
    sink.write([make_doc("alpha", ["new kingfishers"])])
    assert list(held(url).values()) == [["new kingfishers"]]
    assert rows(url, "SELECT count(*) FROM ingest.pages") == [(1,)]
    found = rows(
        url,
        "SELECT count(*) FROM ingest.chunks WHERE tsv @@ plainto_tsquery("
        "'ingest.ingest_text', 'heron')",
    )
    assert found == [(0,)]


def test_deleted_documents_go_with_the_batch_in_one_transaction(sink: PostgresSink) -> None:
    url = sink.target.conninfo
    a, b = make_doc("a", ["a text"]), make_doc("b", ["b text"])
    sink.write([a, b])
    sink.write([make_doc("c", ["c text"])], [b.doc_id, "not-held"])
    assert set(held(url)) == {a.doc_id, make_doc("c", ["x"]).doc_id}
    sink.write([], [a.doc_id])
    assert set(held(url)) == {make_doc("c", ["x"]).doc_id}
    assert rows(url, "SELECT count(*) FROM ingest.documents") == [(1,)]
    assert sink.ingest_sink_state()[1] == 3


def test_a_step_the_server_refuses_keeps_nothing_of_it(sink: PostgresSink) -> None:
    url = sink.target.conninfo
    sink.write([make_doc("a", ["kept"])])
    broken = make_doc("b", ["one", "two"])
    broken.pages[1].number = 1  # a page twice: the primary key refuses the step
    with pytest.raises(psycopg.errors.UniqueViolation) as caught:
        sink.write([make_doc("a", ["replaced"]), broken], [])
    assert "postgresql sink" in "\n".join(caught.value.__notes__)
    assert list(held(url).values()) == [["kept"]]
    assert sink.ingest_sink_state() == state(url)
    sink.write([make_doc("c", ["after"])])  # the connection is usable again
    assert len(held(url)) == 2


def test_text_postgresql_cannot_hold_is_stored_with_replacement_characters(
    sink: PostgresSink,
) -> None:
    url = sink.target.conninfo
    document = make_doc("nul", ["a\x00b \ud800 c"], title="t\x00itle")
    document.pages[0].provenance = {"note": "x\x00y", "k\x00": ["\udfff"]}
    sink.write([document])
    assert rows(url, "SELECT text FROM ingest.chunks") == [("a\ufffdb \ufffd c",)]
    [(title, metadata)] = rows(url, "SELECT title, metadata FROM ingest.documents")
    assert title == "t\ufffditle" and metadata["title"] == "t\ufffditle"
    assert rows(url, "SELECT provenance FROM ingest.pages") == [
        ({"note": "x\ufffdy", "k\ufffd": ["\ufffd"]},)
    ]


def test_chunk_vectors_are_stored_as_float4_arrays_with_their_model(sink: PostgresSink) -> None:
    url = sink.target.conninfo
    document = make_doc("vectors", ["one", "two"])
    document.chunks[0].embedding = Embedding("test/model", array("f", [0.5, -1.25, 3.0]))
    sink.write([document])
    assert rows(url, "SELECT idx, embedding, embedding_model FROM ingest.chunks ORDER BY idx") == [
        (0, [0.5, -1.25, 3.0], "test/model"),
        (1, None, None),
    ]
    typed = rows(url, "SELECT pg_typeof(embedding)::text FROM ingest.chunks LIMIT 1")
    assert typed == [("real[]",)]


def test_schemas_named_in_the_url_are_separate_stores(pg_url: str) -> None:
    with open_sink(pg_url + "?schema=team_a") as a, open_sink(pg_url + "?schema=team_b") as b:
        a.write([make_doc("a", ["in a"])])
        b.write([make_doc("b", ["in b"]), make_doc("bb", ["also in b"])])
        assert a.store != b.store
    assert [len(held(pg_url, "team_a")), len(held(pg_url, "team_b"))] == [1, 2]


def test_a_schema_of_a_newer_version_is_refused(pg_url: str) -> None:
    open_sink(pg_url).close()
    rows(pg_url, "UPDATE ingest.ingest_state SET schema_version = 99")
    with pytest.raises(UsageError, match="made by a newer ingest"):
        open_sink(pg_url)


def test_close_is_idempotent_and_a_closed_sink_refuses_steps(sink: PostgresSink) -> None:
    sink.close()
    sink.close()
    assert sink.closed
    with pytest.raises(RuntimeError, match="closed"):
        sink.write([make_doc("a", ["x"])])


# --------------------------------------------------------------------------------------------
# The contract: check_sink, state across opens, changes made outside ingest
# --------------------------------------------------------------------------------------------


def test_check_sink_passes_the_postgresql_sink(pg_url: str) -> None:
    report = check_sink(lambda: open_sink(pg_url), lambda: held(pg_url))
    assert report == SinkReport(deletes=True, states=True)


OUTSIDE = {
    "delete a chunk": "DELETE FROM ingest.chunks WHERE idx = 0",
    "edit a page": "UPDATE ingest.pages SET text = 'edited'",
    "truncate": "TRUNCATE ingest.chunks, ingest.pages, ingest.documents",
    "insert a document": (
        "INSERT INTO ingest.documents (doc_id, source, content_id, size, media_type, "
        "page_count, encrypted, metadata, chunk_count) VALUES ('x', 'x', 'x', 1, 'x', 0, "
        "false, '{}', 0)"
    ),
    "drop the chunks": "DROP TABLE ingest.chunks",
    "drop the schema": "DROP SCHEMA ingest CASCADE",
    "delete the state": "DELETE FROM ingest.ingest_state",
}


@pytest.mark.parametrize("change", list(OUTSIDE))
def test_records_changed_outside_ingest_make_a_new_store(pg_url: str, change: str) -> None:
    with open_sink(pg_url) as sink:
        sink.write([sample_document("a", ["a 1", "a 2"])])
        before = sink.ingest_sink_state()
    with open_sink(pg_url) as again:
        assert again.ingest_sink_state() == before  # nothing changed: the same store
    rows(pg_url, OUTSIDE[change])
    with open_sink(pg_url) as changed:
        store, writes = changed.ingest_sink_state()
        assert store != before[0] and writes == 0
        changed.write([sample_document("b", ["b"])])
    with open_sink(pg_url) as reopened:
        assert reopened.ingest_sink_state() == (store, 1)


def test_a_change_outside_ingest_during_a_run_makes_the_next_run_refill(pg_url: str) -> None:
    """The run's sink keeps reporting the store it opened; the schema takes a new one."""
    with open_sink(pg_url) as sink:
        sink.write([sample_document("a", ["a"])])
        opened = sink.ingest_sink_state()[0]
        rows(pg_url, "DELETE FROM ingest.chunks")
        sink.write([sample_document("b", ["b"])])
        assert sink.ingest_sink_state()[0] == opened
    with open_sink(pg_url) as reopened:
        assert reopened.ingest_sink_state()[0] != opened


def test_another_writer_s_one_step_after_this_one_s_last_makes_it_refill(
    pg_url: str, tmp_path: Path
) -> None:
    """A writer is a cache folder; the cache trusts one write more than it recorded (its own
    step cut off by a kill), so one foreign step must show in the store instead."""
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    with open_sink(pg_url, cache_folder=mine) as sink:
        sink.write([sample_document("a", ["a"])])
        recorded = sink.ingest_sink_state()
    with open_sink(pg_url, cache_folder=mine) as again:
        assert again.ingest_sink_state() == recorded  # its own last step: trusted
    with open_sink(pg_url, cache_folder=theirs) as other:
        assert other.ingest_sink_state()[0] == recorded[0] + "~shared"
        other.write([sample_document("a", ["a replaced by them"])])
        assert other.ingest_sink_state() == (recorded[0], recorded[1] + 1)
    with open_sink(pg_url, cache_folder=mine) as again:
        assert again.ingest_sink_state() == (recorded[0] + "~shared", recorded[1] + 1)
        again.write([sample_document("a", ["a"])])  # the refill's first step
        assert again.ingest_sink_state() == (recorded[0], recorded[1] + 2)


def test_a_foreign_step_between_two_of_a_run_marks_the_rest_of_it(
    pg_url: str, tmp_path: Path
) -> None:
    with open_sink(pg_url, cache_folder=tmp_path / "a") as a, open_sink(
        pg_url, cache_folder=tmp_path / "b"
    ) as b:
        store = a.ingest_sink_state()[0]
        a.write([sample_document("a", ["a"])])
        assert a.ingest_sink_state() == (store, 1)
        b.write([sample_document("b", ["b"])])  # after a's step, which b did not see
        assert b.ingest_sink_state() == (store + "~shared", 2)
        a.write([sample_document("c", ["c"])])
        a.write([sample_document("d", ["d"])])
        assert a.ingest_sink_state() == (store + "~shared", 4)
    assert len(held(pg_url)) == 4


# --------------------------------------------------------------------------------------------
# Through the CLI: runs, connection errors, passwords
# --------------------------------------------------------------------------------------------


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, ["run", *args, "--progress", "none"], env=env)


def test_a_run_writes_the_examples_and_a_rerun_skips_them(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = run(str(EXAMPLES), "--sink", pg_url)
    assert first.exit_code == 0, first.output
    assert "3 ingested" in first.output
    sources = {Path(s).name for (s,) in rows(pg_url, "SELECT source FROM ingest.documents")}
    assert sources == {"guide.pdf", "field-notes.pdf", "budget-encrypted.pdf"}
    again = run(str(EXAMPLES), "--sink", pg_url)
    assert "0 ingested, 3 skipped (unchanged)" in again.output, again.output
    # The other spelling of the scheme is the same sink.
    other = run(str(EXAMPLES), "--sink", "postgres" + pg_url.removeprefix("postgresql"))
    assert other.exit_code == 0 and "3 ingested" in other.output, other.output


def test_connection_failures_are_one_line_exit_4_without_the_password(
    pg_server: pgserver.Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pg_server.add_password_role()
    secret = pgserver.PASSWORD
    host = pg_server.url().split("@")[1].split("/")[0]
    nowhere = str(tmp_path).replace("/", "%2F")
    cases = {
        "no server": (f"postgresql://someone:{secret}@{nowhere}/db", "No such file or directory"),
        "missing database": (
            f"postgresql://postgres:{secret}@{host}/nosuchdb",
            'database "nosuchdb" does not exist',
        ),
        "wrong password": (
            f"postgresql://{pgserver.PASSWORD_ROLE}:wrong-{secret}@{host}/postgres",
            "password authentication failed",
        ),
        "no password": (
            f"postgresql://{pgserver.PASSWORD_ROLE}@{host}/postgres",
            "no password supplied",
        ),
        "unknown role": (f"postgresql://nobody:{secret}@{host}/postgres", 'role "nobody"'),
    }
    env = {"PGPASSFILE": str(tmp_path / "none"), "PGPASSWORD": ""}
    for name, (url, reason) in cases.items():
        result = CliRunner().invoke(
            main, ["run", str(EXAMPLES), "--sink", url, "--progress", "none"], env=env
        )
        assert result.exit_code == 4, (name, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, (name, result.output)
        assert lines[0].startswith("ERROR: postgresql sink 'postgresql://"), lines
        assert "cannot connect" in lines[0] and reason in lines[0], (name, lines)
        assert secret not in result.output, name


def test_the_password_may_come_from_the_url_pgpassword_or_pgpass(
    pg_server: pgserver.Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    pg_server.add_password_role()
    pg_server.execute("CREATE DATABASE pw_store")
    role, secret = pgserver.PASSWORD_ROLE, pgserver.PASSWORD
    plain = pg_server.url("pw_store", user=role)
    with_password = plain.replace(f"{role}@", f"{role}:{secret}@")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"*:*:*:{role}:{secret}\n")
    pgpass.chmod(0o600)
    none = {"PGPASSFILE": str(tmp_path / "none"), "PGPASSWORD": ""}
    for url, env in [
        (with_password, none),
        (plain, {**none, "PGPASSWORD": secret}),
        (plain, {**none, "PGPASSFILE": str(pgpass)}),
    ]:
        result = run(str(EXAMPLES), "--sink", url, "-v", "--force", env=env)
        assert result.exit_code == 0, result.output
        assert secret not in result.output
    summary = run(str(EXAMPLES), "--sink", with_password, "-v", env=none)
    assert f"sinks: {plain.replace(f'{role}@', f'{role}:**********@')}" in summary.output
    assert secret.encode() not in (tmp_path / ".ingest_cache" / "cache.db").read_bytes()


def test_ingest_config_masks_the_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = "postgresql://team:hunter22@db.example/corpus?schema=team_a"
    for args in (["config"], ["config", "--json"]):
        result = CliRunner().invoke(main, [*args, "-o", f"sinks=[{url}]"])
        assert result.exit_code == 0, result.output
        assert "hunter22" not in result.output
        assert "postgresql://team:**********@db.example/corpus?schema=team_a" in result.output
    payload = json.loads(CliRunner().invoke(main, ["config", "--json"], env={
        "INGEST_SINKS": f'["{url}"]'}).output)  # fmt: skip
    assert payload["settings"]["sinks"] == [mask_secrets(url)]


def test_a_document_is_the_same_in_both_sinks(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SQLite and the PostgreSQL sink hold the same records for one run."""
    import sqlite3

    monkeypatch.chdir(tmp_path)
    done = run(str(EXAMPLES), "--sink", pg_url, "--sink", "sqlite:out.db")
    assert done.exit_code == 0, done.output
    columns = "chunk_id, doc_id, idx, text, page_start, page_end, char_start, char_end"
    with sqlite3.connect(tmp_path / "out.db") as db:
        in_sqlite = sorted(db.execute(f"SELECT {columns} FROM chunks"))
        pages_sqlite = sorted(db.execute("SELECT doc_id, number, text FROM pages"))
    assert sorted(rows(pg_url, f"SELECT {columns} FROM ingest.chunks")) == in_sqlite
    assert sorted(rows(pg_url, "SELECT doc_id, number, text FROM ingest.pages")) == pages_sqlite


def test_without_psycopg_the_sink_and_search_say_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    url = "postgresql://team:hunter22@db.example/corpus"
    run_it = ["run", str(EXAMPLES), "--sink", url, "--progress", "none"]
    for command in (run_it, ["search", url, "herons"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 4, result.output
        assert "needs psycopg 3, which is not installed: pip install 'ingest[postgres]'" in (
            result.output
        )
        assert "hunter22" not in result.output and result.output.count("\n") == 1
