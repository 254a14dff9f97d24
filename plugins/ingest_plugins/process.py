"""The worker-process backend (``--workers N``, the default executor ``process``).

Documents are extracted and transformed in worker processes run by
:class:`ingest.workers.pool.WorkerPool`: every task has a hard deadline, every worker a memory
cap, and a worker that hangs, bloats or crashes is killed (with its children) and replaced
while its document fails with reason ``timeout``, ``memory`` or ``crash``. Every source given
to :meth:`ProcessBackend.run` comes back exactly once, as a document or a failure.

:class:`ingest.workers.dispatch.Dispatcher` decides what each worker does: large documents are split
into page ranges on several workers and merged back in order before the transforms, and at
most ``2 * workers`` documents are in flight. See there for the deadlines of each task.

Workers start when the documents are handed over, one per document up to ``run.workers``
(more as a long document's page ranges need them): a run never starts more workers than it
has tasks, and a rerun that skips everything starts none.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import TYPE_CHECKING

from ingest import hookimpl
from ingest.workers import Dispatcher, Limits, WorkerPool, document_plugins

if TYPE_CHECKING:
    from ingest import Document, Failure, IngestPluginManager, Settings, Source
    from ingest.workers import SourceFeed, StageTimes

NAME = "process"

#: The memory cap per worker when ``run.max_memory`` is not set: 24 times the peak of the
#: hungriest extractor on the largest file of the test corpus (pdfminer, 85 MiB), yet far
#: below what takes a machine down. Lowered to an equal share of 3/4 of the RAM on small
#: machines, so every worker at its cap at once still leaves room for the rest.
DEFAULT_MEMORY_CAP = 2 << 30
_MIN_MEMORY_CAP = 256 << 20

#: Tasks per worker: the one it runs and the next, which it starts without waiting for the
#: driver (see :class:`ingest.workers.WorkerPool`).
QUEUE_DEPTH = 2


class ProcessBackend:
    """Worker processes under a supervisor; documents dispatched by page ranges.

    Asks the session for the largest files first (``largest_first``, see
    :mod:`ingest.workers.feed`): the longest tasks start early and the run ends on small
    ones. Workers start in :meth:`run`, as many as there are documents (up to ``workers``),
    and more only when page ranges wait for one.

    :param manager: the driver's plugin manager (its specs are sent to the workers).
    :param settings: the run's settings.
    :param workers: number of worker processes.
    """

    largest_first = True

    def __init__(self, manager: IngestPluginManager, settings: Settings, workers: int) -> None:
        workers = max(1, workers)
        self.limits = Limits.from_settings(
            settings, manager, workers=workers, max_memory=memory_cap(settings, workers)
        )
        self._pool = WorkerPool(
            self.limits.workers,
            specs=list(manager.specs),
            settings=settings,
            max_memory=self.limits.max_memory,
            expected_plugins=document_plugins(manager),
            queue_depth=QUEUE_DEPTH,
            installed=manager.installed_targets(),
        )

    @property
    def stage_times(self) -> StageTimes:
        """Seconds per stage, the workers' included."""
        return self._pool.stage_times

    @property
    def max_memory(self) -> int | None:
        """The memory cap per worker in bytes, ``None`` for none."""
        return self.limits.max_memory

    def start(self) -> None:
        """Fork the workers' template, before collection: reporters, the sinks and object
        stores start threads after it, and a process with threads is not forked. How many
        workers to start is known only once the documents are."""
        self._pool.prepare()

    def run(self, feed: SourceFeed) -> Generator[tuple[Source, Document | Failure], None, None]:
        """Yield each source with its outcome, in completion order.

        Closing the generator early (or :meth:`close`) kills the workers; running it to the
        end stops them cleanly.

        :raises ingest.errors.PluginError: the workers cannot load the plugins or settings.
        :raises ingest.errors.IngestError: the workers die before they are ready.
        """
        completed = False
        try:
            self._pool.start(feed.total)
            yield from Dispatcher(self._pool, self.limits).run(feed)
            completed = True
        finally:
            self._pool.close(graceful=completed)

    def close(self) -> None:
        """Kill the workers (and their children), abandoning work in flight. Idempotent."""
        self._pool.close()


def worker_count(settings: Settings) -> int:
    """``run.workers``, or the CPUs this process may use when it is not set."""
    if settings.run.workers:
        return int(settings.run.workers)
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory_cap(settings: Settings, workers: int, *, available: int | None = None) -> int | None:
    """The memory cap per worker in bytes: ``run.max_memory``, ``0`` for none, or the default.

    The default is :data:`DEFAULT_MEMORY_CAP`, or an equal share of 3/4 of the memory
    available when that is less.

    :param available: the memory the workers share; ``None``: this machine's RAM, or the
        cgroup's limit in a container (a Dask worker passes its own memory limit).
    """
    value = settings.run.max_memory
    if value is not None:
        return int(value) or None
    if available is None:
        available = _available_memory()
    if available is None:
        return DEFAULT_MEMORY_CAP
    share = available * 3 // 4 // max(1, workers)
    return max(_MIN_MEMORY_CAP, min(DEFAULT_MEMORY_CAP, share))


def _available_memory() -> int | None:
    try:
        total: int | None = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = None
    try:
        with open("/sys/fs/cgroup/memory.max") as handle:
            limit = handle.read().strip()
        if limit.isdigit():
            total = min(total or int(limit), int(limit))
    except OSError:
        pass
    return total


@hookimpl
def ingest_executor(
    name: str, settings: Settings, manager: IngestPluginManager
) -> ProcessBackend | None:
    """Provide the process pool when asked for ``process``."""
    if name != NAME:
        return None
    return ProcessBackend(manager, settings, worker_count(settings))
