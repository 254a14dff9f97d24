"""The main loop of one worker process of the process backend.

:class:`ingest.workers.pool.WorkerPool` starts ``python -c BOOT SOCKET_FD STAGE_FD
PARENT_PID``: the worker reads a :class:`WorkerInit` from the socket, rebuilds the plugin
manager from the driver's plugin specs, unpickles the settings, calls
``ingest_configure(role="worker")`` and then does one task at a time
(:func:`ingest.workers.pipeline.run_task`).

Every message is a pickled tuple on that one socket:

* driver to worker: the :class:`WorkerInit`, then ``(task_id, task)`` per task, and
  ``None`` to stop;
* worker to driver: ``("ready", pid, plugins)`` (the plugins that implement the document
  hooks) or ``("fatal", is_usage_error, message)`` once, then
  ``("log", record_fields)`` for log records and
  ``("result", task_id, outcome, retiring, seconds)``; a retiring worker exits right after
  (its heap may be damaged) and takes no more tasks; ``seconds`` are the worker's seconds
  per stage since its last answer (:class:`~ingest.workers.timing.StageTimes`).

``STAGE_FD`` is a small file shared with the driver (:class:`StageSlot`): the worker writes
there the name of the plugin whose hook implementation is running, so that when a worker
hangs or dies the driver can name the plugin. A memory write per call, no message.

The worker is the leader of its own session (so its whole process group can be killed,
children included) and asks Linux to kill it when the driver dies.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import pickle
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Generator, Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from ingest.errors import UsageError
from ingest.manager import build_manager
from ingest.model import Failure
from ingest.workers.capture import format_tracebacks, is_captured
from ingest.workers.pipeline import WORKER_HOOKS, document_plugins, run_task
from ingest.workers.processes import StageSlot, die_with_parent
from ingest.workers.tasks import source_of
from ingest.workers.timing import StageTimes

if TYPE_CHECKING:
    from ingest.config import Settings
    from ingest.manager import IngestPluginManager
    from ingest.workers.tasks import Task, WorkerInit

#: Log records forwarded per task; hostile files make pypdf warn thousands of times, and the
#: driver's terminal is no place for all of them.
LOG_RECORDS_PER_TASK = 20

#: The worker's collector thresholds (CPython's default is ``(700, 10, 10)``). PDF parsers
#: allocate millions of short-lived containers (pypdf's operands, pdfminer's layout
#: objects); in a process holding all of ingest's modules, collecting the youngest generation
#: every 700 of them cost pypdf 5 to 10% of its time on the test corpus; every 5,000 costs a few
#: MiB more at peak.
GC_THRESHOLDS = (5000, 10, 10)

class _Channel:
    """The worker's end of the socket; sends are locked because log records may come from
    any thread (async hooks run on the persistent loop's thread)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()
        self.logs_left = LOG_RECORDS_PER_TASK

    def send(self, message: tuple[Any, ...]) -> None:
        self.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def send_bytes(self, data: bytes) -> None:
        try:
            with self._lock:
                self.conn.send_bytes(data)
        except OSError:
            # The driver is gone: nobody wants this work any more.
            os._exit(1)


class _ForwardHandler(logging.Handler):
    """Sends log records to the driver, whose handlers print them as its own."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__()
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        channel = self.channel
        if channel.logs_left <= 0 or is_captured(record):
            return  # a library's record travels with its document instead
        channel.logs_left -= 1
        message = record.getMessage()
        if channel.logs_left == 0:
            message += " (further log records of this document are not shown)"
        fields = {
            "name": record.name,
            "levelno": record.levelno,
            "levelname": record.levelname,
            "msg": message,
            "args": None,
            "pathname": record.pathname,
            "filename": record.filename,
            "module": record.module,
            "lineno": record.lineno,
            "funcName": record.funcName,
            "created": record.created,
            "msecs": record.msecs,
            "process": record.process,
            "processName": "worker",
            "threadName": record.threadName,
            "exc_text": self._exc_text(record),
        }
        self.channel.send(("log", fields))

    @staticmethod
    def _exc_text(record: logging.LogRecord) -> str | None:
        if record.exc_info:
            return "".join(traceback.format_exception(*record.exc_info))
        return record.exc_text


def main(argv: Sequence[str]) -> int:
    """Run one worker: ``argv`` is the socket's fd, the stage slot's fd and the driver's pid.

    :returns: the process exit status (0 when told to stop or when the driver left).
    """
    return run(int(argv[0]), int(argv[1]), int(argv[2]))


def run_forked(fd: int, stage_fd: int, parent: int) -> int:
    """Run one worker forked from the template (:mod:`ingest.workers.template`).

    First undo what a fresh interpreter would not have: the template's session, the
    driver's signal handlers and log handlers (records go to the driver, once).

    :param fd: the worker's end of its socket.
    :param stage_fd: the stage slot's file.
    :param parent: the template's pid.
    :returns: the process exit status.
    """
    os.setsid()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
    return run(fd, stage_fd, parent)


def run(fd: int, stage_fd: int, parent: int) -> int:
    """Run one worker on its socket ``fd`` and stage slot ``stage_fd``.

    :param parent: the pid of the process that started it; the worker dies with it.
    :returns: the process exit status (0 when told to stop or when the driver left).
    """
    die_with_parent(parent)
    # Children the plugins start must not hold the socket open after this worker dies.
    os.set_inheritable(fd, False)
    slot = StageSlot(stage_fd)
    os.close(stage_fd)
    conn = Connection(fd)
    channel = _Channel(conn)
    try:
        init: WorkerInit = pickle.loads(conn.recv_bytes())
    except (EOFError, OSError):
        return 0
    sys.path[:] = init.sys_path
    _limit_memory(init.memory_limit)
    _forward_logging(channel, init.log_levels)
    try:
        manager, settings = _configure(init)
        _watch_plugins(manager, slot)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, UsageError) else str(exc)
        channel.send(("fatal", isinstance(exc, UsageError), message))
        traceback.print_exc()
        return 1
    _tune_collector()
    channel.send(("ready", os.getpid(), document_plugins(manager)))
    return _serve(channel, manager, settings)


def _configure(init: WorkerInit) -> tuple[IngestPluginManager, Settings]:
    manager = build_manager(init.specs, trace=init.trace_hooks, installed=init.installed)
    # The hookspec promises every worker this call, and plugins may keep what they register.
    manager.collect_sections()
    settings: Settings = pickle.loads(init.settings)
    manager.hook.ingest_configure(settings=settings, manager=manager, role="worker")
    return manager, settings


def _serve(channel: _Channel, manager: IngestPluginManager, settings: Settings) -> int:
    times = StageTimes()
    answered: float | None = None
    while True:
        try:
            data = channel.conn.recv_bytes()
        except (EOFError, OSError):
            return 0
        started = time.perf_counter()
        if answered is not None:
            # From an answer to the next task: time the driver's round trip costs the worker.
            times.add("worker: waiting for tasks", started - answered)
        message = pickle.loads(data)
        if message is None:
            return 0
        task_id, task = message
        times.add("worker: read tasks", time.perf_counter() - started)
        channel.logs_left = LOG_RECORDS_PER_TASK
        try:
            outcome: Any = run_task(manager, settings, task, times=times)
        except Exception as exc:  # our own bug, not a document's fault: say so loudly
            outcome = _internal_failure(task, exc)
        started = time.perf_counter()
        data, recycle = _encode(task_id, task, outcome, times.take())
        channel.send_bytes(data)
        # Sent with the next answer (the last answer's own sending is not counted).
        answered = time.perf_counter()
        times.add("worker: send results", answered - started)
        if recycle:
            # After a MemoryError the heap may be fragmented or half-freed; a fresh worker
            # is cheaper than finding out.
            return 0


def _encode(
    task_id: int, task: Task, outcome: Any, times: dict[str, float]
) -> tuple[bytes, bool]:
    recycle = isinstance(outcome, Failure) and outcome.reason == "memory"
    try:
        message = ("result", task_id, outcome, recycle, times)
        return pickle.dumps(message, pickle.HIGHEST_PROTOCOL), recycle
    except MemoryError:
        outcome = _failure_of(task, "memory", "the result was too large to send back")
        recycle = True
    except Exception as exc:  # a plugin put something unpicklable in the document
        outcome = _failure_of(
            task, "error", f"the document cannot be sent back from the worker: {exc}"
        )
        outcome.exc_type = f"{type(exc).__module__}.{type(exc).__qualname__}"
    message = ("result", task_id, outcome, recycle, times)
    return pickle.dumps(message, pickle.HIGHEST_PROTOCOL), recycle


def _internal_failure(task: Task, exc: Exception) -> Failure:
    traceback.print_exc()
    failure = _failure_of(task, "error", f"internal error in the worker: {exc}")
    failure.exc_type = f"{type(exc).__module__}.{type(exc).__qualname__}"
    failure.traceback, failure.traceback_short = format_tracebacks(exc)
    return failure


def _failure_of(task: Task, reason: str, message: str) -> Failure:
    source = source_of(task)
    return Failure(
        source=source.path, reason=reason, message=message, doc_id=source.doc_id or None
    )


def _watch_plugins(manager: IngestPluginManager, slot: StageSlot) -> None:
    """Make every implementation of the document hooks write its plugin's name to ``slot``."""
    for hook in WORKER_HOOKS:
        for impl in getattr(manager.hook, hook).get_hookimpls():
            if impl.hookwrapper or impl.wrapper:
                impl.function = _staged_wrapper(impl.function, impl.plugin_name, slot)
            else:
                impl.function = _staged(impl.function, impl.plugin_name, slot)


def _staged(function: Callable[..., Any], name: str, slot: StageSlot) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        slot.set(name)
        try:
            return function(*args, **kwargs)
        finally:
            slot.set("")

    return call


def _staged_wrapper(
    function: Callable[..., Any], name: str, slot: StageSlot
) -> Callable[..., Any]:
    """Like :func:`_staged` for a hook wrapper: its code runs before and after its yield."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        slot.set(name)
        inner = function(*args, **kwargs)
        try:
            value = next(inner)
        except StopIteration as stop:  # pluggy reports the wrapper that did not yield
            return stop.value
        finally:
            slot.set("")
        while True:
            try:
                sent = yield value
            except BaseException as exc:
                slot.set(name)
                try:
                    value = inner.throw(exc)
                except StopIteration as stop:
                    return stop.value
                finally:
                    slot.set("")
            else:
                slot.set(name)
                try:
                    value = inner.send(sent)
                except StopIteration as stop:
                    return stop.value
                finally:
                    slot.set("")

    return call


def _forward_logging(channel: _Channel, levels: dict[str, int]) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_ForwardHandler(channel))
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)


def _tune_collector() -> None:
    """Set :data:`GC_THRESHOLDS`, once the plugins are loaded.

    What start-up built (modules, plugins, settings) lives as long as the worker: frozen, it
    is no longer traversed by every full collection. No collection first: start-up leaves
    a few dozen cycles, not worth 15 ms before the first task.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _limit_memory(limit: int | None) -> None:
    """Cap the worker's private writable memory (heap, anonymous maps) at ``limit`` bytes.

    RLIMIT_DATA rather than RLIMIT_AS: PDFium and onnxruntime reserve address space they
    never touch, and every thread reserves a 64 MiB malloc arena; RLIMIT_AS would count all
    of it, RLIMIT_DATA counts only what is writable (Linux >= 4.7).
    """
    if limit is None:
        return
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    except (AttributeError, ValueError, OSError):
        # No such limit on this system: the supervisor's RSS polling still applies.
        pass
