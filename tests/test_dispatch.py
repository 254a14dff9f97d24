"""The dispatcher against a scripted pool: one outcome per source, page ranges split and
merged in order, the window and the read-ahead, fallbacks, lost workers, a stop.

:class:`ScriptedPool` has the ``Pool`` protocol of :class:`ingest.workers.Dispatcher` and no
processes: each task is answered by a script of its document (how many pages, which page an
extractor fails on or dies on), in the order the test picks, with real
:class:`~ingest.model.Document` and :class:`~ingest.model.Page` objects sent through pickle
as a real pool sends them. Where a run has no lost worker, the outcome of every document
must be exactly what reading the whole document with the extractor chain gives, which is
what the in-process backend does.
"""

from __future__ import annotations

import hashlib
import itertools
import pickle
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest.interrupt import GracefulStop
from ingest.model import Chunk, Document, Failure, Metadata, Page, Source
from ingest.workers import (
    Dispatcher,
    Extraction,
    FinishTask,
    FirstTask,
    Limits,
    Lost,
    Partial,
    RangeTask,
    SourceFeed,
    Task,
)
from ingest.workers.dispatch import LOOKAHEAD_PER_WORKER, RANGES_PER_WORKER
from ingest.workers.tasks import FINAL_REASONS, extraction_failure

CHAIN = ("pdfium", "pypdf", "pdfminer")
FAIL_REASONS = ("error", "recursion", "encrypted", "not-a-pdf")
LOST_REASONS = ("timeout", "memory", "crash")

T = TypeVar("T")


@dataclass
class Script:
    """A document as the scripted workers see it.

    :param fails: extractor → (page, reason): that extractor fails on reading that page.
    :param dies: extractor → (page, reason): the worker reading that page with that
        extractor is lost (killed for a timeout or memory, or crashed).
    :param transform_fails: the transform chain raises on the whole document.
    :param finish_dies: the worker transforming the merged document is lost, for this reason.
    """

    name: str
    pages: int
    size: int
    fails: dict[str, tuple[int, str]] = field(default_factory=dict)
    dies: dict[str, tuple[int, str]] = field(default_factory=dict)
    transform_fails: bool = False
    finish_dies: str | None = None

    @property
    def source(self) -> Source:
        digest = hashlib.sha256(self.name.encode()).hexdigest()
        return Source(path=Path(f"{self.name}.pdf"), content_id=digest, size=self.size)


def read_failure(script: Script, extractor: str, page: int, reason: str) -> Failure:
    source = script.source
    return Failure(
        source=source.path,
        reason=reason,
        message=f"{extractor} cannot read page {page}",
        plugin=extractor,
        doc_id=source.doc_id,
    )


def pages_read(script: Script, extractor: str, numbers: Iterable[int]) -> Document:
    pages = [Page(n, f"{script.name}: page {n} read by {extractor}", extractor) for n in numbers]
    return Document(script.source, Metadata(title=script.name, page_count=script.pages), pages)


def transformed(document: Document) -> Document:
    """What the scripted transform chain does: one chunk of the whole text, appended (a
    document transformed twice would have two)."""
    text = document.text
    last = document.pages[-1].number if document.pages else 0
    document.chunks.append(
        Chunk(document.doc_id, len(document.chunks), text, 1, last, 0, len(text))
    )
    return document


def whole_document(script: Script, *, transforms: bool) -> Document | Failure:
    """The outcome of reading the whole document with the chain, as one process would."""
    errors: list[Failure] = []
    for extractor in CHAIN:
        if extractor in script.fails:
            page, reason = script.fails[extractor]
            errors.append(read_failure(script, extractor, page, reason))
            if reason in FINAL_REASONS:
                break
            continue
        document = pages_read(script, extractor, range(1, script.pages + 1))
        if not transforms:
            return document
        if script.transform_fails:
            return transform_failure(script)
        return transformed(document)
    return extraction_failure(script.source, errors, CHAIN)


