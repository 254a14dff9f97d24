"""The machinery behind :mod:`ingest.bridge`: one call handed to the loop, and the loop.

Private: :class:`ingest.bridge.PersistentLoopExecutor` is the interface. What lives here
is what a call costs, so every line on the hot path was measured (benchmarks/test_run_sync.py).

The loop is asyncio's own, or uvloop's when that is installed (``pip install 'ingest[uvloop]'``)
and not turned off with ``INGEST_EVENT_LOOP=asyncio``: on this 2-core machine uvloop takes
a third off a call that awaits (a loop iteration is C there), and about a tenth off one that
does not.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final, NoReturn, cast

logger = logging.getLogger("ingest.bridge")

_Coro = Coroutine[Any, Any, Any]

# A waiting caller wakes this often to notice a loop that was shut down under it. Losing a
# call needs a shutdown racing that call, so a coarse period costs nothing on the fast path.
_LIVENESS_POLL_S: Final = 0.5

# run_sync builds the Task on the caller's thread (see Call.schedule). That relies on
# Task() doing nothing but a call_soon, and on the GIL to make that append atomic: checked
# on CPython 3.11-3.13 with the GIL, for asyncio's own loop (uvloop's call_soon is not safe
# from another thread). Anywhere else the callback path keeps it exact.
_CALLER_BUILDS_TASK: Final = (
    sys.version_info < (3, 14) and getattr(sys, "_is_gil_enabled", lambda: True)()
)
_Task: Final = asyncio.Task
_allocate_lock = threading.Lock
_getpid = os.getpid

#: The environment variable that picks the loop: ``auto`` (uvloop when installed), ``asyncio``
#: or ``uvloop``.
LOOP_ENV: Final = "INGEST_EVENT_LOOP"
LOOP_KINDS: Final = ("auto", "asyncio", "uvloop")


def resolve_loop_kind(kind: str | None) -> str:
    """The loop a new runner uses: ``asyncio`` or ``uvloop``.

    :param kind: ``auto``, ``asyncio``, ``uvloop``, or ``None`` to read :data:`LOOP_ENV`
        (unset means ``auto``).
    :raises ValueError: for any other value, naming where it came from.
    :raises RuntimeError: when ``uvloop`` is asked for and is not installed.
    """
    source = "loop"
    if kind is None:
        kind, source = os.environ.get(LOOP_ENV, "auto").strip().lower() or "auto", LOOP_ENV
    if kind not in LOOP_KINDS:
        raise ValueError(f"{source}={kind!r} is not one of {', '.join(LOOP_KINDS)}")
    installed = importlib.util.find_spec("uvloop") is not None
    if kind == "uvloop" and not installed:
        raise RuntimeError(
            f"{source}=uvloop, but uvloop is not installed: pip install 'ingest[uvloop]'"
        )
    if kind == "auto":
        return "uvloop" if installed else "asyncio"
    return kind


def _loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if kind == "uvloop":
        import uvloop

        return cast(Callable[[], asyncio.AbstractEventLoop], uvloop.new_event_loop)
    return asyncio.new_event_loop


class Outcome(enum.Enum):
    DONE = enum.auto()
    TIMED_OUT = enum.auto()
    LOST = enum.auto()  # the loop closed before the work finished


def _wake() -> None:
    """Do nothing; scheduling it thread-safely is what wakes the loop."""


class Call:
    """One coroutine handed to the loop; ``coro`` stays set until the Task has started it."""

    __slots__ = ("coro", "done", "error", "result", "task")

    def __init__(self, coro: _Coro) -> None:
        self.coro: _Coro | None = coro
        self.done = _allocate_lock()
        self.done.acquire()
        self.task: asyncio.Task[None] | None = None
        self.result: Any = None
        self.error: BaseException | None = None

    def schedule(
        self, loop: asyncio.AbstractEventLoop, ctx: contextvars.Context, direct: bool
    ) -> None:
        if not direct or loop.get_debug():
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


async def _drive(call: Call) -> None:
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


class Batch:
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

    def schedule(
        self, loop: asyncio.AbstractEventLoop, ctx: contextvars.Context, direct: bool
    ) -> None:
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


async def _drive_one(batch: Batch, index: int, coro: _Coro) -> None:
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


class Runner:
    """One started loop and its thread; replaced wholesale on restart or after a fork."""

    __slots__ = ("closed", "direct", "ident", "kind", "loop", "pid", "stopping", "thread")

    def __init__(self, name: str, kind: str) -> None:
        self.kind = kind
        self.loop = _loop_factory(kind)()
        # Whether a caller may build its Task on its own thread (see Call.schedule).
        self.direct = _CALLER_BUILDS_TASK and isinstance(self.loop, asyncio.BaseEventLoop)
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


def reraise(error: BaseException, stopping: bool, what: str) -> NoReturn:
    if stopping and isinstance(error, asyncio.CancelledError):
        raise RuntimeError(f"the ingest loop was shut down while {what} ran") from error
    raise error


def wait_for(runner: Runner, done: threading.Lock, timeout: float | None) -> Outcome:
    if timeout is None:
        while not done.acquire(True, _LIVENESS_POLL_S):
            if runner.closed:
                return Outcome.LOST
        return Outcome.DONE
    deadline = time.monotonic() + timeout
    remaining = timeout
    while True:
        if remaining > 0:
            finished = done.acquire(True, min(remaining, _LIVENESS_POLL_S))
        else:
            finished = done.acquire(False)
        if finished:
            return Outcome.DONE
        if runner.closed:
            return Outcome.LOST
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Outcome.TIMED_OUT
