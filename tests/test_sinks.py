"""The ``jsonl`` and ``sqlite`` sinks: real files, real SQLite, real kills; no mocks."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pluggy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest import hookspecs
from ingest.errors import UsageError
from ingest.hookspecs import hookimpl
from ingest.model import Chunk, Document, Metadata, Page, Source
from ingest.testing import SinkReport, check_sink, sample_document
from ingest_plugins import jsonl_sink, sqlite_sink
from ingest_plugins.jsonl_files import Index
from ingest_plugins.jsonl_sink import JsonlSink
from ingest_plugins.sqlite_sink import SqliteSink


def make_doc(name: str, texts: list[str], *, title: str | None = None) -> Document:
    """A document named ``name`` with one page and one chunk per text."""
    source = Source(
        path=Path(f"{name}.pdf"), content_id=hashlib.sha256(name.encode()).hexdigest(), size=1
    )
    pages = [Page(number=i, text=text, extractor="test") for i, text in enumerate(texts, 1)]
    document = Document(source, Metadata(title=title, page_count=len(pages)), pages)
    document.chunks = [
        Chunk(document.doc_id, i, texts[i], number, number, start, end)
        for i, (number, start, end) in enumerate(document.page_spans())
    ]
    return document


def records_of(*documents: Document) -> list[dict[str, object]]:
    """What a sink writes for ``documents``, as JSON would give it back."""
    return [json.loads(json.dumps(r)) for d in documents for r in d.chunk_records()]


# --------------------------------------------------------------------------------------------
# Hook wiring
# --------------------------------------------------------------------------------------------


def test_sinks_open_and_close_through_the_hooks(tmp_path: Path) -> None:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(jsonl_sink, name="jsonl")
    manager.register(sqlite_sink, name="sqlite")
    hook = manager.hook
    sinks = [
        hook.ingest_sink_open(scheme=scheme, target=target, settings=None, rootdir=tmp_path)
        for scheme, target in (("jsonl", "out.jsonl"), ("sqlite", "out.db"))
    ]
    assert isinstance(sinks[0], JsonlSink) and isinstance(sinks[1], SqliteSink)
    assert hook.ingest_sink_open(scheme="csv", target="x", settings=None, rootdir=tmp_path) is None
    for sink in sinks:
        manager.register(sink)
    document = make_doc("a", ["hello world"])
    hook.ingest_sink(batch=[document], settings=None, deleted=[])
    hook.ingest_session_finish(session=None, result=None)
    assert all(sink.closed for sink in sinks)
    assert list(JsonlSink.read_records(tmp_path / "out.jsonl")) == records_of(document)
    with sqlite3.connect(tmp_path / "out.db") as connection:
        assert connection.execute("SELECT count(*) FROM chunks").fetchone() == (1,)


# --------------------------------------------------------------------------------------------
# jsonl
# --------------------------------------------------------------------------------------------


def open_jsonl(tmp_path: Path, target: str = "out.jsonl") -> JsonlSink:
    sink = jsonl_sink.ingest_sink_open(scheme="jsonl", target=target, rootdir=tmp_path)
    assert sink is not None
    return sink


def test_jsonl_records_round_trip_and_batches_append(tmp_path: Path) -> None:
    docs = [make_doc(f"d{i}", [f"text {i}", f"more {i}"], title=f"T{i}") for i in range(5)]
    with open_jsonl(tmp_path) as sink:
        assert sink.write(docs[:2]) == 4
        assert sink.write(docs[2:4]) == 4
    with open_jsonl(tmp_path) as sink:
        sink.write(docs[4:])
    assert list(JsonlSink.read_records(tmp_path / "out.jsonl")) == records_of(*docs)


def test_jsonl_rerun_writes_nothing_again(tmp_path: Path) -> None:
    """A run killed after the sink wrote but before the cache recorded must not duplicate."""
    docs = [make_doc(f"d{i}", ["x", "y"]) for i in range(3)]
    with open_jsonl(tmp_path) as sink:
        sink.write(docs[:2])
    before = (tmp_path / "out.jsonl").read_bytes()
    with open_jsonl(tmp_path) as sink:
        assert sink.write(docs[:2]) == 0 and sink.skipped == 4
        assert sink.write([docs[2], docs[2]]) == 2  # twice in one batch: once in the file
        assert sink.write(docs) == 0
    after = (tmp_path / "out.jsonl").read_bytes()
    assert after.startswith(before)
    ids = [r["chunk_id"] for r in JsonlSink.read_records(tmp_path / "out.jsonl")]
    assert len(ids) == len(set(ids)) == 6


def test_jsonl_torn_tail_of_a_hand_made_file_is_cut_at_the_last_newline(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    whole = make_doc("whole", ["complete"])
    path.write_bytes(
        b"".join(jsonl_sink.encode_record(r) for r in whole.chunk_records())
        + b'{"doc_id":"abc","chunk_id":"abc:0","text":"half a li'
    )
    with open_jsonl(tmp_path) as sink:
        assert sink.repaired_bytes > 0
        sink.write([make_doc("next", ["after the repair"])])
    assert path.read_bytes().endswith(b"\n")
    assert [r["text"] for r in JsonlSink.read_records(path)] == ["complete", "after the repair"]


def test_jsonl_uncommitted_batch_is_cut_whole(tmp_path: Path) -> None:
    """Lines past the commit marker belong to a batch whose ingest_sink never returned."""
    path = tmp_path / "out.jsonl"
    with open_jsonl(tmp_path) as sink:
        sink.write([make_doc("kept", ["one", "two"])])
    committed = path.read_bytes()
    lost = make_doc("lost", ["three", "four", "five"])
    encoded = b"".join(jsonl_sink.encode_record(r) for r in lost.chunk_records())
    torn = encoded[: encoded.index(b"five") + 2]  # two whole lines and a half: a kill
    with path.open("ab") as handle:
        handle.write(torn)
    with open_jsonl(tmp_path) as sink:
        assert sink.repaired_bytes == len(torn)
        assert path.read_bytes() == committed
        assert sink.write([lost]) == 3  # its ids were cut too, so the rerun writes them
    assert [r["text"] for r in JsonlSink.read_records(path)] == [
        "one", "two", "three", "four", "five"
    ]


def test_jsonl_unicode_round_trips_and_stays_one_line_per_record(tmp_path: Path) -> None:
    texts = [
        "café 日本語 🦩", "line\u2028separator\u2029para\x85nel", "tab\tnul\x00", "lone \ud800"
    ]
    document = make_doc("uni", texts)
    with open_jsonl(tmp_path) as sink:
        sink.write([document])
    raw = (tmp_path / "out.jsonl").read_bytes()
    assert "café 日本語 🦩".encode() in raw  # ensure_ascii=False: readable UTF-8
    assert len(raw.decode("utf-8").splitlines()) == len(texts)
    assert [r["text"] for r in JsonlSink.read_records(tmp_path / "out.jsonl")] == texts


@pytest.mark.parametrize(
    ("target", "expected"),
    [("", "ingest.jsonl"), ("existing", "existing/ingest.jsonl"),
     ("new/", "new/ingest.jsonl"), ("a/b/c.jsonl", "a/b/c.jsonl")],
)
def test_jsonl_targets(tmp_path: Path, target: str, expected: str) -> None:
    (tmp_path / "existing").mkdir()
    with open_jsonl(tmp_path, target) as sink:
        assert sink.path == tmp_path / expected
        sink.write([make_doc("a", ["x"])])
    assert (tmp_path / expected).is_file()


def test_jsonl_absolute_target_ignores_rootdir(tmp_path: Path) -> None:
    target = tmp_path / "abs.jsonl"
    with open_jsonl(tmp_path / "elsewhere", str(target)) as sink:
        assert sink.path == target


def test_jsonl_unwritable_target_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    target = tmp_path / "file" / "out.jsonl"
    with pytest.raises(UsageError, match=str(target)):
        open_jsonl(tmp_path, str(target))


def test_jsonl_refuses_to_append_to_a_file_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("some notes\nnot json\n")
    with pytest.raises(UsageError, match=r"notes\.txt.*line 1 is not JSON"):
        open_jsonl(tmp_path, "notes.txt")


@pytest.mark.skipif(os.name != "posix", reason="flock is POSIX only")
def test_jsonl_second_writer_is_refused(tmp_path: Path) -> None:
    with open_jsonl(tmp_path), pytest.raises(UsageError, match="another run"):
        open_jsonl(tmp_path)
    open_jsonl(tmp_path).close()  # the lock goes with the first sink


def test_jsonl_close_is_idempotent(tmp_path: Path) -> None:
    sink = open_jsonl(tmp_path)
    sink.close()
    sink.ingest_session_finish()
    assert sink.closed
    with pytest.raises(RuntimeError, match="closed"):
        sink.write([make_doc("a", ["x"])])


_KILL_WRITER = r"""
import hashlib, sys
from pathlib import Path
from ingest.model import Chunk, Document, Metadata, Page, Source
from ingest_plugins.jsonl_sink import JsonlSink

