"""The ``sqlite`` sink: documents, pages and chunks in one SQLite file, with full-text search.

``--sink sqlite:corpus.db`` (relative to the root directory unless absolute; an empty target
means ``ingest.db``; a folder is refused). Tables:

* ``documents``: one row per document, with its metadata as columns and as JSON;
* ``pages``: one row per page, primary key ``(doc_id, number)``;
* ``chunks``: one row per chunk, ``chunk_id`` unique;
* ``tables``: one row per table found on a page (when the structure was made): its page,
  box, size, header rows, whether it was ruled, and its cells as JSON, rows by columns
  (``[["Name", "Age"], ["Alice", "30"]]``), with the spanning cells apart;
* ``chunks_fts``: an FTS5 index over ``chunks.text``, kept in step by triggers. It is an
  external-content table, so ``chunks`` needs a stable integer rowid: ``chunks.id`` is an
  ``INTEGER PRIMARY KEY`` (an implicit rowid may be renumbered by ``VACUUM``, which would
  point the index at the wrong chunks), and ``chunk_id`` is the unique key records are upserted
  by. Query it with ``ingest search DB QUERY`` (:mod:`ingest_plugins.sqlite_search`);
* ``vector_models`` and ``chunk_vectors``: the chunks' vectors when the run embeds
  (``--embed NAME``), int8 with a scale, one row per document, written and deleted in the
  same transaction as its chunks (see :mod:`ingest_plugins.sqlite_vectors`).

When the structure was made (``--format markdown``, ``chunk.by: section`` or
``structure.enabled``), ``pages.markdown`` holds each page's Markdown and ``chunks.headings``
each chunk's section trail (JSON); both are ``NULL`` otherwise. A database made before these
columns existed gets them when opened.

The store mirrors the corpus. Each step (``ingest_sink``) is one transaction, committed
before the hook returns: every document of the batch replaces what the database holds for
its ``doc_id`` (its pages, chunks, tables and vectors are deleted, then inserted again), and
every id in ``deleted`` loses its document, pages, chunks, tables and vectors. The index's
delete trigger takes the old text out of ``chunks_fts`` in the same transaction, so a search
never finds a record that is gone, and a reader (another connection) sees the database before
or after a step, never within one. A rerun after a kill therefore never duplicates a record.

What the database holds is vouched for by ``ingest_state``, one row: ``store`` (a random id
made with the table) and ``writes`` (steps taken), which ``ingest_sink_state`` reports to the
cache, and ``changes``, which triggers on ``documents``, ``pages``, ``chunks``, ``tables`` and
``chunk_vectors`` count on every insert, update and delete. Each step ends by setting
``expected`` to ``changes``; on open, a difference means rows were changed outside ingest (a
``DELETE`` in the ``sqlite3`` shell), and the sink takes a new ``store`` id, so the cache
writes every document to it again. A deleted, emptied or replaced file has no such row, or
another one: the same. Not detected: a change made with the triggers dropped, or to ``ingest_state``
itself.

Durability: WAL with ``synchronous=FULL``. WAL with ``NORMAL`` already survives a killed
process, but a power cut may roll back the last commits; the core records a batch in its cache
as soon as the sinks return, so a rolled-back batch would be lost for good. ``FULL`` costs one
fsync of the WAL per batch, which the batch size amortises.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

from ingest import StoreSink, UsageError, display_path, explain_write_error, hookimpl, no_leftovers

from ingest_plugins.sqlite_vectors import (
    VECTOR_SCHEMA,
    check_numpy,
    delete_vectors,
    write_vectors,
)

if TYPE_CHECKING:
    import click
    from ingest import Document, Settings

logger = logging.getLogger("ingest.sqlite")

NAME = "sqlite"
DEFAULT_FILENAME = "ingest.db"
#: Stored in ``PRAGMA user_version``; a database from a newer schema is refused. Version 1
#: lacks ``ingest_state``: its first open in a later version takes a new store id (a refill).
#: Version 3 adds ``tables``, the structure's columns and the vector tables; an older sink
#: would not replace a document's tables or vectors with the document, so it must refuse such
#: a database.
SCHEMA_VERSION = 3
_TRACKED = ("documents", "pages", "chunks", "tables", "chunk_vectors")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS documents (
        doc_id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        content_id TEXT NOT NULL,
        size INTEGER NOT NULL,
        media_type TEXT NOT NULL,
        title TEXT, author TEXT, subject TEXT, creator TEXT, producer TEXT,
        created TEXT, modified TEXT,
        page_count INTEGER NOT NULL,
        encrypted INTEGER NOT NULL,
        metadata TEXT NOT NULL,
        chunk_count INTEGER NOT NULL,
        ingested_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS pages (
        doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        text TEXT NOT NULL,
        extractor TEXT NOT NULL,
        needs_ocr INTEGER NOT NULL,
        provenance TEXT NOT NULL,
        markdown TEXT,
        PRIMARY KEY (doc_id, number)
    )""",
    """CREATE TABLE IF NOT EXISTS chunks (
        id INTEGER PRIMARY KEY,
        chunk_id TEXT NOT NULL UNIQUE,
        doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        text TEXT NOT NULL,
        page_start INTEGER NOT NULL,
        page_end INTEGER NOT NULL,
        char_start INTEGER NOT NULL,
        char_end INTEGER NOT NULL,
        headings TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS chunks_doc_id ON chunks(doc_id, idx)",
    """CREATE TABLE IF NOT EXISTS tables (
        doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        page INTEGER NOT NULL,
        x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
        n_rows INTEGER NOT NULL,
        n_cols INTEGER NOT NULL,
        header_rows INTEGER NOT NULL,
        ruled INTEGER NOT NULL,
        cells TEXT NOT NULL,
        spans TEXT NOT NULL,
        PRIMARY KEY (doc_id, idx)
    )""",
    # porter stems English ("networks" finds "network"); remove_diacritics 2 lets "cafe"
    # find "café" in any script unicode61 knows.
    """CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
        text, content='chunks', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER IF NOT EXISTS chunks_fts_insert AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    # An external-content index forgets a row only when told the old text, so every delete
    # and update passes it on; otherwise a re-ingested document would leave stale matches.
    """CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS chunks_fts_update AFTER UPDATE ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    *VECTOR_SCHEMA,
    """CREATE TABLE IF NOT EXISTS ingest_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        store TEXT NOT NULL,
        writes INTEGER NOT NULL,
        changes INTEGER NOT NULL,
        expected INTEGER NOT NULL
    )""",
    # Every row change counts, whoever makes it; a step of this sink then records the count
    # it left, so a change made outside ingest shows as a difference (see the docstring).
    *(
        f"""CREATE TRIGGER IF NOT EXISTS {table}_{event.lower()}_counted AFTER {event}
            ON {table} BEGIN UPDATE ingest_state SET changes = changes + 1; END"""
        for table in _TRACKED
        for event in ("INSERT", "UPDATE", "DELETE")
    ),
)
_END_STEP = "UPDATE ingest_state SET writes = writes + 1, expected = changes"

_UPSERT_DOCUMENT = """
INSERT INTO documents (doc_id, source, content_id, size, media_type, title, author, subject,
    creator, producer, created, modified, page_count, encrypted, metadata, chunk_count,
    ingested_at)
