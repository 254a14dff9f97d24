"""What each sink holds, so that a rerun does only what it must.

The state store is one SQLite file, ``<rootdir>/<cache.dir>/cache.db`` (``.ingest_cache``
beside the config file, or in the current directory). It holds:

* **held**: per sink, the documents it holds, each with the file its records name and the
  output fingerprint (:func:`ingest.cache.fingerprint.output_fingerprint`) they were made
  under. A source is skipped only when every configured sink holds its document, named
  after this very file (compared as absolute paths), under the current fingerprint: adding
  a sink writes everything to it, and changing a setting that shapes records rewrites them.
* **sinks**: what each sink last said of itself (``ingest_sink_state``): which store it is
  and how many writes it took. A sink that answers otherwise on the next run (emptied, cut
  short, replaced, edited behind the cache's back, as far as its own marker can tell) is
  refilled: everything the cache has for it becomes unknown, and every document is written
  to it again. A sink that cannot tell is trusted, except that a sink whose target is a
  file path is refilled when that file is gone or is another file.
* **failures**: the last failure of each path (with its reason), for ``--lf``. A path leaves
  the list when it is ingested.
* **stats**: path, size, mtime, ctime and inode to content id, so that collecting 100,000
  unchanged files does not read them all again to hash them
  (:class:`ingest.cache.precheck.StatCachePlugin`).
* **stamps**: the URL, size and stamp (ETag, version, modification time) of an object in a
  store to its content id, recorded once the sinks hold its document, so that a rerun
  skips an unchanged object without downloading it (:meth:`RunCache.known`).

From ``held`` and what a run collected, :meth:`RunCache.plan` finds the stored documents to
delete (:mod:`ingest.cache.mirror`): those of files whose bytes changed, and those of files
that no longer exist (``--prune``).

Exactly once: the session calls :meth:`RunCache.commit` only after every sink returned from
``ingest_sink`` for the step. A run killed before that commit leaves documents that the sinks
may hold but the cache does not know; the rerun processes them again and the sinks replace
what they hold. Before each step the documents it replaces or deletes are recorded as
unknown (:meth:`RunCache.begin`), so a kill between the sinks' step and the commit cannot
leave the cache believing a sink holds a version it no longer holds. Sinks count the step in
their ``writes``, and one write more than recorded is taken as that step. The cache itself may lose
its last commits (``synchronous=NORMAL``): that only costs rework, never a duplicate.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, final

from ingest.cache.fingerprint import claim_key, output_fingerprint
from ingest.cache.mirror import InputScope, StorePlan
from ingest.cache.precheck import StatCachePlugin, abspath
from ingest.cache.store import CACHE_FILENAME, CacheStore, describe
from ingest.errors import UsageError
from ingest.result import SKIP_NOT_FAILED, SKIP_UNCHANGED
from ingest.sinks import mask_secrets

if TYPE_CHECKING:
    from ingest.config import Settings
    from ingest.manager import IngestPluginManager
    from ingest.model import Document, Failure, Source

__all__ = [
    "CACHE_FILENAME",
    "SKIP_NOT_FAILED",
    "SKIP_UNCHANGED",
    "CacheStore",
    "InputScope",
    "RunCache",
    "SinkState",
    "StorePlan",
    "abspath",
    "describe",
    "open_run_cache",
]

logger = logging.getLogger("ingest.cache")

_NO_SINK = "(no sink)"
#: The fingerprint of a document a sink may hold in a shape the cache cannot vouch for.
_UNKNOWN = ""

#: What a sink says of itself (``ingest_sink_state``): its store, and its writes.
SinkState = tuple[str, int | None]


@final
class RunCache:
    """One run's view of the cache: what to skip, what to delete, and what to record.

    :param store: the open store.
    :param fingerprint: the output fingerprint (:func:`output_fingerprint`).
    :param described: the JSON the fingerprint hashes, kept to explain a cache miss.
    :param sinks: the run's sinks, normalised (:func:`sink_key`), in the settings' order.
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
        store.remember_fingerprint(fingerprint, described)
        #: The run's sinks, as keyed here, in the order of the settings.
        self.sinks = list(sinks)
        self._ids = [store.sink_id(sink) for sink in self.sinks]
        self._in_sinks = f"({','.join(str(i) for i in self._ids)})"
        #: The sinks found changed behind the cache's back this run, written again in full.
        self.refilled: list[str] = []
        self.collector: StatCachePlugin | None = None
        #: What decides how files are claimed (:func:`claim_key`), kept with each stamp.
        self.claim = ""
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

    def check_sinks(self, states: Sequence[SinkState | None]) -> None:
        """Compare what each sink says of itself with what the cache recorded; refill those
        that changed behind its back, and remember what they say now.

        :param states: each sink's ``ingest_sink_state`` answer, in :attr:`sinks` order;
            ``None`` when it cannot tell.
        """
        for sink, sink_id, given in zip(self.sinks, self._ids, states, strict=True):
            state = _state_of(sink, given)
            ((store, writes),) = self.store.query(
                "SELECT store, writes FROM sinks WHERE id = ?", (sink_id,)
            )
            if state is None or store is None or _follows(state, (store, writes)):
                if state is not None:
                    self._set_state(sink_id, state)
                continue
            self.refilled.append(sink)
            with self.store.transaction() as db:
                lost = db.execute(
                    "UPDATE held SET fingerprint = ? WHERE sink = ?", (_UNKNOWN, sink_id)
                ).rowcount
                db.execute(
                    "UPDATE sinks SET store = ?, writes = ? WHERE id = ?", (*state, sink_id)
                )
            if lost:
                logger.warning(
                    "%s holds other records than the last run left (emptied, cut short, "
                    "replaced or changed outside ingest): every document is written to it "
                    "again",
                    sink,
                )

    def known(self, source: Source) -> Source:
        """The source with the content id the cache recorded for its URL, when the store
        reports the size and stamp it had then; else the source as it is.

        :param source: a source collected without a content id (an object in a store).
        """
        if source.content_id or source.stamp is None:
            return source
        rows = self.store.query(
            "SELECT content_id, media_type FROM stamps "
            "WHERE url = ? AND size = ? AND stamp = ? AND claim = ?",
            (abspath(source.path), source.size, source.stamp, self.claim),
        )
        if not rows or rows[0][1] != source.media_type:
            return source
        return replace(source, content_id=rows[0][0])

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
        sql = (
            "SELECT COUNT(*) FROM held WHERE doc_id = ? AND content_id = ? AND path = ? "
            f"AND fingerprint = ? AND sink IN {self._in_sinks}"
        )
        for source in sources:
            if lf and not self._failed_last_time(source):
                skipped.append((source, SKIP_NOT_FAILED))
            elif not self.force and self.store.query(
                sql, (source.doc_id, source.content_id, abspath(source.path), self.fingerprint)
            )[0][0] == len(self._ids):
                skipped.append((source, SKIP_UNCHANGED))
            else:
                keep.append(source)
        return keep, skipped

    def plan(self, collected: Mapping[str, str | None], scope: InputScope) -> StorePlan:
        """The stored documents this run must delete (see :mod:`ingest.cache.mirror`).

        :param collected: every path the run collected (absolute) to its content id, or
            ``None`` for a file found but not readable.
        :param scope: the run's inputs.
        """
        stored = self.store.query(
            f"SELECT DISTINCT doc_id, path FROM held WHERE sink IN {self._in_sinks}"
        )
        return StorePlan.build(stored, collected, scope)

    def begin(self, batch: Sequence[Document], deleted: Collection[str] = ()) -> None:
        """Before the sinks take a step: record its documents as unknown, so that a kill
        before :meth:`commit` cannot leave the cache believing a sink holds a version it
        replaced or deleted (a rerun with the earlier settings would skip it)."""
        changing = [(_UNKNOWN, doc.doc_id) for doc in batch] + [(_UNKNOWN, d) for d in deleted]
        if changing:
            with self.store.transaction() as db:
                db.executemany(
                    "UPDATE held SET fingerprint = ? WHERE doc_id = ? "
                    f"AND sink IN {self._in_sinks}",
                    changing,
                )

    def commit(
        self,
        batch: Sequence[Document],
        deleted: Collection[str] = (),
        states: Sequence[SinkState | None] = (),
        kept: Collection[str] = (),
    ) -> None:
        """Record a sink step; call only after every sink returned from it.

        :param batch: the documents every sink now holds.
        :param deleted: the documents every sink but those in ``kept`` no longer holds.
        :param states: each sink's ``ingest_sink_state`` after the step, in :attr:`sinks`
            order (empty: not asked).
        :param kept: the sinks (as in :attr:`sinks`) that cannot delete.
        """
        now = time.time()
        rows = [
            (sink_id, doc.doc_id, doc.source.content_id, abspath(doc.source.path),
             self.fingerprint, now)
            for doc in batch
            for sink_id in self._ids
        ]  # fmt: skip
        gone = [
            (sink_id, doc_id)
            for sink, sink_id in zip(self.sinks, self._ids, strict=True)
            if sink not in kept
            for doc_id in deleted
        ]
        with self.store.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO held VALUES (?, ?, ?, ?, ?, ?)", rows)
            db.executemany("DELETE FROM held WHERE sink = ? AND doc_id = ?", gone)
            db.executemany(
                "DELETE FROM failures WHERE path = ? OR doc_id = ?",
                [(abspath(doc.source.path), doc.doc_id) for doc in batch],
            )
        # Only once the sinks hold it: a stamp known here skips the object's download.
        self.remember([doc.source for doc in batch])
        for sink, sink_id, given in zip(self.sinks, self._ids, states, strict=False):
            if (state := _state_of(sink, given)) is not None:
                self._set_state(sink_id, state)

    def remember(self, sources: Sequence[Source]) -> None:
        """Record the content id of each object in a store (by URL, size and stamp), so that
        a rerun knows it without downloading it (:meth:`known`).

        :param sources: sources with their content id; those without a stamp are ignored.
        """
        rows = [
            (abspath(source.path), source.size, source.stamp, self.claim, source.content_id,
             source.media_type)
            for source in sources
            if source.stamp is not None and source.content_id and source.remote
        ]  # fmt: skip
        if rows:
            with self.store.transaction() as db:
                db.executemany("INSERT OR REPLACE INTO stamps VALUES (?, ?, ?, ?, ?, ?)", rows)

    def _set_state(self, sink_id: int, state: SinkState) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE sinks SET store = ?, writes = ? WHERE id = ?", (*state, sink_id))

    def _failed_last_time(self, source: Source) -> bool:
        return abspath(source.path) in self._failed_paths or source.doc_id in self._failed_ids

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


