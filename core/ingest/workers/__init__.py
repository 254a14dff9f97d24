"""The worker machinery, and the toolkit executor backends are written with.

A backend (the ``ingest_executor`` hook) imports only the names of this module's
``__all__``: they are public and kept stable, like ``import ingest`` itself. The modules
behind them say which side of a run they belong to:

* driver (the process that runs ``ingest run``): :mod:`~ingest.workers.dispatch` cuts
  documents into tasks and merges the answers, :mod:`~ingest.workers.pool` supervises
  worker processes, :mod:`~ingest.workers.feed` hands out the collected sources;
* worker: :mod:`~ingest.workers.pipeline` extracts and transforms (in-process too),
  :mod:`~ingest.workers.child` is a worker process's main loop;
* both: :mod:`~ingest.workers.tasks` holds the messages that cross between them,
  :mod:`~ingest.workers.processes` the OS helpers (start, kill, reap, the stage slot).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from ingest.workers.dispatch import Dispatcher, Limits, Pool, describe_task
from ingest.workers.feed import SourceFeed
from ingest.workers.pipeline import WORKER_HOOKS, document_plugins, process_source, run_task
from ingest.workers.pool import Lost, WorkerPool
from ingest.workers.tasks import (
    Extraction,
    FinishTask,
    FirstTask,
    Partial,
    RangeTask,
    Task,
    source_of,
)

if TYPE_CHECKING:
    from ingest.model import Document, Failure, Source

__all__ = [
    "WORKER_HOOKS",
    "Dispatcher",
    "ExecutorBackend",
    "Extraction",
    "FinishTask",
    "FirstTask",
    "Limits",
    "Lost",
    "Partial",
    "Pool",
    "RangeTask",
    "SourceFeed",
    "Task",
    "WorkerPool",
    "describe_task",
    "document_plugins",
    "process_source",
    "run_task",
    "source_of",
]


class ExecutorBackend(Protocol):
    """What ``ingest_executor`` returns: runs extraction and transforms for one session.

    The session calls :meth:`start` as soon as it has the backend, before collecting, so
    that workers boot while the inputs are walked; then :meth:`run` once with the feed of
    sources, and :meth:`close` at the end, always.
    """

    #: Ask the session to feed the largest sources first (pools that run documents in
    #: parallel: the longest tasks start while small ones remain to fill in around them).
    largest_first: bool

    def start(self) -> None:
        """Begin warming up (start worker processes, connect to a cluster); may do nothing."""
        ...

    def run(self, feed: SourceFeed) -> Iterator[tuple[Source, Document | Failure]]:
        """Process the sources of ``feed``, yielding each with its outcome as it completes.

        Every source started comes back exactly once. Stop taking sources when
        ``feed.stopped`` is true (Ctrl-C): a source taken but not started yet may then be
        dropped (the run is interrupted and reruns it); one started still comes back.
        """
        ...

    def close(self) -> None:
        """Stop the workers; work in flight is abandoned. Idempotent."""
        ...
