"""Full-text search over a database written by the ``sqlite`` sink: ``ingest search DB QUERY``.

The ``sqlite`` plugin adds the command through ``ingest_register_commands``; this module
knows the sink's tables (:mod:`ingest_plugins.sqlite_sink`) and reads them, never writes.
The command's semantic and hybrid modes (``--mode``) are :mod:`ingest_plugins.hybrid_search`'s,
which builds on the keyword search here.
The command also takes a ``postgresql://`` URL, which it hands to the ``postgresql`` plugin's
search (:mod:`ingest_plugins.postgres.search`): one ``ingest search`` for every store, with
the same output.

Ranking is FTS5's bm25 over the chunk text. User queries are arbitrary text, so by default
each whitespace-separated word is quoted into an FTS5 string: every word must match (in any
order), punctuation cannot form operators, and no query is a syntax error. A word ending in
``*`` stays a prefix search (``neur*``). ``raw=True`` passes FTS5 syntax through (``AND``,
``OR``, ``NEAR``, ``"exact phrase"``, ``col:``); its syntax errors become
:class:`~ingest.errors.UsageError`.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from ingest import ExitCode, UsageError

if TYPE_CHECKING:
    from ingest_plugins.hybrid_search import Mode

__all__ = [
    "SearchHit",
    "check_query",
    "format_hits",
    "hits_from_rows",
    "open_database",
    "search",
    "search_command",
    "to_fts_query",
]

_REQUIRED_TABLES = frozenset({"documents", "chunks", "chunks_fts"})
# Tokens of context around the matches in a snippet (FTS5 allows at most 64).
_SNIPPET_TOKENS = 24
_ELLIPSIS = "..."

_QUERY = """
SELECT c.chunk_id, c.doc_id, d.source, d.title, c.page_start, c.page_end,
       bm25(chunks_fts) AS bm25,
       snippet(chunks_fts, 0, :open, :close, :ellipsis, :tokens) AS snippet
FROM chunks_fts
JOIN chunks AS c ON c.id = chunks_fts.rowid
LEFT JOIN documents AS d ON d.doc_id = c.doc_id
WHERE chunks_fts MATCH :match
ORDER BY bm25, c.chunk_id
LIMIT :limit
"""


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One matching chunk.

    :param rank: 1-based position in the results.
    :param chunk_id: the chunk's id (``doc_id:index``).
    :param doc_id: its document.
    :param source: the document's file, as collected.
    :param title: the document's title, when it has one.
    :param page_start: first page of the chunk.
    :param page_end: last page of the chunk.
    :param score: relevance, higher is better (bm25 with its sign flipped: FTS5 gives the best
        match the most negative value).
    :param snippet: the text around the matches, with the matched words between the
        highlight markers (``[`` and ``]`` by default).
    """

    rank: int
    chunk_id: str
    doc_id: str
    source: str
    title: str | None
    page_start: int
    page_end: int
    score: float
    snippet: str

    @property
    def pages(self) -> str:
        """``p. 3``, or ``pp. 3-4`` with an en dash between the pages."""
        if self.page_start == self.page_end:
            return f"p. {self.page_start}"
        return f"pp. {self.page_start}\u2013{self.page_end}"


def to_fts_query(text: str) -> str:
    """Quote each word of ``text`` into an FTS5 query that matches chunks with all of them.

    A word ending in ``*`` becomes a prefix query. A word with nothing to index (``!!``) is an
    empty string, which FTS5 ignores.

    :param text: what the user typed.
    :returns: an FTS5 query, ``""`` if ``text`` has no words.
    """
    terms: list[str] = []
    # NUL ends the query string inside FTS5 ("unterminated string"): treat it as a space.
    for word in text.replace("\x00", " ").split():
        stem = word.rstrip("*")
        quoted = '"' + (stem or word).replace('"', '""') + '"'
        terms.append(quoted + "*" if stem and stem != word else quoted)
    return " ".join(terms)


def check_query(query: str, limit: int) -> None:
    """Refuse what no store can search for: an empty query, text that is not valid, a limit
    below 1.

    :param query: what the user typed.
    :param limit: the most hits asked for.
    :raises UsageError: saying which.
    """
    if limit < 1:
        raise UsageError(f"the search limit must be at least 1, not {limit}")
    if not query.strip():
        raise UsageError("the search query is empty: give one or more words to find")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("the search query is not valid text (a lone surrogate)") from None


