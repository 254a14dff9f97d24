"""The store mirrors the corpus: reruns replace, refill and prune, through the real CLI.

Each test is one of the ways a rerun used to leave a sink wrong while the summary said all was
well, tried as a user would: ``ingest run`` in a working folder, something changed (settings,
a file's bytes, a file deleted, the output emptied), ``ingest run`` again. After each run the
sink must hold exactly what a clean run of the same command (into a fresh sink, the cache off)
writes: the same records, none twice, none stale; for SQLite and PostgreSQL also their pages
and a full-text index in step with their chunks. Each runs for the JSONL and the SQLite sink,
in-process and with two worker processes, and for the PostgreSQL sink in-process (it writes
from the driver whatever the workers; tests/pgserver.py starts a throwaway server).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import EXAMPLES, summary
from helpers import ingest_run as ingest
from ingest.cli import main
from ingest_plugins.sqlite_search import SearchHit, search
from pdfgen import text_pdf
from structgen import structured_pdf

TARGETS = {"jsonl": "out.jsonl", "sqlite": "out.db"}
#: (kind, workers): every sink in-process; the file sinks with two worker processes too.
KINDS_WORKERS = [("jsonl", 0), ("jsonl", 2), ("sqlite", 0), ("sqlite", 2), ("postgresql", 0)]
SMALL_CHUNKS = ["-o", "chunk.size=300", "-o", "chunk.overlap=0"]
SHAPING = ["-p", "plugins.shaping", "-o", "transforms=[normalize,plugins.shaping,chunk]"]

Records = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Store:
    """A sink under test: its ``--sink`` spec, and how to make a fresh one of its kind."""

    kind: str
    spec: str
    fresh: Callable[[], str]

    @property
    def args(self) -> list[str]:
        return ["--sink", self.spec]


_fresh = iter(range(1_000_000))


def file_store(kind: str) -> Store:
    """The ``jsonl`` or ``sqlite`` sink in the working folder."""
    return Store(kind, f"{kind}:{TARGETS[kind]}", lambda: f"{kind}:ref-{next(_fresh)}.{kind}")


@pytest.fixture
def store(kind: str, workdir: Path, request: pytest.FixtureRequest) -> Store:
    """The sink of ``kind``: a file in the working folder, or a new PostgreSQL database."""
    if kind != "postgresql":
        return file_store(kind)
    server = request.getfixturevalue("pg_server")
    url = request.getfixturevalue("pg_url")
    return Store(kind, url, lambda: server.create_database(f"reference_{next(_fresh)}"))


def held(spec: str) -> Records:
    """Every record the sink ``spec`` holds, by chunk id, as the JSONL sink writes them;
    fails on a record held twice, and (SQLite, PostgreSQL) on pages, chunks or index out of
    step."""
    kind, _, target = spec.partition(":")
    if kind in ("postgresql", "postgres"):
        return _pg_held(spec)
    return _file_held(kind, Path(target))


_CHUNKS = (
    "SELECT chunk_id, doc_id, idx, text, page_start, page_end, char_start, char_end FROM {table}"
)
_SPANS = ("page_start", "page_end", "char_start", "char_end")


def _records(documents: dict[str, tuple[str, Any]], chunks: Iterable[Sequence[Any]]) -> Records:
    """The records of a database's chunk rows (:data:`_CHUNKS`), as the JSONL sink writes them;
    fails on a chunk of no document. ``documents``: doc_id -> (source, metadata)."""
    by_id: Records = {}
    for chunk_id, doc_id, index, text, *span in chunks:
        assert doc_id in documents, f"chunk {chunk_id} of no document"
        source, metadata = documents[doc_id]
        by_id[chunk_id] = {
            "doc_id": doc_id, "chunk_id": chunk_id, "index": index, "source": source,
            "text": text, **dict(zip(_SPANS, span, strict=True)), "metadata": metadata,
        }  # fmt: skip
    return by_id


def _file_held(kind: str, target: Path) -> Records:
    if kind == "jsonl":
        records = [json.loads(line) for line in target.read_text("utf-8").splitlines()]
        by_id = {record["chunk_id"]: record for record in records}
        assert len(by_id) == len(records), "a chunk is in the file twice"
        return by_id
    with closing(sqlite3.connect(target)) as db:
        documents = {
            doc_id: (source, json.loads(metadata))
            for doc_id, source, metadata in db.execute(
                "SELECT doc_id, source, metadata FROM documents"
            )
        }
        by_id = _records(documents, db.execute(_CHUNKS.format(table="chunks")))
        paged = {doc_id for (doc_id,) in db.execute("SELECT DISTINCT doc_id FROM pages")}
        assert paged == set(documents), "pages and documents out of step"
        tabled = {doc_id for (doc_id,) in db.execute("SELECT DISTINCT doc_id FROM tables")}
        assert tabled <= set(documents), "tables of no document"
        for doc_id, (_source, metadata) in documents.items():
            (pages,) = db.execute("SELECT COUNT(*) FROM pages WHERE doc_id = ?", (doc_id,))
            assert pages[0] == metadata["page_count"]
        # rank 1: also compare the external-content index with the chunks table.
        db.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")
    return by_id


def _pg_held(url: str) -> Records:
    import psycopg
    from ingest_plugins.postgres import Target

    with psycopg.connect(Target.parse(url).conninfo) as db:
        documents = {
            doc_id: (source, metadata)
            for doc_id, source, metadata in db.execute(
                "SELECT doc_id, source, metadata FROM ingest.documents"
            )
        }
        by_id = _records(documents, db.execute(_CHUNKS.format(table="ingest.chunks")))
        pages = dict(db.execute("SELECT doc_id, count(*) FROM ingest.pages GROUP BY doc_id"))
        assert pages == {d: m["page_count"] for d, (_s, m) in documents.items()}
        stale = db.execute(
            "SELECT count(*) FROM ingest.chunks "
            "WHERE tsv IS DISTINCT FROM to_tsvector('ingest.ingest_text', text)"
        ).fetchone()
        assert stale == (0,), "the search index is out of step with the text"
    return by_id


def search_store(store: str, query: str) -> list[SearchHit]:
    """``ingest search`` as a function: an SQLite file or a ``postgresql://`` URL."""
    if store.startswith("postgresql://"):
        from ingest_plugins.postgres.search import search as search_url

        return search_url(store, query)
    return search(Path(store), query)


