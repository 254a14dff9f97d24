"""Whole ``ingest run`` processes against a throwaway PostgreSQL server: two runs into one
database at once, SIGKILL in the middle of a step, and the server restarted or stopped in the
middle of a step.

The corpus is 60 generated PDFs of three pages, written with ``run.batch_size=4`` (fifteen
steps). To land a kill or a restart inside a step rather than between two, a test adds a
trigger that sleeps after the sink's ``COPY`` into ``chunks``; the step's transaction is then
open, its rows written but not committed, until the sleep ends. After each scenario the
database must hold every document of the files run exactly once, each exactly as a clean run
writes it (chunks, pages, the document's row), and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pgserver
import psycopg
import pytest
from ingest import ExitCode
from ingest_plugins.postgres import Target, open_sink
from pdfgen import numbered_pdfs

DOCUMENTS = 60
SCRIPT = Path(sys.executable).parent / "ingest"
STEP_SLEEP_S = 0.4

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@dataclass(frozen=True)
class Corpus:
    """The generated PDFs, and what a clean run writes of them."""

    pdfs: Path
    chunks: dict[str, dict[str, str]]  # doc_id -> chunk_id -> text
    files: dict[str, str]  # file name -> doc_id

    def docs_of(self, folder: Path) -> set[str]:
        return {self.files[path.name] for path in folder.glob("*.pdf")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("pg-runs")
    pdfs = root / "pdfs"
    pdfs.mkdir()
    numbered_pdfs(pdfs, DOCUMENTS, words="the grebe dives in the reeds.")
    reference = root / "reference"
    reference.mkdir()
    done = subprocess.run(
        [str(SCRIPT), "run", str(pdfs), "--sink", "jsonl:out.jsonl", "--progress", "none",
         "-o", "cache.enabled=false"],
        cwd=reference, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    chunks: dict[str, dict[str, str]] = {}
    files: dict[str, str] = {}
    for line in (reference / "out.jsonl").read_text("utf-8").splitlines():
        record = json.loads(line)
        chunks.setdefault(record["doc_id"], {})[record["chunk_id"]] = record["text"]
        files[Path(record["source"]).name] = record["doc_id"]
    assert len(chunks) == DOCUMENTS
    return Corpus(pdfs, chunks, files)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("INGEST_", "PG"))}


def start(cwd: Path, url: str, inputs: Path, *extra: str) -> subprocess.Popen[str]:
    """``ingest run INPUTS --sink URL`` in ``cwd`` (its cache lives there), four documents a
    step."""
    cwd.mkdir(parents=True, exist_ok=True)
    command = [
        str(SCRIPT), "run", str(inputs), "--sink", url, "-o", "run.batch_size=4",
        "--workers", "0", "--progress", "none", *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def summary(out: str) -> str:
    return out.strip().splitlines()[-1].strip("= ")


def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(Target.parse(url).conninfo, autocommit=True) as connection:
        cursor = connection.execute(sql, args or None)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def stored(url: str) -> dict[str, dict[str, str]]:
    """Each stored document to its chunks; checks that its row and its pages are whole."""
    chunks: dict[str, dict[str, str]] = {}
    for doc_id, chunk_id, text in query(url, "SELECT doc_id, chunk_id, text FROM ingest.chunks"):
        chunks.setdefault(doc_id, {})[chunk_id] = text
    documents = dict(query(url, "SELECT doc_id, chunk_count FROM ingest.documents"))
    assert documents == {doc: len(texts) for doc, texts in chunks.items()}, "rows out of step"
    pages = dict(query(url, "SELECT doc_id, count(*) FROM ingest.pages GROUP BY doc_id"))
    assert pages == dict.fromkeys(documents, 3), "pages out of step"
    return chunks


def check_exact(url: str, corpus: Corpus, docs: set[str]) -> None:
    """The database holds exactly the clean run's records of ``docs``."""
    assert stored(url) == {doc: corpus.chunks[doc] for doc in docs}


def cached(cwd: Path) -> set[str]:
    """The documents the run's cache records as held (in a known version)."""
    path = cwd / ".ingest_cache" / "cache.db"
    if not path.exists():
        return set()
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {doc for (doc,) in db.execute("SELECT doc_id FROM held WHERE fingerprint != ''")}


