"""Documents to tasks and back: page ranges, merging, fallbacks, the window.

:class:`Dispatcher` turns sources into the tasks of :mod:`ingest.workers.pipeline` and their answers
into one outcome per source, for any pool of workers that can ``submit`` a task, ``wait``
for answers and say how many workers are ``idle`` (:class:`ingest.workers.pool.WorkerPool`).

* The first task of a document extracts pages ``1..n`` (``n``: ``shard_pages``) and so
  learns the page count while doing useful work. A document of ``n`` pages or fewer is
  finished (transformed) by that same task.
* The rest of a longer one goes in one range task while other documents wait to keep the
  other workers busy, and in up to ``RANGES_PER_WORKER * workers`` ranges when they do not
  (towards the end of a run): every range opens the document again, which costs pypdf 0.1 to
  0.2 s on the test corpus's largest files, so splitting only pays where it shortens the tail.
* The pages come back in any order and are merged in order; one more task runs the
  transform chain on the whole document (chunks cross page boundaries, headers are found
  across pages).
* A range that fails starts the document over with the next fallback extractor, as the
  whole document failing in that extractor would.

Deadlines: a task that extracts ``k`` pages gets ``max(timeout, timeout_per_page * k)``
seconds (``k`` at most one page per 8 bytes of file, so a page tree that lies about its
size buys no time); the transform task the same for the page count. The first task's ``k``
is ``n``: the most it may extract. With splitting off (``n = 0``) the page count is unknown
until the extractor returns, so the whole document gets ``timeout``.

At most ``Limits.window`` documents (default ``2 * workers``) are in flight (their pages
held here while ranges run), and sources are read at most ``LOOKAHEAD_PER_WORKER * workers``
ahead of them, so memory does not grow with the corpus. Sources read ahead are dropped, never
started, once the feed says it is ``stopped`` (the session stopping on Ctrl-C).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from ingest.errors import IngestError, UsageError
from ingest.model import Document, Failure
from ingest.workers.capture import merge_logs, take_logs
from ingest.workers.pool import Lost
from ingest.workers.tasks import (
    FINAL_REASONS,
    Extraction,
    FinishTask,
    FirstTask,
    Partial,
    RangeTask,
    Task,
    extraction_failure,
    extractor_chain,
    merge_pages,
    split_ranges,
)

if TYPE_CHECKING:
    from ingest.config import Settings
    from ingest.manager import IngestPluginManager
    from ingest.model import LogEntry, Page, Source
    from ingest.workers.feed import Feed

#: Documents with more pages than this are split into ranges of about this many pages,
#: when ``run.shard_pages`` is not set. 16 pages are 0.5 to 2 s of pypdf or pdfminer: the
#: first range of a long document ends soon, so its other ranges can start on the other
#: workers before the run's end leaves them idle.
DEFAULT_SHARD_PAGES = 16

#: Ranges per worker a document may be split into when nothing else is left to do.
RANGES_PER_WORKER = 2

#: Sources read ahead of the window, per worker: Source records only (a path, a hash, a
#: size), so that the dispatcher can tell whether other work will keep the workers busy.
#: Few: a source read is handed over, and on Ctrl-C the session waits for what it handed.
LOOKAHEAD_PER_WORKER = 2

#: Fewer bytes of file per page than this is not a real page count but a page tree that
#: lies (``/Count 1000000000`` in an encrypted file, whose tree pypdf does not walk).
MIN_BYTES_PER_PAGE = 8

Finished = tuple["Source", Document | Failure]


class Pool(Protocol):
    """What the dispatcher needs of a pool of workers.

    A pool may also have ``grow(waiting: int)``, called with the number of tasks that no
    worker took yet, to start workers as the work needs them
    (:meth:`ingest.workers.pool.WorkerPool.grow`); a pool without it is used as it is.
    """

    @property
    def idle(self) -> int:
        """Workers ready for a task."""
        ...

    def submit(self, task_id: int, task: Task, budget: float) -> bool:
        """Give ``task`` to an idle worker, to answer within ``budget`` seconds."""
        ...

    def wait(self) -> list[tuple[int, Any]]:
        """Answers (or :class:`~ingest.workers.pool.Lost`) of the tasks that ended."""
        ...


@dataclass(frozen=True, slots=True)
class Limits:
    """How documents are cut and timed.

    :param workers: number of workers of the pool.
    :param shard_pages: size of the first range and of the others; 0: never split.
    :param timeout: seconds per task at least.
    :param timeout_per_page: seconds per page of a task.
    :param chain: the extractors to try, in order.
    :param transforms: whether a transform chain is configured (else merging is the end).
    :param max_memory: the worker memory cap, named in memory failures, or ``None``.
    :param window: documents in flight at most; ``None``: ``2 * workers``. A pool that
        accepts more tasks than it has workers (it batches them, as the Dask executor does)
        needs a larger window to be kept full; ``workers`` stays the real worker count, on
        which page ranges are sized.
    """

    workers: int
    shard_pages: int
    timeout: float
    timeout_per_page: float
    chain: tuple[str, ...]
    transforms: bool
    max_memory: int | None = None
    window: int | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        manager: IngestPluginManager,
        *,
        workers: int,
        max_memory: int | None,
        window: int | None = None,
    ) -> Limits:
        """The limits of a run: ``run`` settings, the extractor chain, and the seconds per page
        that plugins add (``ingest_page_seconds``).

        :raises UsageError: a plugin answered a negative or non-numeric number of seconds.
        """
        run = settings.run
        extra = 0.0
        # Each plugin asked on its own, still through pluggy (so tracing and wrappers see
        # the call): the answers come back as one list without None, which would lose
        # which plugin gave a bad one.
        hook = "ingest_page_seconds"
        impls = manager.hook.ingest_page_seconds.get_hookimpls()
        for impl in impls:
            others = [i.plugin for i in impls if i is not impl]
            answers = manager.subset_hook_caller(hook, others)(settings=settings)
            if not answers:
                continue
            seconds = answers[0]
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                raise UsageError(
                    f"plugin {impl.plugin_name!r}: ingest_page_seconds returned {seconds!r}, "
                    "not a number of seconds >= 0"
                )
            extra += float(seconds)
        return cls(
            workers=workers,
            shard_pages=int(getattr(run, "shard_pages", DEFAULT_SHARD_PAGES)),
            timeout=float(run.timeout),
            timeout_per_page=float(run.timeout_per_page) + extra,
            chain=tuple(extractor_chain(settings)),
            transforms=bool(settings.transforms),
            max_memory=max_memory,
            window=window,
        )

    def budget(self, pages: int, source: Source) -> float:
        """Seconds allowed to a task over ``pages`` pages of ``source``."""
        plausible = max(1, source.size // MIN_BYTES_PER_PAGE)
        return max(self.timeout, self.timeout_per_page * min(pages, plausible))


@dataclass(eq=False, slots=True)
class _Doc:
    source: Source
    #: Extractors still to try; the first one is being tried.
    chain: tuple[str, ...]
    errors: tuple[Failure, ...] = ()
    #: Bumped when the document starts over with a fallback: older tasks' answers are void.
    attempt: int = 0
    first: Extraction | None = None
    parts: list[list[Page]] = field(default_factory=list)
    outstanding: int = 0
    done: bool = False
    #: What libraries logged in this document's tasks so far; the outcome gets it all.
    logs: list[LogEntry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Queued:
    doc: _Doc
    attempt: int
    task: Task
    budget: float


class Dispatcher:
    """One run's scheduling: call :meth:`run` once with the sources."""

    def __init__(self, pool: Pool, limits: Limits) -> None:
        self.pool = pool
        self.limits = limits
        # Tasks of documents already started go first, so that they finish (and leave the
        # driver's memory) before new documents start.
        self._urgent: deque[_Queued] = deque()
        self._fresh: deque[_Queued] = deque()
        self._waiting: deque[Source] = deque()
        self._running: dict[int, _Queued] = {}
        self._ids = itertools.count()
        self._admitted = 0
        self._exhausted = False
        self._feed: Feed | None = None

    def run(self, feed: Feed) -> Iterator[Finished]:
        """Yield every source taken from ``feed`` once, with its outcome, in completion order."""
        window = 2 * self.limits.workers if self.limits.window is None else self.limits.window
        lookahead = LOOKAHEAD_PER_WORKER * self.limits.workers
        self._feed = feed
        while True:
            while True:
                while not self._exhausted and len(self._waiting) < lookahead:
                    source = next(feed, None)
                    if source is None:
                        self._exhausted = True
                    else:
                        self._waiting.append(source)
                if feed.stopped:
                    self._waiting.clear()  # read ahead, never started: not handed out after all
                    break
                while self._waiting and self._admitted < window:
                    self._admitted += 1
                    doc = _Doc(source=self._waiting.popleft(), chain=self.limits.chain)
                    self._fresh.append(self._first_task(doc))
                # A window wider than the lookahead fills over several reads; the default
                # window (no wider) always fills in one.
                if self._waiting or self._exhausted or self._admitted >= window:
                    break
            self._dispatch()
            if self._admitted == 0 and not self._waiting:
                return
            if not self._running and not self._urgent and not self._fresh:
                raise IngestError(
                    f"internal error: {self._admitted} documents in flight and no work left"
                )
            finished: list[Finished] = []
            for task_id, outcome in self.pool.wait():
                finished.extend(self._on_outcome(self._running.pop(task_id), outcome))
            # Idle workers get their next task before the session takes what finished: a
            # batch written to the sinks takes milliseconds the workers would wait through.
            self._dispatch()
            for item in finished:
                self._admitted -= 1
                yield item

    def _dispatch(self) -> None:
        while self.pool.idle and (self._urgent or self._fresh):
            queue = self._urgent if self._urgent else self._fresh
            queued = queue.popleft()
            if queued.doc.done or queued.attempt != queued.doc.attempt:
                continue
            task_id = next(self._ids)
            if not self.pool.submit(task_id, queued.task, queued.budget):
                queue.appendleft(queued)
                break
            self._running[task_id] = queued
        grow = getattr(self.pool, "grow", None)
        if grow is not None:
            waiting = sum(
                1
                for queued in (*self._urgent, *self._fresh)
                if not queued.doc.done and queued.attempt == queued.doc.attempt
            )
            if waiting:
                grow(waiting)

    # -- answers ----------------------------------------------------------------------------

    def _on_outcome(self, queued: _Queued, outcome: Any) -> list[Finished]:
        doc, task = queued.doc, queued.task
        if doc.done or queued.attempt != doc.attempt:
            return []  # a range of a document that already failed, or an older attempt
        doc.logs = merge_logs(doc.logs, take_logs(outcome))
        if isinstance(outcome, Lost):
            return self._finish(doc, self._lost(doc, task, queued.budget, outcome))
        if isinstance(task, FirstTask) and isinstance(outcome, Partial):
            assert task.pages is not None
            document = outcome.extraction.document
            self._pages_done(doc, len(document.pages), document.metadata.page_count)
            self._split(doc, outcome.extraction, start=task.pages.stop)
            return []
        if isinstance(task, RangeTask):
            if isinstance(outcome, Failure):
                return self._range_failed(doc, outcome)
            if doc.first is not None:
                total = doc.first.document.metadata.page_count
                self._pages_done(doc, len(outcome.pages), total)
            return self._range_done(doc, outcome)
        return self._finish(doc, outcome)

    def _pages_done(self, doc: _Doc, pages: int, page_count: int) -> None:
        if self._feed is not None:
            self._feed.pages_done(doc.source, pages, page_count)

    def _split(self, doc: _Doc, extraction: Extraction, *, start: int) -> None:
        total = extraction.document.metadata.page_count
        limits = self.limits
        most = 1 if self._busy_elsewhere(doc, total, start) else RANGES_PER_WORKER * limits.workers
        ranges = split_ranges(total, start=start, size=limits.shard_pages, max_ranges=most)
        doc.first, doc.parts, doc.outstanding = extraction, [], len(ranges)
        # The first range's answer knows the content id of a source collected without one
        # (an object in a store): the ranges must read those very bytes.
        source = replace(doc.source, content_id=extraction.document.source.content_id)
        for pages in ranges:
            task = RangeTask(source=source, extractor=extraction.extractor, pages=pages)
            self._urgent.append(
                _Queued(doc, doc.attempt, task, limits.budget(len(pages), doc.source))
            )

    def _busy_elsewhere(self, doc: _Doc, total: int, start: int) -> bool:
        """Whether other documents will keep the other workers busy while one worker does
        the rest of ``doc``: then splitting it would only cost more opens.

        File sizes stand in for work, with a margin of two: the bytes of the documents not
        started yet (read ahead, and not read yet when the feed says) against the other
        workers' share of this document's remaining bytes.
        """
        if self.limits.workers < 2:
            return True
        remaining = doc.source.size * (total - start + 1) / max(1, total)
        waiting = sum(s.size for s in self._waiting) + sum(q.doc.source.size for q in self._fresh)
        if self._feed is not None:
            waiting += self._feed.remaining_bytes
        return waiting >= 2 * (self.limits.workers - 1) * remaining

    def _range_done(self, doc: _Doc, document: Document) -> list[Finished]:
        doc.parts.append(document.pages)
        doc.outstanding -= 1
        if doc.outstanding or doc.first is None:
            return []
        merged = merge_pages(doc.first.document, doc.parts)
        doc.first, doc.parts = None, []
        if not self.limits.transforms:
            return self._finish(doc, merged)
        budget = self.limits.budget(len(merged.pages), doc.source)
        self._urgent.append(_Queued(doc, doc.attempt, FinishTask(document=merged), budget))
        return []

    def _range_failed(self, doc: _Doc, failure: Failure) -> list[Finished]:
        # As if the extractor had failed on the whole document (which is what the
        # in-process backend sees): start over with the next fallback, if any.
        assert doc.first is not None
        extractor = doc.first.extractor
        errors = (*doc.first.errors, failure)
        rest = doc.chain[doc.chain.index(extractor) + 1 :] if extractor in doc.chain else ()
        if failure.reason in FINAL_REASONS or not rest:
            return self._finish(doc, extraction_failure(doc.source, errors, self.limits.chain))
        doc.attempt += 1
        doc.chain, doc.errors = rest, errors
        doc.first, doc.parts, doc.outstanding = None, [], 0
        self._urgent.append(self._first_task(doc))
        return []

    def _finish(self, doc: _Doc, outcome: Document | Failure) -> list[Finished]:
        doc.done = True
        doc.first, doc.parts = None, []
        outcome.logs = merge_logs(doc.logs, outcome.logs)
        cap = self.limits.max_memory
        if (
            isinstance(outcome, Failure)
            and outcome.reason == "memory"
            and cap
            and "run.max_memory" not in outcome.message
        ):
            message = f"{outcome.message} (worker memory cap {cap / (1 << 30):.3g} GiB, "
            outcome = replace(outcome, message=message + "run.max_memory)")
        return [(doc.source, outcome)]

    # -- tasks ------------------------------------------------------------------------------

    def _first_task(self, doc: _Doc) -> _Queued:
        limits = self.limits
        pages = range(1, limits.shard_pages + 1) if limits.shard_pages > 0 else None
        task = FirstTask(
            source=doc.source, chain=doc.chain, tried=limits.chain, pages=pages, errors=doc.errors
        )
        budget = limits.budget(len(pages), doc.source) if pages is not None else limits.timeout
        return _Queued(doc, doc.attempt, task, budget)

    def _lost(self, doc: _Doc, task: Task, budget: float, lost: Lost) -> Failure:
        what = describe_task(task)
        message = f"{what}: {lost.message}"
        if lost.reason == "timeout":
            message = (
                f"{what} took longer than {budget:g}s (run.timeout {self.limits.timeout:g}s, "
                f"run.timeout_per_page {self.limits.timeout_per_page:g}s); the worker was killed"
            )
        return Failure(
            source=doc.source.path,
            reason=lost.reason,
            message=message,
            plugin=lost.plugin,
            doc_id=doc.source.doc_id or None,
        )


def describe_task(task: Task) -> str:
    """What a task was doing, for failure messages: ``extracting pages 17-28``..."""
    if isinstance(task, FinishTask):
        return f"transforming the {len(task.document.pages)} merged pages"
    pages = task.pages
    if pages is None:
        return "extracting the document"
    return f"extracting pages {pages.start}-{pages.stop - 1}"
