"""Exactly once across kill -9 and Ctrl-C, with the real CLI in real processes.

Each scenario runs ``ingest run`` over 60 generated PDFs into a JSONL and an SQLite sink with
``run.batch_size=4`` (so batches are flushed fifteen times), kills it with SIGKILL at some
point (after N records reached the JSONL file, or after a delay that may fall during start-up
or collection), checks what the kill left, runs the same command again to the end and
compares both sinks with a clean reference run: every chunk present, none twice, none stale.

The same holds when the killed run replaces records (the chunking changed: every document is
replaced, the JSONL sink's replacements pending until its one rewrite at the end), while it
rewrites the JSONL file (killed at each step of the rewrite: during the copy, before the
file's rename, between it and the marker's, before the pending file is removed), and while
it prunes the documents of deleted files; a rerun with the earlier settings must then give
the earlier records back.

What the kill must leave, whenever it lands: every document the cache records as held is in
both sinks exactly in the version it records (the cache marks a step's documents unknown
before the sinks take it, and commits only after), reading the JSONL sink as its next open
recovers it (whole steps up to its commit marker, pending replacements applied).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ingest.interrupt import GRACE_S
from ingest_plugins.jsonl_sink import JsonlSink
from pdfgen import numbered_pdfs

DOCUMENTS = 60
SCRIPT = Path(sys.executable).parent / "ingest"
SMALL = ["-o", "chunk.size=300", "-o", "chunk.overlap=0"]
# Sleeps in every extraction, so that kills and signals land mid-run rather than after it,
# and after every sink step, so that a kill lands in the stretch between the sinks' step and
# the cache commit (the one where sinks must replace what they hold). It takes `deleted`,
# so it also sleeps after a step that only deletes (--prune).
SLOWDOWN = '''
"""Test plugin: sleep in every extraction, and after the sinks took each step."""
import os
import time

from ingest import hookimpl


@hookimpl(wrapper=True)
def ingest_extract(source):
    with open("extracting.log", "a") as log:  # in the run's cwd: tests wait for it
        log.write(source.path.name + "\\n")
    time.sleep(float(os.environ.get("SLOWDOWN_S", "0")))
    return (yield)


@hookimpl(trylast=True)
def ingest_sink(batch, deleted):
    time.sleep(float(os.environ.get("SINK_SLOWDOWN_S", "0")))
'''
# The CLI, with the JSONL sink's rewrite killing its own process (SIGKILL) at $KILL_AT:
# "copy" after the first run of lines was copied, "data-rename" before the new file is
# renamed over the old, "marker-rename" between that rename and the marker's, "unlink"
# after both, before the pending file is removed.
KILLING_DRIVER = '''
import os, signal, sys
from ingest_plugins import jsonl_sink

point = os.environ["KILL_AT"]
renamed = []
real_copy, real_replace, real_unlink = jsonl_sink.copy_range, os.replace, jsonl_sink.unlink

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def copy_range(*args):
    real_copy(*args)
    if point == "copy":
        die()

def replace(source, target, *args, **kwargs):
    if str(source).endswith(jsonl_sink.REWRITE_SUFFIX):
        if point == ("marker-rename" if renamed else "data-rename"):
            die()
        renamed.append(source)
    return real_replace(source, target, *args, **kwargs)

def unlink(path):
    if point == "unlink" and len(renamed) == 2 and str(path).endswith(jsonl_sink.PENDING_SUFFIX):
        die()
    real_unlink(path)

jsonl_sink.copy_range, os.replace, jsonl_sink.unlink = copy_range, replace, unlink
from ingest.cli import main
sys.argv = ["ingest", *sys.argv[1:]]
main()
'''

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

DocChunks = dict[str, set[str]]


@dataclass(frozen=True)
class Corpus:
    """The generated PDFs, the plugin folder, and what a clean run writes."""

    pdfs: Path
    plugins: Path
    records: dict[str, dict[str, Any]]  # chunk_id -> the record, "source" left out
    doc_chunks: DocChunks  # doc_id -> its chunk ids
    small: DocChunks  # the same with SMALL chunks
    files: dict[str, str]  # file name -> doc_id


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("exactly-once")
    pdfs = root / "pdfs"
    pdfs.mkdir()
    numbered_pdfs(pdfs, DOCUMENTS, words="the heron waits by the water.")
    plugins = root / "plugins" / "eo_plugins"
    plugins.mkdir(parents=True)
    (plugins / "__init__.py").write_text("", "utf-8")
    (plugins / "slowdown.py").write_text(SLOWDOWN, "utf-8")
    partial = Corpus(pdfs, plugins.parent, {}, {}, {}, {})
    references: list[dict[str, dict[str, Any]]] = []
    files: dict[str, str] = {}
    for name, extra in (("reference", []), ("reference-small", SMALL)):
        folder = root / name
        folder.mkdir()
        completed = start(partial, folder, workers=0, slowdown=0, extra=extra).wait(timeout=60)
        assert completed == 0
        records = read_jsonl(folder / "out.jsonl")
        files.update({Path(r["source"]).name: r["doc_id"] for r in records})
        references.append({r["chunk_id"]: _strip(r) for r in records})
    default, small = references
    doc_chunks, small_chunks = by_doc(default), by_doc(small)
    assert len(doc_chunks) == DOCUMENTS and len(default) > 3 * DOCUMENTS
    assert set(small_chunks) == set(doc_chunks) and len(small) > len(default)
    return Corpus(pdfs, plugins.parent, default, doc_chunks, small_chunks, files)


def in_flight(cwd: Path, count: int, timeout: float = 60.0) -> None:
    """Wait until ``count`` extractions started in the run whose cwd is ``cwd``: start-up
    takes longer on a loaded machine, and a Ctrl-C before dispatch tests nothing."""
    log = cwd / "extracting.log"
    deadline = time.monotonic() + timeout
    while not (log.exists() and len(log.read_text().splitlines()) >= count):
        assert time.monotonic() < deadline, f"fewer than {count} extractions started"
        time.sleep(0.02)


def start(
    corpus: Corpus,
    cwd: Path,
    *,
    workers: int,
    slowdown: float,
    sink_slowdown: float = 0,
    extra: Sequence[str] = (),
    inputs: Path | None = None,
    kill_at: str | None = None,
) -> subprocess.Popen[str]:
    """``ingest run`` in ``cwd`` (its rootdir: the cache and the sinks live there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(corpus.plugins), env.get("PYTHONPATH", "")) if p
    )
    env["SLOWDOWN_S"] = str(slowdown)
    env["SINK_SLOWDOWN_S"] = str(sink_slowdown)
    program = [str(SCRIPT)]
    if kill_at is not None:
        env["KILL_AT"] = kill_at
        program = [sys.executable, "-c", KILLING_DRIVER]
    command = [
        *program, "run", str(inputs or corpus.pdfs),
        "--sink", "jsonl:out.jsonl", "--sink", "sqlite:out.db",
        "-o", "run.batch_size=4", "--workers", str(workers),
        "-p", "eo_plugins.slowdown", "--progress", "none", *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell job has
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "source"}


