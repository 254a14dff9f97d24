"""Sources that live in a store: copied into the worker before extraction.

A source whose ``path`` is a URL (``s3://bucket/key.pdf``) is never read by the driver.
In the worker that runs one of its tasks, :func:`fetched` asks ``ingest_fetch`` for a local
copy in a private temporary folder, hashes it (a source collected without a content id gets
it here), and hands the extractors a source whose ``path`` is the copy; :func:`restore` then
makes the outcome name the URL again. Extractors, OCR and transforms never see a URL.

The copy is part of the task: its deadline and memory cap cover it, and a copy that fails
(the object is gone, access is denied, the network fails past the plugin's retries) fails
that document alone, with the plugin's one-line reason.

A process keeps its last :data:`KEPT_COPIES` copies, by URL and the store's stamp, after
their task: the next page range of a long document, which the pool gives to the worker that
read the previous one, reads the same file (no second download, and the extractor's parsed
file is reused) instead of downloading it again. The copies live in one folder per process,
``ingest-fetch-PID-*`` in the temporary directory, removed when the process exits; a folder
whose process died without removing it (a worker killed mid-download) is removed by the
next process that makes its own.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.errors import DocumentError
from ingest.model import Document, Failure, Source, content_id_of
from ingest.workers.tasks import Extraction, Partial

if TYPE_CHECKING:
    from ingest.config import Settings
    from ingest.manager import IngestPluginManager

__all__ = ["FOLDER_PREFIX", "KEPT_COPIES", "fetched", "restore"]

#: Copies a process keeps after their task, for the next task of the same object.
KEPT_COPIES = 2
#: How a process's folder of copies is named in the temporary directory (then pid, ``-``).
FOLDER_PREFIX = "ingest-fetch-"


@dataclass
class _Copy:
    #: The copy's own folder (inside the process's folder).
    folder: Path
    #: The source as extractors read it: the copy's path and content id.
    local: Source
    #: Tasks reading it now: it is deleted only when none is.
    users: int = 0
    kept: bool = False


class _Copies:
    """This process's copies of store objects, the last few kept by ``(URL, stamp)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[str, str], _Copy] = OrderedDict()
        self._root: Path | None = None
        self._pid = os.getpid()

    def forget(self) -> None:
        """In a forked child: the parent's copies and folder are the parent's to delete."""
        self._lock = threading.Lock()
        self._kept = OrderedDict()
        self._root = None
        self._pid = os.getpid()

    def new_folder(self) -> Path:
        """An empty folder for one copy, in this process's folder (made on first use)."""
        with self._lock:
            if self._root is None or not self._root.is_dir():
                self._root = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{self._pid}-"))
                _remove_orphans(self._root)
            return Path(tempfile.mkdtemp(dir=self._root))

    def take(self, key: tuple[str, str], content_id: str) -> _Copy | None:
        """The kept copy of ``key``, now in use; ``None`` when there is none, or when it has
        another content id than the task expects (then it is dropped)."""
        with self._lock:
            copy = self._kept.get(key)
            if copy is None:
                return None
            if content_id and copy.local.content_id != content_id:
                self._drop(key)
                return None
            self._kept.move_to_end(key)
            copy.users += 1
            return copy

    def add(self, key: tuple[str, str] | None, folder: Path, local: Source) -> _Copy:
        """A new copy, in use; kept under ``key`` (unless ``None``), the oldest unused
        copies beyond :data:`KEPT_COPIES` deleted."""
        copy = _Copy(folder=folder, local=local, users=1)
        if key is None:
            return copy
        with self._lock:
            if key in self._kept:
                self._drop(key)
            copy.kept = True
            self._kept[key] = copy
            for old in [k for k, c in self._kept.items() if c.users == 0]:
                if len(self._kept) <= KEPT_COPIES:
                    break
                self._drop(old)
        return copy

    def release(self, copy: _Copy) -> None:
        """A task is done with ``copy``: delete it unless it is kept or still in use."""
        with self._lock:
            copy.users -= 1
            if copy.users <= 0 and not copy.kept:
                shutil.rmtree(copy.folder, ignore_errors=True)

    def clear(self) -> None:
        """Delete every copy and this process's folder (at exit)."""
        if os.getpid() != self._pid:
            return
        with self._lock:
            self._kept.clear()
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None

    def _drop(self, key: tuple[str, str]) -> None:
        copy = self._kept.pop(key)
        copy.kept = False
        if copy.users <= 0:
            shutil.rmtree(copy.folder, ignore_errors=True)