path, run = Path(sys.argv[1]), sys.argv[2]
sink = JsonlSink(path)
print("ready", flush=True)
number = 0
while True:
    number += 1
    docs = []
    count = 1 + (number * 7) % 23          # 1..23 documents of 3 chunks: up to ~100 KiB
    for d in range(count):
        cid = hashlib.sha256(f"{run}/{number}/{d}".encode()).hexdigest()
        doc = Document(Source(Path(f"{d}.pdf"), cid, 1),
                       Metadata(title=f"{run}/{number}/{3 * count}"), [])
        doc.chunks = [Chunk(doc.doc_id, i, f"{run} {number} {d} {i} " + "x" * 1500, 1, 1, 0, 1)
                      for i in range(3)]
        docs.append(doc)
    sink.write(docs)
"""


@pytest.mark.slow  # a writer in a subprocess, killed with SIGKILL
def test_jsonl_survives_kill_9_with_whole_lines_and_whole_batches(tmp_path: Path) -> None:
    """A writer is SIGKILLed at five moments; each batch is then wholly present or absent."""
    path = tmp_path / "killed.jsonl"
    script = tmp_path / "writer.py"
    script.write_text(_KILL_WRITER)
    for run, delay in enumerate((0.05, 0.13, 0.21, 0.34, 0.55)):
        process = subprocess.Popen(
            [sys.executable, str(script), str(path), str(run)],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
            time.sleep(delay)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
        lines = path.read_bytes().split(b"\n")
        for line in lines[:-1]:  # before the repair only an unterminated tail may be torn
            json.loads(line)
        with JsonlSink(path):  # opening repairs
            pass
        records = list(JsonlSink.read_records(path))
        sizes = Counter(str(r["metadata"]["title"]) for r in records)
        broken = {batch: n for batch, n in sizes.items() if n != int(batch.split("/")[2])}
        assert not broken, f"run {run}: partial batches {broken}"
        assert len({r["chunk_id"] for r in records}) == len(records)
    assert any(title.startswith("4/") for title in sizes), "the last run wrote nothing"


# --------------------------------------------------------------------------------------------
# sqlite
# --------------------------------------------------------------------------------------------


def open_sqlite(tmp_path: Path, target: str = "corpus.db") -> SqliteSink:
    sink = sqlite_sink.ingest_sink_open(scheme="sqlite", target=target, rootdir=tmp_path)
    assert sink is not None
    return sink


def query(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, args).fetchall()


def test_sqlite_creates_tables_fts_and_wal(tmp_path: Path) -> None:
    open_sqlite(tmp_path, "sub/corpus.db").close()
    db = tmp_path / "sub" / "corpus.db"
    names = {name for (name,) in query(db, "SELECT name FROM sqlite_master")}
    assert {"documents", "pages", "chunks", "chunks_fts", "chunks_fts_insert",
            "chunks_fts_delete", "chunks_fts_update"} <= names
    assert query(db, "PRAGMA journal_mode") == [("wal",)]
    assert query(db, "PRAGMA user_version") == [(sqlite_sink.SCHEMA_VERSION,)]


def test_sqlite_writes_documents_pages_and_chunks(tmp_path: Path) -> None:
    docs = [make_doc("a", ["alpha page", "second page"], title="A"), make_doc("b", ["bravo"])]
    docs[0].pages[1].needs_ocr = True
    docs[0].pages[1].provenance = {"engine": "tesseract", "confidence": 0.9}
    with open_sqlite(tmp_path) as sink:
        sink.write(docs[:1])
        sink.write(docs[1:])
    db = tmp_path / "corpus.db"
    assert query(db, "SELECT doc_id, source, title, page_count, chunk_count FROM documents "
                 "ORDER BY source") == [
        (docs[0].doc_id, "a.pdf", "A", 2, 2), (docs[1].doc_id, "b.pdf", None, 1, 1)
    ]
    assert query(db, "SELECT number, needs_ocr, provenance FROM pages WHERE doc_id = ? "
                 "ORDER BY number", docs[0].doc_id) == [
        (1, 0, "{}"), (2, 1, '{"engine": "tesseract", "confidence": 0.9}')
    ]
    assert query(db, "SELECT chunk_id, text, char_start, char_end FROM chunks ORDER BY id") == [
        (f"{docs[0].doc_id}:0", "alpha page", 0, 10),
        (f"{docs[0].doc_id}:1", "second page", 12, 23),
        (f"{docs[1].doc_id}:0", "bravo", 0, 5),
    ]
    assert not (tmp_path / "corpus.db-wal").exists() or not (tmp_path / "corpus.db-wal").stat(
    ).st_size  # checkpointed on close: the .db alone is the corpus


def fts_count(db: Path, match: str) -> int:
    return len(query(db, "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?", match))


def test_sqlite_upsert_replaces_chunks_pages_and_index(tmp_path: Path) -> None:
    db = tmp_path / "corpus.db"
    old = make_doc("same", ["obsolete walrus text", "another obsolete page", "third"])
    new = make_doc("same", ["fresh heron text"])
    other = make_doc("other", ["walrus elsewhere"])
    with open_sqlite(tmp_path) as sink:
        sink.write([old, other])
    with open_sqlite(tmp_path) as sink:  # a rerun, the same document chunked differently
        sink.write([new])
        sink.write([new])
    assert query(db, "SELECT count(*) FROM documents") == [(2,)]
    assert query(db, "SELECT text FROM chunks WHERE doc_id = ?", new.doc_id) == [
        ("fresh heron text",)
    ]
    assert query(db, "SELECT count(*) FROM pages WHERE doc_id = ?", new.doc_id) == [(1,)]
    assert fts_count(db, "heron") == 1
    assert fts_count(db, "obsolete") == 0
    assert fts_count(db, "walrus") == 1  # only the other document's
    # rank 1: also compare the index with the content table, row by row.
    query(db, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")


def test_sqlite_batch_is_one_transaction(tmp_path: Path) -> None:
    good = make_doc("good", ["fine"])
    bad = make_doc("bad", ["x", "y"])
    bad.chunks[1].index = 0  # two chunks with one id: the batch must fail whole
    with open_sqlite(tmp_path) as sink:
        with pytest.raises(sqlite3.IntegrityError):
            sink.write([good, bad])
        sink.write([good])
    assert query(tmp_path / "corpus.db", "SELECT count(*) FROM chunks") == [(1,)]


def test_sqlite_lone_surrogates_are_stored_replaced(tmp_path: Path) -> None:
    with open_sqlite(tmp_path) as sink:
        sink.write([make_doc("s", ["broken \ud800 layer"])])
    assert query(tmp_path / "corpus.db", "SELECT text FROM chunks") == [("broken \ufffd layer",)]


@pytest.mark.parametrize("target", ["folder", "new-folder/"])
def test_sqlite_folder_target_is_a_usage_error(tmp_path: Path, target: str) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(UsageError, match=target.rstrip("/") + ".*folder"):
        open_sqlite(tmp_path, target)


def test_sqlite_not_a_database_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("plain text, not SQLite " * 100)
    with pytest.raises(UsageError, match=r"notes\.db"):
        open_sqlite(tmp_path, "notes.db")


def test_sqlite_unwritable_target_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match=str(tmp_path / "file" / "c.db")):
        open_sqlite(tmp_path, "file/c.db")


def test_sqlite_newer_schema_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "future.db") as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(UsageError, match="schema version 99"):
        open_sqlite(tmp_path, "future.db")


def test_sqlite_close_is_idempotent(tmp_path: Path) -> None:
    sink = open_sqlite(tmp_path)
    sink.ingest_session_finish()
    sink.close()
    with pytest.raises(RuntimeError, match="closed"):
        sink.write([make_doc("a", ["x"])])


# --------------------------------------------------------------------------------------------
# The store mirrors the corpus: replace, delete, and notice what changed behind the sink
# --------------------------------------------------------------------------------------------


def jsonl_texts(path: Path) -> dict[str, list[str]]:
    """The chunk texts of each document in a JSONL file; fails when a document's lines are
    not together or a record is there twice."""
    texts: dict[str, list[str]] = {}
    order: list[str] = []
    for record in JsonlSink.read_records(path):
        doc_id = str(record["doc_id"])
        if not order or order[-1] != doc_id:
            assert doc_id not in texts, f"the lines of {doc_id} are not together"
            order.append(doc_id)
        texts.setdefault(doc_id, []).append(str(record["text"]))
    ids = [r["chunk_id"] for r in JsonlSink.read_records(path)]
    assert len(ids) == len(set(ids))
    return texts


def version(name: str, number: int) -> Document:
    """Document ``name`` (one id whatever the version) chunked into ``number + 1`` chunks."""
    return make_doc(name, [f"{name} version {number} part {part}" for part in range(number + 1)])


def test_jsonl_a_document_written_again_replaces_its_records_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with open_jsonl(tmp_path) as sink:
        sink.write([version("a", 2), version("b", 0)])
    with open_jsonl(tmp_path) as sink:
        assert sink.write([version("a", 0)]) == 1
        # Until the run ends, readers see the old version whole, never a mix.
        old = [f"a version 2 part {part}" for part in range(3)]
        assert jsonl_texts(path)[version("a", 0).doc_id] == old
        assert sink.pending_path.exists()
    assert jsonl_texts(path) == {
        version("b", 0).doc_id: ["b version 0 part 0"],
        version("a", 0).doc_id: ["a version 0 part 0"],
    }
    assert not sink.pending_path.exists() and sink.rewrites == 1


def test_jsonl_a_deleted_document_goes_with_the_batch_that_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    old, new, other = version("old", 1), version("new", 1), version("other", 0)
    with open_jsonl(tmp_path) as sink:
        sink.write([old, other])
    with open_jsonl(tmp_path) as sink:
        sink.write([new], deleted=[old.doc_id, "not-held"])
        # The new document waits with the old one's deletion: one or the other, never both.
        assert set(jsonl_texts(path)) == {old.doc_id, other.doc_id}
    assert set(jsonl_texts(path)) == {other.doc_id, new.doc_id}
    with open_jsonl(tmp_path) as sink:
        sink.write([], deleted=[other.doc_id])
    assert set(jsonl_texts(path)) == {new.doc_id}


def test_jsonl_a_run_that_adds_or_rewrites_the_same_bytes_does_not_rewrite(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.jsonl"
    with open_jsonl(tmp_path) as sink:
        sink.write([version("a", 1)])
    inode = path.stat().st_ino
    with open_jsonl(tmp_path) as sink:
        sink.write([version("a", 1), version("b", 1)])  # a is there already, byte for byte
        assert sink.skipped == 2 and sink.written == 2
        sink.write([], deleted=["nothing-held"])
    assert sink.rewrites == 0 and path.stat().st_ino == inode
    assert len(jsonl_texts(path)) == 2


def test_jsonl_state_counts_steps_and_is_kept_across_runs(tmp_path: Path) -> None:
    with open_jsonl(tmp_path) as sink:
        store, writes = sink.ingest_sink_state()
        assert (len(store), writes) == (32, 0)
        sink.write([version("a", 0)])
        sink.write([version("a", 0)])  # nothing changed: not a step that counts
        sink.write([version("a", 1)])
        assert sink.ingest_sink_state() == (store, 2)
    with open_jsonl(tmp_path) as sink:
        assert sink.ingest_sink_state() == (store, 2)  # the rewrite changed nothing logical
        sink.write([version("b", 0)], deleted=[version("a", 0).doc_id])
        assert sink.ingest_sink_state() == (store, 3)


def _damage_jsonl(path: Path, how: str) -> None:
    marker = path.with_name(path.name + ".commit")
    data = path.read_bytes()
    if how == "emptied":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: data.index(b"\n") + 1])
    elif how == "replaced":
        copy = path.with_name("copy")
        copy.write_bytes(data)
        os.replace(copy, path)
    elif how == "edited":  # the same length, one letter changed: the mtime gives it away
        path.write_bytes(data.replace(b"part 0", b"part X", 1))
    elif how == "marker-deleted":
        marker.unlink()
    elif how == "marker-torn":
        marker.write_bytes(marker.read_bytes()[:40])


@pytest.mark.parametrize(
    "how", ["emptied", "truncated", "replaced", "edited", "marker-deleted", "marker-torn"]
)
def test_jsonl_a_file_changed_behind_its_back_becomes_a_new_store(
    tmp_path: Path, how: str
) -> None:
    """The cache refills a sink whose store id changed; whatever is left is indexed, so the
    documents written again replace their leftovers."""
    path = tmp_path / "out.jsonl"
    docs = [version(name, 2) for name in "abc"]
    with open_jsonl(tmp_path) as sink:
        sink.write(docs)
        store = sink.state[0]
    time.sleep(0.01)  # a tick of the file system's clock: an edit gets another mtime
    _damage_jsonl(path, how)
    with open_jsonl(tmp_path) as sink:
        assert sink.state[0] != store and sink.state[1] == 0
        assert sink.started_over
        sink.write(docs)  # the refill
    assert jsonl_texts(path) == {d.doc_id: [c.text for c in d.chunks] for d in docs}


def test_jsonl_a_step_cut_short_by_a_kill_is_not_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with open_jsonl(tmp_path) as sink:
        sink.write([version("a", 1)])
        store = sink.state
    with path.open("ab") as handle:
        handle.write(b'{"doc_id":"x","chunk_id":"x:0","text":"whole"}\n{"doc_id":"x","ch')
    with open_jsonl(tmp_path) as sink:
        assert sink.state == store and sink.repaired_bytes > 0 and not sink.started_over
    assert list(jsonl_texts(path)) == [version("a", 1).doc_id]


_KILL_BEFORE_CLOSE = r"""
import hashlib, os, signal, sys
from pathlib import Path
from ingest.model import Chunk, Document, Metadata, Page, Source
from ingest_plugins.jsonl_sink import JsonlSink