def tables(spec: str) -> dict[str, list[dict[str, Any]]]:
    """Each document's table records the file sink ``spec`` holds, in the shape of
    :meth:`ingest.Document.table_records`."""
    kind, _, target = spec.partition(":")
    found: dict[str, list[dict[str, Any]]] = {}
    if kind == "jsonl":
        for record in held(spec).values():
            found.setdefault(record["doc_id"], []).extend(record.get("tables", []))
        return {doc_id: records for doc_id, records in found.items() if records}
    held(spec)  # the checks of pages, chunks and tables against documents
    keys = ("rows", "cols", "header_rows", "ruled", "cells", "spans")
    with closing(sqlite3.connect(target)) as db:
        for doc_id, index, page, *box, rows, cols, header, ruled, cells, spans in db.execute(
            "SELECT doc_id, idx, page, x0, y0, x1, y1, n_rows, n_cols, header_rows, ruled, "
            "cells, spans FROM tables ORDER BY doc_id, idx"
        ):
            values = (rows, cols, header, bool(ruled), json.loads(cells), json.loads(spans))
            found.setdefault(doc_id, []).append(
                {"index": index, "page": page, "bbox": box, **dict(zip(keys, values, strict=True))}
            )
    return found


def reference(store: Store, *args: str, read: Callable[[str], Any] = held) -> Any:
    """What a clean run of ``ARGS`` writes: into a fresh sink of the kind, the cache off;
    read with ``read`` (the records by default)."""
    fresh = store.fresh()
    done = ingest(*args, "--sink", fresh, "-o", "cache.enabled=false", workers=0)
    assert done.exit_code == 0, done.output
    return read(fresh)


def doc_ids(records: Records) -> set[str]:
    return {record["doc_id"] for record in records.values()}


