"""Vector arithmetic for search: int8 encoding, exact and indexed nearest neighbours, fusion.

Stored vectors are the embedder's output cut to int8, its largest component at +-127, with
one float32 scale per vector that makes ``codes * scale`` unit length: a dot product with a
unit query is then the cosine similarity, and never exceeds 1. That is a quarter of
float32's size (256 bytes plus 4 for a 256-component vector), and the cosine of a vector
with its encoding stays above 0.9999 (tested), far below what changes a ranking.

Search is exact: every stored vector is compared with the query. Up to
:data:`NUMPY_LIMIT` vectors, numpy multiplies the query with the float32 matrix decoded once
when the index is built (1 KB per vector). Above it, FAISS (``faiss-cpu``, part of the
``embed`` extra) scans an int8 copy: a flat scalar-quantizer index with one scale for the
whole store, whose scan reads a quarter of the bytes float32 would and runs in SIMD. Its top
:data:`RERANK` candidates are then scored again with their own per-vector scales, so the
order returned is the one the stored codes give. Over 1,000,000 vectors of 256 components
on this 2-CPU machine: 50 ms a query, against 895 ms for numpy's exact scan of the same
(``benchmarks/test_search_bench.py``). An approximate graph index (HNSW) was measured and
refused: usearch needed 319 s to build 200,000 vectors here, while the exact scan answers
within the latency target.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "NUMPY_LIMIT",
    "RERANK",
    "RRF_K",
    "VectorIndex",
    "decode",
    "encode",
    "reciprocal_rank_fusion",
]

#: Up to this many vectors the index is numpy's float32 matrix product; above, FAISS scans
#: int8 codes when it is installed. 100,000 x 256 float32 is 100 MB, scanned in about 25 ms.
NUMPY_LIMIT = 100_000
#: Candidates of the FAISS scan scored again with their own scales.
RERANK = 64
#: The constant of reciprocal rank fusion: ``score = sum(1 / (RRF_K + rank))``. 60 is the
#: value of the paper that introduced the method (Cormack, Clarke and Buettcher, 2009),
#: used unchanged by most search engines that offer the fusion.
RRF_K = 60


def encode(vectors: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes and their scales for a matrix of vectors (see the module).

    :param vectors: ``n x dim`` floats (any float dtype, or nested sequences).
    :returns: ``(codes, scales)``: ``n x dim`` int8 in ``[-127, 127]`` and ``n`` float32
        such that ``codes * scale`` has length 1. A zero vector gets zero codes and a zero
        scale.
    :raises ValueError: for a matrix that is not 2-D or holds NaN or infinities.
    """
    import numpy as np

    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D matrix of vectors, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("vectors hold NaN or infinite values")
    peaks = np.abs(matrix).max(axis=1, initial=0.0)[:, None]
    stretched = np.divide(matrix * 127.0, peaks, out=np.zeros_like(matrix), where=peaks > 0)
    codes = np.clip(np.rint(stretched), -127, 127).astype(np.int8)
    # The scale makes the decoded vector exactly unit length, so a score is a cosine that
    # never exceeds 1, whatever the rounding did to the vector's length.
    lengths = np.linalg.norm(codes.astype(np.float32), axis=1)
    scales = np.divide(1.0, lengths, out=np.zeros_like(lengths), where=lengths > 0)
    return codes, scales.astype(np.float32)