def doc(name, text):
    source = Source(Path(f"{name}.pdf"), hashlib.sha256(name.encode()).hexdigest(), 1)
    document = Document(source, Metadata(page_count=1), [Page(1, text, "test")])
    document.chunks = [Chunk(document.doc_id, 0, text, 1, 1, 0, len(text))]
    return document

sink = JsonlSink(Path(sys.argv[1]))
sink.write([doc("a", "replaced text")], deleted=[doc("gone", "").doc_id])
os.kill(os.getpid(), signal.SIGKILL)  # before close: the rewrite never ran
"""


def test_jsonl_pending_replacements_are_applied_by_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with open_jsonl(tmp_path) as sink:
        sink.write([make_doc("a", ["first text"]), make_doc("gone", ["bye"])])
        store = sink.state[0]
    script = tmp_path / "killed.py"
    script.write_text(_KILL_BEFORE_CLOSE)
    done = subprocess.run([sys.executable, str(script), str(path)], check=False)
    assert done.returncode == -signal.SIGKILL
    assert [r["text"] for r in JsonlSink.read_records(path)] == ["first text", "bye"]
    with open_jsonl(tmp_path) as sink:
        assert sink.rewrites == 1 and sink.state == (store, 2)
    assert [r["text"] for r in JsonlSink.read_records(path)] == ["replaced text"]


def test_jsonl_marker_of_an_earlier_version_is_honoured(tmp_path: Path) -> None:
    """A file from before this marker format: its committed length still cuts an
    uncommitted batch, and the sink starts a new store (the cache refills it)."""
    path = tmp_path / "out.jsonl"
    committed = b"".join(jsonl_sink.encode_record(r) for r in version("a", 1).chunk_records())
    extra = b"".join(jsonl_sink.encode_record(r) for r in version("b", 0).chunk_records())
    path.write_bytes(committed + extra)
    inode = path.stat().st_ino
    body = b"%d %d" % (len(committed), inode)
    (tmp_path / "out.jsonl.commit").write_bytes(
        b"ingest-jsonl-commit 1 %020d %020d %08x\n" % (len(committed), inode, zlib.crc32(body))
    )
    with open_jsonl(tmp_path) as sink:
        assert sink.repaired_bytes == len(extra) and sink.started_over
    assert list(jsonl_texts(path)) == [version("a", 1).doc_id]


_names = st.sampled_from("abcde")
_steps = st.lists(
    st.tuples(
        st.lists(st.tuples(_names, st.integers(0, 3)), max_size=4),  # documents and versions
        st.lists(_names, max_size=2),  # deleted
        st.booleans(),  # the run ends after this step
    ),
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(steps=_steps)
def test_jsonl_holds_exactly_what_the_steps_left(steps: list[Any]) -> None:
    """Any sequence of steps and runs: the file holds each document's last version, the
    deleted ones not at all, each document's lines together."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        model: dict[str, int] = {}
        sink = open_jsonl(root)
        try:
            for written, deleted, end_run in steps:
                batch = {name: number for name, number in written}
                gone = [name for name in deleted if name not in batch]
                sink.write(
                    [version(n, v) for n, v in batch.items()],
                    deleted=[version(n, 0).doc_id for n in gone],
                )
                model.update(batch)
                for name in gone:
                    model.pop(name, None)
                if end_run:
                    sink.close()
                    sink = open_jsonl(root)
        finally:
            sink.close()
        expected = {
            version(n, v).doc_id: [f"{n} version {v} part {p}" for p in range(v + 1)]
            for n, v in model.items()
        }
        assert jsonl_texts(root / "out.jsonl") == expected


