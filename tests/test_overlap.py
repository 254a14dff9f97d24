"""The driver keeps its workers busy: each worker holds its next task, and the
sinks write on a thread of their own while dispatch goes on; nothing of exactly once or of
the workers' deadlines is lost by it. Real worker processes and real PDFs."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from ingest import Document, Metadata, Page, Source, WriteError, hookimpl
from ingest.config import build_settings_model
from ingest.manager import build_manager
from ingest.testing import Runner
from ingest.workers import Lost, WorkerPool
from ingest.workers.pool import QUEUE_MAX_BYTES
from ingest.workers.tasks import FinishTask, FirstTask
from pdfgen import text_pdf
from test_hooks import TextPlugin
from test_workers import FAULTS, variant

# -- the sinks' thread -------------------------------------------------------------------------


class Journal:
    """A plugin writing one journal: when each batch was written (by the sink it opens), on
    which thread, and when each document was reported as ingested."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.entries: list[tuple[str, str]] = []
        self.threads: set[str] = set()
        self.writers: list[threading.Thread] = []
        self.writing = threading.Lock()
        self.fail_on = fail_on

    @hookimpl
    def ingest_sink_open(self, scheme: str) -> object | None:
        return JournalSink(self) if scheme == "journal" else None

    @hookimpl
    def ingest_progress(self, event: Any) -> None:
        if event.kind == "ingested":
            self.entries.append(("ingested", event.source.path.name))

    def write(self, batch: Sequence[Document]) -> None:
        assert self.writing.acquire(blocking=False), "two batches written at once"
        try:
            self.threads.add(threading.current_thread().name)
            self.writers.append(threading.current_thread())
            names = [document.source.path.name for document in batch]
            if self.fail_on in names:
                raise ValueError(f"journal refuses {self.fail_on}")
            self.entries += [("written", name) for name in names]
            time.sleep(0.05)  # a slow disk: dispatch must not wait for it
        finally:
            self.writing.release()