# --------------------------------------------------------------------------------------------
# 1. A settings change replaces every record, and so does changing back
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "workers"), KINDS_WORKERS)
def test_a_chunking_change_replaces_the_records_and_changing_back_too(
    workdir: Path, store: Store, workers: int
) -> None:
    sink, target = store.args, store.spec
    assert summary(ingest("docs", *sink, workers=workers)).startswith("3 ingested in")
    default = held(target)
    assert default == reference(store, "docs")

    smaller = summary(ingest("docs", *sink, *SMALL_CHUNKS, workers=workers))
    assert smaller.startswith("3 ingested in"), smaller
    assert held(target) == reference(store, "docs", *SMALL_CHUNKS)
    assert len(held(target)) > len(default)

    back = summary(ingest("docs", *sink, workers=workers))
    assert back.startswith("3 ingested in"), back  # the sink holds size-300 chunks: redo
    assert held(target) == default
    again = summary(ingest("docs", *sink, workers=workers))
    assert again.startswith("0 ingested, 3 skipped (unchanged)"), again


@pytest.mark.parametrize(("kind", "workers"), KINDS_WORKERS)
def test_a_plugin_setting_change_replaces_the_records(
    workdir: Path, store: Store, workers: int
) -> None:
    sink, target = store.args, store.spec
    for mark in ("first", "second", "first"):
        args = ["docs", *SHAPING, "-o", f"shaping.mark={mark}"]
        assert summary(ingest(*args, *sink, workers=workers)).startswith("3 ingested in")
        records = held(target)
        assert records == reference(store, *args)
        assert all(r["text"].startswith(f"[{mark}]") for r in records.values() if r["index"] == 0)


# --------------------------------------------------------------------------------------------
# 2. A file replaced at the same path: the old version goes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "workers"), KINDS_WORKERS)
def test_a_file_replaced_at_the_same_path_replaces_its_records(
    workdir: Path, store: Store, workers: int
) -> None:
    docs = workdir / "report"
    docs.mkdir()
    text_pdf(docs / "other.pdf", ["A page about kestrels hovering over the verge."])
    report = docs / "report.pdf"
    shutil.copyfile(EXAMPLES / "guide.pdf", report)
    sink, target = store.args, store.spec
    assert summary(ingest("report", *sink, workers=workers)).startswith("2 ingested in")
    old_ids = doc_ids(held(target))

    shutil.copyfile(EXAMPLES / "field-notes.pdf", report)
    again = summary(ingest("report", *sink, workers=workers))
    assert again.startswith("1 ingested, 1 skipped (unchanged)"), again
    records = held(target)
    assert records == reference(store, "report")
    assert len(old_ids - doc_ids(records)) == 1  # the guide's records are gone
    assert {r["source"] for r in records.values()} == {"report/other.pdf", "report/report.pdf"}
    if store.kind != "jsonl":
        searched = target if store.kind == "postgresql" else TARGETS["sqlite"]
        assert search_store(searched, "teams that build search") == []
        [hit] = {h.source: h for h in search_store(searched, "herons")}.values()
        assert hit.source == "report/report.pdf"
        found = CliRunner().invoke(main, ["search", searched, "build search"])
        assert found.exit_code == 1 and "no match" in found.output


# --------------------------------------------------------------------------------------------
# 3. A deleted file: counted, and removed with --prune
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "workers"), KINDS_WORKERS)
def test_a_deleted_file_is_counted_then_pruned(
    workdir: Path, store: Store, workers: int
) -> None:
    sink, target = store.args, store.spec
    assert summary(ingest("docs", *sink, workers=workers)).startswith("3 ingested in")
    before = held(target)

    (workdir / "docs" / "guide.pdf").unlink()
    kept = summary(ingest("docs", *sink, workers=workers))
    assert kept.startswith(
        "0 ingested, 2 skipped (unchanged), 1 no longer on disk (--prune removes it) in"
    ), kept
    assert held(target) == before  # without --prune, nothing is removed

    pruned = summary(ingest("docs", *sink, "--prune", workers=workers))
    assert pruned.startswith("0 ingested, 2 skipped (unchanged), 1 removed in"), pruned
    assert held(target) == reference(store, "docs")
    assert summary(ingest("docs", *sink, "--prune", workers=workers)).startswith(
        "0 ingested, 2 skipped (unchanged) in"
    )


# --------------------------------------------------------------------------------------------
# 4. An output emptied, cut short or deleted is filled again
# --------------------------------------------------------------------------------------------