def by_doc(chunks: Any) -> DocChunks:
    """Chunk ids (``doc_id:index``) grouped by document."""
    grouped: DocChunks = {}
    for chunk_id in chunks:
        grouped.setdefault(chunk_id.rpartition(":")[0], set()).add(chunk_id)
    return grouped


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


jsonl_lines = lines


def cached_docs(cwd: Path) -> dict[str, int]:
    """The documents the cache records as held by both sinks in one known version, to the
    chunk size that version was made with."""
    db_path = cwd / ".ingest_cache" / "cache.db"
    if not db_path.exists():
        return {}
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        rows = db.execute(
            "SELECT held.doc_id, MIN(described) FROM held JOIN fingerprints USING (fingerprint) "
            "GROUP BY held.doc_id HAVING COUNT(*) = 2 AND COUNT(DISTINCT fingerprint) = 1"
        ).fetchall()
    return {doc: json.loads(described)["settings"]["chunk"]["size"] for doc, described in rows}


def cached_doc_ids(cwd: Path) -> set[str]:
    return set(cached_docs(cwd))


def sqlite_chunks(cwd: Path) -> list[str]:
    if not (cwd / "out.db").exists():
        return []
    with contextlib.closing(sqlite3.connect(cwd / "out.db")) as db:
        return [row[0] for row in db.execute("SELECT chunk_id FROM chunks")]


def recovered_jsonl(cwd: Path) -> list[dict[str, Any]]:
    """The JSONL records as the sink's next open leaves them (what a rerun starts from)."""
    out = cwd / "out.jsonl"
    if not out.exists():
        return []
    JsonlSink(out).close()
    return read_jsonl(out)


