"""A small supervisor of worker processes: one task each, hard deadlines, memory cap.

Why our own and not pebble or loky: every worker here has its own socket, so a worker killed
at any instant (timeout, memory, segfault, the kernel's OOM killer) corrupts nothing shared.
pebble's workers share a pipe guarded by a process-shared lock, and a worker that dies
holding it stalls the whole pool (pebble #163, #97); loky and ``concurrent.futures`` mark the
whole executor broken when one worker dies and fail every task in flight. We also need
things neither offers: killing a worker's whole process group (OCR engines run children),
the peak RSS of a dead worker (to tell "out of memory" from "crash"), and naming the plugin
that was running. It all runs in the caller's thread: no helper threads, nothing to join.

Each worker is started (:mod:`ingest.workers.processes`) as the leader of a new session, so
``killpg(pid, SIGKILL)`` takes its children too; its death is seen through a pidfd (Linux)
or the end of its socket. Memory: the supervisor reads busy workers' RSS every
:data:`MEMORY_POLL_S` and kills a worker over the cap; the worker also sets RLIMIT_DATA at
1.5 times the cap, so an allocation faster than the polling fails there (a MemoryError,
reason ``memory``) instead of taking the machine's memory.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import select
import signal
import sys
import time
import weakref
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from ingest.errors import IngestError, PluginError
from ingest.log import driver_log_levels
from ingest.workers.processes import (
    CAN_READ_RSS,
    StageSlot,
    describe_status,
    kill_group,
    kill_groups,
    mib,
    reap,
    rss_of,
    spawn_worker,
    wait_exit,
)
from ingest.workers.tasks import WorkerInit, source_of
from ingest.workers.template import Template, can_fork
from ingest.workers.timing import StageTimes

if TYPE_CHECKING:
    from ingest.config import Settings
    from ingest.workers.tasks import Task

logger = logging.getLogger("ingest.workers.pool")

#: How often the RSS of busy workers is read when a memory cap is set. An allocation
#: faster than this overshoots the cap by at most what it allocates in one period, and
#: RLIMIT_DATA (set in the worker at 1.5 times the cap) bounds even that.
MEMORY_POLL_S = 0.1

#: How long a worker may take to import the plugins and say it is ready.
STARTUP_TIMEOUT_S = 120.0

#: Workers that die before being ready, in a row, before the run gives up.
MAX_STARTUP_FAILURES = 3

#: How long a worker whose socket closed may take to finish exiting before it is killed.
_EXIT_GRACE_S = 2.0

#: The largest task, pickled, that may wait in a busy worker's socket (queue depth 2). The
#: driver writes to the socket without waiting for the worker, and the worker reads it only
#: after writing its answer, which the driver reads only once its own write is done: a task
#: that does not fit the socket's buffer whole (a FinishTask carries the merged document)
#: would leave both writing forever. Larger tasks go to idle workers, which are reading.
QUEUE_MAX_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Lost:
    """A task whose worker was killed or died before answering.

    :param reason: ``timeout``, ``memory`` or ``crash``.
    :param message: what happened, for a human.
    :param plugin: the plugin whose hook implementation was running (from the worker's
        stage slot), if any.
    """

    reason: str
    message: str
    plugin: str | None


@dataclass(frozen=True, slots=True)
class _Sent:
    """A task as sent to a worker, kept to send it again if the worker dies before it."""

    task_id: int
    task: Task
    budget: float
    path: str


@dataclass(eq=False, slots=True)
class _Worker:
    pid: int
    conn: Connection
    #: ``conn``'s descriptor, kept for the poll set (``conn.fileno()`` fails once closed).
    fd: int
    pidfd: int | None
    slot: StageSlot
    started: float
    ready: bool = False
    #: Said it will exit after its last answer: gets no more tasks.
    retiring: bool = False
    task_id: int | None = None
    budget: float = 0.0
    deadline: float = math.inf
    peak_rss: int = 0
    dead: bool = False
    #: The file of its last task, which its extractor may still hold open.
    last_path: str | None = None
    #: The template it was forked from (which reaps it), or ``None``: a fresh interpreter.
    template: Template | None = None
    #: When its RSS was last read (``time.monotonic()``).
    rss_read: float = -math.inf
    #: Tasks sent after the running one, waiting in its socket; started in order.
    queued: deque[_Sent] = field(default_factory=deque)


class WorkerPool:
    """``size`` worker processes, each doing one task at a time under a deadline.

    Use it from one thread: :meth:`submit` a task to an idle worker, then :meth:`wait` for
    outcomes. A worker that overruns its task's budget, goes over the memory cap or dies is
    killed with its process group and replaced; its task comes back as a :class:`Lost`.

    :param size: number of workers.
    :param specs: the driver's plugin specs, for the workers to load the same plugins.
    :param settings: the run's settings (pickled once, sent to every worker).
    :param max_memory: memory cap per worker in bytes (RSS), or ``None`` for none.
    :param expected_plugins: plugins that extract or transform in the driver; a worker
        without one of them (registered as an object, not loaded by name) is an error.
    :param queue_depth: tasks a worker may hold: 1, only the one it runs; 2, also the next,
        which it starts as soon as it answered, without waiting for the driver to send it
        (a round trip per document costs a run of small files a good part of its time). A
        queued task's deadline starts when it starts; if its worker dies first, it is sent
        to another worker, as if it had not been sent.
    :param installed: the installed plugins the driver found
        (:meth:`~ingest.manager.IngestPluginManager.installed_targets`), for the workers to
        load the same ones without scanning the installed distributions; ``None``: they scan
        (a worker on another machine must).
    """

    def __init__(
        self,
        size: int,
        *,
        specs: list[str],
        settings: Settings,
        max_memory: int | None,
        expected_plugins: Collection[str] = (),
        queue_depth: int = 1,
        installed: Mapping[str, str] | None = None,
    ) -> None:
        self.size = max(1, size)
        self.queue_depth = max(1, queue_depth)
        self.max_memory = max_memory or None
        self._expected = frozenset(expected_plugins)
        self._init = WorkerInit(
            sys_path=list(sys.path),
            specs=list(specs),
            settings=pickle.dumps(settings, protocol=pickle.HIGHEST_PROTOCOL),
            log_levels=driver_log_levels(),
            memory_limit=self.max_memory * 3 // 2 if self.max_memory else None,
            trace_hooks=os.environ.get("INGEST_TRACE_HOOKS", "").lower()
            in {"1", "true", "yes", "on"},
            installed=dict(installed) if installed is not None else None,
        )
        self._workers: list[_Worker] = []
        #: Seconds per stage, the workers' included (``ingest run -v``).
        self.stage_times = StageTimes()
        #: How many workers the pool keeps alive: raised by :meth:`start` and :meth:`grow`.
        self._target = 0
        self._startup_failures = 0
        self._closed = False
        self._template: Template | None = None
        self._template_tried = False
        #: Tasks whose worker died before starting them, to send again.
        self._resend: deque[_Sent] = deque()
        # One poll set for the run, updated as workers come and go, rather than a selector
        # built and filled at every wait (multiprocessing.connection.wait): a wait per
        # document, thousands in a run of small files.
        self._poller = select.poll() if hasattr(select, "poll") else None
        # Kills whatever is left if the pool is dropped without close() (or at exit).
        self._pids: set[int] = set()
        self._finalizer = weakref.finalize(self, kill_groups, self._pids)

    # -- public ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """Fork the worker template now, if this process has a single thread, without
        starting a worker: a caller that will start threads before its workers (progress
        reporters, the sinks' thread, an object store's I/O loop) calls it first. Once only;
        :meth:`start` calls it too.
        """
        if self._template_tried:
            return
        self._template_tried = True
        if not can_fork():
            logger.debug("the driver runs threads: workers start as fresh interpreters")
            return
        try:
            self._template = Template.start()
            self._pids.add(self._template.pid)
        except OSError as exc:
            logger.debug("no worker template (%s): starting fresh interpreters", exc)

    def start(self, count: int | None = None) -> None:
        """Start workers (they become ready in the background).

        The first call forks the worker template (:mod:`ingest.workers.template`) when this
        process has a single thread; workers are forked from it, else started as fresh
        interpreters.

        :param count: how many at least, up to :attr:`size` (``None``: all of them). A run
            passes the number of documents it has: never more workers than tasks.
        """
        self.prepare()
        wanted = self.size if count is None else min(self.size, max(0, count))
        self._target = max(self._target, wanted)
        while sum(1 for w in self._workers if not w.dead) < self._target:
            self._spawn()

    def grow(self, waiting: int) -> None:
        """Start more workers, up to :attr:`size`, for ``waiting`` tasks no worker took.

        Workers still starting and idle ones count as taking one each, so a burst of page
        ranges starts only the workers they need.
        """
        if self._closed:
            return
        live = [w for w in self._workers if not w.dead]
        coming = sum(1 for w in live if not w.ready or self._is_idle(w))
        if waiting > coming:
            self.start(len(live) + waiting - coming)

    @property
    def idle(self) -> int:
        """Tasks the workers can take now (with ``queue_depth`` 1: workers ready for one)."""
        return max(0, sum(self._room(w) for w in self._workers) - len(self._resend))

    @staticmethod
    def _is_idle(worker: _Worker) -> bool:
        return (
            worker.ready
            and worker.task_id is None
            and not worker.queued
            and not worker.dead
            and not worker.retiring
        )

    def _room(self, worker: _Worker) -> int:
        if not worker.ready or worker.dead or worker.retiring:
            return 0
        return self.queue_depth - (worker.task_id is not None) - len(worker.queued)

    def submit(self, task_id: int, task: Task, budget: float) -> bool:
        """Send ``task`` to a worker; its answer must come within ``budget`` seconds of its
        start (at once on an idle worker; after the running task, when queued).

        :returns: ``False`` when no worker could take it (try again after :meth:`wait`).
        """
        self._send_again()
        if self._resend:
            return False
        return self._send(_Sent(task_id, task, budget, os.fspath(source_of(task).path)))

    def _send(self, sent: _Sent) -> bool:
        # Idle workers first; among them the one that read the previous range of this file:
        # its extractor may still have the file parsed (ingest_plugins.pdf_common.LastOpened).
        def order(worker: _Worker) -> tuple[bool, int, bool]:
            return worker.task_id is not None, len(worker.queued), worker.last_path != sent.path

        started = time.perf_counter()
        data = pickle.dumps((sent.task_id, sent.task), pickle.HIGHEST_PROTOCOL)
        self.stage_times.add("driver: send tasks", time.perf_counter() - started)
        for worker in sorted(self._workers, key=order):
            if self._room(worker) <= 0:
                continue
            idle = worker.task_id is None
            if not idle and len(data) > QUEUE_MAX_BYTES:
                continue
            if self._bloated(worker):
                if idle:
                    # What a previous document left behind must not count against this one.
                    self._bury(worker)
                # A busy one is reading a large document: nothing more goes behind it.
                continue
            if idle:
                worker.slot.set("")
            try:
                worker.conn.send_bytes(data)
            except OSError:
                # A busy worker's death is for wait() to find (its pidfd or socket), which
                # reports the task it was running as lost; burying it here dropped that task.
                if idle:
                    self._bury(worker)
                continue
            worker.last_path = sent.path
            if idle:
                self._start(worker, sent)
            else:
                worker.queued.append(sent)
            return True
        return False

    def _send_again(self) -> None:
        while self._resend and self._send(self._resend[0]):
            self._resend.popleft()

    @staticmethod
    def _start(worker: _Worker, sent: _Sent) -> None:
        worker.task_id = sent.task_id
        worker.budget = sent.budget
        worker.deadline = time.monotonic() + sent.budget
        worker.peak_rss = 0

    def wait(self) -> list[tuple[int, Any]]:
        """Block until something happens; return the tasks that ended, with their outcome.

        An outcome is what the worker sent (document, failure, partial) or a :class:`Lost`.
        May return an empty list when a worker became ready, so the caller can submit.

        :raises PluginError: a worker could not load the plugins or settings.
        :raises IngestError: workers keep dying before they are ready.
        """
        if self._closed:
            raise IngestError("the worker pool is closed")
        self._replace_dead()
        done: list[tuple[int, Any]] = []
        ready = self._poll(self._next_timeout())
        for worker in list(self._workers):
            exited = worker.pidfd is not None and worker.pidfd in ready
            if exited or worker.fd in ready:
                self._drain(worker, done, exited=exited)
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.dead:
                continue
            if worker.task_id is not None and now >= worker.deadline:
                message = f"no result after {worker.budget:g}s; the worker was killed"
                self._lose(worker, done, "timeout", message)
            elif worker.task_id is not None and self._over_memory(worker):
                message = (
                    f"the worker used {mib(worker.peak_rss)}, over the "
                    f"{mib(self.max_memory or 0)} cap (run.max_memory); the worker was killed"
                )
                self._lose(worker, done, "memory", message)
            elif not worker.ready and now - worker.started > STARTUP_TIMEOUT_S:
                self._startup_failed(worker, f"not ready after {STARTUP_TIMEOUT_S:g}s")
        self._replace_dead()
        self._send_again()
        return done

    def close(self, *, graceful: bool = False) -> None:
        """Stop every worker; idempotent.

        :param graceful: tell idle workers to stop and give them a moment to exit cleanly
            (at the end of a run); otherwise (Ctrl-C, ``--maxfail``) kill them at once.
            Busy workers are always killed, with their process groups.
        """
        if self._closed:
            return
        self._closed = True
        if graceful:
            stopping: list[Connection] = []
            for worker in self._workers:
                if worker.ready and worker.task_id is None and not worker.dead:
                    try:
                        worker.conn.send_bytes(pickle.dumps(None))
                        stopping.append(worker.conn)
                    except OSError:
                        pass
            # A worker that exits closes its socket; the group kill below then finds only
            # what it left behind.
            limit = time.monotonic() + 2.0
            while stopping and time.monotonic() < limit:
                for conn in wait(stopping, max(0.0, limit - time.monotonic())):
                    assert isinstance(conn, Connection)
                    try:
                        conn.recv_bytes()
                    except (EOFError, OSError):
                        stopping.remove(conn)
        for worker in self._workers:
            self._bury(worker)
        self._workers.clear()
        if self._template is not None:
            self._template.close()
            self._pids.discard(self._template.pid)
        self._finalizer()

    # -- workers coming and going ---------------------------------------------------------

    def _spawn(self) -> _Worker:
        template = self._template if self._template is not None and self._template.alive else None
        spawned = None
        if template is not None:
            try:
                spawned = template.spawn()
            except OSError as exc:
                logger.debug("the worker template failed (%s): starting fresh interpreters", exc)
                template.alive = False
                template = None
        if spawned is None:
            spawned = spawn_worker()
        worker = _Worker(
            pid=spawned.pid,
            conn=spawned.conn,
            fd=spawned.conn.fileno(),
            pidfd=spawned.pidfd,
            slot=spawned.slot,
            started=time.monotonic(),
            template=template,
        )
        self._workers.append(worker)
        self._pids.add(worker.pid)
        if self._poller is not None:
            self._poller.register(worker.fd, select.POLLIN)
            if worker.pidfd is not None:
                self._poller.register(worker.pidfd, select.POLLIN)
        try:
            worker.conn.send_bytes(pickle.dumps(self._init, pickle.HIGHEST_PROTOCOL))
        except OSError:
            self._bury(worker)
        return worker

    def _replace_dead(self) -> None:
        self._workers = [w for w in self._workers if not w.dead]
        if not self._closed:
            self.start(self._target)

    def _bury(self, worker: _Worker, *, grace: float = 0.0) -> tuple[int, int] | None:
        """Kill a worker's process group, collect its exit status and close its ends.

        The group is killed before the leader is reaped: until then its pid cannot be
        reused, so the kill cannot reach an unrelated process.

        :param grace: seconds the worker may take to exit on its own first (it closed its
            socket, so it is on its way out), so its own exit status is what we report.
        :returns: ``(exit code, peak RSS)`` from :func:`ingest.workers.processes.reap`;
            ``None`` if buried before.
        """
        if worker.dead:
            return None
        worker.dead = True
        # Sent but never begun: another worker takes them (the running one is lost).
        self._resend.extend(worker.queued)
        worker.queued.clear()
        if worker.template is not None:
            # Its parent, the template, does the same steps: only a parent can reap.
            status = worker.template.bury(worker.pid, grace)
        else:
            wait_exit(worker.pid, grace)
            kill_group(worker.pid)
            status = reap(worker.pid, block=True)
        if status is not None:
            self._pids.discard(worker.pid)
        if self._poller is not None:
            # Before the descriptors close: their numbers may be reused at once.
            for fd in (worker.fd, worker.pidfd):
                if fd is not None:
                    with contextlib.suppress(KeyError):
                        self._poller.unregister(fd)
        worker.conn.close()
        worker.slot.close()
        if worker.pidfd is not None:
            os.close(worker.pidfd)
            worker.pidfd = None
        return status

    def _startup_failed(self, worker: _Worker, why: str) -> None:
        self._bury(worker)
        self._startup_failures += 1
        if self._startup_failures >= MAX_STARTUP_FAILURES:
            self.close()
            raise IngestError(
                f"worker processes die before they are ready (the last one {why}); its error "
                "is above, or run with --workers 0 to see it in this process"
            )

    # -- events ---------------------------------------------------------------------------

    def _poll(self, timeout: float) -> set[int]:
        """The descriptors of live workers that are ready, waiting up to ``timeout`` s."""
        if self._poller is None:
            found = wait(self._waitables(), timeout)
            return {obj if isinstance(obj, int) else obj.fileno() for obj in found}
        try:
            events = self._poller.poll(math.ceil(timeout * 1000))
        except InterruptedError:  # pragma: no cover - retried by Python since 3.5
            events = []
        return {fd for fd, _ in events}

    def _waitables(self) -> list[Any]:
        objects: list[Any] = []
        for worker in self._workers:
            if worker.dead:
                continue
            objects.append(worker.conn)
            if worker.pidfd is not None:
                objects.append(worker.pidfd)
        return objects

    def _next_timeout(self) -> float:
        now = time.monotonic()
        timeout = 3600.0
        for worker in self._workers:
            if worker.task_id is not None:
                timeout = min(timeout, worker.deadline - now)
                if self.max_memory and CAN_READ_RSS:
                    timeout = min(timeout, MEMORY_POLL_S)
            elif not worker.ready:
                timeout = min(timeout, worker.started + STARTUP_TIMEOUT_S - now)
        return max(0.0, timeout)

    def _drain(self, worker: _Worker, done: list[tuple[int, Any]], *, exited: bool) -> None:
        """Handle every message waiting on a worker's socket; notice if it died.

        :param exited: its pidfd says it exited; whatever it sent before is still read.
        """
        while not worker.dead:
            try:
                if not worker.conn.poll(0):
                    if not exited:
                        return
                    raise EOFError
                data = worker.conn.recv_bytes()
            except (EOFError, OSError):
                self._died(worker, done)
                return
            started = time.perf_counter()
            message = pickle.loads(data)
            self.stage_times.add("driver: read results", time.perf_counter() - started)
            self._handle(worker, message, done)

    def _handle(
        self, worker: _Worker, message: tuple[Any, ...], done: list[tuple[int, Any]]
    ) -> None:
        kind = message[0]
        if kind == "result":
            _, task_id, outcome, retiring, seconds = message
            self.stage_times.merge(seconds)
            worker.retiring = worker.retiring or retiring
            if task_id == worker.task_id:
                worker.task_id = None
                worker.deadline = math.inf
                done.append((task_id, outcome))
                if worker.queued and not worker.retiring:
                    self._start(worker, worker.queued.popleft())  # it has begun already
        elif kind == "log":
            record = logging.makeLogRecord(message[1])
            target = logging.getLogger(record.name)
            if target.isEnabledFor(record.levelno):
                target.handle(record)
        elif kind == "ready":
            missing = sorted(self._expected - set(message[2]))
            if missing:
                self.close()
                raise PluginError(
                    f"plugin(s) {', '.join(map(repr, missing))} exist only in this process "
                    "(registered as objects, not loaded by name), so the worker processes "
                    "do not have them: load them with -p NAME (an entry point or a dotted "
                    "module path), or run with --workers 0"
                )
            worker.ready = True
            self._startup_failures = 0
        elif kind == "fatal":
            _, is_usage, text = message
            self.close()
            if is_usage:
                raise PluginError(f"a worker process could not start: {text}")
            raise IngestError(f"a worker process could not start: {text}")

    def _died(self, worker: _Worker, done: list[tuple[int, Any]]) -> None:
        """A worker's socket ended or its pidfd fired: it died on its own."""
        task_id, stage = worker.task_id, worker.slot.get()
        status = self._bury(worker, grace=_EXIT_GRACE_S)
        logger.debug("worker %d %s", worker.pid, describe_status(status))
        if not worker.ready:
            self._startup_failed(worker, describe_status(status))
            return
        if task_id is None:
            return  # died idle (recycled after a MemoryError, or killed from outside)
        code, peak = status if status else (None, 0)
        if self.max_memory and peak >= self.max_memory:
            reason = "memory"
            message = (
                f"the worker {describe_status(status)} after using {mib(peak)}, over the "
                f"{mib(self.max_memory)} cap (run.max_memory)"
            )
        else:
            reason = "crash"
            message = f"the worker process {describe_status(status)}"
            if code == -signal.SIGKILL:
                message += " (not by ingest: the system's out-of-memory killer?)"
        done.append((task_id, Lost(reason, message, stage)))

    def _lose(
        self, worker: _Worker, done: list[tuple[int, Any]], reason: str, message: str
    ) -> None:
        task_id, stage = worker.task_id, worker.slot.get()
        logger.debug("killing worker %d (%s): %s", worker.pid, reason, message)
        self._bury(worker)
        if task_id is not None:
            done.append((task_id, Lost(reason, message, stage)))

    # -- limits ---------------------------------------------------------------------------

    def _over_memory(self, worker: _Worker) -> bool:
        if not CAN_READ_RSS or not self.max_memory:
            return False
        now = time.monotonic()
        if now - worker.rss_read < MEMORY_POLL_S:
            return False  # read less than a period ago: small documents end many waits
        worker.rss_read = now
        rss = rss_of(worker.pid)
        worker.peak_rss = max(worker.peak_rss, rss)
        return rss > self.max_memory

    def _bloated(self, worker: _Worker) -> bool:
        if not CAN_READ_RSS or self.max_memory is None:
            return False
        return rss_of(worker.pid) > self.max_memory * 3 // 4