def transform_failure(script: Script) -> Failure:
    source = script.source
    return Failure(
        source.path, "error", "chunking went wrong", "chunk", "ValueError", source.doc_id
    )


def roundtrip(value: T) -> T:
    """What crosses a process boundary in a real pool."""
    return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))  # type: ignore[no-any-return]


def fifo(running: list[int]) -> list[int]:
    return [min(running)]


def lifo(running: list[int]) -> list[int]:
    return [max(running)]


def shuffled(rng: random.Random) -> Callable[[list[int]], list[int]]:
    """Some of the running tasks, at least one, ending in a random order."""
    return lambda running: rng.sample(running, rng.randint(1, len(running)))


class ScriptedPool:
    """A pool of ``slots`` workers whose answers come from the documents' scripts.

    :param pick: which of the running task ids end at the next :meth:`wait`, in order.
    :param refuse: called at each submit; ``True`` refuses the task, as a real pool does
        when the idle worker it picked turns out to be unusable.
    """

    def __init__(
        self,
        scripts: Iterable[Script],
        *,
        slots: int,
        transforms: bool = True,
        pick: Callable[[list[int]], list[int]] = fifo,
        refuse: Callable[[], bool] = lambda: False,
    ) -> None:
        self.scripts = {script.source.path: script for script in scripts}
        self.slots = slots
        self.transforms = transforms
        self.pick = pick
        self.refuse = refuse
        self.running: dict[int, Task] = {}
        #: Every task accepted, with its budget, in submission order.
        self.submitted: list[tuple[Task, float]] = []
        #: Filled in by :func:`drive` as the dispatcher yields.
        self.yielded: list[Path] = []
        self.started: set[Path] = set()
        self.most_in_flight = 0
        self._refused = False

    @property
    def idle(self) -> int:
        return self.slots - len(self.running)

    def submit(self, task_id: int, task: Task, budget: float) -> bool:
        assert self.idle > 0, "a task was submitted while no worker was idle"
        assert task_id not in self.running, f"task id {task_id} reused while running"
        if self.refuse():
            self._refused = True
            return False
        path = path_of(task)
        assert path not in self.yielded, f"a task for {path}, which already has its outcome"
        self.running[task_id] = roundtrip(task)
        self.submitted.append((task, budget))
        self.started.add(path)
        self.most_in_flight = max(self.most_in_flight, len(self.started - set(self.yielded)))
        return True

    def wait(self) -> list[tuple[int, Any]]:
        if not self.running:
            # A real pool returns nothing when a worker became ready; waiting on no work
            # after anything else would block the run for ever.
            assert self._refused, "waited for answers with no task running"
            self._refused = False
            return []
        ended = self.pick(sorted(self.running))
        return [(task_id, roundtrip(self.answer(self.running.pop(task_id)))) for task_id in ended]

    def answer(self, task: Task) -> Document | Failure | Partial | Lost:
        script = self.scripts[path_of(task)]
        if isinstance(task, FinishTask):
            if script.finish_dies:
                return Lost(script.finish_dies, "the worker died", "chunk")
            return self.finish(script, task.document)
        if isinstance(task, RangeTask):
            return self.read(script, task.extractor, task.pages)
        errors = list(task.errors)
        for extractor in task.chain:
            asked = task.pages if task.pages is not None else range(1, script.pages + 1)
            read = self.read(script, extractor, asked)
            if isinstance(read, Lost):
                return read
            if isinstance(read, Failure):
                errors.append(read)
                if read.reason in FINAL_REASONS:
                    break
                continue
            if task.pages is not None and script.pages >= task.pages.stop:
                return Partial(Extraction(read, extractor, errors))
            return self.finish(script, read)
        return extraction_failure(script.source, errors, task.tried)

    def finish(self, script: Script, document: Document) -> Document | Failure:
        """The transform chain on a whole document, when the run has one."""
        if not self.transforms:
            return document
        return transform_failure(script) if script.transform_fails else transformed(document)

    @staticmethod
    def read(script: Script, extractor: str, asked: range) -> Document | Failure | Lost:
        """The pages ``asked`` (those that exist) by ``extractor``, read in order: the first
        page it fails or dies on ends the task."""
        numbers = [n for n in asked if n <= script.pages]
        for number in numbers:
            if script.dies.get(extractor, (0, ""))[0] == number:
                reason = script.dies[extractor][1]
                return Lost(reason, f"the worker died ({reason})", extractor)
            if script.fails.get(extractor, (0, ""))[0] == number:
                return read_failure(script, extractor, number, script.fails[extractor][1])
        return pages_read(script, extractor, numbers)