class JournalSink:
    """The sink :class:`Journal` opens."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    @hookimpl
    def ingest_sink(self, batch: Sequence[Document]) -> None:
        self.journal.write(batch)


@pytest.fixture
def many_texts(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for number in range(6):
        (folder / f"{number}.txt").write_text(f"text number {number}")
    return folder


def test_sinks_write_on_one_thread_in_order_before_the_documents_count(
    ingest_pipeline: Runner, many_texts: Path
) -> None:
    journal = Journal()
    run = ingest_pipeline(
        [many_texts],
        plugins=[TextPlugin(), journal],
        sinks=["journal:x"],
        transforms=[],
        run={"batch_size": 2},
    )
    assert run.result.ingested == 6
    assert journal.threads == {"ingest-sinks"}
    # One thread wrote the three batches, and it ended with the run.
    assert len(journal.writers) == 3
    assert len(set(map(id, journal.writers))) == 1
    assert not journal.writers[0].is_alive()
    names = [f"{n}.txt" for n in range(6)]
    assert [name for kind, name in journal.entries if kind == "written"] == names
    # A document counts as ingested only once its batch was written (and committed).
    for name in names:
        assert journal.entries.index(("written", name)) < journal.entries.index(
            ("ingested", name)
        )


def test_a_sink_error_still_ends_the_run_with_that_error(
    ingest_pipeline: Runner, many_texts: Path
) -> None:
    journal = Journal(fail_on="3.txt")
    # A sink's error ends the run as a write error naming the sink and its cause.
    with pytest.raises(WriteError, match=r"Journal could not write .*journal refuses 3\.txt"):
        ingest_pipeline(
            [many_texts],
            plugins=[TextPlugin(), journal],
            sinks=["journal:x"],
            transforms=[],
            run={"batch_size": 2},
        )
    # What the sink wrote before is reported; the refused batch and the later ones are not.
    ingested = [name for kind, name in journal.entries if kind == "ingested"]
    assert ingested == ["0.txt", "1.txt"]


# -- the task each worker holds ----------------------------------------------------------------


def pool_of(tmp_path: Path, size: int) -> WorkerPool:
    manager = build_manager([FAULTS])
    settings = build_settings_model(manager.collect_sections())().with_dotted(
        {"collect.inputs": [str(tmp_path)]}
    )
    return WorkerPool(size, specs=manager.specs, settings=settings, max_memory=None, queue_depth=2)


def task(path: Path) -> FirstTask:
    return FirstTask(Source.from_path(path), ("pdfium",), ("pdfium",), None)


def ready(pool: WorkerPool, room: int) -> None:
    deadline = time.monotonic() + 120
    while pool.idle < room:
        assert time.monotonic() < deadline, "the workers did not become ready"
        assert pool.wait() == []


def answers(pool: WorkerPool, count: int) -> dict[int, Any]:
    done: dict[int, Any] = {}
    deadline = time.monotonic() + 180
    while len(done) < count:
        assert time.monotonic() < deadline, "no answer from the workers"
        done.update(pool.wait())
    return done


def test_a_worker_takes_two_tasks_and_runs_them_in_turn(tmp_path: Path) -> None:
    pool = pool_of(tmp_path, 1)
    pool.start()
    try:
        ready(pool, 2)
        assert pool.idle == 2
        assert pool.submit(0, task(variant(tmp_path / "docs", "a.pdf")), 60)
        assert pool.idle == 1
        assert pool.submit(1, task(variant(tmp_path / "docs", "b.pdf")), 60)
        assert pool.idle == 0
        assert not pool.submit(2, task(variant(tmp_path / "docs", "c.pdf")), 60)
        done = answers(pool, 2)
    finally:
        pool.close()
    assert all(isinstance(done[n], Document) for n in (0, 1))


def test_a_queued_task_goes_to_another_worker_when_its_worker_dies_first(tmp_path: Path) -> None:
    """The crash fails its own document only; the one queued behind it was never begun, so
    it is sent again (to the replacement worker) and ingested."""
    pool = pool_of(tmp_path, 1)
    pool.start()
    try:
        ready(pool, 2)
        assert pool.submit(0, task(variant(tmp_path / "docs", "segv.pdf")), 60)
        assert pool.submit(1, task(variant(tmp_path / "docs", "good.pdf")), 60)
        done = answers(pool, 2)
    finally:
        pool.close()
    assert isinstance(done[0], Lost) and done[0].reason == "crash"
    assert isinstance(done[1], Document)


def test_a_queued_task_gets_its_whole_budget_from_its_start(tmp_path: Path) -> None:
    """Two slow documents (1.5 s each) on one worker, 2.5 s each: the second ends about 3 s
    after it was sent, and must not be timed out for the time it waited."""
    pool = pool_of(tmp_path, 1)
    pool.start()
    try:
        ready(pool, 2)
        assert pool.submit(0, task(variant(tmp_path / "docs", "slow-1.pdf")), 2.5)
        assert pool.submit(1, task(variant(tmp_path / "docs", "slow-2.pdf")), 2.5)
        done = answers(pool, 2)
    finally:
        pool.close()
    assert isinstance(done[0], Document), done[0]
    assert isinstance(done[1], Document), done[1]


# -- large messages: never both writing at once ------------------------------------------------


def test_a_task_too_large_for_the_socket_waits_for_an_idle_worker(tmp_path: Path) -> None:
    """The merged pages of a split document go back to a worker (a FinishTask) and may be
    megabytes: queued behind a busy worker, the driver's write would wait for a worker that
    waits for the driver to read its answer. Such a task goes to an idle worker only."""
    pool = pool_of(tmp_path, 1)
    pool.start()
    source = Source.from_path(variant(tmp_path / "docs", "big.pdf"))
    page = Page(number=1, text="word " * (4 * QUEUE_MAX_BYTES), extractor="pdfium")
    big = FinishTask(Document(source=source, metadata=Metadata(page_count=1), pages=[page]))
    try:
        ready(pool, 2)
        assert pool.submit(0, task(variant(tmp_path / "docs", "slow-1.pdf")), 60)
        assert pool.idle == 1, "a small task may still wait behind the busy worker"
        assert not pool.submit(1, big, 60), "a large task was queued behind a busy worker"
        done = answers(pool, 1)
        assert pool.submit(1, big, 60), "an idle worker did not take the large task"
        done |= answers(pool, 1)
    finally:
        pool.close()
    assert isinstance(done[0], Document), done[0]
    assert isinstance(done[1], Document), done[1]
    assert done[1].pages[0].text.startswith("word word")


def dense_pdf(path: Path, pages: int) -> Path:
    """``pages`` pages of 48 lines of 90 characters: about 4 KB of text a page."""
    texts = [
        "\n".join(f"{path.stem} p{page} l{line} " + "lorem ipsum dolor " * 4 for line in range(48))
        for page in range(pages)
    ]
    return text_pdf(path, texts)


def test_large_answers_and_large_tasks_do_not_deadlock_a_run(tmp_path: Path) -> None:
    """Documents split in ranges whose answers and merged pages are far larger than a
    socket's buffer, on two workers that each hold a next task: the run ends (it hung, both
    sides writing, before large tasks went to idle workers only)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for number in range(6):
        dense_pdf(folder / f"dense-{number}.pdf", 64)
    out = tmp_path / "out.jsonl"
    command = [str(Path(sys.executable).parent / "ingest"), "run", str(folder), "--workers", "2",
               "--sink", f"jsonl:{out}", "-q"]  # fmt: skip
    try:
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the run hung: {exc.stdout!r:.500}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "6 ingested" in done.stdout
