"""Vector encoding, exact nearest neighbours (numpy and FAISS) and reciprocal rank fusion."""

from __future__ import annotations

import pytest
from helpers import MISSING_EMBED
from hypothesis import given
from hypothesis import strategies as st

np = pytest.importorskip("numpy", reason=MISSING_EMBED)

from ingest_plugins.vectors import (  # noqa: E402  # after the skip: numpy is in the embed extra
    VectorIndex,
    decode,
    encode,
    faiss_available,
    reciprocal_rank_fusion,
)

_FLOATS = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@given(st.lists(st.lists(_FLOATS, min_size=8, max_size=8), min_size=1, max_size=20))
def test_encoding_keeps_the_direction(rows: list[list[float]]) -> None:
    matrix = np.array(rows, dtype=np.float32)
    codes, scales = encode(matrix)
    assert codes.dtype == np.int8 and scales.dtype == np.float32
    assert codes.min() >= -127 and codes.max() <= 127
    decoded = decode(codes, scales)
    norms = np.linalg.norm(matrix.astype(np.float64), axis=1)
    for row, back, norm in zip(matrix, decoded, norms, strict=True):
        if norm == 0:
            assert not back.any()
            continue
        cosine = float(row.astype(np.float64) @ back) / norm / np.linalg.norm(back)
        assert cosine > 0.999


def test_encoding_a_real_size_vector_is_close_and_compact() -> None:
    rng = np.random.default_rng(7)
    matrix = rng.standard_normal((200, 256)).astype(np.float32) * 0.05 + 0.01
    codes, scales = encode(matrix)
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    back = decode(codes, scales)
    cosine = (unit * back).sum(1) / np.linalg.norm(back, axis=1)
    assert cosine.min() > 0.9999
    assert np.abs(np.linalg.norm(back, axis=1) - 1).max() < 0.002  # stored unit length
    assert codes.nbytes + scales.nbytes == 200 * (256 + 4)


@pytest.mark.parametrize("bad", [[[1.0, float("nan")]], [[float("inf"), 0.0]], [1.0, 2.0]])
def test_encoding_refuses_broken_input(bad: object) -> None:
    with pytest.raises(ValueError, match=r"NaN or infinite|2-D"):
        encode(bad)  # type: ignore[arg-type]  # deliberately wrong


def _clustered(count: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(1, count // 50), dim)).astype(np.float32)
    picks = rng.integers(0, len(centers), count)
    return centers[picks] + 0.4 * rng.standard_normal((count, dim)).astype(np.float32)


@given(st.integers(1, 60), st.integers(1, 15), st.integers(0, 10_000))
def test_numpy_search_is_exact_over_the_stored_codes(count: int, limit: int, seed: int) -> None:
    matrix = _clustered(count, 16, seed)
    codes, scales = encode(matrix)
    index = VectorIndex.build(codes, scales, engine="numpy")
    query = np.random.default_rng(seed + 1).standard_normal(16).astype(np.float32)
    found = index.search(query, limit)
    scores = decode(codes, scales) @ (query / np.linalg.norm(query))
    expected = sorted(range(count), key=lambda i: (-scores[i], i))[:limit]
    assert [position for position, _ in found] == expected
    assert all(abs(score - scores[p]) < 1e-5 for p, score in found)


@pytest.mark.skipif(not faiss_available(), reason=MISSING_EMBED)
def test_faiss_finds_what_numpy_finds() -> None:
    matrix = _clustered(6000, 64, 3)
    codes, scales = encode(matrix)
    exact = VectorIndex.build(codes, scales, engine="numpy")
    scanned = VectorIndex.build(codes, scales, engine="faiss")
    assert (exact.engine, scanned.engine) == ("numpy", "faiss")
    rng = np.random.default_rng(4)
    for position in rng.integers(0, 6000, 25):
        query = matrix[position] + 0.1 * rng.standard_normal(64).astype(np.float32)
        ours, theirs = exact.search(query, 10), scanned.search(query, 10)
        assert [p for p, _ in ours] == [p for p, _ in theirs]
        assert np.allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-6)


def test_the_default_engine_depends_on_the_size(monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest_plugins.vectors as vectors

    codes, scales = encode(_clustered(30, 8, 1))
    assert VectorIndex.build(codes, scales).engine == "numpy"
    monkeypatch.setattr(vectors, "NUMPY_LIMIT", 10)
    assert VectorIndex.build(codes, scales).engine == ("faiss" if faiss_available() else "numpy")


def test_search_edge_cases() -> None:
    codes, scales = encode(np.eye(4, dtype=np.float32))
    index = VectorIndex.build(codes, scales)
    assert index.search(np.zeros(4), 3) == []
    assert index.search([0, 0, 1, 0], 0) == []
    assert [p for p, _ in index.search([0, 0, 1, 0], 10)] == [2, 0, 1, 3]  # ties: lower first
    with pytest.raises(ValueError, match="the query has 3 components, the index 4"):
        index.search([1, 2, 3], 1)
    with pytest.raises(ValueError, match="unknown engine"):
        VectorIndex.build(codes, scales, engine="annoy")
    empty = VectorIndex.build(np.zeros((0, 4), np.int8), np.zeros(0, np.float32))
    assert empty.search([1, 0, 0, 0], 5) == []


def test_reciprocal_rank_fusion_by_hand() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60)
    assert [item for item, _ in fused] == ["a", "c", "b"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1][1] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2][1] == pytest.approx(1 / 62)
    assert reciprocal_rank_fusion([["x", "y"], ["y", "x"]]) == [
        ("x", pytest.approx(1 / 61 + 1 / 62)),
        ("y", pytest.approx(1 / 61 + 1 / 62)),
    ]  # a tie keeps the order of first appearance
    assert reciprocal_rank_fusion([[], []]) == []
    with pytest.raises(ValueError, match="k must be at least 1"):
        reciprocal_rank_fusion([["a"]], k=0)


@given(
    st.lists(st.lists(st.integers(0, 30), unique=True, max_size=12), min_size=1, max_size=4),
    st.integers(1, 100),
)
def test_reciprocal_rank_fusion_properties(rankings: list[list[int]], k: int) -> None:
    fused = reciprocal_rank_fusion(rankings, k=k)
    items = [item for item, _ in fused]
    assert sorted(items) == sorted({i for ranking in rankings for i in ranking})
    scores = [score for _, score in fused]
    assert scores == sorted(scores, reverse=True)
    # An item first in every ranking it appears in, and in the most rankings, wins.
    for item, score in fused:
        assert score <= len(rankings) / (k + 1) + 1e-12
        if all(ranking[:1] == [item] for ranking in rankings):
            assert items[0] == item
    assert reciprocal_rank_fusion(rankings, k=k, limit=2) == fused[:2]