def path_of(task: Task) -> Path:
    return task.document.source.path if isinstance(task, FinishTask) else task.source.path


class Counted(Iterator[Source]):
    """The sources, counting how far ahead of the outcomes in ``yielded`` they are read; a
    feed that never stops and does not know what is left (``remaining_bytes`` 0)."""

    stopped = False
    remaining_bytes = 0

    def __init__(self, sources: Iterable[Source], yielded: list[Path]) -> None:
        self._sources = iter(sources)
        self._yielded = yielded
        self.read: list[Path] = []
        self.most_ahead = 0
        #: ``(path, pages, page_count)`` of every report of pages done before the outcome.
        self.pages: list[tuple[Path, int, int]] = []

    def __next__(self) -> Source:
        source = next(self._sources)
        self.read.append(source.path)
        self.most_ahead = max(self.most_ahead, len(self.read) - len(self._yielded))
        return source

    def pages_done(self, source: Source, pages: int, page_count: int) -> None:
        self.pages.append((source.path, pages, page_count))


def limits(workers: int = 2, **overrides: Any) -> Limits:
    fields: dict[str, Any] = {
        "workers": workers,
        "shard_pages": 4,
        "timeout": 10.0,
        "timeout_per_page": 1.0,
        "chain": CHAIN,
        "transforms": True,
    }
    return Limits(**(fields | overrides))


def drive(
    pool: ScriptedPool, limits: Limits, sources: Iterator[Source]
) -> list[tuple[Source, Document | Failure]]:
    """Run the dispatcher to the end, telling the pool what came back."""
    results = []
    feed = sources if isinstance(sources, Counted | SourceFeed) else Counted(sources, pool.yielded)
    for source, outcome in Dispatcher(pool, limits).run(feed):
        pool.yielded.append(source.path)
        results.append((source, outcome))
    return results


def ranges(pool: ScriptedPool) -> list[tuple[str, range]]:
    return [(t.extractor, t.pages) for t, _ in pool.submitted if isinstance(t, RangeTask)]


def assert_once_each(scripts: list[Script], results: list[tuple[Source, Any]]) -> None:
    paths = [source.path for source, _ in results]
    assert sorted(paths) == sorted(script.source.path for script in scripts)


# --------------------------------------------------------------------------------------------
# Random completion orders and failure patterns
# --------------------------------------------------------------------------------------------


@st.composite
def scripts(draw: st.DrawFn, *, dying: bool) -> list[Script]:
    made = []
    for index in range(draw(st.integers(0, 7))):
        pages = draw(st.integers(1, 30))
        script = Script(f"doc{index}", pages, draw(st.integers(8 * pages, 5000 * pages)))
        for extractor in CHAIN:
            if draw(st.integers(0, 3)) == 0:
                page = draw(st.integers(1, pages))
                script.fails[extractor] = (page, draw(st.sampled_from(FAIL_REASONS)))
            if dying and draw(st.integers(0, 5)) == 0:
                page = draw(st.integers(1, pages))
                script.dies[extractor] = (page, draw(st.sampled_from(LOST_REASONS)))
        script.transform_fails = draw(st.integers(0, 5)) == 0
        if dying and draw(st.integers(0, 7)) == 0:
            script.finish_dies = draw(st.sampled_from(LOST_REASONS))
        made.append(script)
    return made


