"""What runs on the Dask workers: a batch of ingest tasks per Dask task, under our supervisor.

The driver registers an :class:`IngestWorkerPlugin` (a Dask worker plugin) carrying the
plugin specs and the pickled settings; Dask hands it to every worker, including workers
that join or restart later. Each Dask executor thread gets its own
:class:`ingest.workers.pool.WorkerPool` of one worker process, started lazily (one per thread is
started ahead, when the plugin is set up). :func:`run_batch`, the Dask task, gives the pool
the ingest tasks of its batch one after another, each under its own deadline, and returns
their answers in order (a Dask task costs the cluster ~10 ms of CPU; a batch pays it once).
A task that overruns its deadline, bloats or crashes kills only its own supervised process;
the pool starts a replacement and the rest of the batch goes on in it.

Why a supervised process, and not the task run in the Dask thread: a Dask task cannot be
interrupted, and a hostile PDF that hangs, bloats or segfaults would hang, bloat or kill the
Dask worker. Here the hard deadline, the memory cap (RSS polling plus RLIMIT_DATA) and crash
detection are the local ones, with the same failure records; the Dask worker stays healthy.
Why one pool per thread: a pool is used from one thread (it has no locks), and its worker
processes die with the thread that started them (PR_SET_PDEATHSIG); Dask's executor threads
live as long as the worker process.

Files are read from the path the driver sends (absolute; a shared filesystem), or, with
``dask.ship_bytes``, written from the bytes sent into a temporary folder under the file's
own name, processed, and deleted. Either way the outcome names the driver's path again.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin
from ingest import Document, Failure, IngestError, Source
from ingest.workers import FinishTask, Lost, Partial, WorkerPool

from ingest_plugins.process import memory_cap

if TYPE_CHECKING:
    from distributed import Worker
    from ingest import Settings
    from ingest.workers import Task

logger = logging.getLogger("ingest.dask")


@dataclass(frozen=True, slots=True)
class Request:
    """One ingest task for a Dask worker.

    :param task: the task, naming the source as the driver knows it.
    :param budget: its deadline in seconds, enforced by the worker's supervisor.
    :param path: the absolute path to read the file from (shared filesystem), if any.
    :param data: the file's bytes (``dask.ship_bytes``), if any.
    """

    task: Task
    budget: float
    path: str | None = None
    data: bytes | None = None


class IngestWorkerPlugin(WorkerPlugin):
    """The ingest setup of one run, on every Dask worker of the cluster.

    :param specs: the driver's plugin specs (``manager.specs``).
    :param settings: the pickled settings.
    :param sys_path: the driver's ``sys.path``; entries that exist on the worker and are not
        on its path are appended, so plugins loaded by module path import there too.
    :param expected_plugins: the plugins that extract or transform on the driver; a worker
        process that lacks one is a usage error, as in a local run.
    """

    def __init__(
        self, specs: list[str], settings: bytes, sys_path: list[str], expected_plugins: list[str]
    ) -> None:
        self.specs = specs
        self.settings = settings
        self.sys_path = sys_path
        self.expected_plugins = expected_plugins

    # -- Dask's side ------------------------------------------------------------------------

    def setup(self, worker: Worker) -> None:
        """Unpickle the settings, size the memory cap, start one supervised process per
        Dask thread (their start-up then overlaps the run's first tasks)."""
        for entry in self.sys_path:
            if entry not in sys.path and os.path.isdir(entry):
                sys.path.append(entry)
        self._settings: Settings = pickle.loads(self.settings)
        self.max_memory = _memory_cap(self._settings, worker)
        self._lock = threading.Lock()
        self._pools: dict[int, WorkerPool] = {}
        self._busy: set[int] = set()
        self._closing = False
        self._spares = [self._new_pool() for _ in range(max(1, worker.state.nthreads))]
        for pool in self._spares:
            pool.start()

    def teardown(self, worker: Worker) -> None:
        """Stop the supervised processes; a busy one is stopped by its thread, at once when
        the memory cap is on (the supervisor wakes every 0.1 s), else at the task's end."""
        with self._lock:
            self._closing = True
            idle = [pool for ident, pool in self._pools.items() if ident not in self._busy]
            idle += self._spares
            self._spares = []
            for ident in [i for i in self._pools if i not in self._busy]:
                del self._pools[ident]
        for pool in idle:
            pool.close()

    # -- one task ---------------------------------------------------------------------------

    def run(self, request: Request) -> Document | Failure | Partial | Lost:
        """Run one task under this thread's supervisor; the outcome names the driver's path."""
        task, original = request.task, _source_of(request.task)
        ident = threading.get_ident()
        pool = self._pool_for(ident)
        folder: str | None = None
        used: Path | None = None
        try:
            if original is not None and not isinstance(task, FinishTask):
                if request.data is not None:
                    folder = tempfile.mkdtemp(prefix="ingest-dask-")
                    used = Path(folder) / (original.path.name or "document.pdf")
                    used.write_bytes(request.data)
                elif request.path is not None:
                    used = Path(request.path)
                if used is not None:
                    task = replace(task, source=replace(original, path=used))
            outcome = self._supervise(pool, task, request.budget)
        except BaseException:
            self._drop(ident)
            raise
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            self._release(ident)
        if original is not None and used is not None:
            restore(outcome, original, str(used))
        return outcome

    def _supervise(self, pool: WorkerPool, task: Task, budget: float) -> Any:
        # Until its process is ready, the pool takes no task; wait() returns when it is.
        while not pool.submit(0, task, budget):
            self._check_open()
            pool.wait()
        while True:
            for _, outcome in pool.wait():
                return outcome
            self._check_open()

    def _check_open(self) -> None:
        if self._closing:
            raise IngestError("the ingest run this task belongs to has ended")

    # -- pools by thread --------------------------------------------------------------------

    def _new_pool(self) -> WorkerPool:
        return WorkerPool(
            1,
            specs=self.specs,
            settings=self._settings,
            max_memory=self.max_memory,
            expected_plugins=self.expected_plugins,
        )

    def _pool_for(self, ident: int) -> WorkerPool:
        with self._lock:
            self._check_open()
            self._busy.add(ident)
            pool = self._pools.get(ident)
            if pool is None:
                pool = self._spares.pop() if self._spares else None
            if pool is None:
                pool = self._new_pool()
                pool.start()
            self._pools[ident] = pool
            return pool

    def _release(self, ident: int) -> None:
        with self._lock:
            self._busy.discard(ident)
            pool = self._pools.pop(ident, None) if self._closing else None
        if pool is not None:
            pool.close()

    def _drop(self, ident: int) -> None:
        """Forget (and stop) this thread's pool after an error: the next task starts anew."""
        with self._lock:
            pool = self._pools.pop(ident, None)
        if pool is not None:
            pool.close()


def run_batch(
    plugin_name: str, requests: list[Request]
) -> list[Document | Failure | Partial | Lost]:
    """The Dask task: run ``requests`` one after another on this thread's supervised pool.

    Each request has its own budget, enforced from the moment the supervisor takes it (so
    the requests queued behind a slow one lose no time). A :class:`Lost` answer (timeout,
    memory, crash) ends only that request; the next one runs in the replacement process.

    :returns: one answer per request, in order.
    :raises IngestError: this worker has not set up the run (its plugin is missing).
    """
    worker = get_worker()
    plugin = worker.plugins.get(plugin_name)
    if not isinstance(plugin, IngestWorkerPlugin):
        raise IngestError(f"the Dask worker {worker.address} has no ingest setup {plugin_name!r}")
    return [plugin.run(request) for request in requests]


def memory_cap_of(plugin_name: str, dask_worker: Worker) -> int | None:
    """The memory cap the run's supervisors use on this worker (for ``client.run``)."""
    plugin = dask_worker.plugins.get(plugin_name)
    return plugin.max_memory if isinstance(plugin, IngestWorkerPlugin) else None


def restore(outcome: Any, source: Source, used: str) -> None:
    """Make an outcome name ``source`` as the driver knows it, not the path read here."""
    if isinstance(outcome, Document):
        outcome.source = source
    elif isinstance(outcome, Failure):
        outcome.source = source.path
        outcome.message = outcome.message.replace(used, str(source.path))
    elif isinstance(outcome, Partial):
        outcome.extraction.document.source = source
        for failure in outcome.extraction.errors:
            restore(failure, source, used)


def _source_of(task: Task) -> Source | None:
    return None if isinstance(task, FinishTask) else task.source


def _memory_cap(settings: Settings, worker: Worker) -> int | None:
    """The cap of each supervised process: as locally, with the Dask worker's memory limit
    as the memory its threads share (the machine's RAM when it has none). On a LocalCluster
    each worker's limit is the RAM divided among the workers, so the cap comes out as a
    local run's with as many workers."""
    limit = worker.memory_manager.memory_limit
    return memory_cap(
        settings, max(1, worker.state.nthreads), available=int(limit) if limit else None
    )
