"""What a worker keeps about a document besides its records: library logs and tracebacks.

**Library logs.** Parsers log a lot about hostile files (pypdf: "fontTools is required to
fully parse...", pdfminer: "Could not get FontBBox..."), dozens of times per corpus. While
a task runs, :class:`LogCapture` takes every record of a logger outside ``ingest`` made in
that thread (or on the persistent loop, where async hooks run) and keeps it with the
document, as pytest captures a test's output: the driver shows it with the document's
failure or with ``-v``, and otherwise only counts it. Identical records are kept once, with
a count, and at most :data:`MAX_ENTRIES` different ones per document.

**Tracebacks.** :func:`format_tracebacks` gives a failure both forms ``--tb`` picks from:
the whole traceback as Python prints it, and a short one without the frames of ingest and
pluggy that led to the plugin.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pluggy

import ingest
from ingest.model import Document, Failure, LogEntry, display_path
from ingest.workers.tasks import Partial

__all__ = [
    "MAX_ENTRIES",
    "MORE_LOGGER",
    "LogCapture",
    "attach_logs",
    "capture_logs",
    "format_tracebacks",
    "is_captured",
    "merge_logs",
    "take_logs",
]

#: Different records kept per document; the rest are counted in one last entry.
MAX_ENTRIES = 50

_OWN_LOGGER = "ingest"
_LOOP_THREAD = "ingest-loop"
#: The logger name of the entry that counts the records not kept (any library's).
MORE_LOGGER = "*"

_active: list[LogCapture] = []
_lock = threading.Lock()


def _is_library(name: str) -> bool:
    return name != _OWN_LOGGER and not name.startswith(_OWN_LOGGER + ".")


class LogCapture(logging.Handler):
    """Keeps the library records made while one task runs (see the module docstring).

    :param thread: the ident of the thread that runs the task.
    """

    def __init__(self, thread: int) -> None:
        super().__init__(logging.NOTSET)
        self.thread = thread
        self._entries: dict[tuple[str, str, str], LogEntry] = {}
        self._dropped = 0

    def claims(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` belongs to this capture."""
        if not _is_library(record.name):
            return False
        return record.thread == self.thread or record.threadName == _LOOP_THREAD

    def emit(self, record: logging.LogRecord) -> None:
        if not self.claims(record):
            return
        try:
            message = record.getMessage()
        except Exception:  # a library's bad format string must not fail the document
            message = str(record.msg)
        message = display_path(message)  # it may quote a file name that is not UTF-8
        key = (record.name, record.levelname, message)
        entry = self._entries.get(key)
        if entry is not None:
            entry.count += 1
        elif len(self._entries) < MAX_ENTRIES:
            self._entries[key] = LogEntry(record.name, record.levelname, message)
        else:
            self._dropped += 1

    def entries(self) -> list[LogEntry]:
        """The records kept, in the order they first came."""
        kept = list(self._entries.values())
        if self._dropped:
            more = "further records, not kept"
            kept.append(LogEntry(MORE_LOGGER, "WARNING", more, self._dropped))
        return kept


@contextmanager
def capture_logs() -> Iterator[LogCapture]:
    """Capture library records made in this thread (and on the loop) while the block runs."""
    capture = LogCapture(threading.get_ident())
    root = logging.getLogger()
    with _lock:
        _active.append(capture)
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        with _lock:
            _active.remove(capture)


def is_captured(record: logging.LogRecord) -> bool:
    """Whether a capture takes ``record``, so other handlers (the worker's forwarding to
    the driver) should leave it."""
    return any(capture.claims(record) for capture in tuple(_active))


def merge_logs(*groups: Iterable[LogEntry]) -> list[LogEntry]:
    """The entries of ``groups`` in order, identical ones added up."""
    merged: dict[tuple[str, str, str], LogEntry] = {}
    for group in groups:
        for entry in group:
            key = (entry.logger, entry.level, entry.message)
            if key in merged:
                merged[key].count += entry.count
            else:
                merged[key] = LogEntry(entry.logger, entry.level, entry.message, entry.count)
    return list(merged.values())


def _holder(outcome: object) -> Document | Failure | None:
    """The record of a task's answer that carries its logs, if any."""
    if isinstance(outcome, Partial):
        return outcome.extraction.document
    if isinstance(outcome, Document | Failure):
        return outcome
    return None


def attach_logs(outcome: object, entries: list[LogEntry]) -> None:
    """Add captured entries to what a task returns (a document, failure or partial)."""
    target = _holder(outcome)
    if entries and target is not None:
        target.logs = merge_logs(target.logs, entries)


def take_logs(outcome: object) -> list[LogEntry]:
    """Remove and return the entries a task's answer carries (empty for other answers)."""
    target = _holder(outcome)
    if target is None or not target.logs:
        return []
    logs, target.logs = target.logs, []
    return logs


# -- tracebacks -------------------------------------------------------------------------------

#: Folders whose frames lead to a plugin's code rather than being it: ingest's and pluggy's.
_HIDDEN = tuple(
    os.path.dirname(module.__file__) + os.sep for module in (pluggy, ingest) if module.__file__
)


def _shown(filename: str) -> bool:
    return not filename.startswith(_HIDDEN)


def format_tracebacks(exc: BaseException) -> tuple[str, str]:
    """The long and the short form of an exception's traceback (``--tb=long|short``).

    :returns: ``(long, short)``. Long is what Python prints (chained exceptions included).
        Short is one ``file:line: in function`` line and the source line for each frame,
        without the frames of ingest and pluggy before the plugin's, then the exception,
        each line of it prefixed with ``E   `` (pytest's style).
    """
    long = "".join(traceback.format_exception(exc)).rstrip("\n")
    frames = traceback.extract_tb(exc.__traceback__)
    # Frames of the caller's machinery are dropped up to the first frame of other code;
    # what that code calls (a parser's internals) is kept, it is where the error is.
    start = next((i for i, frame in enumerate(frames) if _shown(frame.filename)), len(frames))
    lines: list[str] = []
    for frame in frames[start:] or frames[-1:]:
        lines.append(f"{frame.filename}:{frame.lineno}: in {frame.name}")
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    for line in traceback.format_exception_only(exc):
        lines.extend(f"E   {part}" for part in line.rstrip("\n").splitlines())
    return long, "\n".join(lines)