def damage(kind: str, spec: str, how: str) -> None:
    if kind == "postgresql":
        return _pg_damage(spec, how)
    target = Path(spec.partition(":")[2])
    if how == "deleted":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
    elif how == "emptied":
        target.write_bytes(b"")  # as `: > out.jsonl` does: same file, no bytes
    elif kind == "jsonl":  # truncated: the first record kept
        data = target.read_bytes()
        target.write_bytes(data[: data.index(b"\n") + 1])
    else:  # by hand, in the sqlite3 shell (no foreign keys there): one document's rows
        with closing(sqlite3.connect(target)) as db, db:
            (doc_id,) = db.execute("SELECT doc_id FROM documents LIMIT 1").fetchone()
            db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
            db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
            db.execute("DELETE FROM pages WHERE doc_id = ?", (doc_id,))


def _pg_damage(url: str, how: str) -> None:
    """As a user would in psql: drop the schema, truncate the tables, or delete one
    document's rows."""
    import psycopg
    from ingest_plugins.postgres import Target

    with psycopg.connect(Target.parse(url).conninfo, autocommit=True) as db:
        if how == "deleted":
            db.execute("DROP SCHEMA ingest CASCADE")
        elif how == "emptied":
            db.execute("TRUNCATE ingest.chunks, ingest.pages, ingest.documents")
        else:
            db.execute(
                "DELETE FROM ingest.documents WHERE doc_id = "
                "(SELECT min(doc_id) FROM ingest.documents)"
            )


@pytest.mark.parametrize("how", ["emptied", "truncated", "deleted"])
@pytest.mark.parametrize(("kind", "workers"), KINDS_WORKERS)
def test_an_output_that_lost_records_is_filled_again(
    workdir: Path, store: Store, workers: int, how: str
) -> None:
    sink, target = store.args, store.spec
    assert summary(ingest("docs", *sink, workers=workers)).startswith("3 ingested in")
    full = held(target)
    damage(store.kind, target, how)
    again = ingest("docs", *sink, workers=workers)
    assert summary(again).startswith("3 ingested in"), again.output
    assert held(target) == full
    assert summary(ingest("docs", *sink, workers=workers)).startswith(
        "0 ingested, 3 skipped (unchanged)"
    )


# --------------------------------------------------------------------------------------------
# 5. Tables (--format markdown) go with their document
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kind", ["jsonl", "sqlite"])
def test_a_changed_document_loses_its_old_tables_and_a_pruned_one_all(
    workdir: Path, kind: str, workers: int
) -> None:
    reports = workdir / "reports"
    reports.mkdir()
    report = reports / "report.pdf"
    structured_pdf(report, seed=3)
    structured_pdf(reports / "other.pdf", seed=4)
    args = ["reports", "--format", "markdown"]
    store = file_store(kind)
    sink = store.args
    assert summary(ingest(*args, *sink, workers=workers)).startswith("2 ingested in")
    before = tables(store.spec)
    assert len(before) == 2 and all(len(found) == 3 for found in before.values())
    assert before == reference(store, *args, read=tables)

    structured_pdf(report, seed=5)  # other words in other tables
    again = summary(ingest(*args, *sink, workers=workers))
    assert again.startswith("1 ingested, 1 skipped (unchanged)"), again
    after = tables(store.spec)
    assert after == reference(store, *args, read=tables)
    assert len(after) == 2 and len(set(after) - set(before)) == 1
    old_cells = {cell for found in before.values() for t in found for row in t["cells"]
                 for cell in row} - {cell for found in after.values() for t in found
                                     for row in t["cells"] for cell in row}  # fmt: skip
    assert old_cells  # the old version's tables held words the new one lacks: all gone

    report.unlink()
    pruned = summary(ingest(*args, *sink, "--prune", workers=workers))
    assert pruned.startswith("0 ingested, 1 skipped (unchanged), 1 removed in"), pruned
    assert tables(store.spec) == reference(store, *args, read=tables)
    assert len(tables(store.spec)) == 1


# --------------------------------------------------------------------------------------------
# Identical bytes at two paths, renamed files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["jsonl", "sqlite", "postgresql"])
def test_identical_bytes_at_two_paths_are_one_document_named_after_the_first(
    workdir: Path, store: Store
) -> None:
    """Stored once, under the first path in collection order; removing that path names it
    after the next; removing every path makes it gone."""
    twins = workdir / "twins"
    twins.mkdir()
    for name in ("copy-1.pdf", "copy-2.pdf"):
        shutil.copyfile(EXAMPLES / "guide.pdf", twins / name)
    shutil.copyfile(EXAMPLES / "field-notes.pdf", twins / "notes.pdf")
    sink, target = store.args, store.spec

    first = ingest("twins", *sink, "-v", workers=0)
    assert summary(first).startswith("2 ingested, 1 skipped in"), first.output
    assert "SKIPPED twins/copy-2.pdf: same content as twins/copy-1.pdf" in first.output
    sources = {r["source"] for r in held(target).values()}
    assert sources == {"twins/copy-1.pdf", "twins/notes.pdf"}

    (twins / "copy-1.pdf").unlink()
    renamed = summary(ingest("twins", *sink, workers=0))
    assert renamed.startswith("1 ingested, 1 skipped (unchanged) in"), renamed
    assert held(target) == reference(store, "twins")
    assert {r["source"] for r in held(target).values()} == {
        "twins/copy-2.pdf", "twins/notes.pdf"
    }

    (twins / "copy-2.pdf").unlink()
    gone = summary(ingest("twins", *sink, "--prune", workers=0))
    assert gone.startswith("0 ingested, 1 skipped (unchanged), 1 removed in"), gone
    assert held(target) == reference(store, "twins")


def test_a_file_copied_over_by_another_files_bytes_is_replaced(workdir: Path) -> None:
    """The file's old document goes though its new bytes were stored already, elsewhere."""
    sink = ["--sink", "jsonl:out.jsonl", "--sink", "sqlite:out.db"]
    assert summary(ingest("docs", *sink, workers=0)).startswith("3 ingested in")
    shutil.copyfile(EXAMPLES / "field-notes.pdf", workdir / "docs" / "guide.pdf")
    again = summary(ingest("docs", *sink, workers=0))
    assert again.startswith("0 ingested, 3 skipped (2 unchanged) in"), again  # 1 same content
    for kind in ("jsonl", "sqlite"):
        assert held(f"{kind}:{TARGETS[kind]}") == reference(file_store(kind), "docs")


def test_a_renamed_file_is_named_anew_and_not_counted_gone(workdir: Path) -> None:
    sink = ["--sink", "jsonl:out.jsonl"]
    assert summary(ingest("docs", *sink, workers=0)).startswith("3 ingested in")
    (workdir / "docs" / "guide.pdf").rename(workdir / "docs" / "manual.pdf")
    again = summary(ingest("docs", *sink, workers=0))
    assert again.startswith("1 ingested, 2 skipped (unchanged) in"), again
    assert held("jsonl:out.jsonl") == reference(file_store("jsonl"), "docs")


# --------------------------------------------------------------------------------------------
# A sink that cannot delete
# --------------------------------------------------------------------------------------------


def test_a_sink_that_cannot_delete_is_warned_about_once(workdir: Path) -> None:
    sink = ["-p", "plugins.appendonly", "--sink", "appendonly:a.jsonl"]
    sink += ["--sink", "jsonl:out.jsonl", "-o", "run.batch_size=1"]
    assert summary(ingest("docs", *sink, workers=0)).startswith("3 ingested in")
    # Three steps that delete: two batches replacing a file's document, and the prune.
    text_pdf(workdir / "docs" / "guide.pdf", ["A new page about grebes."])
    text_pdf(workdir / "docs" / "field-notes.pdf", ["A new page about coots."])
    (workdir / "docs" / "budget-encrypted.pdf").unlink()
    result = ingest("docs", *sink, "--prune", workers=0)
    assert summary(result).startswith("2 ingested, 1 removed in"), result.output
    assert "holds other records" not in result.output
    warning = (
        "sink appendonly:a.jsonl cannot delete records (its ingest_sink takes no 'deleted' "
        "argument): records of changed or removed files stay in it"
    )
    assert result.stderr.count(warning) == 1, result.stderr
    # The sink that can delete did: it mirrors the folder.
    assert held("jsonl:out.jsonl") == reference(file_store("jsonl"), "docs")


# --------------------------------------------------------------------------------------------
# What --prune may remove: files under this run's inputs, selected, and gone
# --------------------------------------------------------------------------------------------


