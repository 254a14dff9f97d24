"""Search over a schema the ``postgresql`` sink wrote: ``ingest search URL QUERY``.

The same modes and output as for an SQLite database (:mod:`ingest_plugins.fusion` ranks,
fuses and prints for both; :func:`search_modes` and :class:`PostgresSearcher` give it this
store). Keyword search: by default every word of the query must match, in any order,
punctuation forms no operator and no query is a syntax error; a word ending in ``*`` is a
prefix (``neur*``). ``raw=True`` passes the query to PostgreSQL's ``to_tsquery`` as written
(``&``, ``|``, ``!``, ``<->`` for a phrase, ``:*`` for a prefix); its syntax errors become
:class:`~ingest.UsageError`.

Words are matched by their English stems under the schema's text search configuration (the
one the sink indexed with). Ranking is ``ts_rank_cd`` (cover density: the closer the matched
words, the higher), normalised by the chunk's length; snippets are ``ts_headline``. Hybrid
search's any-word ranking is the same with the words joined by ``||``. Semantic search reads
the chunks' vectors (:mod:`.vectors`) and ranks them exactly, as for SQLite.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, final

from ingest import UsageError

from ingest_plugins.fusion import ModeSearcher
from ingest_plugins.postgres.schema import TS_CONFIG, q
from ingest_plugins.postgres.target import Target, import_psycopg

# The hits and their text form are the SQLite search's, so both stores print alike.
from ingest_plugins.sqlite_search import check_query, hits_from_rows

if TYPE_CHECKING:
    from collections.abc import Mapping

    import psycopg

    from ingest_plugins.fusion import ChunkRow, Hit, Mode
    from ingest_plugins.sqlite_search import SearchHit
    from ingest_plugins.sqlite_vectors import StoredVectors

__all__ = ["PostgresSearcher", "PostgresStore", "search", "search_modes", "to_tsquery_text"]

# Words around the matches in a snippet, about what FTS5's 24 tokens give.
_SNIPPET_WORDS = (12, 24)
_ELLIPSIS = "..."
# ts_rank_cd normalisation 1: divide by 1 + log(length), so a long chunk that mentions a
# word once does not outrank a short one about it.
_RANK_NORMALISATION = 1
# Ties go to the lower chunk id in byte order, as in SQLite, whatever the database's collation.
_QUERY = """
WITH query AS (SELECT {tsquery} AS q),
top AS (
    SELECT c.chunk_id, c.doc_id, c.text, c.page_start, c.page_end,
           ts_rank_cd(c.tsv, query.q, {normalisation}) AS score
    FROM {s}.chunks AS c, query
    WHERE c.tsv @@ query.q
    ORDER BY score DESC, c.chunk_id COLLATE "C"
    LIMIT %(limit)s
)
SELECT top.chunk_id, top.doc_id, d.source, d.title, top.page_start, top.page_end, top.score,
       ts_headline('{s}.{config}'::regconfig, top.text, query.q, %(options)s)
