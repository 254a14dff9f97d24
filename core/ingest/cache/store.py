"""The cache's SQLite file (see :mod:`ingest.cache` for what it holds and why).

Its schema and the store: open (replacing a damaged file), short write transactions, clear.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, final

from ingest.errors import UsageError
from ingest.storage import is_read_only, no_leftovers

__all__ = ["CACHE_FILENAME", "SCHEMA_VERSION", "CacheStore", "describe"]

logger = logging.getLogger("ingest.cache")

CACHE_FILENAME = "cache.db"
#: Stored in ``PRAGMA user_version``; any other version is discarded (it is only a cache).
SCHEMA_VERSION = 3

_SCHEMA = (
    # Each configured sink, and what it last said of itself (ingest_sink_state): which store
    # it is and how many writes it took. NULL store: the sink cannot tell.
    """CREATE TABLE IF NOT EXISTS sinks (
        id INTEGER PRIMARY KEY,
        sink TEXT NOT NULL UNIQUE,
        store TEXT,
        writes INTEGER
    )""",
    # What each sink holds: a document, the file its records name, and the output fingerprint
    # they were made under ('' when unknown: a document the sink may hold, in a shape the
    # cache cannot vouch for, after a refill or a step a kill interrupted).
    """CREATE TABLE IF NOT EXISTS held (
        sink INTEGER NOT NULL REFERENCES sinks(id),
        doc_id TEXT NOT NULL,
        content_id TEXT NOT NULL,
        path TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (sink, doc_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS held_doc_id ON held(doc_id)",
    # The settings and plugin versions each fingerprint stands for, to explain a cache miss.
    """CREATE TABLE IF NOT EXISTS fingerprints (
        fingerprint TEXT PRIMARY KEY,
        described TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS failures (
        path TEXT PRIMARY KEY,
        doc_id TEXT,
        reason TEXT NOT NULL,
        message TEXT NOT NULL,
        at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS failures_doc_id ON failures(doc_id)",
    """CREATE TABLE IF NOT EXISTS stats (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        claim TEXT NOT NULL,
        content_id TEXT NOT NULL,
        media_type TEXT NOT NULL
    ) WITHOUT ROWID""",
    # The content id of an object in a store (keyed by its URL), for as long as the store
    # reports the same size and stamp (ETag, version, modification time) for it.
    """CREATE TABLE IF NOT EXISTS stamps (
        url TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        stamp TEXT NOT NULL,
        claim TEXT NOT NULL,
        content_id TEXT NOT NULL,
        media_type TEXT NOT NULL
    ) WITHOUT ROWID""",
)
_TABLES = ("held", "sinks", "fingerprints", "failures", "stats", "stamps")
# Tables of earlier schema versions, dropped with the rest when the version changes.
_OLD_TABLES = ("ingested", "contexts", "sink_files")


@final
class CacheStore:
    """The cache's SQLite file: open, read, write in short transactions, clear.

    :param folder: the cache folder; created, with a ``.gitignore`` that ignores it.
    :raises UsageError: when the folder or the database cannot be created.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / CACHE_FILENAME
        try:
            folder.mkdir(parents=True, exist_ok=True)
            gitignore = folder / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("# Created by ingest automatically.\n*\n", "utf-8")
            with no_leftovers(self.path, f"{self.path}-wal", f"{self.path}-shm"):
                self._db = self._connect()
        except (OSError, sqlite3.Error) as exc:
            problem = f"is read-only ({exc})" if is_read_only(exc) else f"cannot be opened: {exc}"
            raise UsageError(
                f"the cache {str(self.path)!r} {problem}; set cache.dir to a writable "
                "folder or cache.enabled to false"
            ) from exc

    def _connect(self) -> sqlite3.Connection:
        try:
            return self._init(sqlite3.connect(self.path, isolation_level=None, timeout=30.0))
        except sqlite3.DatabaseError as exc:
            if is_read_only(exc):
                raise  # not damaged: replacing it would fail the same way
            # A cache only saves work: a damaged one is replaced rather than fought with.
            logger.warning("cache %s is damaged (%s); starting an empty one", self.path, exc)
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
            return self._init(sqlite3.connect(self.path, isolation_level=None, timeout=30.0))

    @staticmethod
    def _init(db: sqlite3.Connection) -> sqlite3.Connection:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            # NORMAL: a power cut may roll back the last commits, which costs rework only.
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("BEGIN IMMEDIATE")
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version != SCHEMA_VERSION:
                for table in (*_TABLES, *_OLD_TABLES):
                    db.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        return db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query."""
        return self._db.execute(sql, params).fetchall()

    def sink_id(self, sink: str) -> int:
        """The id of a sink (a :func:`~ingest.cache.sink_key`), created on first use."""
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO sinks (sink) VALUES (?)", (sink,))
            row = db.execute("SELECT id FROM sinks WHERE sink = ?", (sink,)).fetchone()
        return int(row[0])

    def remember_fingerprint(self, fingerprint: str, described: str) -> None:
        """Keep what a fingerprint stands for, to explain a later cache miss."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO fingerprints VALUES (?, ?)", (fingerprint, described)
            )

    def clear(self) -> None:
        """Forget everything (``--cache-clear``)."""
        with self.transaction() as db:
            for table in _TABLES:
                db.execute(f"DELETE FROM {table}")

    def close(self) -> None:
        """Close the database; calling it again does nothing."""
        self._db.close()


def describe(folder: Path) -> dict[str, Any]:
    """Counts of what a cache folder holds, for diagnostics and tests."""
    db = sqlite3.connect(folder / CACHE_FILENAME)
    try:
        return {
            table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in _TABLES
        } | {"described": [json.loads(d) for (d,) in db.execute(
            "SELECT described FROM fingerprints")]}
    finally:
        db.close()
