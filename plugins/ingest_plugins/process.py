"""The worker-process backend (``--workers N``, the default executor ``process``; issue #6).

Documents are extracted and transformed in worker processes run by
:class:`ingest.workers.pool.WorkerPool`: every task has a hard deadline, every worker a memory
cap, and a worker that hangs, bloats or crashes is killed (with its children) and replaced
while its document fails with reason ``timeout``, ``memory`` or ``crash``. Every source given
to :meth:`ProcessBackend.run` comes back exactly once, as a document or a failure.

:class:`ingest.workers.dispatch.Dispatcher` decides what each worker does: large documents are split
into page ranges on several workers and merged back in order before the transforms, and at
most ``2 * workers`` documents are in flight. See there for the deadlines of each task.

The workers start when the session starts, so that their start-up (importing the plugins,
0.4 s) overlaps collection; a session that ends up with nothing to parse stops them.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING

from ingest import hookimpl
from ingest.workers import Dispatcher, Limits, WorkerPool

if TYPE_CHECKING:
    from ingest.config import Settings
    from ingest.manager import IngestPluginManager
    from ingest.model import Document, Failure, Source
    from ingest.session import Session

NAME = "process"

#: The memory cap per worker when ``run.max_memory`` is not set: 24 times the peak of the
#: hungriest extractor on the largest file of ../shared/corpus (pdfminer, 85 MiB), yet far
#: below what takes a machine down. Lowered to an equal share of 3/4 of the RAM on small
#: machines, so every worker at its cap at once still leaves room for the rest.
DEFAULT_MEMORY_CAP = 2 << 30
_MIN_MEMORY_CAP = 256 << 20

#: The hooks whose plugins must exist in the workers too.
_WORKER_HOOKS = ("ingest_extract", "ingest_transform", "ingest_embed")


class ProcessBackend:
    """Worker processes under a supervisor; documents dispatched by page ranges.

    Asks the session for the largest files first (``largest_first``, see
    :mod:`ingest.workers.feed`): the longest tasks start early and the run ends on small ones.

    :param manager: the driver's plugin manager (its specs are sent to the workers).
    :param settings: the run's settings.
    :param workers: number of worker processes.
    """

    largest_first = True

    def __init__(self, manager: IngestPluginManager, settings: Settings, workers: int) -> None:
        self._specs = list(manager.specs)
        self._plugins = {n for hook in _WORKER_HOOKS for n in manager.plugins_with_hook(hook)}
        self._settings = settings
        workers = max(1, workers)
        self.limits = Limits.from_settings(
            settings, manager, workers=workers, max_memory=memory_cap(settings, workers)
        )
        self._pool: WorkerPool | None = None
        # Workers started while the session collected (ingest_session_start), if any.
        self._early: WorkerPool | None = None

    def new_pool(self) -> WorkerPool:
        """A pool of workers for this backend's settings (not started)."""
        return WorkerPool(
            self.limits.workers,
            specs=self._specs,
            settings=self._settings,
            max_memory=self.limits.max_memory,
            expected_plugins=self._plugins,
        )

    @property
    def max_memory(self) -> int | None:
        """The memory cap per worker in bytes, ``None`` for none."""
        return self.limits.max_memory

    def run(
        self, sources: Iterable[Source]
    ) -> Generator[tuple[Source, Document | Failure], None, None]:
        """Yield each source with its outcome, in completion order.

        Closing the generator early (or :meth:`close`) kills the workers; running it to the
        end stops them cleanly.

        :raises ingest.errors.PluginError: the workers cannot load the plugins or settings.
        :raises ingest.errors.IngestError: the workers die before they are ready.
        """
        pool = self._early or self.new_pool()
        self._early = None
        self._pool = pool
        completed = False
        try:
            pool.start()
            yield from Dispatcher(pool, self.limits).run(iter(sources))
            completed = True
        finally:
            pool.close(graceful=completed)

    def close(self) -> None:
        """Kill the workers (and their children), abandoning work in flight. Idempotent."""
        for pool in (self._pool, self._early):
            if pool is not None:
                pool.close()


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


# A backend made at session start, whose workers start while the session collects: their
# start-up (0.4 s of imports) then overlaps collection, not the run. By manager, since
# ingest_executor is not told the session.
_EARLY: weakref.WeakKeyDictionary[IngestPluginManager, ProcessBackend] = (
    weakref.WeakKeyDictionary()
)


@hookimpl
def ingest_session_start(session: Session) -> None:
    """Start the workers now if this run will use them, so they are ready when needed."""
    settings = session.settings
    run = settings.run
    if session.collect_only or run.workers == 0 or run.executor != NAME:
        return
    backend = ProcessBackend(session.manager, settings, worker_count(settings))
    backend._early = backend.new_pool()
    backend._early.start()
    _EARLY[session.manager] = backend


@hookimpl
def ingest_session_finish(session: Session) -> None:
    """Stop early workers the run did not use (nothing to do, or it stopped before)."""
    backend = _EARLY.pop(session.manager, None)
    if backend is not None:
        backend.close()


@hookimpl
def ingest_executor(
    name: str, settings: Settings, manager: IngestPluginManager
) -> ProcessBackend | None:
    """Provide the process pool when asked for ``process``."""
    if name != NAME:
        return None
    early = _EARLY.pop(manager, None)
    if early is not None and early._settings is settings:
        return early
    if early is not None:
        early.close()
    return ProcessBackend(manager, settings, worker_count(settings))
