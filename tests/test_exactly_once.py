"""Exactly once across kill -9 and Ctrl-C, with the real CLI in real processes.

Each scenario runs ``ingest run`` over 60 generated PDFs into a JSONL and an SQLite sink with
``run.batch_size=4`` (so batches are flushed fifteen times), kills it with SIGKILL at some
point (after N records reached the JSONL file, or after a delay that may fall during start-up
or collection), checks what the kill left, runs the same command again to the end and
compares both sinks with a clean reference run: every chunk present, none twice.

What the kill must leave, whenever it lands: every document the cache records as ingested
is wholly present in both sinks (the cache commit comes after the sinks flushed), and the
JSONL file holds only whole lines up to its commit marker.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ingest.interrupt import GRACE_S
from pdfgen import text_pdf

DOCUMENTS = 60
SCRIPT = Path(sys.executable).parent / "ingest"
# Sleeps in every extraction, so that kills and signals land mid-run rather than after it,
# and after every sink wrote a batch, so that a kill lands in the stretch between the sinks'
# flush and the cache commit (the one where sinks must drop or replace what they hold).
SLOWDOWN = '''
"""Test plugin: sleep in every extraction, and after the sinks wrote each batch."""
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
def ingest_sink(batch):
    time.sleep(float(os.environ.get("SINK_SLOWDOWN_S", "0")))
'''

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]


@dataclass(frozen=True)
class Corpus:
    """The generated PDFs, the plugin folder, and what a clean run writes."""

    pdfs: Path
    plugins: Path
    records: dict[str, dict[str, Any]]  # chunk_id -> the record, "source" left out
    doc_chunks: dict[str, set[str]]  # doc_id -> its chunk ids


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("exactly-once")
    pdfs = root / "pdfs"
    pdfs.mkdir()
    for number in range(DOCUMENTS):
        pages = [
            "\n".join(
                f"Document {number} page {page} line {line}: the heron waits by the water."
                for line in range(25)
            )
            for page in (1, 2, 3)
        ]
        text_pdf(pdfs / f"doc{number:03d}.pdf", pages, title=f"Document {number}")
    plugins = root / "plugins" / "eo_plugins"
    plugins.mkdir(parents=True)
    (plugins / "__init__.py").write_text("", "utf-8")
    (plugins / "slowdown.py").write_text(SLOWDOWN, "utf-8")
    reference = root / "reference"
    reference.mkdir()
    partial = Corpus(pdfs, plugins.parent, {}, {})
    completed = start(partial, reference, workers=0, slowdown=0).wait(timeout=60)
    assert completed == 0
    records = {r["chunk_id"]: _strip(r) for r in read_jsonl(reference / "out.jsonl")}
    doc_chunks: dict[str, set[str]] = {}
    for chunk_id, record in records.items():
        doc_chunks.setdefault(record["doc_id"], set()).add(chunk_id)
    assert len(doc_chunks) == DOCUMENTS and len(records) > 3 * DOCUMENTS
    return Corpus(pdfs, plugins.parent, records, doc_chunks)


def in_flight(cwd: Path, count: int, timeout: float = 60.0) -> None:
    """Wait until ``count`` extractions started in the run whose cwd is ``cwd``: start-up
    takes longer on a loaded machine, and a Ctrl-C before dispatch tests nothing."""
    log = cwd / "extracting.log"
    deadline = time.monotonic() + timeout
    while not (log.exists() and len(log.read_text().splitlines()) >= count):
        assert time.monotonic() < deadline, f"fewer than {count} extractions started"
        time.sleep(0.02)


def start(
    corpus: Corpus, cwd: Path, *, workers: int, slowdown: float, sink_slowdown: float = 0
) -> subprocess.Popen[str]:
    """``ingest run`` in ``cwd`` (its rootdir: the cache and the sinks live there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(corpus.plugins), env.get("PYTHONPATH", "")) if p
    )
    env["SLOWDOWN_S"] = str(slowdown)
    env["SINK_SLOWDOWN_S"] = str(sink_slowdown)
    command = [
        str(SCRIPT), "run", str(corpus.pdfs),
        "--sink", "jsonl:out.jsonl", "--sink", "sqlite:out.db",
        "-o", "run.batch_size=4", "--workers", str(workers),
        "-p", "eo_plugins.slowdown", "--progress", "none",
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


def jsonl_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def cached_doc_ids(cwd: Path) -> set[str]:
    """The documents the cache records as flushed to both sinks."""
    db_path = cwd / ".ingest_cache" / "cache.db"
    if not db_path.exists():
        return set()
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT content_id FROM ingested GROUP BY content_id HAVING COUNT(*) = 2"
        ).fetchall()
    return {content_id[:32] for (content_id,) in rows}


def sqlite_chunks(cwd: Path) -> list[str]:
    if not (cwd / "out.db").exists():
        return []
    with sqlite3.connect(cwd / "out.db") as db:
        return [row[0] for row in db.execute("SELECT chunk_id FROM chunks")]


def committed_jsonl(cwd: Path) -> list[dict[str, Any]]:
    """The JSONL records up to the sink's commit marker (what a rerun keeps)."""
    data = (cwd / "out.jsonl").read_bytes() if (cwd / "out.jsonl").exists() else b""
    marker = cwd / "out.jsonl.commit"
    if marker.exists() and marker.read_bytes():
        data = data[: int(marker.read_bytes().split()[2])]
    assert not data or data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines()]


def check_after_kill(corpus: Corpus, cwd: Path) -> set[str]:
    """Whatever the kill interrupted, the cache never claims more than the sinks hold."""
    cached = cached_doc_ids(cwd)
    in_jsonl = {r["chunk_id"] for r in committed_jsonl(cwd)}
    in_sqlite = set(sqlite_chunks(cwd))
    for doc_id in cached:
        assert corpus.doc_chunks[doc_id] <= in_jsonl, f"{doc_id} cached, not in the JSONL"
        assert corpus.doc_chunks[doc_id] <= in_sqlite, f"{doc_id} cached, not in SQLite"
    return cached


def check_complete(corpus: Corpus, cwd: Path) -> None:
    """Both sinks hold every record of the reference run exactly once."""
    records = read_jsonl(cwd / "out.jsonl")
    ids = [r["chunk_id"] for r in records]
    assert len(ids) == len(set(ids)), "a chunk is in the JSONL file twice"
    assert {r["chunk_id"]: _strip(r) for r in records} == corpus.records
    chunks = sqlite_chunks(cwd)
    assert len(chunks) == len(set(chunks)) and set(chunks) == set(corpus.records)
    with sqlite3.connect(cwd / "out.db") as db:
        assert db.execute("SELECT COUNT(*) FROM documents").fetchone() == (DOCUMENTS,)
        assert db.execute("SELECT COUNT(*) FROM pages").fetchone() == (3 * DOCUMENTS,)
    assert cached_doc_ids(cwd) == set(corpus.doc_chunks)


def kill_when(process: subprocess.Popen[str], ready: Callable[[], bool], sig: int) -> bool:
    """Send ``sig`` to the driver once ``ready()``; False if it ended first."""
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            os.kill(process.pid, sig)
            return True
        time.sleep(0.002)
    return False


def finish(corpus: Corpus, cwd: Path, workers: int) -> str:
    """Run the same command to the end; its summary line."""
    process = start(corpus, cwd, workers=workers, slowdown=0)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out.strip().splitlines()[-1]


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
    assert summary.strip("= ").startswith(expected), summary


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
    assert summary.strip("= ").startswith(
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
