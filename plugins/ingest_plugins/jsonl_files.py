"""The files of the ``jsonl`` sink beside its records: the commit marker, its index, and the
byte-level helpers (read at an offset, copy a range, find the last line) its sink uses.

``<file>.commit`` starts with a fixed-size header line (:class:`Marker`), rewritten in place
after every step, followed by the index: one line per run of consecutive lines of one
document, ``<doc id>\\t<offset>\\t<length>`` (an id made of other characters than letters,
digits and ``_.:-`` as a JSON string), appended as documents are appended. The header
commits everything: the file's length, identity and last bytes, the index's length and
checksum, and the pending file's length. Bytes past what it commits are a step a kill
interrupted, and are cut off on open.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Self, final

from ingest import UsageError

__all__ = [
    "FOREIGN",
    "MARKER_SIZE",
    "Index",
    "Marker",
    "copy_range",
    "doc_id_of",
    "end_of_last_line",
    "fsync_dir",
    "read_at",
    "tail_crc",
    "unlink",
    "write_at",
]

#: The index key of lines that are JSON but name no document (a hand-made file): kept as
#: they are, never replaced.
FOREIGN = ""
#: Bytes before the end of the committed records whose checksum the marker keeps.
TAIL = 4096

_BLOCK = 1 << 16
_COPY_BLOCK = 1 << 24
_MARKER = (
    b"ingest-jsonl-commit 2 %020d %020d %020d %32s %020d %020d %08x %08x %020d %020d %08x\n"
)
MARKER_SIZE = len(_MARKER % (0, 0, 0, b"0" * 32, 0, 0, 0, 0, 0, 0, 0))
_MARKER_RE = re.compile(
    rb"ingest-jsonl-commit 2 (\d{20}) (\d{20}) (\d{20}) ([0-9a-f]{32}) (\d{20}) (\d{20}) "
    rb"([0-9a-f]{8}) ([0-9a-f]{8}) (\d{20}) (\d{20}) ([0-9a-f]{8})\n"
)
# The marker of earlier versions: the committed length and inode only.
_MARKER_V1_RE = re.compile(rb"ingest-jsonl-commit 1 (\d{20}) (\d{20}) ([0-9a-f]{8})\n")
_PLAIN_ID = re.compile(r"[0-9A-Za-z_.:-]+")
# Lines the sink wrote start with doc_id: read it without parsing the text.
_ID_PREFIX = re.compile(rb'\{"doc_id":"([^"\\]*)"')


@final
@dataclass(frozen=True, slots=True)
class Marker:
    """What the header of ``<file>.commit`` commits.

    :param length: bytes of committed records.
    :param inode: the records file's inode then.
    :param mtime_ns: its modification time then.
    :param store: a random id of what the file holds, new whenever the sink starts over.
    :param writes: steps taken since the store id was made.
    :param index_len: bytes of index after the header.
    :param index_crc: CRC-32 of those bytes.
    :param tail_crc: CRC-32 of the last :data:`TAIL` committed bytes of records.
    :param pending_len: committed bytes of the pending file (0: nothing pending).
    :param pending_inode: the pending file's inode.
    """

    length: int = 0
    inode: int = 0
    mtime_ns: int = 0
    store: str = "0" * 32
    writes: int = 0
    index_len: int = 0
    index_crc: int = 0
    tail_crc: int = 0
    pending_len: int = 0
    pending_inode: int = 0

    def encode(self) -> bytes:
        """The header line, :data:`MARKER_SIZE` bytes, with its own checksum."""
        fields = (
            self.length, self.inode, self.mtime_ns, self.store.encode("ascii"), self.writes,
            self.index_len, self.index_crc, self.tail_crc, self.pending_len,
            self.pending_inode,
        )  # fmt: skip
        body = _MARKER % (*fields, 0)
        return _MARKER % (*fields, zlib.crc32(body[: -len(b"00000000\n")]))

    @classmethod
    def decode(cls, data: bytes) -> Self | None:
        """The marker in a header line, or ``None`` when it is not an intact one."""
        match = _MARKER_RE.fullmatch(data)
        if match is None or int(match[11], 16) != zlib.crc32(data[: -len(b"00000000\n")]):
            return None
        return cls(
            length=int(match[1]),
            inode=int(match[2]),
            mtime_ns=int(match[3]),
            store=match[4].decode("ascii"),
            writes=int(match[5]),
            index_len=int(match[6]),
            index_crc=int(match[7], 16),
            tail_crc=int(match[8], 16),
            pending_len=int(match[9]),
            pending_inode=int(match[10]),
        )

    @staticmethod
    def decode_v1(data: bytes) -> tuple[int, int] | None:
        """``(length, inode)`` of an earlier version's intact marker, else ``None``."""
        match = _MARKER_V1_RE.match(data)
        if match is None:
            return None
        length, inode = int(match[1]), int(match[2])
        if int(match[3], 16) != zlib.crc32(b"%d %d" % (length, inode)):
            return None
        return length, inode

    def with_(self, **changes: int | str) -> Marker:
        """A copy with ``changes``."""
        return replace(self, **changes)  # type: ignore[arg-type]  # checked by the fields