FROM top CROSS JOIN query LEFT JOIN {s}.documents AS d ON d.doc_id = top.doc_id
ORDER BY top.score DESC, top.chunk_id COLLATE "C"
"""
_RANKING = """
WITH query AS (SELECT {tsquery} AS q)
SELECT c.chunk_id FROM {s}.chunks AS c, query
WHERE c.tsv @@ query.q
ORDER BY ts_rank_cd(c.tsv, query.q, {normalisation}) DESC, c.chunk_id COLLATE "C"
LIMIT %(limit)s
"""
_SNIPPETS = """
WITH query AS (SELECT {tsquery} AS q)
SELECT c.chunk_id, ts_headline('{s}.{config}'::regconfig, c.text, query.q, %(options)s)
FROM {s}.chunks AS c, query
WHERE c.chunk_id = ANY(%(chunk_ids)s) AND c.tsv @@ query.q
"""
_CHUNK_ROWS = """
SELECT c.chunk_id, c.doc_id, d.source, d.title, c.page_start, c.page_end, c.text
FROM {s}.chunks AS c LEFT JOIN {s}.documents AS d ON d.doc_id = c.doc_id
WHERE c.chunk_id = ANY(%(chunk_ids)s)
"""


def to_tsquery_text(word: str) -> str:
    """One word as a ``to_tsquery`` operand that can only mean that word: quoted, with
    quotes and backslashes doubled, and ``:*`` for a prefix (a word ending in ``*``).

    :param word: one whitespace-free word, as typed.
    :returns: the operand; ``""`` for a word that is only ``*``.
    """
    stem = word.rstrip("*")
    if not stem:
        return ""
    quoted = "'" + stem.replace("\\", "\\\\").replace("'", "''") + "'"
    return quoted + ":*" if stem != word else quoted


def _words(query: str) -> list[str]:
    # NUL cannot be sent to PostgreSQL in text: it separates words, as whitespace does.
    return [w for w in query.replace("\x00", " ").split() if w.strip("*")]


def _tsquery(words: list[str], operator: str) -> tuple[str, dict[str, Any]]:
    """The words as a tsquery expression and its parameters, joined by ``&&`` (every word)
    or ``||`` (any word).

    Each word alone: plainto_tsquery for a whole word (its stems, stop words dropped),
    to_tsquery for a prefix; an empty one (a stop word) drops out of the join.
    """
    parts = [
        f"to_tsquery(%(config)s::regconfig, %(w{i})s)"
        if word.endswith("*")
        else f"plainto_tsquery(%(config)s::regconfig, %(w{i})s)"
        for i, word in enumerate(words)
    ]
    params = {
        f"w{i}": to_tsquery_text(word) if word.endswith("*") else word
        for i, word in enumerate(words)
    }
    return f" {operator} ".join(parts), params


def search(
    url: str,
    query: str,
    *,
    limit: int = 10,
    raw: bool = False,
    highlight: tuple[str, str] = ("[", "]"),
) -> list[SearchHit]:
    """Find the chunks that best match ``query``, best first.

    :param url: the ``postgresql://`` URL the sink wrote to (with its ``?schema=``, if any).
    :param query: words to find (all of them); ``to_tsquery`` syntax when ``raw`` is true.
    :param limit: the most hits to return (at least 1).
    :param raw: pass ``query`` to ``to_tsquery`` as written.
    :param highlight: the markers put around matched words in snippets.
    :returns: the hits, best first; empty when nothing matches.
    :raises UsageError: for an empty query, a bad ``limit``, an invalid raw query, a server
        that cannot be reached or logged into, a missing database, or a schema the sink did
        not write (each one line, the password masked).
    """
    check_query(query, limit)
    if not _words(query):
        return []
    store = PostgresStore(url)
    try:
        return store.keyword(query, limit, raw=raw, highlight=highlight)
    finally:
        store.close()


@final
class PostgresStore:
    """A schema the ``postgresql`` sink wrote, read-only, as
    :class:`~ingest_plugins.fusion.SearchStore` wants it.

    :param url: the ``postgresql://`` URL (with its ``?schema=``, if any).
    :raises UsageError: for a server that cannot be reached or logged into, a missing
        database, or a schema the sink did not write (one line, the password masked).
    """

    def __init__(self, url: str) -> None:
        self.target = Target.parse(url)
        self.what = self.target.shown
        self.sink_spec = self.target.shown
        self._what = f"postgresql store {self.target.shown!r}"
        self._s = q(self.target.schema)
        self._config = f"{self._s}.{TS_CONFIG}"
        self._psycopg = import_psycopg(self._what)
        self._connection = self.target.connect(self._what, autocommit=True)
        try:
            _check_schema(self._connection, self.target, self._what)
            # Read-only: searching never writes, whatever the query.
            self._connection.execute("SET default_transaction_read_only = on")
        except BaseException:
            self._connection.close()
            raise

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    def keyword(
        self,
        query: str,
        limit: int,
        *,
        raw: bool = False,
        highlight: tuple[str, str] = ("[", "]"),
    ) -> list[SearchHit]:
        """``ts_rank_cd``'s ranking of the chunks with every word (see :func:`search`)."""
        words = _words(query)
        if not words:
            return []
        if raw:
            tsquery = "to_tsquery(%(config)s::regconfig, %(raw)s)"
            params: dict[str, Any] = {"raw": query.replace("\x00", " ")}
        else:
            tsquery, params = _tsquery(words, "&&")
        params.update(config=self._config, limit=limit, options=_headline_options(highlight))
        sql = _QUERY.format(
            tsquery=tsquery, s=self._s, config=TS_CONFIG, normalisation=_RANK_NORMALISATION
        )
        try:
            rows = self._connection.execute(sql, params).fetchall()
        except self._psycopg.errors.SyntaxError as exc:
            if raw:
                raise UsageError(
                    f"invalid search query {query!r}: {self.target.scrub(str(exc))}; check "
                    "PostgreSQL's tsquery syntax (& | ! <-> :*), or drop --raw to search "
                    "for the words as typed"
                ) from None
            raise UsageError(f"cannot search {self.what!r} for {query!r}: {exc}") from None
        except self._psycopg.Error as exc:
            raise self._error(exc) from None
        return hits_from_rows(rows)

    def ranking(self, query: str, depth: int, *, every: bool) -> list[str]:
        """The ids of the ``depth`` chunks best matching every word or any word, by
        ``ts_rank_cd``."""
        words = _words(query)
        if not words:
            return []
        tsquery, params = _tsquery(words, "&&" if every else "||")
        sql = _RANKING.format(tsquery=tsquery, s=self._s, normalisation=_RANK_NORMALISATION)
        rows = self._rows(sql, {**params, "config": self._config, "limit": depth})
        return [str(chunk_id) for (chunk_id,) in rows]

    def snippets(self, query: str, chunk_ids: list[str]) -> dict[str, str]:
        """``ts_headline``'s snippets of a few chunks for any word of ``query``."""
        words = _words(query)
        if not chunk_ids or not words:
            return {}
        tsquery, params = _tsquery(words, "||")
        sql = _SNIPPETS.format(tsquery=tsquery, s=self._s, config=TS_CONFIG)
        params.update(
            config=self._config, chunk_ids=chunk_ids, options=_headline_options(("[", "]"))
        )
        return {str(chunk_id): str(text) for chunk_id, text in self._rows(sql, params)}

    def models(self) -> list[tuple[str, int, int]]:
        """The models with vectors in the schema, most chunks first."""
        from ingest_plugins.postgres.vectors import stored_models

        try:
            return stored_models(self._connection, self.target.schema)
        except self._psycopg.Error as exc:
            raise self._error(exc) from None

    def vectors(self, label: str, dim: int) -> StoredVectors:
        """Every vector of one model, streamed and encoded (:mod:`.vectors`)."""
        from ingest_plugins.postgres.vectors import load_vectors

        try:
            return load_vectors(self._connection, self.target.schema, label, dim)
        except ValueError as exc:
            raise UsageError(f"{self._what}: {exc}; search again") from None
        except self._psycopg.Error as exc:
            raise self._error(exc) from None

    def chunk_rows(self, chunk_ids: list[str]) -> dict[str, ChunkRow]:
        """The chunks' rows with their documents' source and title."""
        if not chunk_ids:
            return {}
        rows = self._rows(_CHUNK_ROWS.format(s=self._s), {"chunk_ids": chunk_ids})
        return {row[0]: tuple(row[1:]) for row in rows}  # type: ignore[misc]  # six columns

    def _rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        try:
            return self._connection.execute(sql, params).fetchall()
        except self._psycopg.Error as exc:
            raise self._error(exc) from None

    def _error(self, exc: Exception) -> UsageError:
        return UsageError(f"cannot search {self.what!r}: {self.target.scrub(str(exc))}")


