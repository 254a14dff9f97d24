"""Thread- and task-safe progress counting for a run.

Workers report from threads (``update_sync``) and from coroutines (``update``); the terminal
display and other plugins read :meth:`ProgressTracker.get_state` or subscribe to every change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict, final

if TYPE_CHECKING:
    from ingest.model import Failure, LogEntry, Source

__all__ = ["ProgressEvent", "ProgressListener", "ProgressState", "ProgressTracker"]

logger = logging.getLogger(__name__)


class ProgressState(TypedDict):
    """A snapshot of a run's progress; a plain ``dict`` at runtime.

    ``current`` counts finished items, failed and skipped ones included. ``rate`` and
    ``pages_rate`` are averages per second since the tracker was created. ``percentage``
    and ``eta_s`` are ``None`` while the total is unknown, and ``eta_s`` also while nothing
    has finished yet. ``updates`` counts changes, so a listener can drop a stale snapshot
    that arrives after a newer one.

    ``work_total`` and ``work_done`` measure the run in finer units than items when the
    caller gives them (a run: the bytes of the documents to process, done as their pages
    are extracted); then ``percentage`` and ``eta_s`` follow the work, so they move while a
    long document is still in progress. Both are ``0`` when unused.
    """

    current: int
    total: int | None
    percentage: float | None
    rate: float
    eta_s: float | None
    elapsed_s: float
    failed: int
    skipped: int
    pages: int
    pages_rate: float
    updates: int
    work_total: float
    work_done: float


ProgressListener = Callable[[ProgressState], object]
# current, total, failed, skipped, pages, updates, work total, work done, listeners: read
# together under the lock.
_Counts = tuple[
    int, int | None, int, int, int, int, float, float, tuple[ProgressListener, ...]
]


def _check_count(name: str, value: float) -> None:
    if value < 0:
        raise ValueError(f"progress {name} must be 0 or more, got {value}")


@final
class ProgressTracker:
    """Counts finished, failed and skipped items and pages, from any thread or task.

    :param total: how many items the run will process, or ``None`` while unknown.
    :param clock: a monotonic clock in seconds; tests pass a fake one.
    :raises ValueError: when ``total`` is negative.
    """

    def __init__(
        self, total: int | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if total is not None:
            _check_count("total", total)
        # One threading.Lock serves threads and coroutines alike: it is only ever held for a
        # few additions and never across an await or a call out (listeners run after it is
        # released), so a coroutine that takes it on the loop thread waits at most that long
        # and cannot deadlock with itself; an asyncio.Lock would not guard against threads.
        self._lock = threading.Lock()
        self._clock = clock
        self._started = clock()
        self._total = total
        self._current = 0
        self._failed = 0
        self._skipped = 0
        self._pages = 0
        self._updates = 0
        self._work_total = 0.0
        self._work_done = 0.0
        self._listeners: tuple[ProgressListener, ...] = ()

    def update_sync(
        self,
        n: int = 1,
        *,
        failed: int = 0,
        skipped: int = 0,
        pages: int = 0,
        work: float = 0.0,
    ) -> None:
        """Record finished work; safe from any number of threads at once.

        :param n: items finished, whatever their outcome (failed and skipped ones included).
        :param failed: how many of the finished items failed.
        :param skipped: how many of the finished items were skipped.
        :param pages: pages processed.
        :param work: units of work done (see :meth:`add_work`).
        :raises ValueError: when a count is negative.
        """
        if n < 0 or failed < 0 or skipped < 0 or pages < 0 or work < 0:
            for name, value in (
                ("n", n),
                ("failed", failed),
                ("skipped", skipped),
                ("pages", pages),
                ("work", work),
            ):
                _check_count(name, value)
        with self._lock:
            self._current += n
            self._failed += failed
            self._skipped += skipped
            self._pages += pages
            self._work_done = min(self._work_total, self._work_done + work)
            self._updates += 1
            counts = self._counts()
        self._notify(counts)

    def add_work(self, total: float) -> None:
        """Announce ``total`` more units of work (bytes, say), done through ``update_sync(
        work=...)``; from then on ``percentage`` and ``eta_s`` follow the work.

        :param total: units to add.
        :raises ValueError: when ``total`` is negative.
        """
        if total < 0:
            raise ValueError(f"progress work must be 0 or more, got {total}")
        with self._lock:
            self._work_total += total
            self._updates += 1
            counts = self._counts()
        self._notify(counts)

    async def update(
        self, n: int = 1, *, failed: int = 0, skipped: int = 0, pages: int = 0
    ) -> None:
        """Record finished work from a coroutine without blocking the event loop.

        Listeners run in the caller's task, so they must be quick (see :meth:`subscribe`).

        :param n: items finished, whatever their outcome (failed and skipped ones included).
        :param failed: how many of the finished items failed.
        :param skipped: how many of the finished items were skipped.
        :param pages: pages processed.
        :raises ValueError: when a count is negative.
        """
        # The critical section is a handful of additions (see __init__), so running it inline
        # is cheaper than any handoff and cannot stall the loop.
        self.update_sync(n, failed=failed, skipped=skipped, pages=pages)

    def set_total(self, total: int | None) -> None:
        """Set how many items the run will process; ``None`` makes it unknown again.

        :param total: the new total.
        :raises ValueError: when ``total`` is negative.
        """
        if total is not None:
            _check_count("total", total)
        with self._lock:
            self._total = total
            self._updates += 1
            counts = self._counts()
        self._notify(counts)

    def add_total(self, n: int) -> None:
        """Grow the total by ``n`` items as more are discovered; an unknown total becomes ``n``.

        :param n: items to add.
        :raises ValueError: when ``n`` is negative.
        """
        _check_count("n", n)
        with self._lock:
            self._total = n if self._total is None else self._total + n
            self._updates += 1
            counts = self._counts()
        self._notify(counts)

    def get_state(self) -> ProgressState:
        """Return a consistent snapshot of the counters and the derived rates.

        :returns: a new dict; changing it does not affect the tracker.
        """
        with self._lock:
            counts = self._counts()
        return self._state(counts)

    def subscribe(self, listener: ProgressListener) -> Callable[[], None]:
        """Call ``listener`` with the new state after every change.

        Listeners run in the thread or task that made the change, outside the tracker's lock,
        so they may call :meth:`get_state` but should return quickly. With several updaters
        at once, snapshots can arrive out of order: compare ``updates``. An exception in a
        listener is logged and does not affect the update or the other listeners.

        :param listener: a callable taking a :class:`ProgressState`.
        :returns: a function that unsubscribes ``listener``; calling it again does nothing.
        """
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def unsubscribe() -> None:
            with self._lock:
                listeners = list(self._listeners)
                if listener in listeners:
                    listeners.remove(listener)
                    self._listeners = tuple(listeners)

        return unsubscribe

    # Held under the lock: plain reads, so the critical section stays a few instructions.
    def _counts(self) -> _Counts:
        return (
            self._current,
            self._total,
            self._failed,
            self._skipped,
            self._pages,
            self._updates,
            self._work_total,
            self._work_done,
            self._listeners,
        )

    def _state(self, counts: _Counts) -> ProgressState:
        current, total, failed, skipped, pages, updates, work_total, work_done, _ = counts
        elapsed = max(0.0, self._clock() - self._started)
        rate = current / elapsed if elapsed > 0 else 0.0
        percentage: float | None = None
        eta: float | None = None
        if total is not None:
            percentage = 100.0 if total == 0 else min(100.0, 100.0 * current / total)
            left = max(0, total - current)
            if left == 0:
                eta = 0.0
            elif rate > 0:
                eta = left / rate
        if work_total > 0 and (total is None or current < total):
            percentage = 100.0 * work_done / work_total
            eta = elapsed * (work_total - work_done) / work_done if work_done > 0 else None
        return {
            "current": current,
            "total": total,
            "percentage": percentage,
            "rate": rate,
            "eta_s": eta,
            "elapsed_s": elapsed,
            "failed": failed,
            "skipped": skipped,
            "pages": pages,
            "pages_rate": pages / elapsed if elapsed > 0 else 0.0,
            "updates": updates,
            "work_total": work_total,
            "work_done": work_done,
        }

    def _notify(self, counts: _Counts) -> None:
        listeners = counts[-1]
        if not listeners:
            return
        state = self._state(counts)
        for listener in listeners:
            try:
                # Each listener gets its own copy, so one mutating it cannot mislead the next.
                listener(state.copy())
            except Exception:
                logger.exception(
                    "progress listener %r failed; the update itself was recorded", listener
                )


@dataclass(slots=True)
class ProgressEvent:
    """One event of a run, as reporters hear it through ``ingest_progress``.

    :param kind: ``collected``, ``pages`` (pages of a document in progress were extracted),
        ``ingested``, ``skipped``, ``failed`` or ``finished``.
    :param state: a :meth:`ProgressTracker.get_state` snapshot taken after the event.
    :param logs: for ``ingested``, what libraries logged while the document was made
        (a failure carries its own, ``failure.logs``).
    """

    kind: str
    state: ProgressState
    source: Source | None = None
    failure: Failure | None = None
    pages: int = 0
    message: str | None = None
    logs: list[LogEntry] = field(default_factory=list)