def check_after_kill(corpus: Corpus, cwd: Path) -> set[str]:
    """Whatever the kill interrupted, the cache never claims what the sinks do not hold."""
    references = {1200: corpus.doc_chunks, 300: corpus.small}
    in_jsonl = by_doc(r["chunk_id"] for r in recovered_jsonl(cwd))
    in_sqlite = by_doc(sqlite_chunks(cwd))
    cached = cached_docs(cwd)
    for doc_id, size in cached.items():
        expected = references[size][doc_id]
        assert in_jsonl.get(doc_id) == expected, f"{doc_id} cached, not so in the JSONL"
        assert in_sqlite.get(doc_id) == expected, f"{doc_id} cached, not so in SQLite"
    return set(cached)


def check_complete(
    corpus: Corpus, cwd: Path, *, small: bool = False, inputs: Path | None = None
) -> None:
    """Both sinks hold every record of the reference run of the files in ``inputs`` exactly
    once, and nothing else."""
    reference = corpus.small if small else corpus.doc_chunks
    kept = {corpus.files[path.name] for path in (inputs or corpus.pdfs).glob("*.pdf")}
    expected = {doc: chunks for doc, chunks in reference.items() if doc in kept}
    records = read_jsonl(cwd / "out.jsonl")
    ids = [r["chunk_id"] for r in records]
    assert len(ids) == len(set(ids)), "a chunk is in the JSONL file twice"
    assert by_doc(ids) == expected
    if not small:
        assert {r["chunk_id"]: _strip(r) for r in records} == {
            chunk: corpus.records[chunk] for chunks in expected.values() for chunk in chunks
        }
    chunks = sqlite_chunks(cwd)
    assert len(chunks) == len(set(chunks)) and by_doc(chunks) == expected
    with contextlib.closing(sqlite3.connect(cwd / "out.db")) as db:
        assert db.execute("SELECT COUNT(*) FROM documents").fetchone() == (len(kept),)
        assert db.execute("SELECT COUNT(*) FROM pages").fetchone() == (3 * len(kept),)
    assert cached_doc_ids(cwd) == set(expected)
    assert not (cwd / "out.jsonl.pending").exists()


def kill_when(process: subprocess.Popen[str], ready: Callable[[], bool], sig: int) -> bool:
    """Send ``sig`` to the driver once ``ready()``; False if it ended first."""
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            os.kill(process.pid, sig)
            return True
        time.sleep(0.002)
    return False


def finish(
    corpus: Corpus, cwd: Path, workers: int, extra: Sequence[str] = (), inputs: Path | None = None
) -> str:
    """Run the same command to the end; its summary line."""
    process = start(corpus, cwd, workers=workers, slowdown=0, extra=extra, inputs=inputs)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out.strip().splitlines()[-1].strip("= ")


def reap(process: subprocess.Popen[str]) -> None:
    process.communicate(timeout=30)
    # A killed driver's workers die with it (PDEATHSIG); make sure nothing outlives the test.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


# Kill points, in order (several kills in a row): N > 0 is "once N records are in the JSONL
# file", STARTING a random delay from the start (during start-up or collection, often before
# any worker exists), WRITING a random delay after the first record was written; then the
# seconds each batch waits after the sinks wrote it (a kill then lands between the sinks'
# flush and the cache commit).
STARTING, WRITING = -1.0, -2.0
KILL_PLANS: list[tuple[str, list[float], float]] = [
    ("first-batch", [1], 0.03),
    ("mid-run", [120], 0.03),
    ("near-the-end-in-a-write", [250], 0),
    ("twice", [60, 200], 0.03),
    ("random-delays", [STARTING, WRITING, WRITING], 0),
]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize(
    ("name", "plan", "sink_slowdown"), KILL_PLANS, ids=[plan[0] for plan in KILL_PLANS]
)
def test_sigkill_then_rerun_gives_every_record_once(
    corpus: Corpus,
    tmp_path: Path,
    workers: int,
    name: str,
    plan: list[float],
    sink_slowdown: float,
) -> None:
    out = tmp_path / "out.jsonl"
    torn = False
    rng = random.Random(f"{name}-{workers}")
    for point in plan:
        process = start(
            corpus, tmp_path, workers=workers, slowdown=0.01, sink_slowdown=sink_slowdown
        )
        if point > 0:
            killed = kill_when(process, lambda n=point: jsonl_lines(out) >= n, signal.SIGKILL)
            assert killed, f"the run ended before {point} records"
        else:
            if point == WRITING:
                before = jsonl_lines(out)
                kill_when(process, lambda b=before: jsonl_lines(out) > b, 0)  # 0: only wait
            delay = rng.uniform(0.02, 0.4)
            time.sleep(delay)
            point = round(point - delay, 3)  # for the report below
            process.send_signal(signal.SIGKILL)
        reap(process)
        cached_now = check_after_kill(corpus, tmp_path)
        print(f"killed at {point}: {jsonl_lines(out)} lines, {len(cached_now)} cached")
        if out.exists() and not torn and len(cached_now) < DOCUMENTS:
            # What a kill in the middle of a batch's write leaves: records past the commit
            # marker, the last one cut short. The sink must drop them on open.
            with out.open("ab") as handle:
                handle.write(json.dumps(next(iter(corpus.records.values()))).encode() + b"\n")
                handle.write(b'{"doc_id":"half a rec')
            torn = True
    cached = cached_doc_ids(tmp_path)
    summary = finish(corpus, tmp_path, workers)
    check_complete(corpus, tmp_path)
    # The rerun skipped, without parsing, exactly what the cache had; the rest was ingested.
    expected = f"{DOCUMENTS - len(cached)} ingested"
    if cached:
        expected += f", {len(cached)} skipped (unchanged)"
    assert summary.startswith(expected), summary