def test_sqlite_deletes_documents_with_their_pages_chunks_and_index(tmp_path: Path) -> None:
    db = tmp_path / "corpus.db"
    gone, kept = make_doc("gone", ["walrus text", "more walrus"]), make_doc("kept", ["heron"])
    with open_sqlite(tmp_path) as sink:
        sink.write([gone, kept])
        sink.write([], deleted=[gone.doc_id, "not-held"])
    assert query(db, "SELECT doc_id FROM documents") == [(kept.doc_id,)]
    assert query(db, "SELECT DISTINCT doc_id FROM pages") == [(kept.doc_id,)]
    assert query(db, "SELECT DISTINCT doc_id FROM chunks") == [(kept.doc_id,)]
    assert fts_count(db, "walrus") == 0 and fts_count(db, "heron") == 1
    query(db, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")


def test_sqlite_replace_and_delete_are_one_transaction(tmp_path: Path) -> None:
    old, new = make_doc("old", ["old text"]), make_doc("new", ["x", "y"])
    new.chunks[1].index = 0  # two chunks with one id: the step must fail whole
    with open_sqlite(tmp_path) as sink:
        sink.write([old])
        with pytest.raises(sqlite3.IntegrityError):
            sink.write([new], deleted=[old.doc_id])
        assert sink.state[1] == 1  # the failed step did not count
    assert query(tmp_path / "corpus.db", "SELECT doc_id FROM documents") == [(old.doc_id,)]


@pytest.mark.parametrize(
    "change",
    [
        "DELETE FROM chunks WHERE idx = 0",
        "UPDATE documents SET title = 'edited'",
        "DELETE FROM pages",
        "INSERT INTO documents (doc_id, source, content_id, size, media_type, page_count, "
        "encrypted, metadata, chunk_count, ingested_at) VALUES ('x', 'x', 'x', 0, 'x', 0, 0, "
        "'{}', 0, '')",
    ],
)
def test_sqlite_rows_changed_outside_ingest_make_a_new_store(tmp_path: Path, change: str) -> None:
    with open_sqlite(tmp_path) as sink:
        sink.write([make_doc("a", ["one", "two"])])
        state = sink.ingest_sink_state()
    assert state[1] == 1
    with open_sqlite(tmp_path) as sink:
        assert sink.ingest_sink_state() == state  # untouched: the same store
    with sqlite3.connect(tmp_path / "corpus.db") as db:  # as in the sqlite3 shell
        db.execute(change)
    db.close()
    with open_sqlite(tmp_path) as sink:
        assert sink.ingest_sink_state()[0] != state[0]
        store = sink.ingest_sink_state()
    with open_sqlite(tmp_path) as sink:
        assert sink.ingest_sink_state() == store  # noticed once, then trusted again


def test_sqlite_database_of_schema_1_is_upgraded_as_a_new_store(tmp_path: Path) -> None:
    db = tmp_path / "corpus.db"
    with open_sqlite(tmp_path) as sink:
        sink.write([make_doc("a", ["one"])])
        store = sink.state[0]
    with sqlite3.connect(db) as connection:  # what version 1 of the sink left
        connection.execute("DROP TABLE ingest_state")
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE name LIKE '%_counted'"
        ).fetchall():
            connection.execute(f"DROP TRIGGER {name}")
        connection.execute("PRAGMA user_version = 1")
    connection.close()
    with open_sqlite(tmp_path) as sink:
        assert sink.state[0] != store and sink.state[1] == 0
    assert query(db, "PRAGMA user_version") == [(sqlite_sink.SCHEMA_VERSION,)]
    assert query(db, "SELECT count(*) FROM chunks") == [(1,)]


