"""The worker-process backend (``--workers N``, the default executor ``process``).

Each worker rebuilds the plugin manager from the driver's plugin specs and receives the
pickled settings, so it runs the same plugins with the same settings as the driver. The
driver keeps at most ``2 × workers`` documents in flight, so its memory does not grow with
the size of the corpus. A worker that dies takes its pool down with it: the documents that
were in flight are retried once in a fresh pool, and a document that kills a pool twice
fails with reason ``crash``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from ingest.hookspecs import hookimpl
from ingest.model import Failure

if TYPE_CHECKING:
    from ingest.config import Settings
    from ingest.manager import IngestPluginManager
    from ingest.model import Document, Source

NAME = "process"

# Set in each worker by _init_worker.
_worker_state: dict[str, Any] = {}


def _init_worker(specs: list[str], settings: Settings) -> None:
    from ingest.manager import build_manager  # noqa: PLC0415 - runs in the child

    manager = build_manager(specs)
    manager.hook.ingest_configure(settings=settings, manager=manager, role="worker")
    _worker_state["manager"] = manager
    _worker_state["settings"] = settings


def _work(source: Source) -> Document | Failure:
    from ingest.worker import process_source  # noqa: PLC0415

    return process_source(_worker_state["manager"], _worker_state["settings"], source)


class ProcessBackend:
    """A pool of worker processes with a bounded window of work in flight."""

    def __init__(self, manager: IngestPluginManager, settings: Settings, workers: int) -> None:
        self._specs = list(manager.specs)
        self._settings = settings
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the driver has threads (the persistent loop), and a forked child
        # would inherit their locks in whatever state they were.
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self._specs, self._settings),
        )

    def run(self, sources: Iterable[Source]) -> Iterator[tuple[Source, Document | Failure]]:
        """Yield each source with its outcome, in completion order."""
        pending = iter(sources)
        retry: list[Source] = []
        crashed_once: set[str] = set()
        window = 2 * self._workers
        in_flight: dict[Future[Document | Failure], Source] = {}
        self._pool = self._new_pool()
        while True:
            while len(in_flight) < window:
                source = retry.pop() if retry else next(pending, None)
                if source is None:
                    break
                in_flight[self._pool.submit(_work, source)] = source
            if not in_flight:
                return
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                source = in_flight.pop(future)
                try:
                    yield source, future.result()
                except BrokenProcessPool:
                    broken = True
                    if source.content_id in crashed_once:
                        yield source, _crash(source)
                    else:
                        crashed_once.add(source.content_id)
                        retry.append(source)
            if broken:
                # Every future still in flight belongs to the dead pool: run them again.
                for source in in_flight.values():
                    crashed_once.add(source.content_id)
                    retry.append(source)
                in_flight.clear()
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()

    def close(self) -> None:
        """Stop the workers, abandoning queued work. Idempotent."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _crash(source: Source) -> Failure:
    return Failure(
        source=source.path,
        reason="crash",
        message="a worker process died while processing this document",
        doc_id=source.doc_id,
    )


@hookimpl
def ingest_executor(
    name: str, settings: Settings, manager: IngestPluginManager
) -> ProcessBackend | None:
    """Provide the process pool when asked for ``process``."""
    if name != NAME:
        return None
    workers = settings.run.workers or os.cpu_count() or 1
    return ProcessBackend(manager, settings, workers)
