"""The search modes of ``ingest search``, over any store: keyword, semantic, hybrid and auto.

A store (the SQLite sink's file, :mod:`ingest_plugins.hybrid_search`; a PostgreSQL schema,
:mod:`ingest_plugins.postgres.search`) gives its keyword rankings, its vectors and its chunk
rows through :class:`SearchStore`; :class:`ModeSearcher` ranks, fuses and builds the hits
from them, so every store finds and prints alike:

* **keyword**: the store's full-text ranking, every word required.
* **semantic**: the query is embedded with the model the store's vectors were made with
  (read from the store, so it cannot differ) and the chunks ranked by cosine similarity,
  exactly (:class:`ingest_plugins.vectors.VectorIndex`).
* **hybrid**: reciprocal rank fusion (:func:`~ingest_plugins.vectors.reciprocal_rank_fusion`)
  of three rankings, each :data:`DEPTH` deep: the keyword ranking of the chunks holding
  *every* word, that of the chunks holding *any* word, and the semantic ranking. A chunk with
  all the words is thus counted twice on the keyword side. Fusing only the any-word and
  semantic rankings took the MRR@10 of the benchmark's known-item queries from keyword
  search's 0.97 down to 0.80: with lists 100 deep, chunks halfway down both outrank the one
  at the top of one list when the semantic ranking is the weaker one, as a static
  embedding's is. With the every-word ranking, hybrid keeps keyword search's 0.97 where all
  the words are there, and the other two still find the chunk when some are not (0.74,
  where keyword search finds nothing; ``benchmarks/test_search_bench.py``).
* **auto** (the default): hybrid when the store holds vectors, keyword otherwise.

A store holding vectors of two models (documents embedded by runs with different models)
is refused for semantic and hybrid search, naming the models, unless ``model`` picks one:
comparing a query with vectors of another model would rank noise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, final

from ingest import UsageError, load_embedder

from ingest_plugins.sqlite_search import SearchHit, check_query
from ingest_plugins.sqlite_vectors import check_numpy
from ingest_plugins.vectors import VectorIndex, reciprocal_rank_fusion

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import numpy as np
    from ingest import Embedder

__all__ = [
    "DEPTH",
    "MODES",
    "ChunkRow",
    "Hit",
    "Mode",
    "ModeSearcher",
    "SearchStore",
    "StoreVectors",
    "format_hits",
    "from_keyword",
]

Mode = Literal["auto", "keyword", "semantic", "hybrid"]
MODES: tuple[Mode, ...] = ("auto", "keyword", "semantic", "hybrid")
#: How many results of each ranking hybrid search fuses.
DEPTH = 100
#: Words of a chunk shown for a semantic hit, which has no matched words to centre on.
_OPENING_WORDS = 30

#: ``(doc_id, source, title, page_start, page_end, text)`` of a chunk; ``source`` is ``None``
#: when its document row is missing.
ChunkRow = tuple[str, str | None, str | None, int, int, str]


@final
@dataclass(frozen=True, slots=True)
class Hit(SearchHit):
    """One chunk found: a keyword search's hit (:class:`SearchHit`, whose fields it has) and
    the ranks it was fused from.

    :attr:`score` is higher for better hits: the store's keyword score (keyword), cosine
    similarity (semantic) or the fused reciprocal-rank score (hybrid). :attr:`snippet` is the
    text around the matched words, between ``[`` and ``]``, or the chunk's opening words when
    no word matched.

    :param keyword_rank: the chunk's place in the keyword ranking, if it is in it.
    :param semantic_rank: its place in the semantic ranking, if it is in it.
    """

    keyword_rank: int | None = None
    semantic_rank: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The hit as JSON-ready data."""
        return asdict(self)


class StoreVectors(Protocol):
    """Every vector of one model in a store, as int8 codes and scales
    (:func:`ingest_plugins.vectors.encode`), and the chunk of each row."""

    @property
    def codes(self) -> np.ndarray:
        """``n x dim`` int8."""

    @property
    def scales(self) -> np.ndarray:
        """``n`` float32."""

    def chunk_ids(self, positions: Sequence[int]) -> list[str]:
        """The chunk ids of the rows at ``positions``."""


class SearchStore(Protocol):
    """What a store gives :class:`ModeSearcher`. Queries reach it as typed (checked not
    empty); each store turns them into its own full-text syntax."""

    #: The store in messages: a path, or a URL with its password masked.
    what: str
    #: The ``--sink`` spec that writes this store, for the message saying how to embed.
    sink_spec: str

    def keyword(self, query: str, limit: int) -> list[SearchHit]:
        """The keyword mode's hits: every word required, best first."""

    def ranking(self, query: str, depth: int, *, every: bool) -> list[str]:
        """The ids of the ``depth`` chunks best matching every word (``every``) or any word
        of ``query``, best first, ties by chunk id."""

    def snippets(self, query: str, chunk_ids: list[str]) -> dict[str, str]:
        """The text around the words of ``query`` (any of them) in some chunks, marked
        ``[`` and ``]`` as keyword search marks them."""

    def models(self) -> list[tuple[str, int, int]]:
        """``(label, dim, chunks)`` of each model with vectors in the store, most first."""

    def vectors(self, label: str, dim: int) -> StoreVectors:
        """Every vector of one model."""

    def chunk_rows(self, chunk_ids: list[str]) -> dict[str, ChunkRow]:
        """The rows of the chunks that still exist, by chunk id."""

    def close(self) -> None:
        """Release the store; called once."""