def recorded_writes(cwd: Path) -> int:
    """The sink's write count a run's cache recorded last."""
    with contextlib.closing(sqlite3.connect(cwd / ".ingest_cache" / "cache.db")) as db:
        [(writes,)] = db.execute("SELECT writes FROM sinks").fetchall()
    return int(writes)


@contextlib.contextmanager
def slow_steps(url: str) -> Iterator[None]:
    """Every step sleeps inside its transaction, after its rows went into ``chunks``."""
    open_sink(url).close()  # the schema, made as a run makes it
    query(url, f"""CREATE FUNCTION public.slow_step() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep({STEP_SLEEP_S}); RETURN NULL; END $$""")
    query(url, "CREATE TRIGGER slow_step AFTER INSERT ON ingest.chunks "
               "FOR EACH STATEMENT EXECUTE FUNCTION public.slow_step()")  # fmt: skip
    try:
        yield
    finally:
        with contextlib.suppress(psycopg.Error):
            query(url, "DROP TRIGGER slow_step ON ingest.chunks")


def in_step(url: str, *, after: int = 0) -> Callable[[], bool]:
    """A probe: a run's step is inside its transaction, sleeping, after ``after`` steps."""

    def probe() -> bool:
        with contextlib.suppress(psycopg.Error):
            (writes,) = query(url, "SELECT writes FROM ingest.ingest_state")[0]
            sleeping = query(
                url,
                "SELECT 1 FROM pg_stat_activity WHERE application_name = 'ingest' "
                "AND wait_event = 'PgSleep'",
            )
            return writes >= after and bool(sleeping)
        return False

    return probe