def test_sqlite_database_of_schema_2_gains_the_structure_and_stays_the_same_store(
    tmp_path: Path,
) -> None:
    db = tmp_path / "corpus.db"
    with open_sqlite(tmp_path) as sink:
        sink.write([make_doc("a", ["one"])])
        state = sink.state
    with sqlite3.connect(db) as connection:  # what version 2 of the sink left
        for event in ("insert", "update", "delete"):
            connection.execute(f"DROP TRIGGER tables_{event}_counted")
        connection.execute("DROP TABLE tables")
        connection.execute("ALTER TABLE pages DROP COLUMN markdown")
        connection.execute("ALTER TABLE chunks DROP COLUMN headings")
        connection.execute("PRAGMA user_version = 2")
    connection.close()
    with open_sqlite(tmp_path) as sink:
        assert sink.state == state  # nothing it held was lost: no refill
        sink.write([sample_document("b", ["two"], structure=True)])
    assert query(db, "PRAGMA user_version") == [(sqlite_sink.SCHEMA_VERSION,)]
    assert query(db, "SELECT cells FROM tables") == [('[["two"]]',)]
    assert query(db, "SELECT markdown FROM pages ORDER BY markdown") == [(None,), ("| two |",)]
    assert query(db, "SELECT count(*) FROM chunks WHERE headings = '[\"b\"]'") == [(1,)]


