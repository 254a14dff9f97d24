"""Ctrl-C during dispatch: stop handing out work, keep what is done, exit 2.

The first SIGINT stops dispatch: no new document is handed to the backend, documents in
flight get :data:`GRACE_S` seconds to finish, then are abandoned. A second SIGINT abandons
them at once. Either way the session then flushes the finished documents to the sinks,
commits them to the cache and prints the summary.

A KeyboardInterrupt must never land between a sink's write and the cache commit: a batch
half-written by one sink and written again by the final flush would be a duplicate. The
session wraps that stretch in :meth:`GracefulStop.critical`, which holds the interrupt back
until the stretch is over.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import threading
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any, TypeVar, final

__all__ = ["GRACE_S", "GracefulStop"]

T = TypeVar("T")

#: Seconds documents in flight may take to finish after the first Ctrl-C.
GRACE_S = 5.0


@final
class GracefulStop:
    """A SIGINT handler for the dispatch phase, used as a context manager.

    Installed only on the main thread and only over Python's default handler, so an
    application that embeds ingest (or runs it in a thread with ``arun``) keeps its own.

    :param grace_s: how long documents in flight may finish after the first SIGINT.
    """

    def __init__(self, grace_s: float = GRACE_S) -> None:
        self.grace_s = grace_s
        #: A stop was asked for: dispatch no more work.
        self.requested = False
        self._previous: Any = None
        self._installed = False
        self._depth = 0
        self._deferred = False
        self._timer: threading.Timer | None = None

    def __enter__(self) -> GracefulStop:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if not self.requested:
            self.requested = True
            # The grace deadline arrives as a second SIGINT, so the main thread is woken from
            # whatever wait it is in, exactly as if the user pressed Ctrl-C again.
            self._timer = threading.Timer(self.grace_s, _interrupt_main_thread)
            self._timer.daemon = True
            self._timer.start()
            return
        if self._depth:
            self._deferred = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A stretch a SIGINT must not cut: the interrupt is raised when it ends."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self._deferred:
            self._deferred = False
            raise KeyboardInterrupt

    def stoppable(self, items: Iterable[T]) -> Iterator[T]:
        """``items``, ending early once a stop is requested (what the backend dispatches)."""
        for item in items:
            if self.requested:
                return
            yield item


def _interrupt_main_thread() -> None:
    if hasattr(signal, "pthread_kill"):
        # A real signal, aimed at the main thread: it interrupts a blocking system call
        # (sleep, select, a pipe read) there. interrupt_main() only sets a flag, which the
        # main thread sees when its system call returns, maybe a minute later.
        main = threading.main_thread().ident
        if main is not None:
            signal.pthread_kill(main, signal.SIGINT)
            return
    _thread.interrupt_main()  # Windows: no pthread_kill
