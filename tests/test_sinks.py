"""The ``jsonl`` and ``sqlite`` sinks: real files, real SQLite, real kills; no mocks."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pluggy
import pytest
from ingest import hookspecs
from ingest.errors import UsageError
from ingest.model import Chunk, Document, Metadata, Page, Source
from ingest_plugins import jsonl_sink, sqlite_sink
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
