"""Run coroutines from synchronous code on one persistent event loop (issue #2).

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
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import enum
import inspect
import logging
import os
import sys
import threading
import time
import types
import weakref
from collections.abc import Coroutine, Iterable
from concurrent.futures import Executor
from typing import Any, Final, NoReturn, TypeVar, cast, final

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

logger = logging.getLogger(__name__)

DEFAULT_CANCEL_GRACE: Final = 1.0
# A waiting caller wakes this often to notice a loop that was shut down under it. Losing a
# call needs a shutdown racing that call, so a coarse period costs nothing on the fast path.
_LIVENESS_POLL_S: Final = 0.5

# run_sync builds the Task on the caller's thread (see _Call.schedule). That relies on
# Task() doing nothing but a call_soon, and on the GIL to make that append atomic: checked
# on CPython 3.11-3.13 with the GIL. Anywhere else the callback path keeps it exact.
_CALLER_BUILDS_TASK: Final = (
    sys.version_info < (3, 14) and getattr(sys, "_is_gil_enabled", lambda: True)()
)
_CoroutineType: Final = types.CoroutineType
_Task: Final = asyncio.Task
_allocate_lock = threading.Lock
_copy_context = contextvars.copy_context
_get_ident = threading.get_ident
_getpid = os.getpid


class _Outcome(enum.Enum):
    DONE = enum.auto()
    TIMED_OUT = enum.auto()
    LOST = enum.auto()  # the loop closed before the work finished


def _wake() -> None:
    """Do nothing; scheduling it thread-safely is what wakes the loop."""


class _Call:
    """One coroutine handed to the loop; ``coro`` stays set until the Task has started it."""

    __slots__ = ("coro", "done", "error", "result", "task")

    def __init__(self, coro: _Coro) -> None:
        self.coro: _Coro | None = coro
        self.done = _allocate_lock()
        self.done.acquire()
        self.task: asyncio.Task[None] | None = None
        self.result: Any = None
        self.error: BaseException | None = None

    def schedule(self, loop: asyncio.AbstractEventLoop, ctx: contextvars.Context) -> None:
        if not _CALLER_BUILDS_TASK or loop.get_debug():
            # Debug mode rejects call_soon from a foreign thread: create the Task over there.
            loop.call_soon_threadsafe(self.start, loop, ctx)
            return
        # Building the Task here only appends its first step to the loop's ready queue, which
        # is all call_soon_threadsafe does besides waking the loop. The step then runs in the
        # iteration that wakes up rather than the next one: ~9 us of a ~40 us call.
        drive = _drive(self)
        try:
            self.task = _Task(drive, loop=loop, context=ctx)
        except BaseException:
            drive.close()
            raise
        loop.call_soon_threadsafe(_wake)

    def start(self, loop: asyncio.AbstractEventLoop, ctx: contextvars.Context) -> None:
        self.task = loop.create_task(_drive(self), context=ctx)

    def cancel(self) -> None:
        # Runs on the loop thread after the start (callbacks are FIFO). A Task cancelled
        # before its first step never runs _drive's body, so release the caller here.
        task = self.task
        if self.coro is not None:
            self.coro.close()
            self.coro = None
            self.done.release()
        if task is not None:
            task.cancel()

    def unstarted(self) -> list[_Coro]:
        return [] if self.coro is None else [self.coro]


async def _drive(call: _Call) -> None:
    coro = cast(_Coro, call.coro)
    call.coro = None
    try:
        call.result = await coro
    except BaseException as exc:
        # Catching BaseException keeps KeyboardInterrupt/SystemExit inside this Task: asyncio
        # re-raises them out of run_forever, which would kill the shared loop thread.
        call.error = exc
    finally:
        call.done.release()


class _Batch:
    def __init__(self, coros: list[_Coro], grace: float) -> None:
        self.coros: list[_Coro] | None = coros
        self.grace = grace
        self.result: list[Any] = [None] * len(coros)
        self.pending = len(coros)
        self.started = 0
        self.stopping = False
        self.error: BaseException | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.done = _allocate_lock()
        self.done.acquire()
        self.released = False
        self.give_up: asyncio.TimerHandle | None = None

    def schedule(self, loop: asyncio.AbstractEventLoop, ctx: contextvars.Context) -> None:
        # Run start() inside the caller's context: each Task then copies it, as gather does.
        loop.call_soon_threadsafe(self.start, loop, context=ctx)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        coros, self.coros = self.coros, None
        create_task = loop.create_task
        append = self.tasks.append
        for index, coro in enumerate(coros or ()):
            append(create_task(_drive_one(self, index, coro)))

    def release(self) -> None:
        # Only ever called on the loop thread, so the flag needs no lock.
        if not self.released:
            self.released = True
            if self.give_up is not None:
                self.give_up.cancel()
            self.done.release()

    def cancel(self) -> None:
        if self.coros is not None:  # start() never ran (callbacks are FIFO: never will)
            for coro in self.coros:
                coro.close()
            self.coros = None
            self.release()
            return
        self.stopping = True
        # A Task cancelled before its first step never runs _drive_one, so it would neither
        # count down nor close its coroutine. Tasks start in creation order, so only the
        # first `started` ones can be cancelled; the others see `stopping` when they start.
        current = asyncio.current_task()
        for task in self.tasks[: self.started]:
            if task is not current and not task.done():
                task.cancel()
        if self.give_up is None and self.pending:
            # Bounds the wait on coroutines that swallow cancellation.
            self.give_up = asyncio.get_running_loop().call_later(self.grace, self.release)

    def unstarted(self) -> list[_Coro]:
        return self.coros or []


async def _drive_one(batch: _Batch, index: int, coro: _Coro) -> None:
    batch.started += 1
    try:
        if batch.stopping:
            coro.close()
        else:
            batch.result[index] = await coro
    except BaseException as exc:  # see _drive: the loop thread must survive
        if batch.error is None:
            batch.error = exc
            batch.cancel()
    finally:
        batch.pending -= 1
        if batch.pending == 0:
            batch.release()


class _Runner:
    """One started loop and its thread; replaced wholesale on restart or after a fork."""

    __slots__ = ("closed", "ident", "loop", "pid", "stopping", "thread")

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.serve, name=name, daemon=True)
        self.pid = _getpid()
        self.stopping = False
        self.closed = False
        self.thread.start()
        self.ident = self.thread.ident

    def serve(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            # A stray loop.stop() in user code, or a bare callback raising SystemExit, must
            # not strand callers on a loop that no longer runs: only shutdown ends this.
            while True:
                try:
                    loop.run_forever()
                except BaseException:
                    logger.exception("the ingest event loop stopped on an error; restarting it")
                if self.stopping:
                    break
        finally:
            self.closed = True
            loop.close()

    def stop(self, grace: float) -> None:
        self.stopping = True
        loop = self.loop
        try:
            drained = asyncio.run_coroutine_threadsafe(_drain(grace), loop)
            try:
                drained.result(timeout=3 * grace)
            except TimeoutError:
                logger.warning(
                    "%s: pending work did not stop within %s s", self.thread.name, 3 * grace
                )
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:  # closed already: nothing left to stop
            return
        self.thread.join(timeout=grace)
        if self.thread.is_alive():
            logger.warning("%s: the loop thread is blocked and was left running", self.thread.name)


async def _drain(grace: float) -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=grace)
    loop = asyncio.get_running_loop()
    await loop.shutdown_asyncgens()
    try:
        await asyncio.wait_for(loop.shutdown_default_executor(), grace)
    except TimeoutError:
        logger.warning("the ingest loop's default executor did not stop within %s s", grace)


@final
class PersistentLoopExecutor:
    """Runs coroutines from synchronous code on one event loop in one daemon thread.

    The loop starts lazily, once, under a lock, on the first call; after :meth:`shutdown`
    the next call starts a fresh one. A forked child never touches its parent's loop thread
    (which does not exist there): it starts its own on first use.

    :param name: the name of the loop thread.
    :param cancel_grace: seconds a caller waits, after a timeout or an interrupt, for the
        cancelled coroutine to run its ``finally`` blocks; also bounds each shutdown step.
    """

    def __init__(
        self, name: str = "ingest-loop", *, cancel_grace: float = DEFAULT_CANCEL_GRACE
    ) -> None:
        self.name = name
        self.cancel_grace = cancel_grace
        self._lock = threading.Lock()
        self._runner: _Runner | None = None
        self._pools: weakref.WeakSet[Executor] = weakref.WeakSet()
        _EXECUTORS.add(self)

    def _ensure_runner(self) -> _Runner:
        with self._lock:
            runner = self._runner
            if runner is None or runner.pid != _getpid() or runner.closed:
                runner = self._runner = _Runner(self.name)
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
        call = _Call(coro)
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
            _Batch(items, self.cancel_grace), timeout, f"{len(items)} coroutines"
        )
        return results

    def _handoff(self, work: _Call | _Batch, timeout: float | None, what: str) -> Any:
        outcome = _Outcome.LOST
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
                    work.schedule(loop, _copy_context())
                except RuntimeError:
                    if not loop.is_closed():
                        raise
                    continue  # closed by a concurrent shutdown: take a fresh loop
                outcome = _wait(runner, work.done, timeout)
            except BaseException:
                # KeyboardInterrupt (or any error) in the caller: stop the work on the loop.
                self._cancel(runner, work)
                raise
            if outcome is _Outcome.LOST and work.unstarted():
                continue  # dropped by a loop that closed under us: safe to run it elsewhere
            break
        if outcome is _Outcome.DONE:
            error = work.error
            if error is None:
                return work.result
            work.error = None
            try:
                _reraise(error, runner.stopping, what)
            finally:
                del error
        if outcome is _Outcome.TIMED_OUT:
            self._cancel(runner, work)
            raise TimeoutError(f"{what} did not finish within {timeout} s and was cancelled")
        for coro in work.unstarted():
            coro.close()
        raise RuntimeError(f"{self.name} was shut down before {what} finished")

    def _cancel(self, runner: _Runner, work: _Call | _Batch) -> None:
        try:
            runner.loop.call_soon_threadsafe(work.cancel)
        except RuntimeError:  # the loop is closed: nothing runs any more
            return
        work.done.acquire(timeout=self.cancel_grace)


def _reraise(error: BaseException, stopping: bool, what: str) -> NoReturn:
    if stopping and isinstance(error, asyncio.CancelledError):
        raise RuntimeError(f"the ingest loop was shut down while {what} ran") from error
    raise error


def _describe(obj: object) -> str:
    name = getattr(obj, "__qualname__", None)
    if inspect.iscoroutinefunction(obj):
        return f"the coroutine function {name} itself; call it: run_sync({name}(...))"
    if callable(obj) and name is not None:
        return f"the callable {name}"
    text = repr(obj)
    return f"{type(obj).__qualname__} {text if len(text) <= 80 else text[:77] + '...'}"


def _wait(runner: _Runner, done: threading.Lock, timeout: float | None) -> _Outcome:
    if timeout is None:
        while not done.acquire(True, _LIVENESS_POLL_S):
            if runner.closed:
                return _Outcome.LOST
        return _Outcome.DONE
    deadline = time.monotonic() + timeout
    remaining = timeout
    while True:
        if remaining > 0:
            finished = done.acquire(True, min(remaining, _LIVENESS_POLL_S))
        else:
            finished = done.acquire(False)
        if finished:
            return _Outcome.DONE
        if runner.closed:
            return _Outcome.LOST
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _Outcome.TIMED_OUT


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