def _remove_orphans(own: Path) -> None:
    """Remove the folders of copies whose process is gone (killed before its exit)."""
    for folder in own.parent.glob(f"{FOLDER_PREFIX}*-*"):
        pid_text = folder.name.removeprefix(FOLDER_PREFIX).partition("-")[0]
        if folder == own or not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process: not ours to judge
    return True


_COPIES = _Copies()
atexit.register(_COPIES.clear)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_COPIES.forget)


@contextlib.contextmanager
def fetched(
    manager: IngestPluginManager,
    settings: Settings,
    source: Source,
    *,
    same_bytes: bool = False,
    keep: bool = False,
) -> Iterator[Source]:
    """The source as extractors read it: itself, or, for a URL, a local copy of it.

    :param manager: this worker's plugin manager.
    :param settings: the run's settings.
    :param source: the source of the task.
    :param same_bytes: the task needs the very bytes an earlier task of the document read
        (a page range): a copy with another content id fails with reason ``changed``.
    :param keep: more tasks of the document may follow in this process (a worker's task,
        not a whole document read in-process): a copy of an object the store gave a stamp
        is kept for them (see the module's text) and a kept one is read.
    :returns: a context giving the source to extract, with the copy's content id; a copy
        not kept is deleted when the context ends.
    :raises DocumentError: the copy could not be made (reason and message from the plugin).
    """
    if not source.remote:
        yield source
        return
    # Without a stamp, nothing tells a kept copy from a replaced object's.
    key = (str(source.path), source.stamp) if keep and source.stamp else None
    copy = _COPIES.take(key, source.content_id) if key is not None else None
    if copy is None:
        copy = _download(manager, settings, source, key)
    try:
        content_id = copy.local.content_id
        if same_bytes and source.content_id and content_id != source.content_id:
            raise DocumentError(
                "changed",
                "the object was replaced while the run read it (its pages would mix two "
                "versions); the next run reads it again",
            )
        yield replace(source, path=copy.local.path, content_id=content_id)
    finally:
        _COPIES.release(copy)


def _download(
    manager: IngestPluginManager,
    settings: Settings,
    source: Source,
    key: tuple[str, str] | None,
) -> _Copy:
    folder = _COPIES.new_folder()
    try:
        local = manager.hook.ingest_fetch(source=source, settings=settings, folder=folder)
        if local is None:
            scheme = str(source.path).partition("://")[0]
            raise DocumentError(
                "unsupported",
                f"no plugin reads {scheme}:// URLs (ingest_fetch); for object stores install "
                "'ingest[s3]'",
            )
        content_id = content_id_of(Path(local))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return _COPIES.add(key, folder, replace(source, path=Path(local), content_id=content_id))


def restore(outcome: Any, source: Source, used: Source) -> Any:
    """Make an outcome name ``source`` (the URL) again, with the content id of ``used``.

    :param outcome: a :class:`~ingest.model.Document`, :class:`~ingest.model.Failure`,
        :class:`~ingest.workers.tasks.Extraction` or :class:`~ingest.workers.tasks.Partial`
        made from ``used``; changed in place.
    :param source: the source as the driver sent it.
    :param used: the source the extractors read (the local copy).
    :returns: ``outcome``.
    """
    if used is source:
        return outcome
    named = replace(source, content_id=used.content_id)
    if isinstance(outcome, Document):
        outcome.source = named
    elif isinstance(outcome, Failure):
        outcome.source = source.path
        outcome.message = outcome.message.replace(str(used.path), str(source.path))
        outcome.doc_id = used.doc_id
    elif isinstance(outcome, Extraction | Partial):
        extraction = outcome.extraction if isinstance(outcome, Partial) else outcome
        extraction.document.source = named
        for failure in extraction.errors:
            restore(failure, source, used)
    return outcome