# --------------------------------------------------------------------------------------------
# ingest.testing.check_sink: the contract, as a sink author checks it
# --------------------------------------------------------------------------------------------


def _jsonl_held(path: Path) -> dict[str, list[str]]:
    held: dict[str, list[str]] = {}
    for record in JsonlSink.read_records(path):
        held.setdefault(str(record["doc_id"]), []).append(str(record["text"]))
    return held


def _sqlite_held(path: Path) -> dict[str, list[str]]:
    held: dict[str, list[str]] = {}
    for doc_id, text in query(path, "SELECT doc_id, text FROM chunks ORDER BY doc_id, idx"):
        held.setdefault(str(doc_id), []).append(str(text))
    return held


def test_check_sink_passes_the_jsonl_and_sqlite_sinks(tmp_path: Path) -> None:
    report = check_sink(lambda: open_jsonl(tmp_path), lambda: _jsonl_held(tmp_path / "out.jsonl"))
    assert report == SinkReport(deletes=True, states=True)
    report = check_sink(lambda: open_sqlite(tmp_path), lambda: _sqlite_held(tmp_path / "corpus.db"))
    assert report == SinkReport(deletes=True, states=True)


def _jsonl_tables_held(path: Path) -> dict[str, list[str]]:
    """Each document's tables in the JSONL file, by the text of their one cell."""
    held: dict[str, list[str]] = {}
    for record in JsonlSink.read_records(path):
        texts = held.setdefault(str(record["doc_id"]), [])
        texts += [table["cells"][0][0] for table in record.get("tables", [])]
        assert record["headings"] == [record["metadata"]["title"]]
    return held


