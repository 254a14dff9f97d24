"""What was already ingested, so that a rerun skips it.

The state store is one SQLite file, ``<rootdir>/<cache.dir>/cache.db`` (``.ingest_cache``
beside the config file, or in the current directory). It holds three things:

* **ingested**: a content id per *context*, once every sink flushed that document. A context
  is an output fingerprint (:func:`ingest.cache.fingerprint.output_fingerprint`) plus one sink.
  Keying by sink means that a document written to ``jsonl:a.jsonl`` is not taken as present
  in ``sqlite:b.db``: adding a sink re-ingests everything into it, and a document is skipped
  only when it is recorded for every configured sink under the current fingerprint.
* **failures**: the last failure of each path (with its reason), for ``--lf``. A path leaves
  the list when it is ingested.
* **stats**: path, size, mtime, ctime and inode to content id, so that collecting 100,000
  unchanged files does not read them all again to hash them
  (:class:`ingest.cache.precheck.StatCachePlugin`).

Exactly once: the session calls :meth:`RunCache.commit` only after every sink returned from
``ingest_sink`` for the batch. A run killed before that commit leaves documents that the
sinks may hold but the cache does not know; the rerun processes them again, and the sinks
drop (JSONL) or replace (SQLite) what they already hold. A run killed after it has nothing
to redo. The cache itself may therefore lose its last commits (``synchronous=NORMAL``): that
only costs rework, never a duplicate.

A sink whose target is a file (the JSONL and SQLite sinks, or any plugin's) is also known
by that file's identity (device and inode) as of its last commit. When the file is gone or
was replaced by another since, what the cache holds for that sink is dropped, with a
warning, and every document is written to it again: deleting ``ingest-out.jsonl`` and
rerunning gives a full file, not an empty one. Truncating a file in place keeps its
identity; rerun with ``--force`` after doing that.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, final

from ingest.cache.fingerprint import claim_key, output_fingerprint
from ingest.cache.precheck import StatCachePlugin, abspath
from ingest.cache.store import CACHE_FILENAME, CacheStore, describe
from ingest.errors import UsageError
from ingest.result import SKIP_NOT_FAILED, SKIP_UNCHANGED

if TYPE_CHECKING:
    from ingest.config import Settings
    from ingest.manager import IngestPluginManager
    from ingest.model import Document, Failure, Source

__all__ = [
    "CACHE_FILENAME",
    "SKIP_NOT_FAILED",
    "SKIP_UNCHANGED",
    "CacheStore",
    "RunCache",
    "describe",
    "open_run_cache",
]

logger = logging.getLogger("ingest.cache")

_NO_SINK = "(no sink)"


@final
class RunCache:
    """One run's view of the cache: which sources to skip, and what to record.

    :param store: the open store.
    :param fingerprint: the output fingerprint (:func:`output_fingerprint`).
    :param described: the JSON the fingerprint hashes, kept to explain a cache miss.
    :param sinks: the run's sinks, normalised (:func:`sink_key`).
    :param force: process everything, still recording the results.
    :param last_failed: process only the documents that failed last time (``--lf``).
    """

    def __init__(
        self,
        store: CacheStore,
        *,
        fingerprint: str,
        described: str,
        sinks: Sequence[str],
        force: bool = False,
        last_failed: bool = False,
    ) -> None:
        self.store = store
        self.fingerprint = fingerprint
        self.force = force
        self.last_failed = last_failed
        self.contexts = [store.context(fingerprint, sink, described) for sink in sinks]
        self._sink_files = {sink: path for sink in sinks if (path := _sink_file(sink))}
        self._forget_lost_sinks()
        self.collector: StatCachePlugin | None = None
        #: Set when ``--lf`` found no failure to rerun, so everything runs (as pytest does).
        self.note: str | None = None
        # Read before this run's own collection failures are recorded: "last time" is the
        # previous run's list.
        self._failed_paths: set[str] = set()
        self._failed_ids: set[str] = set()
        if last_failed:
            for path, doc_id in store.query("SELECT path, doc_id FROM failures"):
                self._failed_paths.add(path)
                if doc_id:
                    self._failed_ids.add(doc_id)
            if not self._failed_paths:
                self.note = "no previously failed documents; running all (--lf)"

    def select(self, sources: Sequence[Source]) -> tuple[list[Source], list[tuple[Source, str]]]:
        """Split collected sources into those to process and those to skip, with why.

        :returns: ``(to_process, [(source, reason), ...])``, each in collection order.
        """
        if self.collector is not None:
            self.collector.flush()
        lf = self.last_failed and self.note is None
        if lf and not any(self._failed_last_time(source) for source in sources):
            # As pytest: known failures that were not collected this time do not deselect.
            self.note = (
                f"{len(self._failed_paths)} known failures not among the collected documents; "
                "running all (--lf)"
            )
            lf = False
        if self.note:
            logger.warning(self.note)
        keep: list[Source] = []
        skipped: list[tuple[Source, str]] = []
        marks = ",".join("?" * len(self.contexts))
        sql = f"SELECT COUNT(*) FROM ingested WHERE content_id = ? AND context IN ({marks})"
        for source in sources:
            if lf and not self._failed_last_time(source):
                skipped.append((source, SKIP_NOT_FAILED))
            elif not self.force and self.store.query(
                sql, (source.content_id, *self.contexts)
            )[0][0] == len(self.contexts):
                skipped.append((source, SKIP_UNCHANGED))
            else:
                keep.append(source)
        return keep, skipped

    def _forget_lost_sinks(self) -> None:
        """Drop what the cache holds for a sink whose file is gone or is another file now."""
        for sink, path in self._sink_files.items():
            rows = self.store.query("SELECT identity FROM sink_files WHERE sink = ?", (sink,))
            if not rows or rows[0][0] == _identity(path):
                continue
            logger.warning(
                "%s is gone or was replaced since the last run: every document is written "
                "to it again",
                path,
            )
            with self.store.transaction() as db:
                db.execute(
                    "DELETE FROM ingested WHERE context IN "
                    "(SELECT id FROM contexts WHERE sink = ?)",
                    (sink,),
                )
                db.execute("DELETE FROM sink_files WHERE sink = ?", (sink,))

    def _failed_last_time(self, source: Source) -> bool:
        return abspath(source.path) in self._failed_paths or source.doc_id in self._failed_ids

    def commit(self, batch: Sequence[Document]) -> None:
        """Record a batch as ingested; call only after every sink flushed it."""
        now = time.time()
        rows = [
            (doc.source.content_id, context, abspath(doc.source.path), now)
            for doc in batch
            for context in self.contexts
        ]
        files = [
            (sink, identity)
            for sink, path in self._sink_files.items()
            if (identity := _identity(path)) is not None
        ]
        with self.store.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO ingested VALUES (?, ?, ?, ?)", rows)
            db.executemany("INSERT OR REPLACE INTO sink_files VALUES (?, ?)", files)
            db.executemany(
                "DELETE FROM failures WHERE path = ? OR doc_id = ?",
                [(abspath(doc.source.path), doc.doc_id) for doc in batch],
            )

    def fail(self, failure: Failure) -> None:
        """Record a failure (replacing the path's previous one), for ``--lf``."""
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)",
                (abspath(failure.source), failure.doc_id, failure.reason, failure.message,
                 time.time()),
            )

    def close(self, manager: IngestPluginManager | None = None) -> None:
        """Write pending stats, unregister the stat plugin from ``manager``, close."""
        try:
            if self.collector is not None:
                self.collector.flush()
                if manager is not None:
                    self.collector.unregister(manager)
        finally:
            self.store.close()


