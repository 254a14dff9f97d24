"""Run coroutines from synchronous code on one persistent event loop.

Plugins are written as coroutines, while pluggy calls hooks synchronously. Starting a loop
per call (``asyncio.run``) costs more than most coroutines do, so one loop runs for the life
of the process in a daemon thread and each ``run_sync`` is one cross-thread handoff: the
caller allocates a lock, hands the coroutine over as a real Task, and blocks on the lock,
which the Task releases when it finishes.

Decisions worth knowing:

- contextvars are copied into the coroutine (as anyio does); changes made inside do not
  flow back to the caller (unlike asgiref), so a coroutine cannot alter its caller's state.
- After :func:`shutdown_executors`, the next ``run_sync`` starts a fresh loop lazily.
- On a timeout or an interrupt in the caller the Task is cancelled and the caller waits at
  most ``cancel_grace`` seconds (1 s by default) for it to unwind before raising.
- The loop is uvloop's when uvloop is installed (the ``uvloop`` extra), else asyncio's;
  ``INGEST_EVENT_LOOP=asyncio|uvloop|auto`` or the ``loop`` argument chooses.

The call and loop machinery is in :mod:`ingest.bridge.handoff`.
"""

from __future__ import annotations

import atexit
import contextvars
import inspect
import os
import threading
import types
import weakref
from collections.abc import Coroutine, Iterable
from concurrent.futures import Executor
from typing import Any, Final, TypeVar, final

from ingest.bridge.handoff import Batch, Call, Outcome, Runner, reraise, resolve_loop_kind, wait_for

__all__ = [
    "PersistentLoopExecutor",
    "get_executor",
    "register_pool",
    "run_sync",
    "run_sync_many",
    "shutdown_executors",
]

T = TypeVar("T")
_Coro = Coroutine[Any, Any, Any]

DEFAULT_CANCEL_GRACE: Final = 1.0

_CoroutineType: Final = types.CoroutineType
_copy_context = contextvars.copy_context
_get_ident = threading.get_ident
_getpid = os.getpid