def decode(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The float32 unit vectors that ``codes`` and ``scales`` stand for.

    :param codes: ``n x dim`` int8.
    :param scales: ``n`` float32.
    :returns: ``n x dim`` float32.
    """
    import numpy as np

    return codes.astype(np.float32) * scales.astype(np.float32)[:, None]


def faiss_available() -> bool:
    """Whether ``faiss`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("faiss") is not None
    except (ImportError, ValueError):
        return False


@final
@dataclass(eq=False)
class VectorIndex:
    """Exact nearest neighbours by cosine over int8-encoded vectors.

    Build it with :meth:`build`; positions are the rows of ``codes``.

    :param codes: ``n x dim`` int8 codes (see :func:`encode`).
    :param scales: ``n`` float32 scales.
    :param engine: ``"numpy"`` or ``"faiss"``: what :meth:`search` scans with.
    """

    codes: np.ndarray
    scales: np.ndarray
    engine: str
    _matrix: Any = field(default=None, repr=False)
    _faiss: Any = field(default=None, repr=False)

    @classmethod
    def build(
        cls, codes: np.ndarray, scales: np.ndarray, *, engine: str | None = None
    ) -> VectorIndex:
        """Prepare the scan of ``codes``.

        :param codes: ``n x dim`` int8.
        :param scales: ``n`` float32.
        :param engine: force ``"numpy"`` or ``"faiss"``; by default numpy up to
            :data:`NUMPY_LIMIT` vectors, FAISS above when installed.
        :raises ValueError: for mismatched shapes or an unknown engine.
        :raises ImportError: ``engine="faiss"`` without faiss installed.
        """
        if codes.ndim != 2 or scales.shape != (codes.shape[0],):
            raise ValueError(f"codes {codes.shape} and scales {scales.shape} do not match")
        if engine is None:
            engine = "faiss" if len(codes) > NUMPY_LIMIT and faiss_available() else "numpy"
        if engine == "numpy":
            return cls(codes, scales, engine, _matrix=decode(codes, scales))
        if engine == "faiss":
            return cls(codes, scales, engine, _faiss=_faiss_index(codes, scales))
        raise ValueError(f"unknown engine {engine!r}: numpy or faiss")

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    @property
    def dim(self) -> int:
        """Components per vector."""
        return int(self.codes.shape[1])

    def search(self, query: npt.ArrayLike, limit: int) -> list[tuple[int, float]]:
        """The ``limit`` stored vectors most similar to ``query``, best first.

        :param query: one vector of :attr:`dim` components (need not be unit length).
        :param limit: how many to return (fewer when the index holds fewer).
        :returns: ``(position, cosine)`` pairs; ties go to the lower position.
        :raises ValueError: for a query of another size.
        """
        import numpy as np

        vector = np.asarray(query, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.dim:
            raise ValueError(f"the query has {vector.shape[0]} components, the index {self.dim}")
        norm = float(np.linalg.norm(vector))
        if norm == 0 or len(self) == 0 or limit < 1:
            return []
        unit = vector / norm
        if self.engine == "faiss":
            # The codec rounds the query to int8 like the stored vectors (a float query of
            # unit length would round to zeros and ones): give it the whole int8 range.
            peak = float(np.abs(unit).max())
            probe = (unit * (127.0 / peak))[None, :]
            found = _faiss_search(self._faiss, probe, min(len(self), max(limit, RERANK)))
            positions = found[0][found[0] >= 0]
            scores = decode(self.codes[positions], self.scales[positions]) @ unit
        else:
            scores = self._matrix @ unit
            positions = np.arange(len(self))
        return _top(positions, scores, limit)


def _top(positions: np.ndarray, scores: np.ndarray, limit: int) -> list[tuple[int, float]]:
    import numpy as np

    if len(scores) > limit:
        keep = np.argpartition(-scores, limit - 1)[:limit]
        positions, scores = positions[keep], scores[keep]
    order = np.lexsort((positions, -scores))
    return [(int(positions[i]), float(scores[i])) for i in order]


def _faiss_search(index: Any, probe: np.ndarray, depth: int) -> np.ndarray:
    """Scan on one thread: for one query FAISS's OpenMP threads only wait on each other (on
    this 2-CPU machine under load: 110-158 ms and 44-49 ms of CPU with one thread, 188 ms and
    59-62 ms with two)."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        _, found = index.search(probe, depth)
    finally:
        faiss.omp_set_num_threads(threads)
    result: np.ndarray = found
    return result


def _faiss_index(codes: np.ndarray, scales: np.ndarray) -> Any:
    """A flat int8 FAISS index over ``codes`` re-cut to one scale for the whole store.

    FAISS's ``QT_8bit_direct_signed`` scans int8 codes as they are (the query is rounded to
    int8 too, so the scan is an integer dot product), but has no per-vector scale; so each
    vector is re-cut to the largest scale of the store (``round(codes * scale / largest)``).
    A vector with a smaller scale loses some of its levels there, which only decides the
    candidates: :data:`RERANK` of them are then scored with the stored codes and scales and
    the float query. The re-cut codes are handed to FAISS as they are
    (``add_sa_codes``, the byte being the value plus 128), block by block, rather than as
    floats for it to encode: 1.3 s of CPU for 1,000,000 vectors instead of 5.
    """
    import faiss
    import numpy as np

    dim = codes.shape[1]
    index = faiss.IndexScalarQuantizer(
        dim, faiss.ScalarQuantizer.QT_8bit_direct_signed, faiss.METRIC_INNER_PRODUCT
    )
    largest = float(scales.max()) if len(scales) else 0.0
    block = 65_536
    for start in range(0, len(codes), block):
        part = codes[start : start + block].astype(np.float32)
        if largest > 0:
            part *= (scales[start : start + block] / largest)[:, None]
        np.rint(part, out=part)
        index.add_sa_codes(part.astype(np.int8).view(np.uint8) ^ np.uint8(0x80))
    return index


def reciprocal_rank_fusion(
    rankings: Iterable[Sequence[Hashable]], *, k: int = RRF_K, limit: int | None = None
) -> list[tuple[Hashable, float]]:
    """Fuse rankings by reciprocal rank: ``score(item) = sum(1 / (k + rank))`` over them.

    Ranks start at 1; an item absent from a ranking adds nothing for it. Ties keep the order
    in which items first appear, ranking by ranking, so the result is deterministic.

    :param rankings: each a sequence of distinct items, best first.
    :param k: the damping constant (:data:`RRF_K`); higher flattens the head of each list.
    :param limit: keep only the best ``limit`` items.
    :returns: ``(item, score)`` pairs, best first.
    :raises ValueError: for ``k < 1``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    scores: dict[Hashable, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    first_seen = {item: order for order, item in enumerate(scores)}
    ordered = sorted(scores.items(), key=lambda pair: (-pair[1], first_seen[pair[0]]))
    if limit is not None:
        return ordered[:limit]
    return ordered