def wait_for(ready: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        assert process.poll() is None, f"the run ended first: {process.communicate()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# --------------------------------------------------------------------------------------------
# Two runs into one database at once
# --------------------------------------------------------------------------------------------


def test_two_runs_into_one_database_at_once(
    corpus: Corpus, pg_url: str, tmp_path: Path
) -> None:
    """Overlapping inputs (documents 20 to 39 in both): every document once, whole; each run's
    next rerun skips or refills, never duplicates."""
    folders = {"a": tmp_path / "docs-a", "b": tmp_path / "docs-b"}
    for name, numbers in (("a", range(40)), ("b", range(20, 60))):
        folders[name].mkdir()
        for number in numbers:
            shutil.copy(corpus.pdfs / f"doc{number:03d}.pdf", folders[name])
    runs = {name: start(tmp_path / f"run-{name}", pg_url, folder) for name, folder in
            folders.items()}  # fmt: skip
    overlapped = False
    while not overlapped and all(run.poll() is None for run in runs.values()):
        # A step committed while both runs are still going: they write at the same time.
        with contextlib.suppress(psycopg.Error, IndexError):
            overlapped = query(pg_url, "SELECT writes FROM ingest.ingest_state")[0][0] > 0
        time.sleep(0.02)
    results = {name: finish(run) for name, run in runs.items()}
    for name, (code, out, err) in results.items():
        assert code == 0, (name, err)
        assert summary(out).startswith("40 ingested in"), (name, out)
    assert overlapped, "the two runs did not write at the same time"
    check_exact(pg_url, corpus, set(corpus.chunks))
    # Each run's steps counted once: 10 steps of 4 each.
    assert query(pg_url, "SELECT writes FROM ingest.ingest_state") == [(20,)]

    # Each run's cache knows only its own steps. The run that wrote last reruns first: it
    # skips, or writes its documents again if the other's steps came between its own. The
    # other run's rerun then finds the last step another's: it writes everything again,
    # replacing it; and, having written last, its next rerun skips.
    order = sorted(runs, key=lambda n: recorded_writes(tmp_path / f"run-{n}"), reverse=True)
    assert recorded_writes(tmp_path / f"run-{order[0]}") == 20
    for name in order:
        code, out, err = finish(start(tmp_path / f"run-{name}", pg_url, folders[name]))
        assert code == 0, err
        if name == order[1]:
            assert summary(out).startswith("40 ingested in"), (out, err)
            assert "every document is written to it again" in err
        else:
            assert summary(out).startswith(("40 ingested in", "0 ingested, 40 skipped")), out
        check_exact(pg_url, corpus, set(corpus.chunks))
    code, out, _ = finish(start(tmp_path / f"run-{order[1]}", pg_url, folders[order[1]]))
    assert summary(out).startswith("0 ingested, 40 skipped (unchanged)"), out


# --------------------------------------------------------------------------------------------
# SIGKILL in the middle of a step
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("after", [0, 6])
def test_sigkill_mid_step_then_rerun_gives_every_record_once(
    corpus: Corpus, pg_url: str, tmp_path: Path, after: int
) -> None:
    with slow_steps(pg_url):
        process = start(tmp_path, pg_url, corpus.pdfs)
        wait_for(in_step(pg_url, after=after), process)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        # The step in flight is not in the database; every step before it is, whole, and
        # is exactly what the cache records.
        [(writes,)] = query(pg_url, "SELECT writes FROM ingest.ingest_state")
        kept = cached(tmp_path)
        assert writes >= after and len(kept) == 4 * writes
        check_exact(pg_url, corpus, kept)
    code, out, err = finish(start(tmp_path, pg_url, corpus.pdfs))
    assert code == 0, err
    expected = f"{DOCUMENTS - len(kept)} ingested" + (
        f", {len(kept)} skipped (unchanged)" if kept else " in"
    )
    assert summary(out).startswith(expected), out
    check_exact(pg_url, corpus, set(corpus.chunks))
    assert cached(tmp_path) == set(corpus.chunks)


# --------------------------------------------------------------------------------------------
# The server restarted, or gone, in the middle of a step
# --------------------------------------------------------------------------------------------


@pytest.fixture
def own_server() -> Iterator[pgserver.Server]:
    """A server of the test's own, since the test stops it."""
    reason = pgserver.unavailable()
    if reason is not None:
        pytest.skip(reason)
    with pgserver.running() as server:
        yield server


def test_a_server_restarted_mid_step_is_reconnected_and_the_step_written_once(
    corpus: Corpus, own_server: pgserver.Server, tmp_path: Path
) -> None:
    url = own_server.create_database("restarted")
    with slow_steps(url):
        process = start(tmp_path, url, corpus.pdfs)
        wait_for(in_step(url, after=3), process)
        own_server.restart("fast")  # ends the step's session: its transaction rolls back
        code, out, err = finish(process)
    assert code == 0, err
    assert summary(out).startswith(f"{DOCUMENTS} ingested in"), out
    assert "lost the server during a step of 4 documents" in err
    assert "writing the step again" in err
    check_exact(url, corpus, set(corpus.chunks))
    code, out, _ = finish(start(tmp_path, url, corpus.pdfs))
    assert summary(out).startswith(f"0 ingested, {DOCUMENTS} skipped (unchanged)"), out


def test_a_server_gone_for_longer_than_the_retry_stops_the_run_in_one_line(
    corpus: Corpus, own_server: pgserver.Server, tmp_path: Path
) -> None:
    own_server.add_password_role()
    own_server.execute(f"CREATE DATABASE gone OWNER {pgserver.PASSWORD_ROLE}")
    url = own_server.url("gone", user=pgserver.PASSWORD_ROLE)
    url = url.replace("@", f":{pgserver.PASSWORD}@", 1)
    with slow_steps(url):
        process = start(tmp_path, f"{url}?retry=2", corpus.pdfs)
        wait_for(in_step(url, after=2), process)
        own_server.stop("fast")
        began = time.monotonic()
        code, out, err = finish(process)
        assert time.monotonic() - began < 30
        # A sink that cannot write stops the run as a full disk does.
        assert code == ExitCode.WRITE_ERROR, (out, err)
        errors = [line for line in err.splitlines() if line.startswith("ERROR:")]
        assert len(errors) == 1, err
        assert errors[0].startswith("ERROR: sink postgresql://ingest_pw:**********@")
        assert "lost the server during a step of 4 documents" in errors[0]
        assert "running it again writes that step again" in errors[0]
        assert pgserver.PASSWORD not in out + err and "Traceback" not in err
        own_server.start()
        [(writes,)] = query(url, "SELECT writes FROM ingest.ingest_state")
        kept = cached(tmp_path)
        assert writes >= 2 and len(kept) == 4 * writes
        check_exact(url, corpus, kept)
    # The same command again (the cache keys a sink by its URL as written).
    code, out, err = finish(start(tmp_path, f"{url}?retry=2", corpus.pdfs))
    assert code == 0, err
    expected = f"{DOCUMENTS - len(kept)} ingested, {len(kept)} skipped (unchanged)"
    assert summary(out).startswith(expected), out
    check_exact(url, corpus, set(corpus.chunks))
