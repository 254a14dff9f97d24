"""The stat cache: collecting unchanged files without reading them again.

Collection hashes every file (the content id), which reads the whole corpus. On a rerun over
100,000 unchanged files that read is most of the run, so the cache remembers, per path, the
size, mtime, ctime and inode the file had when it was hashed; a file that still has them is
the same file, and its source is rebuilt without opening it.

ctime is in the key because no program can set it back: a file rewritten with the same size
and its old mtime restored (``cp -p``, ``tar``, ``touch -d``) still shows a new ctime. Files
whose mtime or ctime is less than two seconds older than the moment they were hashed are
not remembered: within one timestamp tick (up to two seconds on FAT) a file can change
again without its stat changing (git calls such entries "racily clean").
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

from ingest.hookspecs import hookimpl
from ingest.model import Source, is_url

if TYPE_CHECKING:
    from ingest.cache.store import CacheStore
    from ingest.manager import IngestPluginManager
    from ingest.model import Failure

    Found = Source | Failure | None

__all__ = ["StatCachePlugin"]

_RACY_NS = 2_000_000_000
_STATS_PER_WRITE = 1000


def abspath(path: Path | str) -> str:
    """A path as the cache keys it: absolute, and text SQLite can store; a URL (an object in
    a store) is its own key.

    A name that is not valid UTF-8 (its bad bytes are lone surrogates in Python) is keyed by
    the hex of its text after ``hex:``, which no absolute path starts with, so two files
    never share a key.
    """
    if is_url(path):
        return str(path)
    # abspath, not resolve(): no extra syscalls per file, and the key is the path as walked.
    absolute = os.path.abspath(path)
    try:
        absolute.encode("utf-8")
    except UnicodeEncodeError:
        return "hex:" + absolute.encode("utf-8", "surrogatepass").hex()
    return absolute


@final
class StatCachePlugin:
    """The stat cache of one run: answers for unchanged files, and remembers new answers.

    For a path whose size, mtime, ctime and inode are what they were when it was last hashed,
    and whose claim (the collect patterns and the versions of the plugins that claim files)
    is unchanged, the same :class:`~ingest.model.Source` comes back without opening the
    file. As pytest's cacheprovider does, it takes part in ``ingest_collect_file`` as two
    plugins, so every collector is called through pluggy (tracing and other wrappers see
    each call): :meth:`register` adds a ``tryfirst`` implementation that answers a hit, and a
    wrapper that sees every answer and remembers the sources the collectors made on a miss.
    """

    def __init__(self, store: CacheStore, claim: str) -> None:
        self._store = store
        self._claim = claim
        self._pending: list[tuple[Any, ...]] = []
        #: The call under way: ``(path key, stat before, when)``, set by the wrapper.
        self._looking: tuple[str, os.stat_result | None, int] | None = None
        self._hit: Source | None = None
        #: Sources answered from the cache, and sources the other collectors made, this run.
        self.hits = 0
        self.misses = 0
        self._plugins = (_Answer(self), _Recorder(self))

    def register(self, manager: IngestPluginManager, name: str) -> None:
        """Register both halves with ``manager`` (``name`` and ``name + "-recorder"``)."""
        manager.register(self._plugins[0], name=name)
        manager.register(self._plugins[1], name=f"{name}-recorder")

    def unregister(self, manager: IngestPluginManager) -> None:
        """Remove both halves from ``manager`` (those it has)."""
        for plugin in self._plugins:
            if manager.is_registered(plugin):
                manager.unregister(plugin)

    def lookup(self, path: Path) -> Source | None:
        """The cached source of ``path`` when its stat and claim are unchanged, else ``None``."""
        looking = self._looking
        if looking is None:  # called outside the wrapper (another manager): stat here
            looking = (abspath(path), _stat_or_none(path), time.time_ns())
        key, before, _ = looking
        if before is None:
            return None
        rows = self._store.query(
            "SELECT size, mtime_ns, ctime_ns, inode, claim, content_id, media_type "
            "FROM stats WHERE path = ?",
            (key,),
        )
        if not rows or rows[0][:5] != (*_stat_key(before), self._claim):
            return None
        self.hits += 1
        size, content_id, media_type = rows[0][0], rows[0][5], rows[0][6]
        self._hit = Source(path=path, content_id=content_id, size=size, media_type=media_type)
        return self._hit

    def around(self, path: Path) -> Generator[None, Found, Found]:
        """The wrapper's body: stat before the collectors run, remember what they made."""
        looking = (abspath(path), _stat_or_none(path), time.time_ns())
        self._looking, self._hit = looking, None
        try:
            found: Found = yield
        finally:
            self._looking = None
        if isinstance(found, Source) and found is not self._hit:
            self.misses += 1
            key, before, looked = looking
            if before is not None:
                self._remember(key, before, looked, found)
        self._hit = None
        return found

    def _remember(self, key: str, before: os.stat_result, looked: int, source: Source) -> None:
        try:
            after = os.stat(source.path)
        except OSError:
            return
        stat = _stat_key(before)
        newest = max(before.st_mtime_ns, before.st_ctime_ns)
        if _stat_key(after) != stat or looked - newest < _RACY_NS:
            return  # changed while hashed, or too recent to trust its stat
        self._pending.append((key, *stat, self._claim, source.content_id, source.media_type))
        if len(self._pending) >= _STATS_PER_WRITE:
            self.flush()

    def flush(self) -> None:
        """Write the stats remembered since the last flush."""
        if not self._pending:
            return
        with self._store.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO stats VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self._pending
            )
        self._pending = []


@final
class _Answer:
    """The ``tryfirst`` half of :class:`StatCachePlugin`: a hit ends the hook call."""

    def __init__(self, cache: StatCachePlugin) -> None:
        self._cache = cache

    @hookimpl(tryfirst=True)
    def ingest_collect_file(self, path: Path) -> Source | None:
        """The cached source of an unchanged file; ``None`` lets the collectors look."""
        return self._cache.lookup(path)


@final
class _Recorder:
    """The wrapper half of :class:`StatCachePlugin`: remembers what collectors made."""

    def __init__(self, cache: StatCachePlugin) -> None:
        self._cache = cache

    @hookimpl(wrapper=True)
    def ingest_collect_file(
        self, path: Path
    ) -> Generator[None, Found, Found]:
        """Stat the file before the collectors run; remember the source they made."""
        return (yield from self._cache.around(path))


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _stat_key(stat: os.stat_result) -> tuple[int, int, int, int]:
    # ctime too: it cannot be set back by a program that rewrites a file and restores its mtime.
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