def _state_of(sink: str, state: SinkState | None) -> SinkState | None:
    """What a sink says of itself; for one that cannot tell and writes to a file, that
    file's identity (so that deleting or replacing it still refills it)."""
    if state is None and (path := _sink_file(sink)) is not None:
        identity = _identity(path)
        return (f"file {identity}", None) if identity else ("no file", None)
    return state


def _follows(state: SinkState, recorded: SinkState) -> bool:
    """Whether a sink's state is the recorded one, or one write after it (a step a kill
    interrupted between the sinks and the cache's commit)."""
    store, writes = state
    if store != recorded[0]:
        return False
    if writes is None or recorded[1] is None:
        return writes == recorded[1]
    return writes in (recorded[1], recorded[1] + 1)


def sink_key(spec: str, rootdir: Path) -> str:
    """A sink as the cache keys it: ``scheme:`` plus its target, made absolute when a path.

    ``jsonl:out.jsonl`` and ``jsonl:./out.jsonl`` are one sink; a URL (a target with ``://``,
    or a spec that is one, ``postgresql://host/db``) is kept as written, its password masked
    so that the cache never holds it. A spelling this misses only costs a re-ingest, never a
    skip.
    """
    scheme, _, target = spec.partition(":")
    if _is_url(target):
        return mask_secrets(f"{scheme}:{target}")
    if target:
        target = os.path.normpath(rootdir / Path(target).expanduser())
    return f"{scheme}:{target}"


def _is_url(target: str) -> bool:
    return "://" in target or target.startswith("//")


def _sink_file(key: str) -> str | None:
    """The file path in a sink key (:func:`sink_key`), or ``None`` for a URL or no target."""
    _, _, target = key.partition(":")
    if not target or _is_url(target) or key == _NO_SINK:
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
    :raises UsageError: ``--lf`` or ``--prune`` without a cache, or a cache that cannot be
        created.
    """
    folder = (rootdir / Path(settings.cache.dir).expanduser()).absolute()
    if not settings.cache.enabled:
        if last_failed:
            raise UsageError("--lf needs the cache, but cache.enabled is false")
        if settings.run.prune:
            raise UsageError(
                "--prune needs the cache (it knows what each sink holds), but cache.enabled "
                "is false"
            )
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
        cache.claim = claim_key(settings, manager)
        cache.collector = StatCachePlugin(store, cache.claim)
        cache.collector.register(manager, "ingest-cache")
    except BaseException:
        store.close()
        raise
    return cache