@pytest.mark.parametrize("workers", [0, 2])
def test_ctrl_c_keeps_whole_batches_and_exits_2(
    corpus: Corpus, tmp_path: Path, workers: int
) -> None:
    """SIGINT to the process group, as a terminal sends it: stop, flush, summary, exit 2."""
    out = tmp_path / "out.jsonl"
    process = start(corpus, tmp_path, workers=workers, slowdown=0.1)
    assert kill_when(process, lambda: jsonl_lines(out) >= 10, 0)  # 0: only wait
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    elapsed = time.monotonic() - sent
    assert process.returncode == 2, stderr
    assert elapsed < 5, f"took {elapsed:.1f}s to stop"
    assert "(interrupted)" in stdout.strip().splitlines()[-1]
    assert "Traceback" not in stderr
    print(f"stopped {elapsed:.2f}s after SIGINT: {stdout.strip().splitlines()[-1]}")

    # Whole documents only, the same ones in both sinks and in the cache.
    cached = check_after_kill(corpus, tmp_path)
    records = read_jsonl(out)
    in_jsonl: dict[str, set[str]] = {}
    for record in records:
        in_jsonl.setdefault(record["doc_id"], set()).add(record["chunk_id"])
    assert 0 < len(cached) < DOCUMENTS
    assert set(in_jsonl) == cached
    assert all(in_jsonl[doc] == corpus.doc_chunks[doc] for doc in in_jsonl)
    assert set(sqlite_chunks(tmp_path)) == set().union(*in_jsonl.values())

    summary = finish(corpus, tmp_path, workers)
    assert summary.startswith(
        f"{DOCUMENTS - len(cached)} ingested, {len(cached)} skipped (unchanged)"
    ), summary
    check_complete(corpus, tmp_path)


@pytest.mark.parametrize("workers", [0, 2])
def test_second_ctrl_c_abandons_documents_in_flight(
    corpus: Corpus, tmp_path: Path, workers: int
) -> None:
    process = start(corpus, tmp_path, workers=workers, slowdown=60)
    in_flight(tmp_path, workers or 1)  # documents are in flight, none can finish
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.3)
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 2, stderr
    assert time.monotonic() - sent < 3
    assert stdout.strip().splitlines()[-1].strip("= ").startswith("0 ingested in")
    assert "(interrupted)" in stdout and "Traceback" not in stderr
    assert cached_doc_ids(tmp_path) == set() and not read_jsonl(tmp_path / "out.jsonl")


def test_ctrl_c_gives_documents_in_flight_a_grace_period(corpus: Corpus, tmp_path: Path) -> None:
    """A document that would take a minute is abandoned a few seconds after one Ctrl-C."""
    process = start(corpus, tmp_path, workers=0, slowdown=60)
    in_flight(tmp_path, 1)
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    elapsed = time.monotonic() - sent
    assert process.returncode == 2, stderr
    assert GRACE_S - 0.5 < elapsed < GRACE_S + 2
    assert "(interrupted)" in stdout.strip().splitlines()[-1]


# --------------------------------------------------------------------------------------------
# Killed while replacing, rewriting and pruning
# --------------------------------------------------------------------------------------------


def complete_first_run(corpus: Corpus, cwd: Path, inputs: Path | None = None) -> None:
    """A clean run to the end with the default chunking: what the killed run replaces."""
    summary = finish(corpus, cwd, 0, inputs=inputs)
    assert summary.startswith(f"{DOCUMENTS} ingested in"), summary
    check_complete(corpus, cwd)


