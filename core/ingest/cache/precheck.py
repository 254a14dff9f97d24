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
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

from ingest.hookspecs import hookimpl
from ingest.model import Source

if TYPE_CHECKING:
    from ingest.cache.store import CacheStore
    from ingest.config import Settings
    from ingest.manager import IngestPluginManager
    from ingest.model import Failure

__all__ = ["StatCachePlugin"]

_RACY_NS = 2_000_000_000
_STATS_PER_WRITE = 1000


def abspath(path: Path | str) -> str:
    """A path as the cache keys it."""
    # abspath, not resolve(): no extra syscalls per file, and the key is the path as walked.
    return os.path.abspath(path)


@final
class StatCachePlugin:
    """Answers ``ingest_collect_file`` from the stat cache before any collector reads the file.

    Registered by the session for the run (``tryfirst``). For a path whose size, mtime, ctime
    and inode are what they were when it was last hashed, and whose claim (the collect
    patterns and the versions of the plugins that claim files) is unchanged, it returns the
    same :class:`~ingest.model.Source` without opening the file. Otherwise it asks the other
    collectors itself and remembers what they return.
    """

    def __init__(self, store: CacheStore, manager: IngestPluginManager, claim: str) -> None:
        self._store = store
        self._manager = manager
        self._claim = claim
        self._pending: list[tuple[Any, ...]] = []
        #: Sources answered from the cache, and sources the other collectors made, this run.
        self.hits = 0
        self.misses = 0

    @hookimpl(tryfirst=True)
    def ingest_collect_file(self, path: Path, settings: Settings) -> Source | Failure | None:
        """A cached source for an unchanged file; else whatever the other collectors say."""
        looked = time.time_ns()
        try:
            before = os.stat(path)
        except OSError:
            before = None
        key = abspath(path)
        if before is not None:
            rows = self._store.query(
                "SELECT size, mtime_ns, ctime_ns, inode, claim, content_id, media_type "
                "FROM stats WHERE path = ?",
                (key,),
            )
            if rows and rows[0][:5] == (*_stat_key(before), self._claim):
                self.hits += 1
                size, content_id, media_type = rows[0][0], rows[0][5], rows[0][6]
                return Source(path=path, content_id=content_id, size=size, media_type=media_type)
        # Built per call: pluggy returns the plain caller (which calls us again) until this
        # plugin is registered. Wrappers are left out: they already wrap this call.
        hook = self._manager.hook.ingest_collect_file
        skip = [self, *(i.plugin for i in hook.get_hookimpls() if i.wrapper or i.hookwrapper)]
        others = self._manager.subset_hook_caller("ingest_collect_file", skip)
        found: Source | Failure | None = others(path=path, settings=settings)
        if isinstance(found, Source):
            self.misses += 1
            if before is not None:
                self._remember(key, before, looked, found)
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


def _stat_key(stat: os.stat_result) -> tuple[int, int, int, int]:
    # ctime too: it cannot be set back by a program that rewrites a file and restores its mtime.
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