class ModeSearcher:
    """An open store for many queries: its vectors and embedder are loaded once.

    :param store: the store's rankings, vectors and rows.
    :param model: the stored vectors to use (``label`` or ``label@dim``), when there are
        several.
    :param config_file: a config file for the embedder's own settings section, if it has one.
    :param environ: where ``INGEST_*`` variables are read (default ``os.environ``).
    """

    def __init__(
        self,
        store: SearchStore,
        *,
        model: str | None = None,
        config_file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.what = store.what
        self.model = model
        self._store: SearchStore | None = store
        self._config_file = config_file
        self._environ = environ
        self._models: list[tuple[str, int, int]] | None = None
        self._index: VectorIndex | None = None
        self._positions: StoreVectors | None = None
        self._embedder: Embedder | None = None

    def __enter__(self) -> ModeSearcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store; calling it again does nothing."""
        store, self._store = self._store, None
        if store is not None:
            store.close()

    @property
    def has_vectors(self) -> bool:
        """Whether the store holds any chunk vector."""
        return bool(self._stored_models())

    def search(self, query: str, *, mode: Mode = "auto", limit: int = 10) -> list[Hit]:
        """Find the chunks that best match ``query``, best first.

        :param query: what to look for, as plain words.
        :param mode: ``keyword``, ``semantic``, ``hybrid`` or ``auto`` (see the module).
        :param limit: the most hits to return (at least 1).
        :returns: the hits, best first; empty when nothing matches.
        :raises UsageError: for an empty query, a bad limit or mode, a closed searcher,
            semantic search over a store without vectors, or several models.
        """
        if mode not in MODES:
            raise UsageError(f"unknown search mode {mode!r}: {', '.join(MODES)}")
        check_query(query, limit)
        store = self._open()
        if mode == "auto":
            mode = "hybrid" if self.has_vectors else "keyword"
        if mode == "keyword":
            return [from_keyword(hit) for hit in store.keyword(query, limit)]
        semantic = self._semantic(query, limit if mode == "semantic" else max(limit, DEPTH))
        if mode == "semantic":
            return self._hits(semantic, {}, {}, semantic)
        depth = max(limit, DEPTH)
        every = store.ranking(query, depth, every=True)
        some = store.ranking(query, depth, every=False)
        fused = reciprocal_rank_fusion(
            [every, some, [chunk_id for chunk_id, _ in semantic]], limit=limit
        )
        ranked = [(str(chunk_id), score) for chunk_id, score in fused]
        found = {chunk_id: rank for rank, chunk_id in enumerate(some, start=1)}
        snippets = store.snippets(query, [c for c, _ in ranked if c in found])
        return self._hits(ranked, found, snippets, semantic)

    # -- internals ---------------------------------------------------------------------

    def _open(self) -> SearchStore:
        if self._store is None:
            raise UsageError(f"the searcher of {self.what!r} is closed")
        return self._store

    def _stored_models(self) -> list[tuple[str, int, int]]:
        # Read once: a PostgreSQL store scans its chunks to count them.
        if self._models is None:
            self._models = self._open().models()
        return self._models

    def _semantic(self, query: str, depth: int) -> list[tuple[str, float]]:
        index = self._load_index()
        (vector,) = self._load_embedder().embed([query])
        found = index.search(vector, depth)
        assert self._positions is not None  # set with the index
        chunk_ids = self._positions.chunk_ids([position for position, _ in found])
        return [(chunk_id, score) for chunk_id, (_, score) in zip(chunk_ids, found, strict=True)]

    def _load_index(self) -> VectorIndex:
        if self._index is not None:
            return self._index
        check_numpy(f"search of {self.what!r}")
        label, dim = self._pick_model()
        stored = self._open().vectors(label, dim)
        self._positions = stored
        self._index = VectorIndex.build(stored.codes, stored.scales)
        return self._index

    def _pick_model(self) -> tuple[str, int]:
        models = self._stored_models()
        what = self.what
        if not models:
            raise UsageError(
                f"{what!r} holds no chunk vectors: ingest with --embed NAME (e.g. --embed "
                f"wordllama) and --sink {self._open().sink_spec}, or search with --mode keyword"
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
        rows = self._open().chunk_rows([chunk_id for chunk_id, _ in ranked])
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


def from_keyword(hit: SearchHit) -> Hit:
    """A keyword search's hit as a :class:`Hit` of the keyword ranking alone.

    :param hit: from a store's keyword search.
    :returns: the same fields, ``keyword_rank`` its rank.
    """
    return Hit(**{f.name: getattr(hit, f.name) for f in fields(SearchHit)}, keyword_rank=hit.rank)


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