def test_prune_removes_only_what_the_run_s_inputs_and_selection_cover(workdir: Path) -> None:
    other = workdir / "other"
    other.mkdir()
    text_pdf(other / "elsewhere.pdf", ["Stored from another folder."])
    sink = ["--sink", "jsonl:out.jsonl"]
    assert summary(ingest("docs", *sink, workers=0)).startswith("3 ingested in")
    assert summary(ingest("other", *sink, workers=0)).startswith("1 ingested in")
    (other / "elsewhere.pdf").unlink()
    for name in ("guide.pdf", "field-notes.pdf"):
        (workdir / "docs" / name).unlink()

    selected = summary(ingest("docs", "-k", "notes or budget", *sink, "--prune", workers=0))
    assert selected.startswith("0 ingested, 1 skipped (unchanged), 1 removed in"), selected
    rest = summary(ingest("docs", *sink, workers=0))
    assert rest.startswith("0 ingested, 1 skipped (unchanged), 1 no longer on disk"), rest
    sources = {r["source"] for r in held("jsonl:out.jsonl").values()}
    assert sources == {"docs/guide.pdf", "docs/budget-encrypted.pdf", "other/elsewhere.pdf"}

    glob = summary(ingest("docs/*.pdf", *sink, "--prune", workers=0))
    assert glob.startswith("0 ingested, 1 skipped (unchanged), 1 removed in"), glob
    emptied = ingest("other", *sink, "--prune", workers=0)  # nothing left to collect: exit 5
    assert emptied.exit_code == 5 and "1 removed" in emptied.output
    assert {r["source"] for r in held("jsonl:out.jsonl").values()} == {
        "docs/budget-encrypted.pdf"
    }


def test_prune_is_a_setting_too_and_needs_the_cache(workdir: Path) -> None:
    sink = ["--sink", "jsonl:out.jsonl"]
    assert summary(ingest("docs", *sink, workers=0)).startswith("3 ingested in")
    (workdir / "docs" / "guide.pdf").unlink()
    (workdir / "ingest.yaml").write_text("run: {prune: true}\n", "utf-8")
    assert "1 removed in" in summary(ingest("docs", *sink, workers=0))
    refused = ingest("docs", *sink, "-o", "cache.enabled=false", workers=0)
    assert refused.exit_code == 4
    assert "--prune needs the cache" in refused.output


def test_input_scope_covers_what_the_inputs_would_collect(tmp_path: Path) -> None:
    from ingest.cache import InputScope
    from ingest.select import compile_selection

    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "single.pdf").write_bytes(b"")
    everything = compile_selection(None)
    folder = InputScope([str(tmp_path / "docs")], everything)
    assert folder.covers(str(tmp_path / "docs" / "a.pdf"))
    assert folder.covers(str(tmp_path / "docs" / "sub" / "deep" / "b.pdf"))
    assert not folder.covers(str(tmp_path / "docs"))
    assert not folder.covers(str(tmp_path / "docs-other" / "a.pdf"))
    assert not folder.covers(str(tmp_path / "single.pdf"))
    single = InputScope([str(tmp_path / "single.pdf")], everything)
    assert single.covers(str(tmp_path / "single.pdf"))
    assert not single.covers(str(tmp_path / "docs" / "a.pdf"))
    flat = InputScope([str(tmp_path / "docs" / "*.pdf")], everything)
    assert flat.covers(str(tmp_path / "docs" / "gone.pdf"))
    assert not flat.covers(str(tmp_path / "docs" / "sub" / "gone.pdf"))
    assert not flat.covers(str(tmp_path / "docs" / ".hidden.pdf"))
    assert not flat.covers(str(tmp_path / "docs" / "gone.txt"))
    deep = InputScope([str(tmp_path / "**" / "*.pdf")], everything)
    assert deep.covers(str(tmp_path / "docs" / "sub" / "gone.pdf"))
    selected = InputScope([str(tmp_path / "docs")], compile_selection("sub and not old"))
    assert selected.covers(str(tmp_path / "docs" / "sub" / "new.pdf"))
    assert not selected.covers(str(tmp_path / "docs" / "sub" / "old.pdf"))
    assert not selected.covers(str(tmp_path / "docs" / "top.pdf"))
    assert not InputScope(["https://example.org/list"], everything).covers("/x/list")
