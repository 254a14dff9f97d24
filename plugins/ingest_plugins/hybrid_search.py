"""Keyword, semantic and hybrid search over a database of the ``sqlite`` sink.

``ingest search STORE QUERY --mode keyword|semantic|hybrid`` and, from Python,
:func:`search` (one query) or :class:`Searcher` (many queries; the vectors are read once):

* **keyword**: FTS5's bm25 over the chunk text, every word required
  (:mod:`ingest_plugins.sqlite_search`).
* **semantic**: the query is embedded with the model the store's vectors were made with
  (read from the store, so it cannot differ) and the chunks ranked by cosine similarity,
  exactly (:class:`ingest_plugins.vectors.VectorIndex`).
* **hybrid**: reciprocal rank fusion (:func:`~ingest_plugins.vectors.reciprocal_rank_fusion`)
  of three rankings, each :data:`DEPTH` deep: bm25 over the chunks holding *every* word,
  bm25 over the chunks holding *any* word, and the semantic ranking. A chunk with all the
  words is thus counted twice on the keyword side. Fusing only the any-word and semantic
  rankings took the MRR@10 of the benchmark's known-item queries from keyword search's 0.97
  down to 0.80: with lists 100 deep, chunks halfway down both outrank the one at the top of
  one list when the semantic ranking is the weaker one, as a static embedding's is. With
  the every-word ranking, hybrid keeps keyword search's 0.97 where all the words are there,
  and the other two still find the chunk when some are not (0.74, where keyword search
  finds nothing; ``benchmarks/test_search_bench.py``).
* **auto** (the default): hybrid when the store holds vectors, keyword otherwise.

A store holding vectors of two models (documents embedded by runs with different models)
is refused for semantic and hybrid search, naming the models, unless ``model`` picks one:
comparing a query with vectors of another model would rank noise.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, final

from ingest import UsageError, load_embedder

from ingest_plugins.sqlite_search import SearchHit, open_database, to_fts_query
from ingest_plugins.sqlite_search import search as fts_search
from ingest_plugins.sqlite_vectors import check_numpy, load_vectors, stored_models
from ingest_plugins.vectors import VectorIndex, reciprocal_rank_fusion

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ingest import Embedder

__all__ = ["DEPTH", "MODES", "Hit", "Mode", "Searcher", "format_hits", "search"]

Mode = Literal["auto", "keyword", "semantic", "hybrid"]
MODES: tuple[Mode, ...] = ("auto", "keyword", "semantic", "hybrid")
#: How many results of each ranking hybrid search fuses.
DEPTH = 100
#: Words of a chunk shown for a semantic hit, which has no matched words to centre on.
_OPENING_WORDS = 30


@final
@dataclass(frozen=True, slots=True)
class Hit(SearchHit):
    """One chunk found: a keyword search's hit (:class:`SearchHit`, whose fields it has) and
    the ranks it was fused from.

    :attr:`score` is higher for better hits: bm25 (keyword), cosine similarity (semantic) or
    the fused reciprocal-rank score (hybrid). :attr:`snippet` is the text around the matched
    words, between ``[`` and ``]``, or the chunk's opening words when no word matched.

    :param keyword_rank: the chunk's place in the keyword ranking, if it is in it.
    :param semantic_rank: its place in the semantic ranking, if it is in it.
    """

    keyword_rank: int | None = None
    semantic_rank: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The hit as JSON-ready data."""
        return asdict(self)


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
    :param mode: ``keyword``, ``semantic``, ``hybrid`` or ``auto`` (see the module).
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
class Searcher:
    """An open store for many queries: its vectors and embedder are loaded once.

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
        self.model = model
        self._config_file = config_file
        self._environ = environ
        self._connection: sqlite3.Connection | None = open_database(self.path)
        self._index: VectorIndex | None = None
        self._positions: Any = None
        self._embedder: Embedder | None = None

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database; calling it again does nothing."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    @property
    def has_vectors(self) -> bool:
        """Whether the store holds any chunk vector."""
        return bool(stored_models(self._db()))

    def search(self, query: str, *, mode: Mode = "auto", limit: int = 10) -> list[Hit]:
        """One query; see :func:`search` for the arguments and errors."""
        if mode not in MODES:
            raise UsageError(f"unknown search mode {mode!r}: {', '.join(MODES)}")
        if limit < 1:
            raise UsageError(f"the search limit must be at least 1, not {limit}")
        if not query.strip():
            raise UsageError("the search query is empty: give one or more words to find")
        if mode == "auto":
            mode = "hybrid" if self.has_vectors else "keyword"
        if mode == "keyword":
            return [_from_keyword(hit) for hit in fts_search(self.path, query, limit=limit)]
        semantic = self._semantic(query, limit if mode == "semantic" else max(limit, DEPTH))
        if mode == "semantic":
            return self._hits(semantic, {}, {}, semantic)
        depth = max(limit, DEPTH)
        every = _bm25_ranking(self._db(), to_fts_query(query), depth)
        any_word = " OR ".join(term for term in to_fts_query(query).split(" ") if term)
        some = _bm25_ranking(self._db(), any_word, depth)
        fused = reciprocal_rank_fusion(
            [every, some, [chunk_id for chunk_id, _ in semantic]], limit=limit
        )
        ranked = [(str(chunk_id), score) for chunk_id, score in fused]
        found = {chunk_id: rank for rank, chunk_id in enumerate(some, start=1)}
        snippets = _snippets(self._db(), any_word, [c for c, _ in ranked if c in found])
        return self._hits(ranked, found, snippets, semantic)

    # -- internals ---------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise UsageError(f"the searcher of {str(self.path)!r} is closed")
        return self._connection

    def _semantic(self, query: str, depth: int) -> list[tuple[str, float]]:
        index = self._load_index()
        (vector,) = self._load_embedder().embed([query])
        found = index.search(vector, depth)
        chunk_ids = self._positions.chunk_ids([position for position, _ in found])
        return [(chunk_id, score) for chunk_id, (_, score) in zip(chunk_ids, found, strict=True)]

    def _load_index(self) -> VectorIndex:
        if self._index is not None:
            return self._index
        check_numpy(f"search of {str(self.path)!r}")
        label, dim = self._pick_model()
        stored = load_vectors(self._db(), label, dim)
        self._positions = stored
        self._index = VectorIndex.build(stored.codes, stored.scales)
        return self._index

    def _pick_model(self) -> tuple[str, int]:
        models = stored_models(self._db())
        what = str(self.path)
        if not models:
            raise UsageError(
                f"{what!r} holds no chunk vectors: ingest with --embed NAME (e.g. --embed "
                f"wordllama) and --sink sqlite:{what}, or search with --mode keyword"
            )
        wanted = models
        if self.model is not None:
            label, _, dim = self.model.partition("@")
            wanted = [m for m in models if m[0] == label and (not dim or str(m[1]) == dim)]
            if not wanted:
                raise UsageError(
                    f"{what!r} holds no vectors of model {self.model!r}; it holds "
                    f"{_describe(models)}"
                )
        if len(wanted) > 1:
            raise UsageError(
                f"{what!r} holds vectors of {len(wanted)} models ({_describe(wanted)}): pick "
                "one with --model LABEL@DIM, or ingest every document again with one "
                "--embed model"
            )
        return wanted[0][0], wanted[0][1]

    def _load_embedder(self) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        label, dim = self._pick_model()
        embedder, _, model = label.partition("/")
        self._embedder = load_embedder(
            embedder,
            model=model or None,
            dim=dim,
            config_file=self._config_file,
            environ=self._environ,
        )
        return self._embedder

    def _hits(
        self,
        ranked: list[tuple[str, float]],
        keyword_ranks: Mapping[str, int],
        snippets: Mapping[str, str],
        semantic: list[tuple[str, float]],
    ) -> list[Hit]:
        semantic_ranks = {chunk_id: rank for rank, (chunk_id, _) in enumerate(semantic, 1)}
        rows = _chunk_rows(self._db(), [chunk_id for chunk_id, _ in ranked])
        hits: list[Hit] = []
        for chunk_id, score in ranked:
            row = rows.get(chunk_id)
            if row is None:
                continue  # removed since the vectors were read
            doc_id, source, title, page_start, page_end, text = row
            hits.append(
                Hit(
                    rank=len(hits) + 1,
                    chunk_id=chunk_id,
                    doc_id=doc_id,
                    source=source if source is not None else "?",
                    title=title,
                    page_start=page_start,
                    page_end=page_end,
                    score=score,
                    snippet=snippets.get(chunk_id) or _opening(text),
                    keyword_rank=keyword_ranks.get(chunk_id),
                    semantic_rank=semantic_ranks.get(chunk_id),
                )
            )
        return hits


def _bm25_ranking(connection: sqlite3.Connection, match: str, depth: int) -> list[str]:
    """The ids of the ``depth`` chunks best matching an FTS5 query by bm25."""
    if not match:
        return []
    try:
        rows = connection.execute(
            "SELECT c.chunk_id FROM chunks_fts JOIN chunks AS c ON c.id = chunks_fts.rowid "
            "WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts), c.chunk_id LIMIT ?",
            (match, depth),
        ).fetchall()
    except sqlite3.Error as exc:
        raise UsageError(f"cannot search for {match!r}: {exc}") from exc
    return [chunk_id for (chunk_id,) in rows]


def _snippets(connection: sqlite3.Connection, match: str, chunk_ids: list[str]) -> dict[str, str]:
    """The text around the matched words of a few chunks, as keyword search shows it."""
    if not chunk_ids or not match:
        return {}
    marks = ",".join("?" * len(chunk_ids))
    rows = connection.execute(
        "SELECT c.chunk_id, snippet(chunks_fts, 0, '[', ']', '...', 24) FROM chunks_fts "
        "JOIN chunks AS c ON c.id = chunks_fts.rowid "
        f"WHERE chunks_fts MATCH ? AND c.chunk_id IN ({marks})",
        (match, *chunk_ids),
    ).fetchall()
    return dict(rows)


def _from_keyword(hit: SearchHit) -> Hit:
    return Hit(**{f.name: getattr(hit, f.name) for f in fields(SearchHit)}, keyword_rank=hit.rank)


def _chunk_rows(
    connection: sqlite3.Connection, chunk_ids: list[str]
) -> dict[str, tuple[str, str | None, str | None, int, int, str]]:
    if not chunk_ids:
        return {}
    marks = ",".join("?" * len(chunk_ids))
    rows = connection.execute(
        "SELECT c.chunk_id, c.doc_id, d.source, d.title, c.page_start, c.page_end, c.text "
        f"FROM chunks AS c LEFT JOIN documents AS d ON d.doc_id = c.doc_id "
        f"WHERE c.chunk_id IN ({marks})",
        chunk_ids,
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def _opening(text: str) -> str:
    words = text.split()
    opening = " ".join(words[:_OPENING_WORDS])
    return opening + ("..." if len(words) > _OPENING_WORDS else "")


def _describe(models: Iterable[tuple[str, int, int]]) -> str:
    return ", ".join(f"{label}@{dim}: {count} chunks" for label, dim, count in models)


def format_hits(hits: Iterable[Hit]) -> str:
    """The hits as plain text: rank, source and page, score and the ranks it fused, snippet.

    ::

         1. papers/field-notes.pdf, p. 3  (score 0.0325; keyword 2, semantic 1)
            ...the forty-two [herons] nested by the weir...

    :returns: the lines joined by newlines (no trailing newline); ``""`` for no hits.
    """
    lines: list[str] = []
    for hit in hits:
        title = f" \u2014 {_one_line(hit.title)}" if hit.title else ""
        ranks = [
            f"{name} {rank}"
            for name, rank in (("keyword", hit.keyword_rank), ("semantic", hit.semantic_rank))
            if rank is not None
        ]
        fused = f"; {', '.join(ranks)}" if len(ranks) == 2 else ""
        lines.append(
            f"{hit.rank:>2}. {hit.source}, {hit.pages}{title}  (score {hit.score:.4g}{fused})"
        )
        lines.append(f"    {_one_line(hit.snippet)}")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