@st.composite
def runs(draw: st.DrawFn, *, dying: bool) -> tuple[list[Script], Limits, ScriptedPool]:
    docs = draw(scripts(dying=dying))
    workers = draw(st.integers(1, 4))
    window = draw(st.none() | st.integers(1, 6))
    shape = limits(
        workers,
        shard_pages=draw(st.integers(0, 6)),
        transforms=draw(st.booleans()),
        window=window,
    )
    # A seed, not st.randoms(): hypothesis records each call of the latter as a draw, which
    # made these tests several times slower.
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    # A pool that batches (the Dask executor's) accepts more tasks than it has workers.
    slots = workers + draw(st.integers(0, 3)) if window is not None else workers
    refusals = draw(st.booleans())
    pool = ScriptedPool(
        docs,
        slots=slots,
        transforms=shape.transforms,
        pick=shuffled(rng),
        refuse=(lambda: rng.random() < 0.2) if refusals else (lambda: False),
    )
    return docs, shape, pool


def check_bounds(pool: ScriptedPool, shape: Limits, sources: Counted) -> None:
    """At most the window of documents started and not back, and sources read at most
    ``LOOKAHEAD_PER_WORKER * workers`` past it."""
    window = 2 * shape.workers if shape.window is None else shape.window
    assert pool.most_in_flight <= window
    assert sources.most_ahead <= window + LOOKAHEAD_PER_WORKER * shape.workers


@given(runs(dying=False))
@settings(deadline=None)
def test_every_document_comes_back_once_as_if_read_whole(
    run: tuple[list[Script], Limits, ScriptedPool],
) -> None:
    """Whatever the order answers come in, each source comes back once, with the outcome
    reading it whole gives: all pages, in order, from one extractor, transformed once; or
    the failure of the first extractor with the fallbacks' failures in its message."""
    docs, shape, pool = run
    sources = Counted((script.source for script in docs), pool.yielded)
    results = drive(pool, shape, sources)
    assert_once_each(docs, results)
    by_path = {script.source.path: script for script in docs}
    for source, outcome in results:
        assert outcome == whole_document(by_path[source.path], transforms=shape.transforms)
    check_bounds(pool, shape, sources)


@given(runs(dying=True))
@settings(deadline=None)
def test_lost_workers_fail_their_own_document_only(
    run: tuple[list[Script], Limits, ScriptedPool],
) -> None:
    """Workers lost (timeout, memory, crash) on some tasks: still each source once, and
    each ends as if read whole, or failed for the loss of one of its own tasks."""
    docs, shape, pool = run
    sources = Counted((script.source for script in docs), pool.yielded)
    results = drive(pool, shape, sources)
    assert_once_each(docs, results)
    by_path = {script.source.path: script for script in docs}
    for source, outcome in results:
        script = by_path[source.path]
        if outcome == whole_document(script, transforms=shape.transforms):
            continue
        assert isinstance(outcome, Failure)
        assert (outcome.source, outcome.doc_id) == (source.path, source.doc_id)
        lost = {reason for _, reason in script.dies.values()} | {script.finish_dies}
        assert outcome.reason in lost
        assert outcome.message.startswith(("extracting ", "transforming "))
    check_bounds(pool, shape, sources)


# --------------------------------------------------------------------------------------------
# Page ranges
# --------------------------------------------------------------------------------------------


