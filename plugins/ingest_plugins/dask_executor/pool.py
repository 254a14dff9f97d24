"""The :class:`ingest.workers.dispatch.Pool` of a Dask cluster: ingest tasks sent in batches.

Every Dask task costs ~10 ms of CPU in the scheduler, the client and the worker's event
loop, paid on the same machines that extract; PDFium reads a typical document in ~20 ms. So
:class:`DaskPool` accepts more tasks than the cluster has threads, queues them, and sends
them as Dask futures of up to :data:`BATCH` tasks each (:func:`.remote.run_batch` runs them one
after another, each under its own deadline).

How a batch is sized, when :meth:`DaskPool.wait` sends the queue (before blocking):

* ``ceil(queued / threads)`` tasks, capped at :data:`BATCH`: while the run is in full swing
  the queue holds more than a batch per thread and every batch is full; at the end of a run
  the queue drains and the batches shrink to one task, so no thread idles while another
  works through a long batch.
* at most :data:`BATCH_BYTES` of source files (a file larger alone goes alone): large
  documents take long, gain nothing from batching, and their answers (which arrive together
  with the rest of their batch) would keep the others from the sinks; it also bounds what a
  batch carries with ``dask.ship_bytes``.
* at most :data:`FUTURES_PER_THREAD` futures per thread are out: one running, one waiting
  behind it (hiding the round trip); the rest of the queue waits on the driver, where it can
  still be cut into smaller batches at the end.

Failures stay per document: a batch whose Dask worker dies is run again by Dask (whole); when
the scheduler gives up (``KilledWorker``) or the batch is cancelled, every task of the batch
comes back as :class:`~ingest.workers.pool.Lost` ``crash`` naming its own file. Every task
submitted gets exactly one answer.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from typing import TYPE_CHECKING, Any

from distributed import Client, Future, as_completed
from distributed.scheduler import KilledWorker
from ingest import Failure, IngestError, UsageError
from ingest.workers import FinishTask, FirstTask, Lost, source_of

from ingest_plugins.dask_executor.remote import Request, run_batch

if TYPE_CHECKING:
    from ingest.workers import Task

logger = logging.getLogger("ingest.dask")

#: Ingest tasks per Dask task at most. ~10 ms of cluster CPU per Dask task against ~20 ms
#: of PDFium per typical document: 8 brings that share from ~50% to ~6%. Measured on the
#: test corpus repeated 4 times (364 ingest tasks; driver + cluster CPU, median of 3 runs): 14.6 s
#: with one task per Dask task, 12.8 s with batches of up to 4, 12.1 s with 8, against
#: 10.0 s for ``--workers 2``. A batch of 8 PDFium documents answers within ~0.2 s, so the
#: sinks do not stall; at the end of a run batches shrink anyway (see above).
BATCH = 8

#: Bytes of source files per batch at most (a larger file goes alone): large files gain
#: little from batching and would make their batch answer late; with ``dask.ship_bytes``
#: this also bounds what one Dask task carries.
BATCH_BYTES = 8 << 20

#: Futures per Dask thread out at once: one running, one queued behind it.
FUTURES_PER_THREAD = 2

#: Batches per thread held on the driver beyond those out, so that a thread whose batch
#: ended gets a full batch again while the run is in full swing.
QUEUED_PER_THREAD = 1

#: A task waiting on the driver: its id, the task, its request.
_Queued = tuple[int, "Task", Request]


class DaskPool:
    """Ingest tasks sent to a Dask cluster in batches.

    :param client: the connected client.
    :param plugin_name: the name of the run's worker plugin.
    :param threads: the cluster's Dask threads.
    :param ship_bytes: send the files' bytes with their tasks.
    :param batch: ingest tasks per Dask task at most.
    """

    def __init__(
        self, client: Client, plugin_name: str, threads: int, ship_bytes: bool, batch: int = BATCH
    ) -> None:
        self._client = client
        self._plugin_name = plugin_name
        self._threads = max(1, threads)
        self._futures = FUTURES_PER_THREAD * self._threads
        self._batch = max(1, batch)
        self._ship_bytes = ship_bytes
        self._token = plugin_name.removeprefix("ingest-")[:12]
        self._completed = as_completed(loop=client.loop)
        # Tasks of documents already started (ranges, transforms, fallbacks) go first, as in
        # the Dispatcher: they finish documents and free the driver's memory.
        self._urgent: deque[_Queued] = deque()
        self._queued: deque[_Queued] = deque()
        #: Futures out, by key, with the tasks of each in order.
        self._running: dict[str, tuple[Future, list[_Queued]]] = {}
        self._in_futures = 0
        # Answers known without asking the cluster (a file the driver cannot read to ship it).
        self._ready: list[tuple[int, Any]] = []
        #: Ingest tasks sent, Dask tasks sent, and the largest batch: for the log and tests.
        self.tasks_sent = 0
        self.batches_sent = 0
        self.largest_batch = 0

    @property
    def capacity(self) -> int:
        """Ingest tasks this pool holds at most (out in futures, or queued here)."""
        return (FUTURES_PER_THREAD + QUEUED_PER_THREAD) * self._threads * self._batch

    @property
    def idle(self) -> int:
        """Tasks this pool can still take."""
        held = self._in_futures + len(self._urgent) + len(self._queued) + len(self._ready)
        return max(0, self.capacity - held)

    def submit(self, task_id: int, task: Task, budget: float) -> bool:
        """Queue ``task``; its worker's supervisor will enforce ``budget`` when it starts it."""
        request = self._request(task, budget)
        if isinstance(request, Failure):
            self._ready.append((task_id, request))
        elif isinstance(task, FirstTask) and not task.errors:
            self._queued.append((task_id, task, request))
        else:
            self._urgent.append((task_id, task, request))
        return True

    def wait(self) -> list[tuple[int, Any]]:
        """Send what is queued, then block until some batches ended; the answers of their
        tasks, or :class:`Lost` for a lost worker.

        :raises IngestError: the connection to the scheduler is lost, or a worker reports an
            error of ingest itself (its setup of the run), which would fail every document.
        """
        self._send()
        if self._ready:
            done, self._ready = self._ready, []
            return done
        answers: list[tuple[int, Any]] = []
        for future in self._completed.next_batch(block=True):
            _, tasks = self._running.pop(future.key)
            self._in_futures -= len(tasks)
            answers.extend(self._answers(future, tasks))
            future.release()
        return answers

    def cancel(self) -> None:
        """Cancel every task of this run still queued or running."""
        futures = [future for future, _ in self._running.values()]
        self._running.clear()
        self._urgent.clear()
        self._queued.clear()
        self._in_futures = 0
        self._completed.clear()
        if futures:
            try:
                self._client.cancel(futures)
            except Exception as exc:  # the scheduler may already be gone
                logger.debug("could not cancel %d Dask tasks: %s", len(futures), exc)

    # -- batches ----------------------------------------------------------------------------

    def _send(self) -> None:
        """Cut the queue into batches while fewer futures than allowed are out."""
        # Sized once per call, on the whole queue: it spreads over all threads.
        queued = len(self._urgent) + len(self._queued)
        size = min(self._batch, -(-queued // self._threads))
        while (self._urgent or self._queued) and len(self._running) < self._futures:
            batch = [self._next()]
            weight = _weight(batch[0][1])
            while len(batch) < size and (self._urgent or self._queued):
                more = _weight((self._urgent or self._queued)[0][1])
                if weight + more > BATCH_BYTES:
                    break
                batch.append(self._next())
                weight += more
            # The key names the first task and the count: readable in Dask's dashboard.
            key = f"ingest-{self._token}-{batch[0][0]}x{len(batch)}"
            future = self._client.submit(
                run_batch, self._plugin_name, [r for _, _, r in batch], key=key, pure=False
            )
            self._running[future.key] = (future, batch)
            self._completed.add(future)
            self._in_futures += len(batch)
            self.tasks_sent += len(batch)
            self.batches_sent += 1
            self.largest_batch = max(self.largest_batch, len(batch))

    def _next(self) -> _Queued:
        return self._urgent.popleft() if self._urgent else self._queued.popleft()

    def _answers(self, future: Future, tasks: list[_Queued]) -> list[tuple[int, Any]]:
        """One answer per task of a batch that ended."""
        if future.status == "finished":
            results = future.result()
            if len(results) != len(tasks):
                raise IngestError(
                    f"internal error: a Dask batch of {len(tasks)} tasks "
                    f"gave {len(results)} answers"
                )
            return [
                (task_id, result) for (task_id, _, _), result in zip(tasks, results, strict=True)
            ]
        if future.status == "cancelled":
            if self._client.status != "running":
                raise IngestError(f"lost the Dask scheduler ({self._client.status})")
            why = " was cancelled (its worker or data was lost)"
            return [
                (task_id, _lost("the Dask task running ", task, why)) for task_id, task, _ in tasks
            ]
        error = future.exception()
        if isinstance(error, KilledWorker):
            # Every task of the batch shared the fate of the one that killed its workers:
            # each fails on its own name (none is run again, so none is answered twice).
            why = f" (with {len(tasks) - 1} other tasks in one Dask task)" if tasks[1:] else ""
            why += f" died (distributed.scheduler.allowed-failures): {error}"
            ran = "every Dask worker that ran "
            return [(task_id, _lost(ran, task, why)) for task_id, task, _ in tasks]
        if isinstance(error, IngestError | ImportError):
            raise UsageError(
                f"a Dask worker cannot run ingest tasks: {type(error).__name__}: {error}"
            ) from error
        raise IngestError(
            f"a Dask task failed unexpectedly: {type(error).__name__}: {error}"
        ) from error

    def _request(self, task: Task, budget: float) -> Request | Failure:
        if isinstance(task, FinishTask):
            return Request(task=task, budget=budget)
        source = task.source
        if source.remote:
            return Request(task=task, budget=budget)  # the worker reads it from its store
        if not self._ship_bytes:
            return Request(task=task, budget=budget, path=os.path.abspath(source.path))
        try:
            data = source.path.read_bytes()
        except OSError as exc:
            return Failure(
                source=source.path,
                reason="unreadable",
                message=f"cannot read the file to send it to the cluster (dask.ship_bytes): {exc}",
                doc_id=source.doc_id,
            )
        return Request(task=task, budget=budget, data=data)


def _lost(before: str, task: Task, after: str) -> Lost:
    """A crash of ``task``, its message naming the file (the driver's path) between the two."""
    return Lost("crash", f"{before}{source_of(task).path}{after}", None)


def _weight(task: Task) -> int:
    """What a task weighs in a batch: the bytes of its source file (whole, for a range: a
    range of a large file is long work too)."""
    return max(0, int(source_of(task).size))
