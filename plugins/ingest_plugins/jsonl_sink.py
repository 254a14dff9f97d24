"""The ``jsonl`` sink: one JSON object per chunk per line (``--sink jsonl:out.jsonl``).

The target is a file path, relative to the root directory unless absolute. An existing
folder, or a target ending with ``/``, means ``<folder>/ingest.jsonl``; an empty target means
``ingest.jsonl`` in the root directory. Missing parent folders are created.

How a batch is made durable and exactly-once (the core records documents in its cache only
after every sink returned, so a run killed at any moment and run again must neither lose nor
repeat a record):

* **One append per batch.** The whole encoded batch goes out in one ``os.write`` on an
  ``O_APPEND`` descriptor, then ``os.fsync``. ``O_APPEND`` makes the kernel pick the offset and
  copy the bytes in one system call, which is as atomic as a file append gets: a reader or a
  kill never sees the batch interleaved with other writes. Its limit: POSIX does not promise
  that a regular-file write is all-or-nothing. Linux checks for a fatal signal between pages,
  so ``kill -9`` during a multi-page write can leave a prefix of the batch; a full disk does the
  same, and a power cut may lose anything not yet fsynced.
* **A commit marker closes that gap.** After the fsync, the sink records the file's length
  (and inode) in ``<file>.commit``, a fixed-size record with a checksum, fsynced too. On open,
  anything past the committed length is a batch whose ``ingest_sink`` never returned, so it is
  cut off: a batch is wholly present or absent. Without a trustworthy marker (the file was made
  by hand, replaced, or the marker is torn) the sink falls back to cutting back to the last
  ``"\\n"``, so at least no half line survives.
* **Ids already in the file are skipped.** A kill after the sink returned but before the cache
  recorded the batch leaves records the cache does not know about; the rerun extracts those
  documents again. On open the sink streams the file once and keeps the set of its chunk ids,
  and a record whose id is in the set is not written again. Cost: one sequential read of the
  file per run (the id is read from the line's prefix, without parsing the text), and about
  100 bytes of memory per chunk (10 million chunks ≈ 1 GB). Append-only has a consequence:
  a document chunked differently on a later run keeps its old chunks here (the ``sqlite`` sink
  replaces them); write to a new file after changing the chunking.

An advisory lock (``flock``, POSIX only) makes a second run on the same file fail at open
rather than both repairing and appending to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

from ingest import UsageError, explain_write_error, hookimpl, no_leftovers

if TYPE_CHECKING:
    from ingest import Document

try:  # POSIX only; Windows has no flock and runs without the lock.
    import fcntl
except ImportError:  # pragma: no cover - exercised on Windows only
    fcntl = None  # type: ignore[assignment]  # the module is optional by design

NAME = "jsonl"
DEFAULT_FILENAME = "ingest.jsonl"
COMMIT_SUFFIX = ".commit"

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
_BLOCK = 1 << 16
# Fixed width, so that rewriting it in place never leaves a longer old record behind.
_MARKER = b"ingest-jsonl-commit 1 %020d %020d %08x\n"
_MARKER_SIZE = len(_MARKER % (0, 0, 0))
# Lines this sink wrote start with doc_id then chunk_id: read the id without parsing the text.
_ID_PREFIX = re.compile(rb'\{"doc_id":"[^"\\]*","chunk_id":"([^"\\]*)"')
# JSON leaves these raw inside strings, but str.splitlines() and JavaScript treat them as line
# breaks, which would cut a record in two for many readers.
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


@hookimpl
def ingest_sink_open(scheme: str, target: str, rootdir: Path) -> JsonlSink | None:
    """Open the ``jsonl`` sink named by ``--sink jsonl:TARGET``; ``None`` for other schemes.

    :raises UsageError: naming the target, when it cannot be created, locked or repaired.
    """
    if scheme != NAME:
        return None
    return JsonlSink(resolve_target(target, rootdir))


def resolve_target(target: str, rootdir: Path) -> Path:
    """The file a ``jsonl`` target names: see the module docstring for the rules."""
    if not target:
        return rootdir / DEFAULT_FILENAME
    path = Path(target).expanduser()
    if not path.is_absolute():
        path = rootdir / path
    if target.endswith(("/", os.sep)) or path.is_dir():
        path = path / DEFAULT_FILENAME
    return path


def encode_record(record: dict[str, Any]) -> bytes:
    """One record as a UTF-8 JSON line (text kept readable, ``ensure_ascii=False``)."""
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    for char, escape in _LINE_BREAKS.items():
        if char in line:
            line = line.replace(char, escape)
    # A lone surrogate (a broken text layer) cannot be UTF-8; it only occurs inside a JSON
    # string, where the backslash escape Python writes for it is the JSON escape: lossless.
    return line.encode("utf-8", "backslashreplace") + b"\n"


@final
class JsonlSink:
    """An open JSON-lines file; registered as a plugin for the rest of the run.

    :param path: the file to append to (created with its parent folders).
    :raises UsageError: naming the file when it cannot be opened, locked or read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.commit_path = path.with_name(path.name + COMMIT_SUFFIX)
        #: Records written by this sink, skipped as already present, and bytes cut on open.
        self.written = 0
        self.skipped = 0
        self.repaired_bytes = 0
        self._fd = -1
        self._marker_fd = -1
        self._ids: set[str] = set()
        with no_leftovers(self.path, self.commit_path):
            try:
                self._open()
            except BaseException:
                self.close()  # before no_leftovers removes the files this open made
                raise

    def __repr__(self) -> str:
        return f"<JsonlSink {str(self.path)!r}>"

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._fd < 0

    # -- hooks ---------------------------------------------------------------------------

    @hookimpl
    def ingest_sink(self, batch: Sequence[Document]) -> None:
        """Append the batch's chunk records; durable when this returns."""
        self.write(batch)

    @hookimpl
    def ingest_session_finish(self) -> None:
        """Close the file at the end of the run."""
        self.close()

    # -- public API ----------------------------------------------------------------------

    def write(self, batch: Sequence[Document]) -> int:
        """Append the chunk records of ``batch`` not already in the file, as one batch.

        :returns: how many records were written.
        :raises RuntimeError: if the sink is closed.
        :raises OSError: if the disk refuses the batch; the file is cut back to the last
            committed batch, so nothing of this batch is kept.
        """
        if self.closed:
            raise RuntimeError(f"{self!r} is closed")
        new_ids: set[str] = set()
        lines: list[bytes] = []
        for document in batch:
            for record in document.chunk_records():
                chunk_id = record["chunk_id"]
                if chunk_id in self._ids or chunk_id in new_ids:
                    self.skipped += 1
                    continue
                new_ids.add(chunk_id)
                lines.append(encode_record(record))
        if not lines:
            return 0
        self._append(b"".join(lines))
        self._ids |= new_ids
        self.written += len(lines)
        return len(lines)

    def close(self) -> None:
        """Close the file and release the lock; calling it again does nothing."""
        for name in ("_fd", "_marker_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)  # closing the descriptor also releases the flock

    @staticmethod
    def read_records(path: Path) -> Iterator[dict[str, Any]]:
        """Yield every record of a JSON-lines file, in order.

        :raises ValueError: naming the line, if one is not a JSON object.
        """
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc
                if not isinstance(record, dict):
                    raise ValueError(f"{path}:{number}: not a JSON object")
                yield record

    # -- internals -----------------------------------------------------------------------

    def _open(self) -> None:
        what = f"jsonl sink {str(self.path)!r}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not (self.path.exists() and self.commit_path.exists())
            self._fd = os.open(self.path, _OPEN_FLAGS | os.O_APPEND, 0o644)
            self._marker_fd = os.open(self.commit_path, _OPEN_FLAGS, 0o644)
        except OSError as exc:
            raise UsageError(f"{what}: cannot open: {explain_write_error(exc, self.path)}") from exc
        if fcntl is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise UsageError(f"{what}: another run is writing to this file") from exc
        try:
            self._repair()
            self._load_ids()
            if created:
                # The new directory entries must survive a power cut like the data does.
                _fsync_dir(self.path.parent)
        except OSError as exc:
            raise UsageError(f"{what}: cannot read or repair: {exc.strerror or exc}") from exc

    def _repair(self) -> None:
        """Cut off what follows the last committed batch (or the last newline)."""
        stat = os.fstat(self._fd)
        size = stat.st_size
        keep = self._committed(stat.st_ino)
        if keep is None or keep > size or (keep and _read_at(self._fd, keep - 1, 1) != b"\n"):
            keep = _end_of_last_line(self._fd, size)
        if keep < size:
            os.ftruncate(self._fd, keep)
            os.fsync(self._fd)
            self.repaired_bytes = size - keep
        self._mark(keep, stat.st_ino)

    def _committed(self, inode: int) -> int | None:
        """The committed length, if the marker is intact and about this very file."""
        data = _read_at(self._marker_fd, 0, _MARKER_SIZE)
        match = re.fullmatch(rb"ingest-jsonl-commit 1 (\d{20}) (\d{20}) ([0-9a-f]{8})\n", data)
        if match is None:
            return None
        length, marked_inode, crc = int(match[1]), int(match[2]), int(match[3], 16)
        if crc != _checksum(length, marked_inode) or marked_inode != inode:
            return None
        return length

    def _mark(self, length: int, inode: int) -> None:
        # One small write at offset 0 of a one-page file: a kill cannot tear it, and the
        # checksum catches a power cut that does.
        os.lseek(self._marker_fd, 0, os.SEEK_SET)
        os.write(self._marker_fd, _MARKER % (length, inode, _checksum(length, inode)))
        os.fsync(self._marker_fd)

    def _load_ids(self) -> None:
        with self.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                match = _ID_PREFIX.match(line)
                if match is not None:
                    self._ids.add(match[1].decode("utf-8"))
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    raise UsageError(
                        f"jsonl sink {str(self.path)!r}: line {number} is not JSON; this is "
                        "not a file ingest wrote, so it will not append to it: pick another "
                        "target"
                    ) from None
                if isinstance(record, dict) and isinstance(record.get("chunk_id"), str):
                    self._ids.add(record["chunk_id"])

    def _append(self, data: bytes) -> None:
        before = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            written = os.write(self._fd, view)
            while written < len(data):
                # A short write (disk full, signal) is rare; finishing it keeps the batch
                # whole, and the commit marker below is what makes it atomic on disk.
                written += os.write(self._fd, view[written:])
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, before)
            exc.add_note(f"jsonl sink {str(self.path)!r}: the batch was not written")
            raise
        stat = os.fstat(self._fd)
        self._mark(stat.st_size, stat.st_ino)


def _checksum(length: int, inode: int) -> int:
    return zlib.crc32(b"%d %d" % (length, inode))


def _read_at(fd: int, offset: int, size: int) -> bytes:
    # lseek + read rather than os.pread, which Windows lacks; reads ignore O_APPEND.
    os.lseek(fd, offset, os.SEEK_SET)
    chunks: list[bytes] = []
    while size > 0 and (block := os.read(fd, size)):
        chunks.append(block)
        size -= len(block)
    return b"".join(chunks)


def _end_of_last_line(fd: int, size: int) -> int:
    """The length of the file up to and including its last ``"\\n"`` (0 if it has none)."""
    end = size
    while end > 0:
        start = max(0, end - _BLOCK)
        found = _read_at(fd, start, end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