def test_ranges_are_merged_in_page_order_whatever_order_they_end_in() -> None:
    """Alone in the run, a long document is split into up to RANGES_PER_WORKER ranges per
    worker; they end last-submitted first and the merged document still has its pages in
    order, transformed once by one more task."""
    assert RANGES_PER_WORKER == 2  # the ranges below are 4 = 2 per worker
    long = Script("long", 40, 40_000)
    pool = ScriptedPool([long], slots=2, pick=lifo)
    [(_, outcome)] = drive(pool, limits(2, shard_pages=4), iter([long.source]))
    assert ranges(pool) == [
        ("pdfium", range(5, 14)),
        ("pdfium", range(14, 23)),
        ("pdfium", range(23, 32)),
        ("pdfium", range(32, 41)),
    ]
    finish = pool.submitted[-1][0]
    assert isinstance(finish, FinishTask)
    assert [page.number for page in finish.document.pages] == list(range(1, 41))
    assert outcome == whole_document(long, transforms=True)


def test_pages_are_reported_as_each_range_ends() -> None:
    """Progress hears of a long document's pages range by range, not only at its end: the
    first range, then each of the four others, 40 pages in all."""
    long = Script("long", 40, 40_000)
    pool = ScriptedPool([long], slots=2, pick=lifo)
    feed = Counted(iter([long.source]), pool.yielded)
    drive(pool, limits(2, shard_pages=4), feed)
    assert [pages for _, pages, _ in feed.pages] == [4, 9, 9, 9, 9]
    assert {(path, count) for path, _, count in feed.pages} == {(long.source.path, 40)}


def test_without_transforms_the_merged_document_is_the_outcome() -> None:
    long = Script("long", 12, 12_000)
    pool = ScriptedPool([long], slots=2, transforms=False, pick=lifo)
    [(_, outcome)] = drive(pool, limits(2, shard_pages=4, transforms=False), iter([long.source]))
    assert not any(isinstance(task, FinishTask) for task, _ in pool.submitted)
    assert outcome == whole_document(long, transforms=False)
    assert isinstance(outcome, Document) and not outcome.chunks


def test_a_document_of_the_first_range_or_fewer_pages_is_one_task() -> None:
    short = Script("short", 4, 4_000)
    pool = ScriptedPool([short], slots=2)
    [(_, outcome)] = drive(pool, limits(2, shard_pages=4), iter([short.source]))
    assert [type(task) for task, _ in pool.submitted] == [FirstTask]
    assert outcome == whole_document(short, transforms=True)


def test_no_splitting_reads_the_whole_document_under_the_plain_timeout() -> None:
    long = Script("long", 40, 40_000)
    pool = ScriptedPool([long], slots=2)
    [(_, outcome)] = drive(pool, limits(2, shard_pages=0, timeout=7.0), iter([long.source]))
    [(task, budget)] = pool.submitted
    assert isinstance(task, FirstTask) and task.pages is None
    assert budget == 7.0  # the page count is not known before the extractor returns
    assert outcome == whole_document(long, transforms=True)


def test_budgets_grow_with_the_pages_a_task_reads_but_not_past_the_file_size() -> None:
    """Each task gets ``timeout_per_page`` seconds per page it reads, at least ``timeout``;
    a file too small for its page count (a lying page tree) gets at most one page per
    8 bytes."""
    honest = Script("honest", 40, 400_000)
    liar = Script("liar", 40, 40)  # 40 bytes: 5 plausible pages
    pool = ScriptedPool([honest, liar], slots=1)
    shape = limits(1, shard_pages=16, timeout=5.0, timeout_per_page=2.0)
    drive(pool, shape, iter([honest.source, liar.source]))
    budgets = [(type(task).__name__, path_of(task).stem, budget) for task, budget in pool.submitted]
    assert budgets == [
        ("FirstTask", "honest", 32.0),  # 16 pages
        ("RangeTask", "honest", 48.0),  # pages 17-40
        ("FinishTask", "honest", 80.0),  # 40 merged pages
        ("FirstTask", "liar", 10.0),
        ("RangeTask", "liar", 10.0),
        ("FinishTask", "liar", 10.0),
    ]