@final
class PostgresSearcher(ModeSearcher):
    """An open PostgreSQL store for many queries: its vectors and embedder are loaded once.

    :param url: the ``postgresql://`` URL the sink wrote to.
    :param model: the stored vectors to use (``label`` or ``label@dim``), when there are
        several.
    :param config_file: a config file for the embedder's own settings section, if it has one.
    :param environ: where ``INGEST_*`` variables are read (default ``os.environ``).
    :raises UsageError: as :class:`PostgresStore`.
    """

    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        config_file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(PostgresStore(url), model=model, config_file=config_file, environ=environ)

    def __enter__(self) -> PostgresSearcher:
        return self


def search_modes(
    url: str, query: str, *, mode: Mode = "auto", limit: int = 10, model: str | None = None
) -> list[Hit]:
    """What ``ingest search URL QUERY --mode MODE`` finds: keyword, semantic, hybrid or auto
    search (:mod:`ingest_plugins.fusion`), as for an SQLite store.

    :param url: as for :func:`search`.
    :param query: as for :func:`search`.
    :param mode: ``keyword``, ``semantic``, ``hybrid`` or ``auto`` (hybrid when the schema
        holds vectors, keyword otherwise).
    :param limit: as for :func:`search`.
    :param model: which stored vectors to use (``label`` or ``label@dim``), when the schema
        holds several models.
    :returns: the hits, best first.
    :raises UsageError: for an unknown mode, semantic search over a schema without vectors
        or with several models, and as :func:`search`.
    """
    from ingest_plugins.fusion import MODES

    if mode not in MODES:
        raise UsageError(f"unknown search mode {mode!r}: {', '.join(MODES)}")
    check_query(query, limit)
    with PostgresSearcher(url, model=model) as searcher:
        return searcher.search(query, mode=mode, limit=limit)


def _headline_options(highlight: tuple[str, str]) -> str:
    """``ts_headline``'s options: values double-quoted, a quote in them doubled."""
    start, stop = (marker.replace('"', '""') for marker in highlight)
    fewest, most = _SNIPPET_WORDS
    return (
        f'StartSel="{start}", StopSel="{stop}", MinWords={fewest}, MaxWords={most}, '
        f'MaxFragments=2, FragmentDelimiter="{_ELLIPSIS}"'
    )


def _check_schema(connection: psycopg.Connection[Any], target: Target, what: str) -> None:
    """A UsageError naming the schema when it lacks the sink's tables."""
    found = {
        name
        for (name,) in connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (target.schema,)
        )
    }
    missing = sorted({"documents", "chunks"} - found)
    if missing:
        raise UsageError(
            f"{what} has no schema {target.schema!r} written by ingest's postgresql sink (no "
            f"table {', '.join(missing)}): make one with `ingest run ... --sink "
            f"{target.shown}`, or name its schema with ?schema="
        )
