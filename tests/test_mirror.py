"""The store mirrors the corpus: reruns replace, refill and prune, through the real CLI.

Each test is one of the ways a rerun used to leave a sink wrong while the summary said all was
well, tried as a user would: ``ingest run`` in a working folder, something changed (settings,
a file's bytes, a file deleted, the output emptied), ``ingest run`` again. After each run the
sink must hold exactly what a clean run of the same command (into a fresh sink, the cache off)
writes: the same records, none twice, none stale; for SQLite also its pages and a full-text
index in step with its chunks. Each runs for the JSONL and the SQLite sink, in-process and
with two worker processes.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import EXAMPLES, summary
from helpers import ingest_run as ingest
from ingest.cli import main
from ingest_plugins.sqlite_search import search
from pdfgen import text_pdf
from structgen import structured_pdf

TARGETS = {"jsonl": "out.jsonl", "sqlite": "out.db"}
SMALL_CHUNKS = ["-o", "chunk.size=300", "-o", "chunk.overlap=0"]
SHAPING = ["-p", "plugins.shaping", "-o", "transforms=[normalize,plugins.shaping,chunk]"]

Records = dict[str, dict[str, Any]]


def held(kind: str, target: Path) -> Records:
    """Every record the sink at ``target`` holds, by chunk id, as the JSONL sink writes them;
    fails on a record held twice, and (SQLite) on pages, chunks or index out of step."""
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
        by_id = {}
        spans = ("page_start", "page_end", "char_start", "char_end")
        for chunk_id, doc_id, index, text, *span in db.execute(
            "SELECT chunk_id, doc_id, idx, text, page_start, page_end, char_start, char_end "
            "FROM chunks"
        ):
            assert doc_id in documents, f"chunk {chunk_id} of no document"
            source, metadata = documents[doc_id]
            by_id[chunk_id] = {
                "doc_id": doc_id,
                "chunk_id": chunk_id,
                "index": index,
                "source": source,
                "text": text,
                **dict(zip(spans, span, strict=True)),
                "metadata": metadata,
            }
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


def tables(kind: str, target: Path) -> dict[str, list[dict[str, Any]]]:
    """Each document's table records the sink at ``target`` holds, in the shape of
    :meth:`ingest.Document.table_records`."""
    found: dict[str, list[dict[str, Any]]] = {}
    if kind == "jsonl":
        for record in held(kind, target).values():
            found.setdefault(record["doc_id"], []).extend(record.get("tables", []))
        return {doc_id: records for doc_id, records in found.items() if records}
    held(kind, target)  # the checks of pages, chunks and tables against documents
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


def reference(kind: str, *args: str, read: Any = held) -> Any:
    """What a clean run of ``ARGS`` writes: into a fresh sink, with the cache off; read with
    ``read`` (the records by default)."""
    fresh = Path(f"reference-{len(list(Path().glob('reference-*')))}.{kind}")
    done = ingest(
        *args, "--sink", f"{kind}:{fresh}", "-o", "cache.enabled=false", workers=0
    )
    assert done.exit_code == 0, done.output
    return read(kind, fresh)


def doc_ids(records: Records) -> set[str]:
    return {record["doc_id"] for record in records.values()}


# --------------------------------------------------------------------------------------------
# 1. A settings change replaces every record, and so does changing back
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kind", ["jsonl", "sqlite"])
def test_a_chunking_change_replaces_the_records_and_changing_back_too(
    workdir: Path, kind: str, workers: int
) -> None:
    sink = ["--sink", f"{kind}:{TARGETS[kind]}"]
    target = workdir / TARGETS[kind]
    assert summary(ingest("docs", *sink, workers=workers)).startswith("3 ingested in")
    default = held(kind, target)
    assert default == reference(kind, "docs")

    smaller = summary(ingest("docs", *sink, *SMALL_CHUNKS, workers=workers))
    assert smaller.startswith("3 ingested in"), smaller
    assert held(kind, target) == reference(kind, "docs", *SMALL_CHUNKS)
    assert len(held(kind, target)) > len(default)

    back = summary(ingest("docs", *sink, workers=workers))
    assert back.startswith("3 ingested in"), back  # the sink holds size-300 chunks: redo
    assert held(kind, target) == default
    again = summary(ingest("docs", *sink, workers=workers))
    assert again.startswith("0 ingested, 3 skipped (unchanged)"), again


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kind", ["jsonl", "sqlite"])
def test_a_plugin_setting_change_replaces_the_records(
    workdir: Path, kind: str, workers: int
) -> None:
    sink = ["--sink", f"{kind}:{TARGETS[kind]}"]
    target = workdir / TARGETS[kind]
    for mark in ("first", "second", "first"):
        args = ["docs", *SHAPING, "-o", f"shaping.mark={mark}"]
        assert summary(ingest(*args, *sink, workers=workers)).startswith("3 ingested in")
        records = held(kind, target)
        assert records == reference(kind, *args)
        assert all(r["text"].startswith(f"[{mark}]") for r in records.values() if r["index"] == 0)


# --------------------------------------------------------------------------------------------
# 2. A file replaced at the same path: the old version goes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kind", ["jsonl", "sqlite"])
def test_a_file_replaced_at_the_same_path_replaces_its_records(
    workdir: Path, kind: str, workers: int
) -> None:
    docs = workdir / "report"
    docs.mkdir()
    text_pdf(docs / "other.pdf", ["A page about kestrels hovering over the verge."])
    report = docs / "report.pdf"
    shutil.copyfile(EXAMPLES / "guide.pdf", report)
    sink = ["--sink", f"{kind}:{TARGETS[kind]}"]
    target = workdir / TARGETS[kind]
    assert summary(ingest("report", *sink, workers=workers)).startswith("2 ingested in")
    old_ids = doc_ids(held(kind, target))

    shutil.copyfile(EXAMPLES / "field-notes.pdf", report)
    again = summary(ingest("report", *sink, workers=workers))
    assert again.startswith("1 ingested, 1 skipped (unchanged)"), again
    records = held(kind, target)
    assert records == reference(kind, "report")
    assert len(old_ids - doc_ids(records)) == 1  # the guide's records are gone
    assert {r["source"] for r in records.values()} == {"report/other.pdf", "report/report.pdf"}
    if kind == "sqlite":
        assert search(target, "teams that build search") == []
        [hit] = {h.source: h for h in search(target, "herons")}.values()
        assert hit.source == "report/report.pdf"
        found = CliRunner().invoke(main, ["search", str(target), "build search"])
        assert found.exit_code == 1 and "no match" in found.output


# --------------------------------------------------------------------------------------------
# 3. A deleted file: counted, and removed with --prune
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kind", ["jsonl", "sqlite"])
def test_a_deleted_file_is_counted_then_pruned(workdir: Path, kind: str, workers: int) -> None:
    sink = ["--sink", f"{kind}:{TARGETS[kind]}"]
    target = workdir / TARGETS[kind]
    assert summary(ingest("docs", *sink, workers=workers)).startswith("3 ingested in")
    before = held(kind, target)

    (workdir / "docs" / "guide.pdf").unlink()
    kept = summary(ingest("docs", *sink, workers=workers))
    assert kept.startswith(
        "0 ingested, 2 skipped (unchanged), 1 no longer on disk (--prune removes it) in"
    ), kept
    assert held(kind, target) == before  # without --prune, nothing is removed

    pruned = summary(ingest("docs", *sink, "--prune", workers=workers))
    assert pruned.startswith("0 ingested, 2 skipped (unchanged), 1 removed in"), pruned
    assert held(kind, target) == reference(kind, "docs")
    assert summary(ingest("docs", *sink, "--prune", workers=workers)).startswith(
        "0 ingested, 2 skipped (unchanged) in"
    )


# --------------------------------------------------------------------------------------------
# 4. An output emptied, cut short or deleted is filled again
# --------------------------------------------------------------------------------------------


def damage(kind: str, target: Path, how: str) -> None:
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


@pytest.mark.parametrize("how", ["emptied", "truncated", "deleted"])
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kind", ["jsonl", "sqlite"])
def test_an_output_that_lost_records_is_filled_again(
    workdir: Path, kind: str, workers: int, how: str
) -> None:
    sink = ["--sink", f"{kind}:{TARGETS[kind]}"]
    target = workdir / TARGETS[kind]
    assert summary(ingest("docs", *sink, workers=workers)).startswith("3 ingested in")
    full = held(kind, target)
    damage(kind, target, how)
    again = ingest("docs", *sink, workers=workers)
    assert summary(again).startswith("3 ingested in"), again.output
    assert held(kind, target) == full
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
    sink = ["--sink", f"{kind}:{TARGETS[kind]}"]
    target = workdir / TARGETS[kind]
    assert summary(ingest(*args, *sink, workers=workers)).startswith("2 ingested in")
    before = tables(kind, target)
    assert len(before) == 2 and all(len(found) == 3 for found in before.values())
    assert before == reference(kind, *args, read=tables)

    structured_pdf(report, seed=5)  # other words in other tables
    again = summary(ingest(*args, *sink, workers=workers))
    assert again.startswith("1 ingested, 1 skipped (unchanged)"), again
    after = tables(kind, target)
    assert after == reference(kind, *args, read=tables)
    assert len(after) == 2 and len(set(after) - set(before)) == 1
    old_cells = {cell for found in before.values() for t in found for row in t["cells"]
                 for cell in row} - {cell for found in after.values() for t in found
                                     for row in t["cells"] for cell in row}  # fmt: skip
    assert old_cells  # the old version's tables held words the new one lacks: all gone

    report.unlink()
    pruned = summary(ingest(*args, *sink, "--prune", workers=workers))
    assert pruned.startswith("0 ingested, 1 skipped (unchanged), 1 removed in"), pruned
    assert tables(kind, target) == reference(kind, *args, read=tables)
    assert len(tables(kind, target)) == 1


# --------------------------------------------------------------------------------------------
# Identical bytes at two paths, renamed files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["jsonl", "sqlite"])
def test_identical_bytes_at_two_paths_are_one_document_named_after_the_first(
    workdir: Path, kind: str
) -> None:
    """Stored once, under the first path in collection order; removing that path names it
    after the next; removing every path makes it gone."""
    twins = workdir / "twins"
    twins.mkdir()
    for name in ("copy-1.pdf", "copy-2.pdf"):
        shutil.copyfile(EXAMPLES / "guide.pdf", twins / name)
    shutil.copyfile(EXAMPLES / "field-notes.pdf", twins / "notes.pdf")
    sink = ["--sink", f"{kind}:{TARGETS[kind]}"]
    target = workdir / TARGETS[kind]

    first = ingest("twins", *sink, "-v", workers=0)
    assert summary(first).startswith("2 ingested, 1 skipped in"), first.output
    assert "SKIPPED twins/copy-2.pdf: same content as twins/copy-1.pdf" in first.output
    sources = {r["source"] for r in held(kind, target).values()}
    assert sources == {"twins/copy-1.pdf", "twins/notes.pdf"}

    (twins / "copy-1.pdf").unlink()
    renamed = summary(ingest("twins", *sink, workers=0))
    assert renamed.startswith("1 ingested, 1 skipped (unchanged) in"), renamed
    assert held(kind, target) == reference(kind, "twins")
    assert {r["source"] for r in held(kind, target).values()} == {
        "twins/copy-2.pdf", "twins/notes.pdf"
    }

    (twins / "copy-2.pdf").unlink()
    gone = summary(ingest("twins", *sink, "--prune", workers=0))
    assert gone.startswith("0 ingested, 1 skipped (unchanged), 1 removed in"), gone
    assert held(kind, target) == reference(kind, "twins")


def test_a_file_copied_over_by_another_files_bytes_is_replaced(workdir: Path) -> None:
    """The file's old document goes though its new bytes were stored already, elsewhere."""
    sink = ["--sink", "jsonl:out.jsonl", "--sink", "sqlite:out.db"]
    assert summary(ingest("docs", *sink, workers=0)).startswith("3 ingested in")
    shutil.copyfile(EXAMPLES / "field-notes.pdf", workdir / "docs" / "guide.pdf")
    again = summary(ingest("docs", *sink, workers=0))
    assert again.startswith("0 ingested, 3 skipped (2 unchanged) in"), again  # 1 same content
    for kind in ("jsonl", "sqlite"):
        assert held(kind, workdir / TARGETS[kind]) == reference(kind, "docs")