def test_started_documents_finish_before_new_ones_start() -> None:
    """One worker: the ranges and the transform of a document already started go before
    the first task of the next one, so its pages leave the driver's memory early."""
    first, second = Script("first", 12, 12_000), Script("second", 1, 1_000)
    pool = ScriptedPool([first, second], slots=1)
    drive(pool, limits(1, shard_pages=4), iter([first.source, second.source]))
    order = [(type(task).__name__, path_of(task).stem) for task, _ in pool.submitted]
    assert order == [
        ("FirstTask", "first"),
        ("RangeTask", "first"),
        ("FinishTask", "first"),
        ("FirstTask", "second"),
    ]


def short_docs(count: int, size: int, start: int = 0) -> list[Script]:
    """One-page documents of ``size`` bytes: the dispatcher weighs work by file size."""
    return [Script(f"short{start + i}", 1, size) for i in range(count)]


def test_a_long_document_gets_one_range_while_other_work_waits() -> None:
    """Other documents waiting would keep the other worker busy: the rest of the long
    one goes to one worker in one range (each range opens the file again)."""
    long = Script("long", 40, 40_000)
    others = short_docs(8, 40_000)
    pool = ScriptedPool([long, *others], slots=2)
    results = drive(
        pool, limits(2, shard_pages=4), iter([long.source, *(s.source for s in others)])
    )
    assert ranges(pool) == [("pdfium", range(5, 41))]
    assert_once_each([long, *others], results)


def test_a_long_document_is_split_for_every_worker_at_the_end_of_the_run() -> None:
    """The same long document after the others: nothing else is left to do, so its rest is
    split for all the workers."""
    long = Script("long", 40, 40_000)
    others = short_docs(8, 40_000)
    pool = ScriptedPool([long, *others], slots=2)
    drive(pool, limits(2, shard_pages=4), iter([*(s.source for s in others), long.source]))
    assert len(ranges(pool)) == RANGES_PER_WORKER * 2
    assert [pages for _, pages in ranges(pool)] == [
        range(5, 14),
        range(14, 23),
        range(23, 32),
        range(32, 41),
    ]


def test_one_worker_never_splits_a_document_further() -> None:
    long = Script("long", 40, 40_000)
    pool = ScriptedPool([long], slots=1)
    drive(pool, limits(1, shard_pages=4), iter([long.source]))
    assert ranges(pool) == [("pdfium", range(5, 41))]


@pytest.mark.parametrize("fed", [False, True], ids=["iterator", "feed"])
def test_the_bytes_a_feed_has_not_handed_out_count_as_work(fed: bool) -> None:
    """Beyond what the dispatcher has read ahead, only a feed that says how many bytes it
    still holds (``remaining_bytes``) makes the long document wait in one range."""
    long = Script("long", 40, 40_000)
    tiny = short_docs(3, 100)
    later = short_docs(20, 10_000, start=3)
    docs = [long, *tiny, *later]
    sources = [script.source for script in docs]
    pool = ScriptedPool(docs, slots=2)
    feed: Iterator[Source] = (
        SourceFeed(sources, None, largest_first=False) if fed else iter(sources)
    )
    results = drive(pool, limits(2, shard_pages=4), feed)
    # When the first range ends the dispatcher has read only the first four sources: 200
    # bytes wait to start, less than the other worker's share of the long document's rest
    # (2 * 36,000 bytes); the feed also counts the 200,000 bytes it has not handed out.
    assert len(ranges(pool)) == (1 if fed else 4)
    assert_once_each(docs, results)


# --------------------------------------------------------------------------------------------
# The window and the read-ahead
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("workers", "window", "slots"), [(2, None, 10), (2, 3, 8), (3, 9, 12)])
def test_at_most_window_documents_are_in_flight(
    workers: int, window: int | None, slots: int
) -> None:
    """However many tasks the pool would take, no more documents than the window are
    started and not yet back; with enough work the window is filled."""
    docs = [Script(f"doc{i}", 1 + i % 9, 2_000) for i in range(30)]
    pool = ScriptedPool(docs, slots=slots, pick=lifo)
    results = drive(pool, limits(workers, window=window), iter([s.source for s in docs]))
    assert_once_each(docs, results)
    assert pool.most_in_flight == (2 * workers if window is None else window)


