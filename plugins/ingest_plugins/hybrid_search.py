"""Keyword, semantic and hybrid search over a database of the ``sqlite`` sink.

``ingest search STORE QUERY --mode keyword|semantic|hybrid`` and, from Python,
:func:`search` (one query) or :class:`Searcher` (many queries; the vectors are read once).
The modes, their ranking and fusion are :mod:`ingest_plugins.fusion`'s, shared with the
PostgreSQL store; this module gives them the database's rankings, vectors and rows:

* the keyword rankings are FTS5's bm25 over the chunk text
  (:mod:`ingest_plugins.sqlite_search`), every word required or, for hybrid search's
  any-word ranking, any of them;
* the vectors are the per-document rows of :mod:`ingest_plugins.sqlite_vectors`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, final

from ingest import UsageError

from ingest_plugins.fusion import (
    DEPTH,
    MODES,
    ChunkRow,
    Hit,
    Mode,
    ModeSearcher,
    format_hits,
    from_keyword,
)
from ingest_plugins.sqlite_search import SearchHit, open_database, to_fts_query
from ingest_plugins.sqlite_search import search as fts_search
from ingest_plugins.sqlite_vectors import StoredVectors, load_vectors, stored_models

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DEPTH",
    "MODES",
    "Hit",
    "Mode",
    "Searcher",
    "SqliteStore",
    "format_hits",
    "from_keyword",
    "search",
]


def search(
    store: str | Path,
    query: str,
    *,
    mode: Mode = "auto",
    limit: int = 10,
    model: str | None = None,
) -> list[Hit]:
    """Find the chunks of ``store`` that best match ``query``, best first.

    :param store: a database written by the ``sqlite`` sink.
    :param query: what to look for, as plain words.
    :param mode: ``keyword``, ``semantic``, ``hybrid`` or ``auto`` (see
        :mod:`ingest_plugins.fusion`).
    :param limit: the most hits to return (at least 1).
    :param model: which stored vectors to use, as ``label`` or ``label@dim``, when the
        store holds several models.
    :returns: the hits, best first; empty when nothing matches.
    :raises UsageError: for an empty query, a bad limit or mode, a missing or foreign
        database, semantic search over a store without vectors, or several models.
    """
    with Searcher(store, model=model) as searcher:
        return searcher.search(query, mode=mode, limit=limit)


@final
class Searcher(ModeSearcher):
    """An open SQLite store for many queries: its vectors and embedder are loaded once.

    :param store: a database written by the ``sqlite`` sink.
    :param model: the stored vectors to use (``label`` or ``label@dim``), when there are
        several.
    :param config_file: a config file for the embedder's own settings section, if it has one.
    :param environ: where ``INGEST_*`` variables are read (default ``os.environ``).
    :raises UsageError: for a missing or foreign database.
    """

    def __init__(
        self,
        store: str | Path,
        *,
        model: str | None = None,
        config_file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(store)
        super().__init__(
            SqliteStore(self.path), model=model, config_file=config_file, environ=environ
        )

    def __enter__(self) -> Searcher:
        return self


@final
class SqliteStore:
    """A read-only database of the ``sqlite`` sink, as :class:`~ingest_plugins.fusion.
    SearchStore` wants it.

    :param path: the database.
    :raises UsageError: for a missing or foreign database.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.what = str(path)
        self.sink_spec = f"sqlite:{path}"
        self._connection = open_database(path)

    def close(self) -> None:
        """Close the database."""
        self._connection.close()

    def keyword(self, query: str, limit: int) -> list[SearchHit]:
        """FTS5's bm25 ranking of the chunks with every word."""
        return fts_search(self.path, query, limit=limit)

    def ranking(self, query: str, depth: int, *, every: bool) -> list[str]:
        """The ids of the ``depth`` chunks best matching every word or any word, by bm25."""
        match = to_fts_query(query) if every else _any_word(query)
        if not match:
            return []
        try:
            rows = self._connection.execute(
                "SELECT c.chunk_id FROM chunks_fts JOIN chunks AS c ON c.id = chunks_fts.rowid "
                "WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts), c.chunk_id LIMIT ?",
                (match, depth),
            ).fetchall()
        except sqlite3.Error as exc:
            raise UsageError(f"cannot search for {match!r}: {exc}") from exc
        return [chunk_id for (chunk_id,) in rows]

    def snippets(self, query: str, chunk_ids: list[str]) -> dict[str, str]:
        """FTS5's snippets of a few chunks for any word of ``query``."""
        match = _any_word(query)
        if not chunk_ids or not match:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        rows = self._connection.execute(
            "SELECT c.chunk_id, snippet(chunks_fts, 0, '[', ']', '...', 24) FROM chunks_fts "
            "JOIN chunks AS c ON c.id = chunks_fts.rowid "
            f"WHERE chunks_fts MATCH ? AND c.chunk_id IN ({marks})",
            (match, *chunk_ids),
        ).fetchall()
        return dict(rows)

    def models(self) -> list[tuple[str, int, int]]:
        """The models with vectors in the database, most chunks first."""
        return stored_models(self._connection)

    def vectors(self, label: str, dim: int) -> StoredVectors:
        """Every vector of one model, read into one matrix."""
        return load_vectors(self._connection, label, dim)

    def chunk_rows(self, chunk_ids: list[str]) -> dict[str, ChunkRow]:
        """The chunks' rows with their documents' source and title."""
        if not chunk_ids:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        rows = self._connection.execute(
            "SELECT c.chunk_id, c.doc_id, d.source, d.title, c.page_start, c.page_end, c.text "
            f"FROM chunks AS c LEFT JOIN documents AS d ON d.doc_id = c.doc_id "
            f"WHERE c.chunk_id IN ({marks})",
            chunk_ids,
        ).fetchall()
        return {row[0]: row[1:] for row in rows}


def _any_word(query: str) -> str:
    """An FTS5 query matching the chunks with any word of ``query``."""
    return " OR ".join(term for term in to_fts_query(query).split(" ") if term)