def sink_key(spec: str, rootdir: Path) -> str:
    """A sink as the cache keys it: ``scheme:`` plus its target, made absolute when a path.

    ``jsonl:out.jsonl`` and ``jsonl:./out.jsonl`` are one sink; a target with ``://`` (a URL)
    is kept as written. A spelling this misses only costs a re-ingest, never a skip.
    """
    scheme, _, target = spec.partition(":")
    if target and "://" not in target:
        target = os.path.normpath(rootdir / Path(target).expanduser())
    return f"{scheme}:{target}"


def _sink_file(key: str) -> str | None:
    """The file path in a sink key (:func:`sink_key`), or ``None`` for a URL or no target."""
    _, _, target = key.partition(":")
    if not target or "://" in target or key == _NO_SINK:
        return None
    return target


def _identity(path: str) -> str | None:
    """``device:inode`` of an existing regular file, else ``None`` (missing, or not a file:
    a sink whose target is not a file is never taken as lost)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return f"{info.st_dev}:{info.st_ino}"


def open_run_cache(
    manager: IngestPluginManager,
    settings: Settings,
    rootdir: Path,
    *,
    force: bool = False,
    last_failed: bool = False,
    clear: bool = False,
) -> RunCache | None:
    """Open the cache for a run and register its stat plugin; ``None`` when disabled.

    :param clear: empty the cache first (``--cache-clear``); done even when disabled, if a
        cache file exists.
    :raises UsageError: ``--lf`` without a cache, or a cache that cannot be created.
    """
    folder = (rootdir / Path(settings.cache.dir).expanduser()).absolute()
    if not settings.cache.enabled:
        if last_failed:
            raise UsageError("--lf needs the cache, but cache.enabled is false")
        if clear and (folder / CACHE_FILENAME).exists():
            store = CacheStore(folder)
            store.clear()
            store.close()
        return None
    store = CacheStore(folder)
    try:
        if clear:
            store.clear()
        fingerprint, described = output_fingerprint(settings, manager)
        sinks = [sink_key(spec, rootdir) for spec in settings.sinks] or [_NO_SINK]
        cache = RunCache(
            store,
            fingerprint=fingerprint,
            described=described,
            sinks=sinks,
            force=force,
            last_failed=last_failed,
        )
        cache.collector = StatCachePlugin(store, claim_key(settings, manager))
        cache.collector.register(manager, "ingest-cache")
    except BaseException:
        store.close()
        raise
    return cache
