"""The ``jsonl`` sink: one JSON object per chunk per line (``--sink jsonl:out.jsonl``).

The target is a file path, relative to the root directory unless absolute. An existing
folder, or a target ending with ``/``, means ``<folder>/ingest.jsonl``; an empty target means
``ingest.jsonl`` in the root directory. Missing parent folders are created.

The file mirrors the corpus (after a successful run it holds exactly the records of every
file's current content under the current settings) and stays a plain JSON-lines file at
every moment. A document's lines are kept together. Beside it, ``<file>.commit`` (the commit
marker and an index of where each document's lines are, :mod:`ingest_plugins.jsonl_files`),
and, while a run replaces or deletes documents, ``<file>.pending``.

How a step (``ingest_sink``) is made durable, atomic and exactly-once (the core records
documents in its cache only after every sink returned, so a run killed at any moment and run
again must neither lose nor repeat a record):

* **New documents are appended.** Their lines go out in one write at the committed end of the
  file, then ``fsync``; then their index lines and the header (the committed length) go to the
  marker, ``fsync`` again. On open, anything past the committed length is a step whose
  ``ingest_sink`` never returned (a kill can leave part of a write), and is cut off: a step
  is wholly present or absent.
* **Replacing or deleting waits for the end of the run.** A step that replaces a document the
  file holds (other settings, or the file is refilled), or deletes one (a file that changed
  or is gone), goes to ``<file>.pending`` instead, committed the same way: a line naming the
  documents that go, then the new records. When the sink closes, the file is rewritten once:
  its other documents and the pending records are copied (``copy_file_range``: by the
  kernel, in runs, without parsing) into ``<file>.rewrite``, which is fsynced and renamed over
  the file, with the new marker renamed over its own. Killed before that rename, the next
  open finds the pending file committed and rewrites first. One copy of the file per run that
  replaces or deletes anything (its cost per GiB is measured by
  ``benchmarks/test_rerun_bench.py``, most of it the fsync), none for a run that only adds;
  memory holds the index, not the file.
* **The same bytes are not written again.** A document the file already holds with exactly
  these records (a rerun after a kill, ``--force``, another sink added) is left alone, so
  such a run rewrites nothing.

What a reader of the file sees during a run: whole lines of documents added so far, appended
step by step (a line being appended may be seen incomplete: read whole lines); the documents
being replaced or deleted in their old version, until the run ends and the file is swapped
in one rename for the one where they are replaced. A reader that opened the file before the
swap reads the old one to its end. Never a document in two versions, or half of one.

Verification (``ingest_sink_state``): the marker holds a random store id, the count of steps,
and the file's length, inode, modification time and last 4 KiB's checksum at the last step.
On open, a file that is shorter (emptied, cut short), another file (deleted and made again,
replaced), or changed at the same length (edited in place) has lost or changed records
behind ingest's back: the sink takes a new store id, so the cache writes every document to
it again, and reads the file to rebuild its index (a document written again then replaces
whatever is left of it). A file without a marker it can trust is treated the same way; a
line that is not JSON makes the sink refuse the file.

A record is a chunk (:meth:`ingest.model.Document.chunk_records`), plus ``page_provenance``
when a page it covers records how its text was made, and ``tables`` on the first chunk that
reaches a page where the structure found tables (:func:`records_of`).

An advisory lock (``flock``, POSIX only) makes a second run on the same file fail at open
rather than both repairing and writing to it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

from ingest import StoreSink, UsageError, explain_write_error, hookimpl, no_leftovers

from ingest_plugins.jsonl_files import (
    MARKER_SIZE,
    Index,
    Marker,
    copy_range,
    doc_id_of,
    end_of_last_line,
    fsync_dir,
    read_at,
    tail_crc,
    unlink,
    write_at,
)

if TYPE_CHECKING:
    from ingest import Document

try:  # POSIX only; Windows has no flock and runs without the lock.
    import fcntl
except ImportError:  # pragma: no cover - exercised on Windows only
    fcntl = None  # type: ignore[assignment]  # the module is optional by design

logger = logging.getLogger("ingest.jsonl")

NAME = "jsonl"
DEFAULT_FILENAME = "ingest.jsonl"
COMMIT_SUFFIX = ".commit"
PENDING_SUFFIX = ".pending"
REWRITE_SUFFIX = ".rewrite"

_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
# A pending line naming the documents that go; records start with '{"doc_id":'.
_DROP_PREFIX = b'{"ingest-drop":'
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


def records_of(document: Document) -> list[dict[str, Any]]:
    """The records of ``document`` as this sink writes them: its chunk records, each with
    ``page_provenance`` (page number as a string: that page's provenance) when a page it
    covers says how its text was made (the quality check's choice, OCR...), and ``tables``
    (:meth:`ingest.model.Document.table_records`) on the first chunk that reaches each
    table's page (the last chunk for a page after every chunk). Records without such facts
    have no such keys.

    :param document: a finished document.
    :returns: one record per chunk, in order.
    """
    records = document.chunk_records()
    provenance = {page.number: page.provenance for page in document.pages if page.provenance}
    if provenance:
        for record in records:
            pages = {
                str(number): facts
                for number, facts in provenance.items()
                if record["page_start"] <= number <= record["page_end"]
            }
            if pages:
                record["page_provenance"] = pages
    # A table rides with its document's lines, so it is replaced and deleted with them.
    for table in document.table_records() if records else ():
        record = next((r for r in records if r["page_end"] >= table["page"]), records[-1])
        record.setdefault("tables", []).append(table)
    return records


@final
class JsonlSink(StoreSink):
    """An open JSON-lines file; registered as a plugin for the rest of the run.

    :param path: the file (created with its parent folders).
    :raises UsageError: naming the file when it cannot be opened, locked or read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.commit_path = path.with_name(path.name + COMMIT_SUFFIX)
        self.pending_path = path.with_name(path.name + PENDING_SUFFIX)
        self._rewrite_path = path.with_name(path.name + REWRITE_SUFFIX)
        self._staged_commit = path.with_name(path.name + COMMIT_SUFFIX + REWRITE_SUFFIX)
        #: Records written by this sink (appended or pending), records left alone because
        #: the file held them already, bytes cut off on open, and rewrites done.
        self.written = 0
        self.skipped = 0
        self.repaired_bytes = 0
        self.rewrites = 0
        #: Why the sink started over on open (a new store id), or ``None``.
        self.started_over: str | None = None
        self.marker = Marker()
        self._fd = -1
        self._marker_fd = -1
        self._pending_fd = -1
        self._index: Index | None = None
        # What the pending file holds: documents written there, and documents it deletes
        # from the file (until the rewrite, the file still holds those).
        self._pending_docs: set[str] = set()
        self._pending_drops: set[str] = set()
        with no_leftovers(self.path, self.commit_path, self.pending_path):
            try:
                self._open()
            except BaseException:
                self._close_files()  # before no_leftovers removes the files this open made
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

    @property
    def state(self) -> tuple[str, int]:
        """``(store, writes)``: what :meth:`ingest_sink_state` reports."""
        return self.marker.store, self.marker.writes

    # -- public API ----------------------------------------------------------------------

    def write(self, batch: Sequence[Document], deleted: Sequence[str] = ()) -> int:
        """Write ``batch`` (each document replacing the file's records of its id) and delete
        the documents in ``deleted``, as one step.

        :returns: how many records were written.
        :raises RuntimeError: if the sink is closed.
        :raises OSError: if the disk refuses the step; nothing of it is kept.
        """
        if self.closed:
            raise RuntimeError(f"{self!r} is closed")
        index = self._loaded_index()
        documents = {document.doc_id: document for document in batch}  # the last one wins
        drop = sorted(d for d in set(deleted) - documents.keys() if self._holds(d))
        fresh: list[tuple[str, bytes]] = []
        changed: list[tuple[str, bytes]] = []
        records = 0
        for doc_id, document in documents.items():
            lines = [encode_record(record) for record in records_of(document)]
            data = b"".join(lines)
            if (
                doc_id in self._pending_docs
                or doc_id in self._pending_drops
                or (doc_id in index and not self._same(doc_id, data))
            ):
                changed.append((doc_id, data))
            elif doc_id in index:
                self.skipped += len(lines)
                continue
            else:
                fresh.append((doc_id, data))
            records += len(lines)
        if changed or drop:
            # A new document may be the new version of a deleted one: it waits with it.
            self._add_pending(drop + [doc_id for doc_id, _ in changed], changed + fresh)
        elif fresh:
            self._append(fresh)
        self.written += records
        return records

    def close(self) -> None:
        """Apply what is pending (one rewrite), close the file and release the lock; calling
        it again does nothing.

        :raises OSError: when the rewrite fails (a full disk); what is pending stays
            committed, and the next open applies it.
        """
        if self.closed:
            return
        try:
            if self.marker.pending_len:
                self._apply_pending()
        finally:
            self._close_files()

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

    # -- opening -------------------------------------------------------------------------

    def _open(self) -> None:
        what = f"jsonl sink {str(self.path)!r}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not (self.path.exists() and self.commit_path.exists())
            self._fd = os.open(self.path, _OPEN_FLAGS, 0o644)
        except OSError as exc:
            raise UsageError(f"{what}: cannot open: {explain_write_error(exc, self.path)}") from exc
        _lock(self._fd, what)
        try:
            self._marker_fd = os.open(self.commit_path, _OPEN_FLAGS, 0o644)
            self._recover()
            if created:
                # The new directory entries must survive a power cut like the data does.
                fsync_dir(self.path.parent)
            if self.marker.pending_len:
                self._apply_pending()  # a run killed before its rewrite
        except OSError as exc:
            cause = explain_write_error(exc, self.path)
            raise UsageError(f"{what}: cannot read or repair: {cause}") from exc

    def _recover(self) -> None:
        """Find the committed state, cut what a kill left past it, or start over."""
        header = read_at(self._marker_fd, 0, MARKER_SIZE)
        marker = Marker.decode(header)
        info = os.fstat(self._fd)
        if marker is not None and marker.inode != info.st_ino:
            marker = self._finish_rename(marker, info.st_ino)
        for leftover in (self._rewrite_path, self._staged_commit):
            unlink(leftover)
        problem = _problem(marker, info, self._fd)
        if marker is None or problem is not None:
            self._start_over(problem or "it has no commit marker", header)
            return
        self.marker = marker
        if info.st_size > marker.length:
            os.ftruncate(self._fd, marker.length)  # a step whose ingest_sink never returned
            os.fsync(self._fd)
            self.repaired_bytes = info.st_size - marker.length
            self._commit(marker.with_(mtime_ns=os.fstat(self._fd).st_mtime_ns))
        if marker.pending_len and not self._pending_intact(marker):
            self._start_over("its pending replacements were lost", header)
            return
        if not marker.pending_len:
            unlink(self.pending_path)

    def _finish_rename(self, marker: Marker, inode: int) -> Marker | None:
        """A rewrite renamed the new file in and was killed before its marker followed."""
        with contextlib.suppress(OSError):
            staged = Marker.decode(self._staged_commit.read_bytes()[:MARKER_SIZE])
            if staged is not None and staged.inode == inode:
                os.replace(self._staged_commit, self.commit_path)
                os.close(self._marker_fd)
                self._marker_fd = os.open(self.commit_path, _OPEN_FLAGS, 0o644)
                unlink(self.pending_path)
                return staged
        return marker

    def _pending_intact(self, marker: Marker) -> bool:
        try:
            self._pending_fd = os.open(self.pending_path, os.O_RDWR | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            return False
        info = os.fstat(self._pending_fd)
        if info.st_ino != marker.pending_inode or info.st_size < marker.pending_len:
            return False
        if info.st_size > marker.pending_len:
            os.ftruncate(self._pending_fd, marker.pending_len)
        return True

    def _start_over(self, why: str, header: bytes) -> None:
        """A file the marker cannot vouch for: index what it holds, under a new store id."""
        size = os.fstat(self._fd).st_size
        keep = end_of_last_line(self._fd, size)
        earlier = Marker.decode_v1(header)  # the marker of an earlier version of this sink
        if earlier is not None and earlier[1] == os.fstat(self._fd).st_ino:
            length = earlier[0]
            if length <= size and (length == 0 or read_at(self._fd, length - 1, 1) == b"\n"):
                keep = length  # past it: a batch whose ingest_sink never returned
        if keep < size:
            os.ftruncate(self._fd, keep)
            os.fsync(self._fd)
            self.repaired_bytes = size - keep
        self._close_pending()
        unlink(self.pending_path)
        self._index = Index.scan(self.path)
        entries = [(doc, offset, length) for offset, length, doc in self._index.runs()]
        index = Index.encode(entries)
        info = os.fstat(self._fd)
        if size or self.commit_path.stat().st_size:
            self.started_over = why
            logger.info("jsonl sink %s: %s; it counts as a new store", self.path, why)
        marker = Marker(
            length=keep,
            inode=info.st_ino,
            mtime_ns=info.st_mtime_ns,
            store=uuid.uuid4().hex,
            index_len=len(index),
            index_crc=zlib.crc32(index),
            tail_crc=tail_crc(self._fd, keep),
        )
        os.ftruncate(self._marker_fd, 0)
        write_at(self._marker_fd, 0, marker.encode() + index)
        os.fsync(self._marker_fd)
        self.marker = marker

    def _loaded_index(self) -> Index:
        """The index, read from the marker the first time it is needed (or rebuilt by
        reading the file, when the marker's is damaged)."""
        if self._index is None:
            marker = self.marker
            data = read_at(self._marker_fd, MARKER_SIZE, marker.index_len)
            index = Index.decode(data) if zlib.crc32(data) == marker.index_crc else None
            if index is None or not index.covers(marker.length):
                index = Index.scan(self.path)
            self._index = index
        return self._index

    # -- steps ---------------------------------------------------------------------------

    def _holds(self, doc_id: str) -> bool:
        if doc_id in self._pending_docs:
            return True
        return doc_id in self._loaded_index() and doc_id not in self._pending_drops

    def _same(self, doc_id: str, data: bytes) -> bool:
        runs = self._loaded_index().ranges[doc_id]
        return len(runs) == 1 and runs[0][1] == len(data) and read_at(self._fd, *runs[0]) == data

    def _append(self, documents: list[tuple[str, bytes]]) -> None:
        start = self.marker.length
        data = b"".join(data for _, data in documents)
        try:
            write_at(self._fd, start, data)
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
                # The cut changed the file's mtime: committed as is, or the next open would
                # take the file for one changed outside ingest and refill it.
                self._commit(self.marker.with_(mtime_ns=os.fstat(self._fd).st_mtime_ns))
            exc.add_note(f"jsonl sink {str(self.path)!r}: the batch was not written")
            raise
        entries: list[tuple[str, int, int]] = []
        offset = start
        for doc_id, chunk in documents:
            entries.append((doc_id, offset, len(chunk)))
            offset += len(chunk)
        lines = Index.encode(entries)
        write_at(self._marker_fd, MARKER_SIZE + self.marker.index_len, lines)
        info = os.fstat(self._fd)
        self._commit(
            self.marker.with_(
                length=offset,
                mtime_ns=info.st_mtime_ns,
                tail_crc=tail_crc(self._fd, offset),
                writes=self.marker.writes + 1,
                index_len=self.marker.index_len + len(lines),
                index_crc=zlib.crc32(lines, self.marker.index_crc),
            )
        )
        index = self._loaded_index()
        for doc_id, at, length in entries:
            index.add(doc_id, at, length)

    def _add_pending(self, drop: list[str], documents: list[tuple[str, bytes]]) -> None:
        if self._pending_fd < 0:
            # Its directory entry is not fsynced: a power cut that loses it leaves a marker
            # whose pending file is missing, and the sink then starts over (a refill).
            self._pending_fd = os.open(self.pending_path, _OPEN_FLAGS | os.O_TRUNC, 0o644)
        start = self.marker.pending_len
        data = b"".join(
            [_DROP_PREFIX + json.dumps(drop).encode("utf-8") + b"}\n"]
            + [data for _, data in documents]
        )
        try:
            write_at(self._pending_fd, start, data)
            os.fsync(self._pending_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._pending_fd, start)
            exc.add_note(f"jsonl sink {str(self.path)!r}: the batch was not written")
            raise
        self._commit(
            self.marker.with_(
                pending_len=start + len(data),
                pending_inode=os.fstat(self._pending_fd).st_ino,
                writes=self.marker.writes + 1,
            )
        )
        self._pending_docs.difference_update(drop)
        self._pending_drops.update(drop)
        self._pending_docs.update(doc_id for doc_id, _ in documents)

    def _commit(self, marker: Marker) -> None:
        # One small write at offset 0: a kill cannot tear it, and the checksum catches a
        # power cut that does. The index lines before it are covered by the same fsync.
        write_at(self._marker_fd, 0, marker.encode())
        os.fsync(self._marker_fd)
        self.marker = marker

    # -- the rewrite ---------------------------------------------------------------------

    def _apply_pending(self) -> None:
        """Rewrite the file once: its documents not replaced or deleted, then the pending
        records; swapped in by renames (see the module docstring)."""
        index = self._loaded_index()
        drop, added = self._read_pending()
        drop |= added.keys()
        target = os.open(self._rewrite_path, _OPEN_FLAGS | os.O_TRUNC, 0o644)
        try:
            _lock(target, f"jsonl sink {str(self.path)!r}")
            new = Index()
            end = 0
            kept = [(o, n, d) for o, n, d in index.runs() if d not in drop]
            for source, runs in ((self._fd, kept), (self._pending_fd, _runs_of(added))):
                at = end
                for _offset, length, doc_id in runs:
                    new.add(doc_id, end, length)
                    end += length
                # Runs next to each other in the source stay so in the copy: one call each.
                for offset, length in _coalesce(runs):
                    copy_range(source, target, offset, length, at)
                    at += length
            os.fsync(target)
        except BaseException:
            os.close(target)
            unlink(self._rewrite_path)
            raise
        info = os.fstat(target)
        lines = Index.encode([(d, o, n) for o, n, d in new.runs()])
        marker = self.marker.with_(
            length=end,
            inode=info.st_ino,
            mtime_ns=info.st_mtime_ns,
            index_len=len(lines),
            index_crc=zlib.crc32(lines),
            tail_crc=tail_crc(target, end),
            pending_len=0,
            pending_inode=0,
        )
        staged = os.open(self._staged_commit, _OPEN_FLAGS | os.O_TRUNC, 0o644)
        try:
            write_at(staged, 0, marker.encode() + lines)
            os.fsync(staged)
        finally:
            os.close(staged)
        os.replace(self._rewrite_path, self.path)
        os.replace(self._staged_commit, self.commit_path)
        fsync_dir(self.path.parent)
        os.close(self._fd)
        self._fd = target
        os.close(self._marker_fd)
        self._marker_fd = os.open(self.commit_path, _OPEN_FLAGS, 0o644)
        self._close_pending()
        unlink(self.pending_path)
        self.marker = marker
        self._index = new
        self._pending_docs.clear()
        self._pending_drops.clear()
        self.rewrites += 1

    def _read_pending(self) -> tuple[set[str], dict[str, list[tuple[int, int]]]]:
        """What the pending file commits: the documents that go, and the runs of lines of
        those written, in order."""
        drop: set[str] = set()
        added: dict[str, list[tuple[int, int]]] = {}
        offset = 0
        with self.pending_path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if offset + len(line) > self.marker.pending_len:
                    break
                if line.startswith(_DROP_PREFIX):
                    for doc_id in json.loads(line)["ingest-drop"]:
                        drop.add(doc_id)
                        added.pop(doc_id, None)
                else:
                    doc_id = doc_id_of(line, self.pending_path, number)
                    runs = added.setdefault(doc_id, [])
                    if runs and sum(runs[-1]) == offset:
                        runs[-1] = (runs[-1][0], runs[-1][1] + len(line))
                    else:
                        runs.append((offset, len(line)))
                offset += len(line)
        return drop, added

    def _close_pending(self) -> None:
        if self._pending_fd >= 0:
            fd, self._pending_fd = self._pending_fd, -1
            os.close(fd)

    def _close_files(self) -> None:
        self._close_pending()
        for name in ("_fd", "_marker_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)  # closing the descriptor also releases the flock


def _problem(marker: Marker | None, info: os.stat_result, fd: int) -> str | None:
    """Why the file is not what the marker committed, or ``None`` when it is."""
    if marker is None:
        return None
    if marker.inode != info.st_ino:
        return "it is another file than the one ingest wrote (deleted, replaced?)"
    if info.st_size < marker.length:
        return "it is shorter than ingest left it (emptied, cut short?)"
    if info.st_size == marker.length and info.st_mtime_ns != marker.mtime_ns:
        return "it was changed since ingest wrote it"
    if tail_crc(fd, marker.length) != marker.tail_crc:
        return "its last records are not those ingest wrote"
    return None


def _runs_of(added: dict[str, list[tuple[int, int]]]) -> list[tuple[int, int, str]]:
    return [(o, n, doc_id) for doc_id, runs in added.items() for o, n in runs]


def _coalesce(runs: list[tuple[int, int, str]]) -> list[tuple[int, int]]:
    """Consecutive runs of a file joined into the fewest copies."""
    joined: list[tuple[int, int]] = []
    for offset, length, _doc in runs:
        if joined and sum(joined[-1]) == offset:
            joined[-1] = (joined[-1][0], joined[-1][1] + length)
        else:
            joined.append((offset, length))
    return joined


def _lock(fd: int, what: str) -> None:
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        raise UsageError(f"{what}: another run is writing to this file") from exc