@pytest.mark.parametrize(("workers", "window"), [(1, None), (2, None), (2, 7)])
def test_sources_are_read_a_bounded_way_ahead(workers: int, window: int | None) -> None:
    """An endless source: the dispatcher reads ahead of the documents in flight, but never
    more than ``LOOKAHEAD_PER_WORKER * workers`` sources past the window."""
    endless = (Script(f"doc{i}", 1 + i % 7, 5_000) for i in itertools.count())

    def remember() -> Iterator[Source]:
        for script in endless:
            pool.scripts[script.source.path] = script
            yield script.source

    pool = ScriptedPool([], slots=workers)
    sources = Counted(remember(), pool.yielded)
    outcomes = Dispatcher(pool, limits(workers, window=window)).run(sources)
    for source, _ in itertools.islice(outcomes, 60):
        pool.yielded.append(source.path)
    outcomes.close()
    window = 2 * workers if window is None else window
    assert sources.most_ahead <= window + LOOKAHEAD_PER_WORKER * workers
    # It does read past the window: that is how it knows whether work is waiting.
    assert sources.most_ahead > window


def test_a_stop_drops_the_sources_read_ahead_and_finishes_those_started() -> None:
    """Ctrl-C on the feed: the documents already admitted still come back, the sources
    only read ahead are dropped without a task, and nothing more is read."""
    docs = [Script(f"doc{i}", 1, 1_000) for i in range(12)]
    stop = GracefulStop()
    feed = SourceFeed([s.source for s in docs], stop, largest_first=False)
    pool = ScriptedPool(docs, slots=2)
    results = []
    for source, outcome in Dispatcher(pool, limits(2)).run(feed):
        pool.yielded.append(source.path)
        results.append((source, outcome))
        if len(results) == 2:
            stop.requested = True
            read_at_stop = 12 - feed.remaining_bytes // 1_000
    assert feed.remaining_bytes // 1_000 == 12 - read_at_stop  # nothing read after the stop
    back = [source.path for source, _ in results]
    assert len(back) == len(set(back))
    assert set(back) == pool.started  # every document started came back
    dropped = read_at_stop - len(back)
    assert dropped > 0
    assert len(back) - 2 <= 2 * 2  # after the stop: at most the window


# --------------------------------------------------------------------------------------------
# Fallbacks after a failed range
# --------------------------------------------------------------------------------------------


def test_a_failed_range_starts_the_document_over_with_the_next_extractor() -> None:
    """pdfium fails on page 15 (in its third range): the document starts over with pypdf,
    carrying pdfium's failure; the answers of pdfium's other ranges are dropped and its
    ranges not started yet never start."""
    doc = Script("doc", 20, 20_000, fails={"pdfium": (15, "error")})
    pool = ScriptedPool([doc], slots=2, pick=lifo)
    [(_, outcome)] = drive(pool, limits(2, shard_pages=4), iter([doc.source]))
    assert outcome == whole_document(doc, transforms=True)
    assert {page.extractor for page in outcome.pages} == {"pypdf"}  # type: ignore[union-attr]
    firsts = [task for task, _ in pool.submitted if isinstance(task, FirstTask)]
    assert [task.chain for task in firsts] == [CHAIN, ("pypdf", "pdfminer")]
    assert firsts[1].errors == (read_failure(doc, "pdfium", 15, "error"),)
    pdfium = [pages for extractor, pages in ranges(pool) if extractor == "pdfium"]
    assert pdfium == [range(5, 9), range(9, 13), range(13, 17)]