VALUES (:doc_id, :source, :content_id, :size, :media_type, :title, :author, :subject,
    :creator, :producer, :created, :modified, :page_count, :encrypted, :metadata,
    :chunk_count, :ingested_at)
ON CONFLICT (doc_id) DO UPDATE SET
    source = excluded.source, content_id = excluded.content_id, size = excluded.size,
    media_type = excluded.media_type, title = excluded.title, author = excluded.author,
    subject = excluded.subject, creator = excluded.creator, producer = excluded.producer,
    created = excluded.created, modified = excluded.modified,
    page_count = excluded.page_count, encrypted = excluded.encrypted,
    metadata = excluded.metadata, chunk_count = excluded.chunk_count,
    ingested_at = excluded.ingested_at
"""
_SURROGATE = re.compile("[\ud800-\udfff]")
_INSERT_PAGE = (
    "INSERT INTO pages (doc_id, number, text, extractor, needs_ocr, provenance, markdown) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_CHUNK = (
    "INSERT INTO chunks (chunk_id, doc_id, idx, text, page_start, page_end, char_start, "
    "char_end, headings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_TABLE = (
    "INSERT INTO tables (doc_id, idx, page, x0, y0, x1, y1, n_rows, n_cols, header_rows, "
    "ruled, cells, spans) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: Columns a database made before them lacks (``CREATE TABLE IF NOT EXISTS`` keeps its
#: tables as they are); added when it is opened.
_ADDED_COLUMNS = (("pages", "markdown", "TEXT"), ("chunks", "headings", "TEXT"))


@hookimpl
def ingest_configure(settings: Settings) -> None:
    """Fail at start, not at the first batch, when the run embeds into an sqlite sink and
    numpy (which encodes the vectors) is missing.

    :raises UsageError: naming the sink and the extra.
    """
    if not settings.embed.embedder:
        return
    for spec in settings.sinks:
        if spec.partition(":")[0] == NAME:
            check_numpy(f"sqlite sink {spec.partition(':')[2]!r}")


@hookimpl
def ingest_sink_open(scheme: str, target: str, rootdir: Path) -> SqliteSink | None:
    """Open the ``sqlite`` sink named by ``--sink sqlite:TARGET``; ``None`` for other schemes.

    :raises UsageError: naming the target, when it is a folder, not a database, or cannot be
        created or written.
    """
    if scheme != NAME:
        return None
    if target.endswith(("/", os.sep)):
        raise UsageError(f"sqlite sink {target!r} is a folder: name a database file")
    return SqliteSink(resolve_target(target, rootdir))


@hookimpl
def ingest_register_commands(cli: click.Group) -> None:
    """Add ``ingest search DB QUERY``, which searches the chunks of a database of this sink."""
    from ingest_plugins.sqlite_search import search_command

    cli.add_command(search_command)


def resolve_target(target: str, rootdir: Path) -> Path:
    """The database file a ``sqlite`` target names (relative to ``rootdir``)."""
    path = Path(target or DEFAULT_FILENAME).expanduser()
    return path if path.is_absolute() else rootdir / path


@final
class SqliteSink(StoreSink):
    """An open database; registered as a plugin for the rest of the run.

    :param path: the database file (created with its parent folders and tables).
    :raises UsageError: naming the file when it cannot be opened, created or written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        #: What :meth:`ingest_sink_state` reports: ``(store, writes)``.
        self.state: tuple[str, int] = ("", 0)
        # The core may call hooks from the session thread or the loop thread; one lock
        # serialises them, since a connection must not run two transactions at once.
        self._lock = threading.Lock()
        what = f"sqlite sink {str(path)!r}"
        if path.is_dir():
            raise UsageError(f"{what} is a folder: name a database file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{what}: cannot create its folder: {exc.strerror or exc}") from exc
        try:
            with no_leftovers(path, f"{path}-wal", f"{path}-shm"):
                self._open()
        except sqlite3.Error as exc:
            cause = explain_write_error(exc, path)
            raise UsageError(f"{what}: cannot open or create the database: {cause}") from exc

    def _open(self) -> None:
        try:
            self._connect()
        except BaseException:
            self.close()  # before no_leftovers removes the files this open made
            raise

    def __repr__(self) -> str:
        return f"<SqliteSink {str(self.path)!r}>"

    def __enter__(self) -> SqliteSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._connection is None

    # -- public API ----------------------------------------------------------------------

    def write(self, batch: Sequence[Document], deleted: Sequence[str] = ()) -> None:
        """Replace each document of ``batch`` (row, pages, chunks) and delete each document
        of ``deleted``, in one transaction.

        :raises RuntimeError: if the sink is closed.
        :raises sqlite3.Error: if the database refuses the step; nothing of it is kept.
        """
        if not batch and not deleted:
            return
        with self._lock:
            if self._connection is None:
                raise RuntimeError(f"{self!r} is closed")
            connection = self._connection
            now = datetime.now(UTC).isoformat(timespec="seconds")
            connection.execute("BEGIN IMMEDIATE")
            try:
                for doc_id in deleted:
                    _delete(connection, doc_id)
                for document in batch:
                    _upsert(connection, document, now)
                    write_vectors(connection, document)
                connection.execute(_END_STEP)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            store, writes = self.state
            self.state = (store, writes + 1)

    def close(self) -> None:
        """Checkpoint and close the database; calling it again does nothing."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            # Fold the WAL into the main file, so corpus.db alone is the whole corpus once
            # the run is over (copying it without its -wal file loses nothing).
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.execute("PRAGMA optimize")
        except sqlite3.Error:
            pass  # another connection may hold the database; the WAL stays valid as it is
        finally:
            connection.close()

    # -- internals -----------------------------------------------------------------------

    def _connect(self) -> None:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT), so
        # the module never opens or commits one behind our back.
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._connection = connection
        connection.execute("PRAGMA busy_timeout = 30000")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")  # why: see the module docstring
        connection.execute("PRAGMA foreign_keys = ON")
        # BEGIN IMMEDIATE takes the write lock now, so a read-only file or a database held
        # by another writer fails at open, not after the first document was extracted.
        connection.execute("BEGIN IMMEDIATE")
        try:
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise UsageError(
                    f"sqlite sink {str(self.path)!r}: schema version {version} is newer than "
                    f"this ingest's ({SCHEMA_VERSION}); upgrade ingest or pick another file"
                )
            for statement in _SCHEMA:
                connection.execute(statement)
            _add_columns(connection)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.state = self._check_state(connection)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _check_state(self, connection: sqlite3.Connection) -> tuple[str, int]:
        """The state row: made for a new database; a new store id when rows changed
        outside ingest since its last step."""
        row = connection.execute(
            "SELECT store, writes, changes, expected FROM ingest_state"
        ).fetchone()
        if row is not None and row[2] == row[3]:
            return str(row[0]), int(row[1])
        store = uuid.uuid4().hex
        if row is not None:
            logger.info(
                "sqlite sink %s: %d row changes were made outside ingest since its last run; "
                "it counts as a new store",
                self.path,
                row[2] - row[3],
            )
        connection.execute("DELETE FROM ingest_state")
        connection.execute("INSERT INTO ingest_state VALUES (1, ?, 0, 0, 0)", (store,))
        return store, 0


def _delete(connection: sqlite3.Connection, doc_id: str) -> None:
    # Chunks first, row by row through the trigger that takes their text out of the index.
    connection.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
    connection.execute("DELETE FROM pages WHERE doc_id = ?", (doc_id,))
    connection.execute("DELETE FROM tables WHERE doc_id = ?", (doc_id,))
    delete_vectors(connection, doc_id)
    connection.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))


def _upsert(connection: sqlite3.Connection, document: Document, now: str) -> None:
    doc_id = document.doc_id
    source = document.source
    metadata = document.metadata.to_dict()
    connection.execute(
        _UPSERT_DOCUMENT,
        {
            **{key: _text(value) for key, value in metadata.items()},
            "doc_id": doc_id,
            "source": display_path(source.path),
            "content_id": source.content_id,
            "size": source.size,
            "media_type": source.media_type,
            "encrypted": int(document.metadata.encrypted),
            "metadata": _json(metadata),
            "chunk_count": len(document.chunks),
            "ingested_at": now,
        },
    )
    # Delete then insert: a re-chunked document must lose the chunks it no longer has (the
    # delete trigger takes their text out of the index), a changed one the tables it lost.
    connection.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
    connection.execute("DELETE FROM pages WHERE doc_id = ?", (doc_id,))
    connection.execute("DELETE FROM tables WHERE doc_id = ?", (doc_id,))
    connection.executemany(
        _INSERT_PAGE,
        [
            (doc_id, p.number, _text(p.text), p.extractor, int(p.needs_ocr), _json(p.provenance),
             None if p.markdown is None else _text(p.markdown))
            for p in document.pages
        ],
    )  # fmt: skip
    connection.executemany(
        _INSERT_CHUNK,
        [
            (c.chunk_id, c.doc_id, c.index, _text(c.text), c.page_start, c.page_end,
             c.char_start, c.char_end, _json(c.headings) if c.headings else None)
            for c in document.chunks
        ],
    )  # fmt: skip
    connection.executemany(_INSERT_TABLE, _table_rows(document))


def _add_columns(connection: sqlite3.Connection) -> None:
    """The structure's columns, added to a database made before them (in the transaction
    that opens it)."""
    for table, column, kind in _ADDED_COLUMNS:
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _table_rows(document: Document) -> list[tuple[Any, ...]]:
    """One ``tables`` row per table of the document (:meth:`Document.table_records`)."""
    return [
        (document.doc_id, t["index"], t["page"], *t["bbox"], t["rows"], t["cols"],
         t["header_rows"], int(t["ruled"]), _json(t["cells"]), _json(t["spans"]))
        for t in document.table_records()
    ]  # fmt: skip


def _text(value: Any) -> Any:
    """Text SQLite can store: a lone surrogate (a broken text layer) becomes U+FFFD."""
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)
    return value


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str).encode(
        "utf-8", "backslashreplace"
    ).decode("utf-8")
