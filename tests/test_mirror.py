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
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import EXAMPLES
from ingest.cli import main
from ingest.search import search
from pdfgen import text_pdf

TARGETS = {"jsonl": "out.jsonl", "sqlite": "out.db"}
SMALL_CHUNKS = ["-o", "chunk.size=300", "-o", "chunk.overlap=0"]
SHAPING = ["-p", "plugins.shaping", "-o", "transforms=[normalize,plugins.shaping,chunk]"]

Records = dict[str, dict[str, Any]]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working folder (the run's rootdir) with ``docs/``: the three example PDFs."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("guide.pdf", "field-notes.pdf", "budget-encrypted.pdf"):
        shutil.copyfile(EXAMPLES / name, docs / name)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def ingest(*args: str, workers: int) -> Result:
    """``ingest run ARGS --workers N`` in the current folder; the result of the command."""
    command = ["run", *args, "--workers", str(workers), "--progress", "none"]
    return CliRunner().invoke(main, command, catch_exceptions=False)


def summary(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1].strip("= ")


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
        for doc_id, (_source, metadata) in documents.items():
            (pages,) = db.execute("SELECT COUNT(*) FROM pages WHERE doc_id = ?", (doc_id,))
            assert pages[0] == metadata["page_count"]
        # rank 1: also compare the external-content index with the chunks table.
        db.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")
    return by_id


def reference(kind: str, *args: str) -> Records:
    """What a clean run of ``ARGS`` writes: into a fresh sink, with the cache off."""
    fresh = Path(f"reference-{len(list(Path().glob('reference-*')))}.{kind}")
    done = ingest(
        *args, "--sink", f"{kind}:{fresh}", "-o", "cache.enabled=false", workers=0
    )
    assert done.exit_code == 0, done.output
    return held(kind, fresh)


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