@final
class PersistentLoopExecutor:
    """Runs coroutines from synchronous code on one event loop in one daemon thread.

    The loop starts lazily, once, under a lock, on the first call; after :meth:`shutdown`
    the next call starts a fresh one. A forked child never touches its parent's loop thread
    (which does not exist there): it starts its own on first use.

    :param name: the name of the loop thread.
    :param cancel_grace: seconds a caller waits, after a timeout or an interrupt, for the
        cancelled coroutine to run its ``finally`` blocks; also bounds each shutdown step.
    :param loop: ``asyncio``, ``uvloop``, ``auto`` (uvloop when installed), or ``None`` to
        read ``INGEST_EVENT_LOOP`` each time a loop starts. Checked when the loop starts: an
        unknown value is a ValueError, ``uvloop`` without uvloop installed a RuntimeError.
    """

    def __init__(
        self,
        name: str = "ingest-loop",
        *,
        cancel_grace: float = DEFAULT_CANCEL_GRACE,
        loop: str | None = None,
    ) -> None:
        self.name = name
        self.cancel_grace = cancel_grace
        self.loop_kind = loop
        self._lock = threading.Lock()
        self._runner: Runner | None = None
        self._pools: weakref.WeakSet[Executor] = weakref.WeakSet()
        _EXECUTORS.add(self)

    def _ensure_runner(self) -> Runner:
        with self._lock:
            runner = self._runner
            if runner is None or runner.pid != _getpid() or runner.closed:
                runner = self._runner = Runner(self.name, resolve_loop_kind(self.loop_kind))
            return runner

    def _after_fork_in_child(self) -> None:
        # The parent's loop thread does not exist here, a parent thread may have held the
        # lock at fork time, and the registered pools' workers belong to the parent.
        self._lock = threading.Lock()
        self._runner = None
        self._pools = weakref.WeakSet()

    def register_pool(self, pool: Executor) -> Executor:
        """Shut ``pool`` down (``cancel_futures=True``) when this executor shuts down.

        :param pool: a thread or process pool; held weakly, so this does not keep it alive.
        :returns: ``pool``, so the call can wrap its construction.
        """
        self._pools.add(pool)
        return pool

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop the loop: cancel pending Tasks and wait for them, then stop registered pools.

        Idempotent. Each wait is bounded by ``cancel_grace``, so a coroutine that ignores
        cancellation cannot hang the process at exit. A later ``run_sync`` starts a new loop;
        a caller whose coroutine this cancels gets a RuntimeError.

        :param wait: passed to each registered pool's ``shutdown``.
        :raises RuntimeError: when called from the loop thread itself.
        """
        with self._lock:
            runner = self._runner
            if runner is not None and runner.ident == _get_ident():
                raise RuntimeError(
                    f"{self.name}: shutdown() was called from the loop's own thread and would "
                    "wait for itself; call it from synchronous code outside the loop"
                )
            self._runner = None
            pools = list(self._pools)
            self._pools = weakref.WeakSet()
        if runner is not None and runner.pid == _getpid() and not runner.closed:
            runner.stop(self.cancel_grace)
        for pool in pools:
            pool.shutdown(wait=wait, cancel_futures=True)

    def run_sync(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run ``coro`` as a Task on the persistent loop and return its result.

        Works from any thread, including one that runs its own event loop. The caller's
        contextvars are copied in; changes made inside are not copied back.

        :param coro: a coroutine object, for example ``fetch(url)``.
        :param timeout: seconds to wait; ``None`` waits for as long as it takes.
        :returns: the coroutine's return value.
        :raises TypeError: when ``coro`` is not a coroutine object (nothing is closed).
        :raises RuntimeError: when called from the loop thread, which would deadlock (the
            coroutine is closed unstarted), or when a shutdown cancels the coroutine.
        :raises TimeoutError: when ``timeout`` passes; the Task is cancelled first and the
            caller waits up to ``cancel_grace`` seconds for it to unwind.
        :raises BaseException: whatever the coroutine raised, with its traceback. An
            interrupt in the caller (KeyboardInterrupt) cancels the Task the same way.
        """
        if type(coro) is not _CoroutineType and not isinstance(coro, Coroutine):
            raise TypeError(f"run_sync() needs a coroutine object, got {_describe(coro)}")
        call = Call(coro)
        what = getattr(coro, "__qualname__", type(coro).__qualname__)
        result: T = self._handoff(call, timeout, what)
        return result

    def run_sync_many(
        self, coros: Iterable[Coroutine[Any, Any, T]], *, timeout: float | None = None
    ) -> list[T]:
        """Run many coroutines concurrently, each as its own Task, with one handoff.

        On the first exception, the rest are cancelled (and awaited) and then that first
        exception is re-raised. The wait for cancelled coroutines is bounded by ``cancel_grace``.

        :param coros: coroutine objects; all are checked before any starts.
        :param timeout: seconds to wait for all of them; ``None`` waits as long as it takes.
        :returns: their results, in input order.
        :raises TypeError: when an item is not a coroutine object (nothing is closed).
        :raises RuntimeError: when called from the loop thread (the coroutines are closed).
        :raises TimeoutError: when ``timeout`` passes; all unfinished Tasks are cancelled.
        :raises BaseException: the first exception a coroutine raised.
        """
        items = list(coros)
        for index, item in enumerate(items):
            if type(item) is not _CoroutineType and not isinstance(item, Coroutine):
                raise TypeError(
                    f"run_sync_many() needs coroutine objects, item {index} is {_describe(item)}"
                )
        if not items:
            return []
        results: list[T] = self._handoff(
            Batch(items, self.cancel_grace), timeout, f"{len(items)} coroutines"
        )
        return results

    def _handoff(self, work: Call | Batch, timeout: float | None, what: str) -> Any:
        outcome = Outcome.LOST
        for attempt in range(3):
            current = self._runner
            if attempt == 0 and current is not None and current.pid == _getpid():
                runner = current
            else:
                runner = self._ensure_runner()
            if _get_ident() == runner.ident:
                for coro in work.unstarted():
                    coro.close()
                raise RuntimeError(
                    f"run_sync() was called from the {self.name} thread, inside a coroutine that "
                    "this loop runs, and would wait for itself forever; await it instead"
                )
            loop = runner.loop
            try:
                try:
                    work.schedule(loop, _copy_context(), runner.direct)
                except RuntimeError:
                    if not loop.is_closed():
                        raise
                    continue  # closed by a concurrent shutdown: take a fresh loop
                outcome = wait_for(runner, work.done, timeout)
            except BaseException:
                # KeyboardInterrupt (or any error) in the caller: stop the work on the loop.
                self._cancel(runner, work)
                raise
            if outcome is Outcome.LOST and work.unstarted():
                continue  # dropped by a loop that closed under us: safe to run it elsewhere
            break
        if outcome is Outcome.DONE:
            error = work.error
            if error is None:
                return work.result
            work.error = None
            try:
                reraise(error, runner.stopping, what)
            finally:
                del error
        if outcome is Outcome.TIMED_OUT:
            self._cancel(runner, work)
            raise TimeoutError(f"{what} did not finish within {timeout} s and was cancelled")
        for coro in work.unstarted():
            coro.close()
        raise RuntimeError(f"{self.name} was shut down before {what} finished")

    def _cancel(self, runner: Runner, work: Call | Batch) -> None:
        try:
            runner.loop.call_soon_threadsafe(work.cancel)
        except RuntimeError:  # the loop is closed: nothing runs any more
            return
        work.done.acquire(timeout=self.cancel_grace)


def _describe(obj: object) -> str:
    name = getattr(obj, "__qualname__", None)
    if inspect.iscoroutinefunction(obj):
        return f"the coroutine function {name} itself; call it: run_sync({name}(...))"
    if callable(obj) and name is not None:
        return f"the callable {name}"
    text = repr(obj)
    return f"{type(obj).__qualname__} {text if len(text) <= 80 else text[:77] + '...'}"


_EXECUTORS: weakref.WeakSet[PersistentLoopExecutor] = weakref.WeakSet()
_DEFAULT = PersistentLoopExecutor()


def _reset_after_fork() -> None:
    for executor in list(_EXECUTORS):
        executor._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_after_fork)


def get_executor() -> PersistentLoopExecutor:
    """Return the process-wide executor that :func:`run_sync` uses.

    :returns: the default :class:`PersistentLoopExecutor`.
    """
    return _DEFAULT


# Bound methods of the default executor: one call frame less than a wrapper function, and
# the docstrings stay in one place.
run_sync = _DEFAULT.run_sync
run_sync_many = _DEFAULT.run_sync_many
register_pool = _DEFAULT.register_pool


def shutdown_executors() -> None:
    """Shut down every :class:`PersistentLoopExecutor` and the pools registered with them.

    Idempotent and registered with :mod:`atexit`. A later :func:`run_sync` starts a fresh loop.

    :raises RuntimeError: when called from a loop thread.
    """
    for executor in list(_EXECUTORS):
        executor.shutdown()


atexit.register(shutdown_executors)
