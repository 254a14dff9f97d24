"""The open ``postgresql`` sink: one connection, one transaction per step, COPY for the rows.

A step (``ingest_sink``) is one transaction, committed before the hook returns:

1. ``SELECT ... FROM ingest_state FOR UPDATE`` locks the state row. Every writer of the
   schema takes it first, so the steps of two runs into one schema take turns, and a
   document written by both ends up there once, whole, in the version of the later step.
   Rows changed outside ingest since the last step (see :mod:`.schema`) give the schema a
   new store id here.
2. One ``DELETE`` per table removes every record of the batch's documents and of
   ``deleted``: a replaced document loses the chunks it no longer has.
3. ``COPY ... FROM STDIN`` writes the batch's documents, pages and chunks. The server fills
   each chunk's ``tsvector`` and the GIN index in the same transaction, so a search never
   sees a step half done.
4. The state row counts the step (``writes``), names its ``writer``, and records
   ``expected = changes``.

Exactly once follows from the replace: a step the cache did not record (a kill between the
commit and the cache's own) is sent again by the next run and leaves the same rows.

Several writers: a run's cache knows only its own steps. A writer is the cache a run keeps
(host and cache folder, :func:`writer_id`), the same across its runs. When the last step in
the schema is another writer's (found on open), or another writer took a step since this
sink's last look (found at a step), the records this cache vouches for may have been
replaced or deleted behind its back: the sink then reports its store as ``STORE~shared``,
which matches nothing the cache recorded, so the next run writes every document again
rather than trusting them. (The write count alone would miss one foreign step: the cache
takes one write more than recorded for a step of its own that a kill cut off from it.) The
mark found on open lasts until the sink's first step, by which the cache has started that
refill; the one found at a step lasts for the rest of the run.

The server going away (restarted, failed over, a network cut) breaks the connection: the
step's transaction is rolled back by the server, or was committed just before the break,
which the client cannot tell. Either way redoing the step leaves the same rows, so the sink
reconnects and redoes it, for up to ``?retry=`` seconds (default 30); past that the run stops
with one line naming the sink, and the cache, which records a step only after the sinks
returned, has the next run write it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

from ingest import StoreSink, UsageError

from ingest_plugins.postgres.schema import new_store, prepare, q
from ingest_plugins.postgres.target import import_psycopg

if TYPE_CHECKING:
    import psycopg
    from ingest import Document

    from ingest_plugins.postgres.target import Target

__all__ = ["PostgresSink", "writer_id"]

logger = logging.getLogger("ingest.postgresql")

# Connection lost or refused (class 08), the server shutting down or starting up (57P0x),
# and the two errors PostgreSQL asks a client to retry (serialization, deadlock).
_RETRY_STATES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01"})
_RETRY_PAUSE_S = 0.5
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")

_DOCUMENT_COLUMNS = (
    "doc_id, source, content_id, size, media_type, title, author, subject, creator, producer, "
    "created, modified, page_count, encrypted, metadata, chunk_count"
)
_PAGE_COLUMNS = "doc_id, number, text, extractor, needs_ocr, provenance"
_CHUNK_COLUMNS = (
    "chunk_id, doc_id, idx, text, page_start, page_end, char_start, char_end, embedding, "
    "embedding_model"
)

Rows = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]
SHARED_MARK = "~shared"


def writer_id(cache_folder: Path) -> str:
    """Who writes: this host and the cache folder of the run, hashed (16 hex digits).

    :param cache_folder: the run's cache folder (``rootdir / cache.dir``).
    """
    name = f"{socket.gethostname()}\0{cache_folder.absolute()}"
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:16]


@final
class PostgresSink(StoreSink):
    """An open connection to a schema of a PostgreSQL database; registered as a plugin for
    the rest of the run.

    :param target: the parsed URL.
    :param writer: who writes (:func:`writer_id` of the run's cache folder).
    :raises UsageError: one line, password masked, when the server cannot be reached, the
        login is refused, the database does not exist, or the schema cannot be made.
    """

    def __init__(self, target: Target, writer: str) -> None:
        self.target = target
        self.writer = writer
        self.what = f"postgresql sink {target.shown!r}"
        self._psycopg = import_psycopg(self.what)
        self._connection: psycopg.Connection[Any] | None = None
        self._closed = False
        # The core may call hooks from the session thread or the loop thread; a connection
        # must not run two transactions at once.
        self._lock = threading.Lock()
        #: The store id found at open: what the sink reports for the whole run (see
        #: :meth:`write` for why a store id the schema takes mid-run is not reported).
        self.store = ""
        #: What :meth:`ingest_sink_state` reports: ``(store, writes)``.
        self.state: tuple[str, int] = ("", 0)
        #: The state row's ``(writer, writes)`` at the last look (open, or a step).
        self._seen: tuple[str | None, int] = (None, 0)
        # Another writer wrote last, when found on open / since the last look at a step.
        self._foreign_at_open = False
        self._foreign_during = False
        connection = target.connect(self.what, autocommit=True)
        self._connection = connection
        try:
            self.store, writes, last_writer = prepare(connection, target.schema, self.what)
        except self._psycopg.Error as exc:
            self.close()
            raise UsageError(
                f"{self.what}: cannot make or read schema {target.schema!r}: "
                f"{target.scrub(str(exc))}"
            ) from None
        except BaseException:
            self.close()
            raise
        self._seen = (last_writer, writes)
        self._foreign_at_open = last_writer not in (None, writer)
        self.state = (self._reported_store(), writes)

    def __repr__(self) -> str:
        return f"<PostgresSink {self.target.shown!r} schema={self.target.schema!r}>"

    def __enter__(self) -> PostgresSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # -- public API ----------------------------------------------------------------------

    def write(self, batch: Sequence[Document], deleted: Sequence[str] = ()) -> None:
        """Replace each document of ``batch`` (row, pages, chunks) and delete each document
        of ``deleted``, in one transaction; reconnect and redo it when the server went away.

        The state reported afterwards keeps the store id found at open even when the step
        found rows changed outside ingest and gave the schema a new one: the cache then
        refills on the next run, since what it recorded is not the schema's store.

        :raises RuntimeError: if the sink is closed.
        :raises UsageError: the server stayed away longer than the retry window; the step
            may or may not be in the database (the next run writes it again).
        :raises psycopg.Error: the server refused the step for another reason; nothing of
            it is kept.
        """
        if not batch and not deleted:
            return
        rows = _rows(batch)
        ids = sorted({document.doc_id for document in batch}.union(deleted))
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed")
            deadline: float | None = None
            while True:
                try:
                    writes = self._step(ids, rows)
                    break
                except self._psycopg.Error as exc:
                    if not self._lost(exc):
                        exc.add_note(
                            f"{self.what}: step of {len(batch)} documents and "
                            f"{len(deleted)} deletions, rolled back"
                        )
                        raise
                    deadline = self._wait_to_retry(exc, deadline, len(batch), len(deleted))
            self._seen = (self.writer, writes)
            self._foreign_at_open = False
            self.state = (self._reported_store(), writes)

    def close(self) -> None:
        """Close the connection; calling it again does nothing."""
        with self._lock:
            self._closed = True
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    # -- internals -----------------------------------------------------------------------

    def _step(self, ids: list[str], rows: Rows) -> int:
        if self._connection is None:
            self._connection = self._psycopg.connect(
                self.target.conninfo, application_name="ingest", autocommit=True
            )
        connection = self._connection
        s = q(self.target.schema)
        documents, pages, chunks = rows
        with connection.transaction(), connection.cursor() as cursor:
            state = cursor.execute(
                f"SELECT changes, expected, writer, writes FROM {s}.ingest_state FOR UPDATE"
            ).fetchone()
            # The last step is another writer's, and not the one seen last: a foreign step
            # since. (This writer's own is a step whose commit a lost connection hid.)
            if state is not None and state[2] not in (None, self.writer) and (
                (state[2], state[3]) != self._seen
            ):
                self._note_foreign_step()
            if state is None or state[0] != state[1]:
                logger.warning(
                    "%s: records were changed outside ingest during this run; the next run "
                    "writes every document again",
                    self.what,
                )
                new_store(connection, self.target.schema)
            if ids:
                for table in ("chunks", "pages", "documents"):
                    cursor.execute(f"DELETE FROM {s}.{table} WHERE doc_id = ANY(%s)", (ids,))
            for table, columns, records in (
                ("documents", _DOCUMENT_COLUMNS, documents),
                ("pages", _PAGE_COLUMNS, pages),
                ("chunks", _CHUNK_COLUMNS, chunks),
            ):
                if records:
                    with cursor.copy(f"COPY {s}.{table} ({columns}) FROM STDIN") as copy:
                        for record in records:
                            copy.write_row(record)
            (writes,) = cursor.execute(
                f"UPDATE {s}.ingest_state SET writes = writes + 1, writer = %s, "
                "expected = changes RETURNING writes",
                (self.writer,),
            ).fetchone() or (0,)
        return int(writes)

    def _note_foreign_step(self) -> None:
        if not self._foreign_during:
            logger.info(
                "%s: another run wrote to schema %s during this one; this run's next rerun "
                "writes every document again",
                self.what,
                self.target.schema,
            )
        self._foreign_during = True

    def _reported_store(self) -> str:
        """The store id to report: marked while another writer may have changed what this
        run's cache vouches for (see the module docstring)."""
        if self._foreign_at_open or self._foreign_during:
            return self.store + SHARED_MARK
        return self.store

    def _lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the connection is gone, or the server asks for a retry."""
        connection = self._connection
        if connection is not None and (connection.broken or connection.closed):
            return True
        state = getattr(getattr(exc, "diag", None), "sqlstate", None) or ""
        if state in _RETRY_STATES or state.startswith("08"):
            return True
        # A refused connection attempt has no SQLSTATE: the reconnect itself failed.
        return connection is None and isinstance(exc, self._psycopg.OperationalError)

    def _wait_to_retry(
        self, exc: BaseException, deadline: float | None, documents: int, deletions: int
    ) -> float:
        """Drop the connection and pause before the next attempt; raise once the retry
        window is spent. :returns: the deadline."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
        now = time.monotonic()
        if deadline is None:
            deadline = now + self.target.retry_s
            logger.warning(
                "%s: lost the server during a step of %d documents (%s); reconnecting and "
                "writing the step again, for up to %g s",
                self.what,
                documents,
                self.target.scrub(str(exc)),
                self.target.retry_s,
            )
        if now >= deadline:
            raise UsageError(
                f"{self.what}: lost the server during a step of {documents} documents and "
                f"{deletions} deletions, and could not write it within {self.target.retry_s:g} "
                f"s ({self.target.scrub(str(exc))}); the run stopped there, and running it "
                "again writes that step again"
            ) from None
        time.sleep(min(_RETRY_PAUSE_S, deadline - now))
        return deadline


def _rows(batch: Sequence[Document]) -> Rows:
    """The rows a batch writes: documents, pages and chunks, text PostgreSQL can store."""
    documents: list[tuple[Any, ...]] = []
    pages: list[tuple[Any, ...]] = []
    chunks: list[tuple[Any, ...]] = []
    for document in batch:
        doc_id = document.doc_id
        source = document.source
        metadata = document.metadata
        documents.append(
            (
                doc_id, _text(str(source.path)), source.content_id, source.size,
                source.media_type, _text(metadata.title), _text(metadata.author),
                _text(metadata.subject), _text(metadata.creator), _text(metadata.producer),
                _text(metadata.created), _text(metadata.modified), metadata.page_count,
                metadata.encrypted, _json(metadata.to_dict()), len(document.chunks),
            )
        )  # fmt: skip
        pages.extend(
            (doc_id, p.number, _text(p.text), p.extractor, p.needs_ocr, _json(p.provenance))
            for p in document.pages
        )
        for c in document.chunks:
            # Vectors come with the embed stage; a chunk made without one stores NULL.
            embedding = c.embedding
            vector = list(embedding.vector) if embedding is not None else None
            model = embedding.model if embedding is not None else None
            chunks.append(
                (c.chunk_id, c.doc_id, c.index, _text(c.text), c.page_start, c.page_end,
                 c.char_start, c.char_end, vector, model)
            )  # fmt: skip
    return documents, pages, chunks


def _text(value: Any) -> Any:
    """Text PostgreSQL can store: NUL (which ``text`` cannot hold) and lone surrogates (a
    broken text layer) become U+FFFD."""
    if isinstance(value, str) and _BAD_TEXT.search(value):
        return _BAD_TEXT.sub("\ufffd", value)
    return value


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(str(key)): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def _json(value: Any) -> str:
    return json.dumps(_clean(value), ensure_ascii=False, default=lambda o: _text(str(o)))