def test_a_renamed_file_is_named_anew_and_not_counted_gone(workdir: Path) -> None:
    sink = ["--sink", "jsonl:out.jsonl"]
    assert summary(ingest("docs", *sink, workers=0)).startswith("3 ingested in")
    (workdir / "docs" / "guide.pdf").rename(workdir / "docs" / "manual.pdf")
    again = summary(ingest("docs", *sink, workers=0))
    assert again.startswith("1 ingested, 2 skipped (unchanged) in"), again
    assert held("jsonl", workdir / "out.jsonl") == reference("jsonl", "docs")


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
    assert held("jsonl", workdir / "out.jsonl") == reference("jsonl", "docs")


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
    sources = {r["source"] for r in held("jsonl", workdir / "out.jsonl").values()}
    assert sources == {"docs/guide.pdf", "docs/budget-encrypted.pdf", "other/elsewhere.pdf"}

    glob = summary(ingest("docs/*.pdf", *sink, "--prune", workers=0))
    assert glob.startswith("0 ingested, 1 skipped (unchanged), 1 removed in"), glob
    emptied = ingest("other", *sink, "--prune", workers=0)  # nothing left to collect: exit 5
    assert emptied.exit_code == 5 and "1 removed" in emptied.output
    assert {r["source"] for r in held("jsonl", workdir / "out.jsonl").values()} == {
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