def _sqlite_tables_held(path: Path) -> dict[str, list[str]]:
    """Each document's rows of the ``tables`` table, by the text of their one cell; fails
    on a table of no document, or a page or chunk without its structure."""
    held: dict[str, list[str]] = {}
    for doc_id, cells, known in query(
        path,
        "SELECT t.doc_id, t.cells, d.doc_id FROM tables AS t "
        "LEFT JOIN documents AS d ON d.doc_id = t.doc_id ORDER BY t.doc_id, t.idx",
    ):
        assert known is not None, f"a table of no document: {doc_id}"
        held.setdefault(str(doc_id), []).append(json.loads(str(cells))[0][0])
    assert query(path, "SELECT count(*) FROM pages WHERE markdown IS NULL") == [(0,)]
    assert query(path, "SELECT count(*) FROM chunks WHERE headings IS NULL") == [(0,)]
    return held


def test_check_sink_passes_both_sinks_with_structure(tmp_path: Path) -> None:
    """Tables are replaced and deleted with their document, in both sinks."""
    jsonl = tmp_path / "out.jsonl"
    report = check_sink(
        lambda: open_jsonl(tmp_path), lambda: _jsonl_tables_held(jsonl), structure=True
    )
    assert report == SinkReport(deletes=True, states=True)
    database = tmp_path / "corpus.db"
    report = check_sink(
        lambda: open_sqlite(tmp_path), lambda: _sqlite_tables_held(database), structure=True
    )
    assert report == SinkReport(deletes=True, states=True)
    # Chunks too, as without structure.
    assert _sqlite_held(database) == _jsonl_held(jsonl)