@pytest.mark.parametrize("rerun", ["new", "old"])
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize(
    ("name", "plan", "sink_slowdown"),
    [("between-sinks-and-cache", [40], 0.3), ("twice", [20, 100], 0.03), ("in-a-write", [60], 0)],
)
def test_sigkill_while_replacing_then_rerun(
    corpus: Corpus,
    tmp_path: Path,
    workers: int,
    rerun: str,
    name: str,
    plan: list[int],
    sink_slowdown: float,
) -> None:
    """The chunking changed: every document is replaced, and the run is killed once its
    JSONL replacements reached N lines; a rerun with the new chunking, or the old one,
    gives exactly that chunking's records."""
    complete_first_run(corpus, tmp_path)
    pending = tmp_path / "out.jsonl.pending"
    for point in plan:
        process = start(
            corpus, tmp_path, workers=workers, slowdown=0.01, sink_slowdown=sink_slowdown,
            extra=SMALL,
        )  # fmt: skip
        assert kill_when(process, lambda n=point: lines(pending) >= n, signal.SIGKILL), name
        reap(process)
        cached = check_after_kill(corpus, tmp_path)
        print(f"killed at {point} pending lines: {len(cached)} cached")
    small = rerun == "new"
    summary = finish(corpus, tmp_path, workers, extra=SMALL if small else ())
    assert "ingested" in summary and "failed" not in summary
    check_complete(corpus, tmp_path, small=small)


@pytest.mark.parametrize("rerun", ["new", "old"])
@pytest.mark.parametrize("point", ["copy", "data-rename", "marker-rename", "unlink"])
def test_sigkill_while_rewriting_the_jsonl_file_then_rerun(
    corpus: Corpus, tmp_path: Path, point: str, rerun: str
) -> None:
    """Every document was replaced and committed; the JSONL sink's one rewrite, at the end
    of the run, is killed at each of its steps. The file is whole at every one, and the rerun
    finds the replacements committed: nothing to redo with the new chunking."""
    complete_first_run(corpus, tmp_path)
    process = start(corpus, tmp_path, workers=0, slowdown=0, extra=SMALL, kill_at=point)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    read_jsonl(tmp_path / "out.jsonl")  # a plain JSON-lines file, whatever the moment
    assert len(check_after_kill(corpus, tmp_path)) == DOCUMENTS
    if rerun == "new":
        summary = finish(corpus, tmp_path, 0, extra=SMALL)
        assert summary.startswith(f"0 ingested, {DOCUMENTS} skipped (unchanged)"), summary
    else:
        summary = finish(corpus, tmp_path, 0)
        assert summary.startswith(f"{DOCUMENTS} ingested in"), summary
    check_complete(corpus, tmp_path, small=rerun == "new")


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("point", ["between-sinks-and-cache", "data-rename", "marker-rename"])
def test_sigkill_while_pruning_then_rerun(
    corpus: Corpus, tmp_path: Path, workers: int, point: str
) -> None:
    """A third of the files are deleted and ``--prune`` is killed while it deletes their
    records; the rerun with ``--prune`` leaves exactly the records of the files left."""
    docs = tmp_path / "docs"
    shutil.copytree(corpus.pdfs, docs)
    complete_first_run(corpus, tmp_path, inputs=docs)
    kept = 2 * DOCUMENTS // 3
    for path in sorted(docs.glob("*.pdf"))[kept:]:
        path.unlink()
    pending = tmp_path / "out.jsonl.pending"
    if point == "between-sinks-and-cache":
        process = start(
            corpus, tmp_path, workers=workers, slowdown=0, sink_slowdown=2, extra=["--prune"],
            inputs=docs,
        )  # fmt: skip
        assert kill_when(process, pending.exists, signal.SIGKILL)
    else:
        process = start(
            corpus, tmp_path, workers=workers, slowdown=0, extra=["--prune"], inputs=docs,
            kill_at=point,
        )  # fmt: skip
    reap(process)
    assert process.returncode == -signal.SIGKILL
    read_jsonl(tmp_path / "out.jsonl")
    assert len(check_after_kill(corpus, tmp_path)) >= kept
    summary = finish(corpus, tmp_path, workers, extra=["--prune"], inputs=docs)
    assert summary.startswith(f"0 ingested, {kept} skipped (unchanged)"), summary
    if point == "between-sinks-and-cache":  # the cache had not heard of the deletions yet
        assert f", {DOCUMENTS - kept} removed in" in summary, summary
    check_complete(corpus, tmp_path, inputs=docs)