@pytest.mark.parametrize("reason", sorted(FINAL_REASONS))
def test_a_final_reason_in_a_range_ends_the_document(reason: str) -> None:
    """A file encrypted or not a PDF fails the same in every extractor: no fallback."""
    doc = Script("doc", 20, 20_000, fails={"pdfium": (15, reason)})
    pool = ScriptedPool([doc], slots=2)
    [(_, outcome)] = drive(pool, limits(2, shard_pages=4), iter([doc.source]))
    assert outcome == read_failure(doc, "pdfium", 15, reason)
    assert sum(isinstance(task, FirstTask) for task, _ in pool.submitted) == 1


def test_when_every_extractor_fails_a_range_the_first_failure_names_the_others() -> None:
    doc = Script(
        "doc",
        20,
        20_000,
        fails={"pdfium": (15, "error"), "pypdf": (6, "recursion"), "pdfminer": (20, "error")},
    )
    pool = ScriptedPool([doc], slots=2)
    [(_, outcome)] = drive(pool, limits(2, shard_pages=4), iter([doc.source]))
    assert isinstance(outcome, Failure)
    assert outcome.reason == "error"
    assert outcome.plugin == "pdfium"
    assert outcome.message == (
        "pdfium cannot read page 15 (fallbacks failed too: pypdf: recursion; pdfminer: error)"
    )


# --------------------------------------------------------------------------------------------
# Lost workers
# --------------------------------------------------------------------------------------------


def test_a_timeout_names_the_task_its_budget_and_the_settings() -> None:
    doc = Script("doc", 20, 20_000, dies={"pdfium": (10, "timeout")})
    pool = ScriptedPool([doc], slots=2)
    shape = limits(2, shard_pages=4, timeout=3.0, timeout_per_page=1.5)
    [(_, outcome)] = drive(pool, shape, iter([doc.source]))
    assert outcome == Failure(
        source=doc.source.path,
        reason="timeout",
        message=(
            "extracting pages 9-12 took longer than 6s (run.timeout 3s, "
            "run.timeout_per_page 1.5s); the worker was killed"
        ),
        plugin="pdfium",
        doc_id=doc.source.doc_id,
    )


def test_a_lost_range_fails_the_document_without_a_fallback() -> None:
    """A worker killed or crashed is not an extractor's failure: the document ends."""
    doc = Script("doc", 20, 20_000, dies={"pdfium": (18, "crash")})
    pool = ScriptedPool([doc], slots=2)
    [(_, outcome)] = drive(pool, limits(2, shard_pages=4), iter([doc.source]))
    assert isinstance(outcome, Failure)
    assert (outcome.reason, outcome.plugin) == ("crash", "pdfium")
    assert outcome.message == "extracting pages 17-20: the worker died (crash)"
    assert sum(isinstance(task, FirstTask) for task, _ in pool.submitted) == 1


def test_a_lost_transform_names_the_merged_pages() -> None:
    doc = Script("doc", 20, 20_000, finish_dies="crash")
    pool = ScriptedPool([doc], slots=2)
    [(_, outcome)] = drive(pool, limits(2, shard_pages=4), iter([doc.source]))
    assert isinstance(outcome, Failure)
    assert outcome.message == "transforming the 20 merged pages: the worker died"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "the worker died (memory)",
            "extracting pages 1-4: the worker died (memory) "
            "(worker memory cap 1.5 GiB, run.max_memory)",
        ),
        (
            "the worker used 2 GiB, over the cap (run.max_memory)",
            "extracting pages 1-4: the worker used 2 GiB, over the cap (run.max_memory)",
        ),
    ],
)
def test_a_memory_failure_names_the_cap_once(message: str, expected: str) -> None:
    doc = Script("doc", 20, 20_000)

    class MemoryPool(ScriptedPool):
        def answer(self, task: Task) -> Any:
            return Lost("memory", message, None)

    pool = MemoryPool([doc], slots=2)
    shape = limits(2, shard_pages=4, max_memory=3 << 29)
    [(_, outcome)] = drive(pool, shape, iter([doc.source]))
    assert isinstance(outcome, Failure)
    assert (outcome.reason, outcome.message) == ("memory", expected)
