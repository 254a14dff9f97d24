"""Full-text search over a schema the ``postgresql`` sink wrote: ``ingest search URL QUERY``.

The same modes and output as for an SQLite database: by default every word of the query
must match, in any order, punctuation forms no operator and no query is a syntax error; a
word ending in ``*`` is a prefix (``neur*``). ``raw=True`` passes the query to PostgreSQL's
``to_tsquery`` as written (``&``, ``|``, ``!``, ``<->`` for a phrase, ``:*`` for a prefix);
its syntax errors become :class:`~ingest.UsageError`.

Words are matched by their English stems under the schema's text search configuration (the
one the sink indexed with). Ranking is ``ts_rank_cd`` (cover density: the closer the matched
words, the higher), normalised by the chunk's length; snippets are ``ts_headline``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingest import UsageError

from ingest_plugins.postgres.schema import TS_CONFIG, q
from ingest_plugins.postgres.target import Target, import_psycopg

# The hits and their text form are the SQLite search's, so both stores print alike.
from ingest_plugins.sqlite_search import check_query, hits_from_rows

if TYPE_CHECKING:
    import psycopg

    from ingest_plugins.hybrid_search import Hit, Mode
    from ingest_plugins.sqlite_search import SearchHit

__all__ = ["search", "search_modes", "to_tsquery_text"]

# Words around the matches in a snippet, about what FTS5's 24 tokens give.
_SNIPPET_WORDS = (12, 24)
_ELLIPSIS = "..."
# ts_rank_cd normalisation 1: divide by 1 + log(length), so a long chunk that mentions a
# word once does not outrank a short one about it.
_RANK_NORMALISATION = 1

_QUERY = """
WITH query AS (SELECT {tsquery} AS q),
top AS (
    SELECT c.chunk_id, c.doc_id, c.text, c.page_start, c.page_end,
           ts_rank_cd(c.tsv, query.q, {normalisation}) AS score
    FROM {s}.chunks AS c, query
    WHERE c.tsv @@ query.q
    ORDER BY score DESC, c.chunk_id
    LIMIT %(limit)s
)
SELECT top.chunk_id, top.doc_id, d.source, d.title, top.page_start, top.page_end, top.score,
       ts_headline('{s}.{config}'::regconfig, top.text, query.q, %(options)s)
FROM top CROSS JOIN query LEFT JOIN {s}.documents AS d ON d.doc_id = top.doc_id
ORDER BY top.score DESC, top.chunk_id
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
    # NUL cannot be sent to PostgreSQL in text: it separates words, as whitespace does.
    words = [w for w in query.replace("\x00", " ").split() if w.strip("*")]
    if not words:
        return []
    target = Target.parse(url)
    what = f"postgresql store {target.shown!r}"
    s = q(target.schema)
    config = f"{s}.{TS_CONFIG}"
    if raw:
        tsquery = "to_tsquery(%(config)s::regconfig, %(raw)s)"
    else:
        # Each word alone: plainto_tsquery for a whole word (its stems, stop words dropped),
        # to_tsquery for a prefix; && joins them (an empty one, a stop word, drops out).
        parts = [
            f"to_tsquery(%(config)s::regconfig, %(w{i})s)"
            if word.endswith("*")
            else f"plainto_tsquery(%(config)s::regconfig, %(w{i})s)"
            for i, word in enumerate(words)
        ]
        tsquery = " && ".join(parts)
    params: dict[str, Any] = {
        "config": config,
        "limit": limit,
        "options": _headline_options(highlight),
    }
    if raw:
        params["raw"] = query.replace("\x00", " ")
    else:
        params.update(
            (f"w{i}", to_tsquery_text(word) if word.endswith("*") else word)
            for i, word in enumerate(words)
        )
    sql = _QUERY.format(tsquery=tsquery, s=s, config=TS_CONFIG, normalisation=_RANK_NORMALISATION)
    psycopg = import_psycopg(what)
    with target.connect(what, autocommit=True) as connection:
        _check_schema(connection, target, what)
        # Read-only: searching never writes, whatever the query.
        connection.execute("SET default_transaction_read_only = on")
        try:
            rows = connection.execute(sql, params).fetchall()
        except psycopg.errors.SyntaxError as exc:
            if raw:
                raise UsageError(
                    f"invalid search query {query!r}: {target.scrub(str(exc))}; check "
                    "PostgreSQL's tsquery syntax (& | ! <-> :*), or drop --raw to search "
                    "for the words as typed"
                ) from None
            raise UsageError(f"cannot search {target.shown!r} for {query!r}: {exc}") from None
        except psycopg.Error as exc:
            raise UsageError(f"cannot search {target.shown!r}: {target.scrub(str(exc))}") from None
    return hits_from_rows(rows)


def search_modes(
    url: str, query: str, *, mode: Mode = "auto", limit: int = 10, model: str | None = None
) -> list[Hit]:
    """What ``ingest search URL QUERY --mode MODE`` finds: the hits of :func:`search` as the
    SQLite store's modes give them (:class:`ingest_plugins.hybrid_search.Hit`).

    A PostgreSQL store is searched by its words: ``keyword``, and ``auto``, which is keyword
    search here whether or not the schema holds vectors.

    :param url: as for :func:`search`.
    :param query: as for :func:`search`.
    :param mode: ``auto`` or ``keyword``.
    :param limit: as for :func:`search`.
    :param model: which stored vectors; no mode here uses them.
    :returns: the hits, best first.
    :raises UsageError: for ``semantic`` or ``hybrid``, which a PostgreSQL store does not
        have, an unknown mode, and as :func:`search`.
    """
    from ingest_plugins.hybrid_search import MODES, from_keyword

    if mode not in MODES:
        raise UsageError(f"unknown search mode {mode!r}: {', '.join(MODES)}")
    if mode in ("semantic", "hybrid"):
        raise UsageError(
            f"--mode {mode} searches the vectors of an SQLite store; a postgresql store is "
            "searched by its words: --mode keyword"
        )
    del model  # the keyword ranking uses no vectors, as for an SQLite store
    return [from_keyword(hit) for hit in search(url, query, limit=limit)]


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
