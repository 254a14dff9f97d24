"""OS helpers for worker processes (POSIX): start, watch, kill, reap, and the stage slot.

Used by the driver's :mod:`ingest.workers.pool`, which decides *when*; this module knows
*how*. The stage slot is shared memory both sides use: the worker writes the running
plugin's name there, the driver reads it when the worker hangs or dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.spawn import get_executable

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

#: What the worker process runs; the two fds and the driver's pid follow in argv.
BOOT = "import sys; from ingest.workers.child import main; sys.exit(main(sys.argv[1:]))"

#: Bytes of the stage slot; plugin names are short.
STAGE_SLOT_SIZE = 256

_PR_SET_PDEATHSIG = 1

#: Whether the resident size of a process can be read (Linux ``/proc``).
CAN_READ_RSS = os.path.exists(f"/proc/{os.getpid()}/statm")


#: Plugin names as the stage slot holds them.
_ENCODED: dict[str, bytes] = {}


class StageSlot:
    """A plugin name in memory shared by a worker and the driver (an unlinked temp file).

    :param fd: the file; :meth:`create` makes one. The slot keeps its own mapping, so the
        caller may close ``fd`` afterwards.
    """

    def __init__(self, fd: int) -> None:
        self._map = mmap.mmap(fd, STAGE_SLOT_SIZE)

    @classmethod
    def create(cls) -> tuple[StageSlot, int]:
        """A new slot and its file descriptor (to pass to the worker)."""
        fd, path = tempfile.mkstemp(prefix="ingest-stage-")
        os.unlink(path)
        os.ftruncate(fd, STAGE_SLOT_SIZE)
        return cls(fd), fd

    def set(self, name: str) -> None:
        """Say that ``name`` is running (``""``: no plugin)."""
        # Twice per hook implementation called, dozens of calls per document: each name is
        # encoded once.
        data = _ENCODED.get(name)
        if data is None:
            data = _ENCODED[name] = name.encode("utf-8", "replace")[: STAGE_SLOT_SIZE - 1] + b"\0"
        self._map[: len(data)] = data

    def get(self) -> str | None:
        """The plugin running now, or ``None``."""
        name = self._map[:STAGE_SLOT_SIZE].split(b"\0", 1)[0].decode("utf-8", "replace")
        return name or None

    def close(self) -> None:
        """Unmap the slot."""
        self._map.close()


@dataclass(slots=True)
class Spawned:
    """A worker process just started.

    :param pid: its pid, which is also its process group's and session's id.
    :param conn: the driver's end of its socket.
    :param pidfd: a descriptor that becomes readable when it exits (Linux), else ``None``.
    :param slot: the stage slot it writes the running plugin's name to.
    """

    pid: int
    conn: Connection
    pidfd: int | None
    slot: StageSlot


def spawn_worker() -> Spawned:
    """Start ``python -c BOOT`` as the leader of a new session, with its socket and slot.

    A new session: ``killpg`` then takes whatever it started, and the terminal's Ctrl-C
    reaches the driver only, which decides what to stop. ``posix_spawn`` rather than
    ``fork``: the driver has threads (the persistent loop) whose locks a forked child
    would inherit in whatever state they were.
    """
    ours, theirs = socket.socketpair()
    child_fd = theirs.detach()
    slot, slot_fd = StageSlot.create()
    executable = get_executable()
    try:
        os.set_inheritable(child_fd, True)
        os.set_inheritable(slot_fd, True)
        argv = [executable, "-c", BOOT, str(child_fd), str(slot_fd), str(os.getpid())]
        # The worker reads nothing from the terminal; an interactive plugin would hang.
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
        try:
            pid = os.posix_spawn(executable, argv, os.environ, file_actions=actions, setsid=True)
        except NotImplementedError:  # no POSIX_SPAWN_SETSID: a new process group will do
            pid = os.posix_spawn(executable, argv, os.environ, file_actions=actions, setpgroup=0)
    except BaseException:
        ours.close()
        slot.close()
        raise
    finally:
        os.close(child_fd)
        os.close(slot_fd)
    return spawned(pid, ours, slot)


def spawned(pid: int, sock: socket.socket, slot: StageSlot) -> Spawned:
    """The driver's handle on a new worker ``pid``: its end of the worker's socket, its stage
    slot, and a pidfd to wait on its exit (``None`` where the kernel has none)."""
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    return Spawned(pid=pid, conn=Connection(sock.detach()), pidfd=pidfd, slot=slot)


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux), even mid-document.

    Without it, a worker stuck in a hostile file would outlive a driver killed with -9. The
    signal comes when the parent's thread that started this process ends; the session
    starts and uses its workers from one thread, which outlives them.

    :param parent: the pid the parent should have; when it is already another (the parent
        died before the request took effect), this process exits at once.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def rss_of(pid: int) -> int:
    """The resident size of ``pid`` in bytes; 0 when it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


def kill_group(pid: int) -> None:
    """SIGKILL the worker's process group (the worker leads it), else the worker alone."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def kill_groups(pids: set[int]) -> None:
    """Kill and reap every worker in ``pids`` (a finalizer's last resort); empties the set."""
    for pid in list(pids):
        kill_group(pid)
        reap(pid, block=True)
    pids.clear()


def wait_exit(pid: int, grace: float) -> None:
    """Wait up to ``grace`` seconds for ``pid`` to exit, without reaping it."""
    limit = time.monotonic() + grace
    while grace > 0:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return
        except ChildProcessError:
            return
        if time.monotonic() >= limit:
            return
        time.sleep(0.002)


def reap(pid: int, *, block: bool) -> tuple[int, int] | None:
    """Collect a dead child: ``(exit code, peak RSS in bytes)``, or ``None`` if still running.

    A negative exit code is the signal that ended it. Blocking waits at most a few seconds
    (a process in uninterruptible sleep cannot be waited for longer without stalling).
    """
    limit = time.monotonic() + (5.0 if block else 0.0)
    while True:
        try:
            found, status, usage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            return (0, 0)
        if found == pid:
            # ru_maxrss is in KiB on Linux, in bytes on macOS.
            scale = 1 if sys.platform == "darwin" else 1024
            return os.waitstatus_to_exitcode(status), usage.ru_maxrss * scale
        if time.monotonic() >= limit:
            return None
        time.sleep(0.005)


def describe_status(status: tuple[int, int] | None) -> str:
    """``exited with code 3``, ``was killed by SIGSEGV (Segmentation fault)``..."""
    if status is None:
        return "did not exit"
    code = status[0]
    if code < 0:
        try:
            name = signal.Signals(-code).name
            text = signal.strsignal(-code) or name
        except ValueError:
            name, text = f"signal {-code}", ""
        return f"was killed by {name} ({text})" if text and text != name else f"died of {name}"
    return f"exited with code {code}"


def mib(size: int) -> str:
    """``size`` bytes as whole MiB, for messages."""
    return f"{size / (1 << 20):.0f} MiB"