def search(
    db_path: Path,
    query: str,
    *,
    limit: int = 10,
    raw: bool = False,
    highlight: tuple[str, str] = ("[", "]"),
) -> list[SearchHit]:
    """Find the chunks that best match ``query``, best first.

    :param db_path: a database written by the ``sqlite`` sink.
    :param query: words to find (all of them); FTS5 syntax when ``raw`` is true.
    :param limit: the most hits to return (at least 1).
    :param raw: pass ``query`` to FTS5 as written.
    :param highlight: the markers put around matched words in snippets.
    :returns: the hits, best first; empty when nothing matches.
    :raises UsageError: for an empty query, a bad ``limit``, an invalid raw query, a missing
        file, or a file that is not a database of the ``sqlite`` sink.
    """
    check_query(query, limit)
    match = query if raw else to_fts_query(query)
    if not match:
        return []
    connection = open_database(db_path)
    try:
        rows = connection.execute(
            _QUERY,
            {
                "open": highlight[0],
                "close": highlight[1],
                "ellipsis": _ELLIPSIS,
                "tokens": _SNIPPET_TOKENS,
                "match": match,
                "limit": limit,
            },
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if raw:
            raise UsageError(
                f"invalid search query {query!r}: {exc}; check the FTS5 syntax, or drop "
                "--raw to search for the words as typed"
            ) from exc
        raise UsageError(f"cannot search {str(db_path)!r} for {query!r}: {exc}") from exc
    except sqlite3.Error as exc:
        raise UsageError(f"cannot search {str(db_path)!r}: {exc}") from exc
    finally:
        connection.close()
    # bm25 with its sign flipped; + 0.0 turns a -0.0 into 0.0 for display.
    return hits_from_rows(rows, score=lambda bm25: -bm25 + 0.0)


def hits_from_rows(
    rows: Iterable[Sequence[Any]], *, score: Callable[[Any], float] = float
) -> list[SearchHit]:
    """The hits of a search's result rows, ranked in their order.

    :param rows: ``(chunk_id, doc_id, source, title, page_start, page_end, score, snippet)``
        each, best first; ``source`` is ``None`` for a chunk whose document row is missing.
    :param score: turns the row's score into :attr:`SearchHit.score` (higher is better).
    :returns: the hits, ranks from 1.
    """
    return [
        SearchHit(
            rank=rank,
            chunk_id=chunk_id,
            doc_id=doc_id,
            source=source if source is not None else "?",
            title=title,
            page_start=page_start,
            page_end=page_end,
            score=score(raw_score),
            snippet=snippet,
        )
        for rank, (chunk_id, doc_id, source, title, page_start, page_end, raw_score, snippet)
        in enumerate(rows, start=1)
    ]


def format_hits(hits: Iterable[SearchHit]) -> str:
    """The hits as plain text for a terminal: rank, score, source and page, then the snippet.

    ::

         1. papers/field-notes.pdf, p. 3  (score 4.21)
            ...the forty-two [herons] nested by the weir...

    The snippet's markers are kept as they are; print the result without markup parsing
    (``click.echo``, or rich with ``markup=False``), since ``[word]`` looks like a rich tag.

    :param hits: from :func:`search`.
    :returns: the lines joined by newlines (no trailing newline); ``""`` for no hits.
    """
    lines: list[str] = []
    for hit in hits:
        title = f" — {_one_line(hit.title)}" if hit.title else ""
        lines.append(f"{hit.rank:>2}. {hit.source}, {hit.pages}{title}  (score {hit.score:.2f})")
        lines.append(f"    {_one_line(hit.snippet)}")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def open_database(db_path: Path) -> sqlite3.Connection:
    """A read-only connection to a database of the ``sqlite`` sink.

    :param db_path: the database file.
    :returns: the open connection; the caller closes it.
    :raises UsageError: naming the file, when it is missing, not a file, not an SQLite
        database, or lacks the sink's tables.
    """
    what = str(db_path)
    if not db_path.exists():
        raise UsageError(f"no database at {what!r}: make one with `ingest run ... --sink "
                         f"sqlite:{what}`")
    if not db_path.is_file():
        raise UsageError(f"{what!r} is not a file: name the database of an sqlite sink")
    try:
        # Read-only: searching must never create, migrate or lock out the writer's file.
        connection = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise UsageError(f"cannot open the database {what!r}: {exc}") from exc
    try:
        tables = {
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
    except sqlite3.Error as exc:
        connection.close()
        raise UsageError(f"{what!r} is not an SQLite database: {exc}") from exc
    missing = _REQUIRED_TABLES - tables
    if missing:
        connection.close()
        raise UsageError(
            f"{what!r} is not a database of ingest's sqlite sink (no table "
            f"{', '.join(sorted(missing))}): make one with `ingest run ... --sink sqlite:{what}`"
        )
    return connection


@click.command("search")
@click.argument("store", metavar="STORE")
@click.argument("query")
@click.option("-n", "--limit", default=10, show_default=True, help="How many chunks to show.")
@click.option(
    "--mode",
    # The modes of ingest_plugins.hybrid_search.MODES, spelled out: that module imports this
    # one, and the command must load without numpy.
    type=click.Choice(["auto", "keyword", "semantic", "hybrid"]),
    default="auto",
    show_default=True,
    help="keyword: bm25; semantic: vectors; hybrid: both, fused; auto: hybrid when the "
    "store has vectors.",
)
@click.option("--model", metavar="LABEL[@DIM]", help="Which stored vectors, if several.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def search_command(
    store: str, query: str, limit: int, mode: Mode, model: str | None, as_json: bool
) -> None:
    """Search the chunks of an SQLite sink's file or of a postgresql:// URL's schema by words,
    meaning or both; print source and page."""
    from ingest_plugins.hybrid_search import format_hits as format_found
    from ingest_plugins.postgres.target import is_url

    if is_url(store):
        # One command for every store: a URL is the postgresql plugin's to search.
        from ingest_plugins.postgres.search import search_modes as search_postgres

        hits = search_postgres(store, query, mode=mode, limit=limit, model=model)
    else:
        from ingest_plugins.hybrid_search import search as search_modes

        hits = search_modes(Path(store), query, mode=mode, limit=limit, model=model)
    if as_json:
        click.echo(json.dumps([hit.as_dict() for hit in hits], ensure_ascii=False, indent=2))
    elif hits:
        click.echo(format_found(hits))
    else:
        click.echo(f"no match for {query!r}")
    if not hits:
        sys.exit(int(ExitCode.FAILED))
