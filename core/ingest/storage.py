"""Why a file could not be written, in words a user can act on.

Sinks and the cache write files; when a write fails the run must say which file and why
("no space left on device", "file too large", "read-only") in one line. An ``OSError``
carries its ``errno``. SQLite does not always: a write that hits the file size limit
(``ulimit -f``) comes back as a bare "disk I/O error", so for those the file system is
asked (free space, the size limit against the file's size).
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
from collections.abc import Iterator
from pathlib import Path

__all__ = ["explain_write_error", "is_read_only", "no_leftovers"]

_READ_ONLY_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
#: A file within this many bytes of the size limit is taken as the one that hit it.
_NEAR_LIMIT = 1 << 20
#: Less free space than this on the target's file system is taken as a full disk.
_NEARLY_FULL = 1 << 20
_SQLITE_JOURNALS = ("", "-wal", "-journal", "-shm")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__]
    return seen


def is_read_only(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it came from) says a file or folder is read-only
    or not ours to write: ``EACCES``, ``EPERM``, ``EROFS``, or SQLite's ``READONLY``."""
    for error in _chain(exc):
        if isinstance(error, OSError) and error.errno in _READ_ONLY_ERRNOS:
            return True
        name = getattr(error, "sqlite_errorname", "") or ""
        if name.startswith("SQLITE_READONLY") or name in ("SQLITE_PERM", "SQLITE_CANTOPEN"):
            return True
    return False


def _size(value: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} bytes"


def _file_size_limit() -> int | None:
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    except (AttributeError, ValueError, OSError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft


def _too_large(limit: int) -> str:
    return f"file too large: the limit on file size (ulimit -f) is {_size(limit)}"


def _probe(path: Path) -> str | None:
    """What the file system says about a failed write to ``path``, if anything."""
    limit = _file_size_limit()
    if limit is not None:
        for suffix in _SQLITE_JOURNALS:
            try:
                size = os.stat(f"{path}{suffix}").st_size
            except OSError:
                continue
            if size >= limit - _NEAR_LIMIT:
                return _too_large(limit)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        info = os.statvfs(folder)
    except (AttributeError, OSError):
        return None
    free = info.f_bavail * info.f_frsize
    if free < _NEARLY_FULL:
        return f"no space left on device ({_size(free)} free in {folder})"
    return None


def explain_write_error(exc: BaseException, path: str | os.PathLike[str] | None = None) -> str:
    """Why writing failed, in one line: the cause first, then the error's own words.

    :param exc: what the write raised (an ``OSError``, a ``sqlite3.Error``...).
    :param path: the file that was written, if known: the file system is asked about it
        when the error itself does not say (SQLite's "disk I/O error").
    :returns: e.g. ``no space left on device``, ``file too large: the limit on file size
        (ulimit -f) is 1.5 MiB (disk I/O error)``, ``read-only: Permission denied``.
    """
    own = str(exc) or type(exc).__name__
    for error in _chain(exc):
        if isinstance(error, OSError) and error.errno is not None:
            words = error.strerror or own
            if error.errno == errno.ENOSPC:
                return f"no space left on device ({words})"
            if error.errno == errno.EDQUOT:
                return f"disk quota exceeded ({words})"
            if error.errno == errno.EFBIG:
                limit = _file_size_limit()
                return _too_large(limit) if limit is not None else f"file too large ({words})"
            if error.errno in _READ_ONLY_ERRNOS:
                return f"read-only: {words}"
        name = getattr(error, "sqlite_errorname", "") or ""
        if name == "SQLITE_FULL":
            return f"no space left on device ({error})"
        if name.startswith("SQLITE_READONLY"):
            return f"read-only: {error}"
    if path is not None:
        probed = _probe(Path(path))
        if probed is not None:
            return f"{probed} ({own})"
    return own


@contextlib.contextmanager
def no_leftovers(*paths: str | os.PathLike[str]) -> Iterator[None]:
    """Remove those of ``paths`` that the block created, if it raises.

    A sink or cache that fails to open (read-only, not its format, locked) must leave the
    folder as it found it: no empty database, ``-wal``, ``-shm`` or marker file. Close what
    the block opened before leaving it.

    :param paths: files the block may create (a database and its ``-wal`` and ``-shm``).
    """
    new = [os.fspath(path) for path in paths if not os.path.lexists(path)]
    try:
        yield
    except BaseException:
        for path in new:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise
