"""A warm template for worker processes: a fork of the driver that forks the workers.

A worker started as a fresh interpreter spends 0.3 to 0.5 s importing ingest, pydantic, the
plugins and their parsers before its first document, on every worker and on every
replacement. The template is a copy of the driver made once, as the run starts (before
collection, :meth:`~ingest.workers.pool.WorkerPool.prepare`): it already holds every module
the driver imported (the plugins included), and forking a worker
from it takes a few milliseconds, the modules' memory shared between them. What a worker
builds from those modules (the plugin manager, its settings) it still builds from the specs
and settings the driver sends, exactly as a spawned worker does.

Why a template and not a fork of the driver for each worker: a replacement worker is needed
in the middle of a run, when the driver has sinks and the cache open and may run threads
(the persistent event loop), and forking a threaded process copies locks in whatever state
they are. The template is forked before any of that, while the driver has one thread, and
stays that way: it only forks, kills and reaps. When the driver already runs threads at the
pool's start (a library call from a thread, a plugin that started one), or on a system
without ``pidfd``-era Linux fork semantics, the pool starts fresh interpreters instead
(:func:`ingest.workers.processes.spawn_worker`).

The supervisor's guarantees hold for forked workers too: each is the leader of its own
session (``killpg`` takes its children), asks the kernel for ``SIGKILL`` when its parent
(the template) dies, and the template asks for it when the driver dies, so ``kill -9`` of
the driver takes everything. The template never reaps a worker on its own: the driver asks
it to (:meth:`Template.bury`), after killing the worker's group, so a pid is never reused
while the driver may still signal it. The exit status and peak RSS come back with the
answer, for the driver to tell a crash from running out of memory.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import struct
import sys
import threading

from ingest.workers.processes import (
    Spawned,
    StageSlot,
    die_with_parent,
    kill_group,
    reap,
    spawned,
    wait_exit,
)

#: A request: operation (``s`` spawn, ``b`` bury), pid, grace in seconds.
_REQUEST = struct.Struct("=cqd")
#: An answer: a pid (spawn; negative: ``-errno``) or ``(found, exit code, peak RSS)`` (bury).
_SPAWNED = struct.Struct("=q")
_BURIED = struct.Struct("=?qq")


def can_fork() -> bool:
    """Whether this process may fork a template now: Linux, and this thread is its only one.

    Counted by the kernel (``/proc/self/task``), not only by :mod:`threading`: a native
    library's threads count too.
    """
    if not sys.platform.startswith("linux") or not hasattr(socket, "send_fds"):
        return False
    if threading.active_count() != 1:
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


class Template:
    """The driver's handle on a running template process.

    :param pid: the template's pid (a child of the driver, leader of its own session).
    :param sock: the driver's end of the template's socket.
    """

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self._sock = sock
        self.alive = True

    @classmethod
    def start(cls) -> Template:
        """Fork the template from this process; call only when :func:`can_fork` says so.

        :raises OSError: when the fork fails.
        """
        ours, theirs = socket.socketpair()
        # Buffered output would otherwise be written again by every process that flushes it.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        driver = os.getpid()
        pid = os.fork()
        if pid == 0:  # the template; it never returns into the driver's code
            code = 1
            try:
                ours.close()
                code = _serve(theirs, driver)
            finally:
                os._exit(code)
        theirs.close()
        return cls(pid, ours)

    def spawn(self) -> Spawned:
        """A new worker forked from the template, with its socket and stage slot.

        :raises OSError: when the template is gone or could not fork.
        """
        ours, theirs = socket.socketpair()
        slot, slot_fd = StageSlot.create()
        try:
            socket.send_fds(self._sock, [_REQUEST.pack(b"s", 0, 0.0)], [theirs.fileno(), slot_fd])
            (pid,) = _SPAWNED.unpack(self._receive(_SPAWNED.size))
            if pid < 0:
                raise OSError(-pid, f"the worker template could not fork: {os.strerror(-pid)}")
        except BaseException:
            ours.close()
            slot.close()
            raise
        finally:
            theirs.close()
            os.close(slot_fd)
        return spawned(pid, ours, slot)

    def bury(self, pid: int, grace: float) -> tuple[int, int] | None:
        """Have the template wait up to ``grace`` s for a worker, kill its group and reap it.

        :returns: ``(exit code, peak RSS in bytes)`` as :func:`~ingest.workers.processes.reap`;
            ``(-SIGKILL, 0)`` when the template is gone (its workers die with it).
        """
        if self.alive:
            try:
                self._sock.sendall(_REQUEST.pack(b"b", pid, grace))
                found, code, peak = _BURIED.unpack(self._receive(_BURIED.size))
                return (code, peak) if found else None
            except OSError:
                self.alive = False
        kill_group(pid)
        return (-signal.SIGKILL, 0)

    def close(self) -> None:
        """Stop the template (it kills and reaps the workers left) and reap it. Idempotent."""
        if self._sock.fileno() < 0:
            return
        self.alive = False
        self._sock.close()
        if reap(self.pid, block=True) is None:
            kill_group(self.pid)
            reap(self.pid, block=True)

    def _receive(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            block = self._sock.recv(size - len(data))
            if not block:
                raise ConnectionResetError("the worker template is gone")
            data += block
        return data


def _serve(sock: socket.socket, driver: int) -> int:
    """The template's loop: fork workers and bury them when the driver asks, until it leaves."""
    os.setsid()  # the terminal's Ctrl-C is for the driver, which decides what to stop
    die_with_parent(driver)
    _detach_stdin()
    # Workers are reaped only when the driver asks, whatever the driver had set.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # Imported once here rather than in every worker.
    import ingest.workers.child  # noqa: F401

    # What was inherited lives as long as this process; frozen, no collection in here or in
    # a worker walks it (or writes to its pages, which would unshare them).
    gc.freeze()
    children: set[int] = set()
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, _REQUEST.size, 2)
            while message and len(message) < _REQUEST.size:
                block = sock.recv(_REQUEST.size - len(message))
                if not block:
                    break
                message += block
        except OSError:
            message, fds = b"", []
        if len(message) < _REQUEST.size:
            for fd in fds:
                os.close(fd)
            break
        operation, pid, grace = _REQUEST.unpack(message)
        if operation == b"s" and len(fds) == 2:
            answer = _fork_worker(sock, fds[0], fds[1])
            if answer > 0:
                children.add(answer)
            sock.sendall(_SPAWNED.pack(answer))
        elif operation == b"b":
            for fd in fds:
                os.close(fd)
            wait_exit(pid, grace)
            kill_group(pid)
            status = reap(pid, block=True)
            if status is not None:
                children.discard(pid)
            code, peak = status or (0, 0)
            sock.sendall(_BURIED.pack(status is not None, code, peak))
        else:
            for fd in fds:
                os.close(fd)
    for pid in children:
        kill_group(pid)
        reap(pid, block=True)
    return 0


def _fork_worker(sock: socket.socket, conn_fd: int, slot_fd: int) -> int:
    """Fork one worker; in the parent, close its ends and return its pid (``-errno``)."""
    template = os.getpid()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(conn_fd)
        os.close(slot_fd)
        return -(exc.errno or 1)
    if pid == 0:
        code = 1
        try:
            sock.close()
            from ingest.workers.child import run_forked

            code = run_forked(conn_fd, slot_fd, template)
        finally:
            os._exit(code)
    os.close(conn_fd)
    os.close(slot_fd)
    return pid


def _detach_stdin() -> None:
    # As a spawned worker: nothing reads the terminal (an interactive plugin would hang).
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