@final
@dataclass
class Index:
    """Where each document's lines are: ``doc_id`` to ``[(offset, length), ...]``."""

    ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def add(self, doc_id: str, offset: int, length: int) -> None:
        """Record a run of lines, joined to the document's last run when they touch."""
        runs = self.ranges.setdefault(doc_id, [])
        if runs and sum(runs[-1]) == offset:
            runs[-1] = (runs[-1][0], runs[-1][1] + length)
        else:
            runs.append((offset, length))

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self.ranges

    def runs(self) -> list[tuple[int, int, str]]:
        """Every run, in file order: ``(offset, length, doc_id)``."""
        return sorted((o, n, d) for d, runs in self.ranges.items() for o, n in runs)

    def covers(self, length: int) -> bool:
        """Whether the runs tile the first ``length`` bytes exactly."""
        end = 0
        for offset, size, _doc in self.runs():
            if offset != end:
                return False
            end += size
        return end == length

    @staticmethod
    def encode(entries: list[tuple[str, int, int]]) -> bytes:
        """Index lines for ``(doc_id, offset, length)`` entries."""
        return b"".join(
            b"%s\t%d\t%d\n" % (_encode_id(doc), offset, length) for doc, offset, length in entries
        )

    @classmethod
    def decode(cls, data: bytes) -> Index | None:
        """The index in ``data`` (index lines), or ``None`` when a line is malformed."""
        index = cls()
        try:
            for line in data.splitlines():
                doc, offset, length = line.split(b"\t")
                index.add(_decode_id(doc), int(offset), int(length))
        except (ValueError, TypeError):
            return None
        return index

    @classmethod
    def scan(cls, path: Path) -> Index:
        """Read a records file line by line and index it (a file the marker cannot vouch for).

        :raises UsageError: naming the line, when one is not JSON: not a file ingest wrote.
        """
        index = cls()
        offset = 0
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                index.add(doc_id_of(line, path, number), offset, len(line))
                offset += len(line)
        return index


def _encode_id(doc_id: str) -> bytes:
    # Ids are hashes: written as they are, parsed without JSON. Any other id is a JSON string.
    if _PLAIN_ID.fullmatch(doc_id):
        return doc_id.encode("ascii")
    return json.dumps(doc_id).encode("utf-8")


def _decode_id(data: bytes) -> str:
    if data.startswith(b'"'):
        doc_id = json.loads(data)
        if not isinstance(doc_id, str):
            raise TypeError("not a document id")
        return doc_id
    return data.decode("ascii")


def doc_id_of(line: bytes, path: Path, number: int) -> str:
    """The document a records line belongs to (:data:`FOREIGN` for none).

    :raises UsageError: when the line is not JSON.
    """
    match = _ID_PREFIX.match(line)
    if match is not None:
        return match[1].decode("utf-8")
    try:
        record = json.loads(line)
    except ValueError:
        raise UsageError(
            f"jsonl sink {str(path)!r}: line {number} is not JSON; this is not a file ingest "
            "wrote, so it will not write to it: pick another target"
        ) from None
    doc_id = record.get("doc_id") if isinstance(record, dict) else None
    return doc_id if isinstance(doc_id, str) and doc_id else FOREIGN


def read_at(fd: int, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset`` (fewer at the end of the file)."""
    # lseek + read rather than os.pread, which Windows lacks.
    os.lseek(fd, offset, os.SEEK_SET)
    chunks: list[bytes] = []
    while size > 0 and (block := os.read(fd, min(size, _COPY_BLOCK))):
        chunks.append(block)
        size -= len(block)
    return b"".join(chunks)


def write_at(fd: int, offset: int, data: bytes) -> None:
    """Write all of ``data`` at ``offset``, finishing short writes."""
    os.lseek(fd, offset, os.SEEK_SET)
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def copy_range(source: int, target: int, offset: int, length: int, at: int) -> None:
    """Copy ``length`` bytes at ``offset`` of ``source`` to ``at`` in ``target``.

    ``os.copy_file_range`` copies inside the kernel (and shares extents on file systems that
    can); where it is missing or refuses the pair, a read and write loop does the same.
    """
    copy = getattr(os, "copy_file_range", None)
    while length > 0 and copy is not None:
        try:
            done = copy(source, target, min(length, _COPY_BLOCK), offset, at)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            break
        if done == 0:
            raise OSError(errno.EIO, f"unexpected end of file copying at offset {offset}")
        offset, at, length = offset + done, at + done, length - done
    while length > 0:
        block = read_at(source, offset, min(length, _COPY_BLOCK))
        if not block:
            raise OSError(errno.EIO, f"unexpected end of file copying at offset {offset}")
        write_at(target, at, block)
        offset, at, length = offset + len(block), at + len(block), length - len(block)


def tail_crc(fd: int, length: int) -> int:
    """CRC-32 of the last :data:`TAIL` bytes before ``length``."""
    start = max(0, length - TAIL)
    return zlib.crc32(read_at(fd, start, length - start))


def end_of_last_line(fd: int, size: int) -> int:
    """The length of the file up to and including its last ``"\\n"`` (0 if it has none)."""
    end = size
    while end > 0:
        start = max(0, end - _BLOCK)
        found = read_at(fd, start, end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def fsync_dir(folder: Path) -> None:
    """Make new or renamed directory entries in ``folder`` survive a power cut."""
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink(path: Path) -> None:
    """Remove a file that may not exist."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