class _AppendingSink:
    """Keeps records in a list and appends whatever it is sent: it never replaces."""

    records: ClassVar[list[tuple[str, str]]] = []

    @hookimpl
    def ingest_sink(self, batch: Sequence[Document], deleted: Sequence[str]) -> None:
        gone = set(deleted)
        kept = [(d, t) for d, t in self.records if d not in gone]
        self.records[:] = kept + [(c.doc_id, c.text) for d in batch for c in d.chunks]


class _MiscountingSink(_AppendingSink):
    """Replaces, but counts two writes a step."""

    writes = 0

    @hookimpl
    def ingest_sink(self, batch: Sequence[Document], deleted: Sequence[str]) -> None:
        replaced = {d.doc_id for d in batch} | set(deleted)
        self.records[:] = [(d, t) for d, t in self.records if d not in replaced]
        self.records += [(c.doc_id, c.text) for d in batch for c in d.chunks]
        type(self).writes += 2

    @hookimpl
    def ingest_sink_state(self) -> tuple[str, int]:
        return "store", self.writes


def _held_of(records: list[tuple[str, str]]) -> dict[str, list[str]]:
    held: dict[str, list[str]] = {}
    for doc_id, text in records:
        held.setdefault(doc_id, []).append(text)
    return held


def test_check_sink_names_the_rule_a_sink_breaks() -> None:
    _AppendingSink.records = []
    with pytest.raises(AssertionError, match="after writing a again, chunked otherwise"):
        check_sink(_AppendingSink, lambda: _held_of(_AppendingSink.records))
    _MiscountingSink.records = []
    with pytest.raises(AssertionError, match="a step counts once"):
        check_sink(_MiscountingSink, lambda: _held_of(_MiscountingSink.records))


def test_check_sink_reports_a_sink_that_cannot_delete(tmp_path: Path) -> None:
    from plugins.appendonly import AppendOnlySink

    class ReplacingOnly(AppendOnlySink):
        """Replaces by rewriting its file, but takes no ``deleted``."""

        @hookimpl
        def ingest_sink(self, batch: Sequence[Document]) -> None:
            ids = {d.doc_id for d in batch}
            kept = [
                line
                for line in (self.path.read_text().splitlines() if self.path.exists() else [])
                if json.loads(line)["doc_id"] not in ids
            ]
            fresh = [json.dumps(r) for d in batch for r in d.chunk_records()]
            self.path.write_text("".join(f"{line}\n" for line in kept + fresh))

    path = tmp_path / "a.jsonl"
    report = check_sink(lambda: ReplacingOnly(path), lambda: _jsonl_held(path))
    assert report == SinkReport(deletes=False, states=False)


@given(
    entries=st.lists(
        st.tuples(st.text(min_size=1, max_size=12), st.integers(0, 2**40), st.integers(1, 2**20)),
        max_size=20,
    )
)
def test_jsonl_index_lines_round_trip_any_document_id(entries: list[tuple[str, int, int]]) -> None:
    """Hashes are written as they are; any other id (tabs, quotes, newlines) as JSON."""
    decoded = Index.decode(Index.encode(entries))
    expected = Index()
    for doc_id, offset, length in entries:
        expected.add(doc_id, offset, length)
    assert decoded == expected
