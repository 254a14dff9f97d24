"""The framework's own overhead: ``ingest run --workers 0`` against a bare parser loop.

For each extractor, on ../shared/corpus (77 files, 570 pages), one process each side:

* baseline: the extractor's plain function over every file (the loop of
  ``test_workers_bench``);
* contender: ``ingest run --workers 0 --extractor NAME -o transforms=[]``: collection with
  content hashing, the hook calls, the fallback chain and a JSONL sink, with the transform
  chain left out because it is work the bare loop does not do (it is reported apart).

Target: the run's pages/s at least 95% of the loop's (overhead under 5%), medians of the
rounds; a miss is measured again interleaved, and that ratio decides.

Run: ``pytest benchmarks/test_pipeline_bench.py -s`` (about 8 minutes, pdfminer dominating).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from test_workers_bench import CORPUS, INGEST_RUN, ROUNDS, _env, bare_loop

EXTRACTORS = ("pdfium", "pypdf", "pdfminer")
TARGET = 0.95

RATES: dict[tuple[str, str], list[float]] = {}

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not present")


def ingest_in_process(extractor: str, workdir: Path, *, transforms: bool = False) -> float:
    """One round of ``ingest run --workers 0`` in a fresh process: its pages per second."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-c", INGEST_RUN, "run", str(CORPUS),
        "--workers", "0", "--extractor", extractor, "--fallback", "",
        "--sink", "jsonl:out.jsonl", "--progress", "json", "-o", "cache.enabled=false",
    ]  # fmt: skip
    if not transforms:
        command += ["-o", "transforms=[]"]
    done = subprocess.run(
        command, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=900
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["event"] == "summary"
    return float(summary["pages"]) / float(summary["duration_s"])


def _measure(benchmark: BenchmarkFixture, side: str, extractor: str, run: Any) -> None:
    rates = RATES.setdefault((side, extractor), [])
    benchmark.group = f"in-process, {extractor}"
    benchmark.pedantic(lambda: rates.append(run()), rounds=ROUNDS, iterations=1)
    benchmark.extra_info["median_pages_per_s"] = round(statistics.median(rates), 1)


@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_bare(benchmark: BenchmarkFixture, extractor: str) -> None:
    _measure(benchmark, "bare", extractor, lambda: bare_loop(extractor))


@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_ingest_in_process(benchmark: BenchmarkFixture, extractor: str, tmp_path: Path) -> None:
    rounds = iter(range(1000))
    _measure(
        benchmark,
        "run",
        extractor,
        lambda: ingest_in_process(extractor, tmp_path / str(next(rounds))),
    )


@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_overhead_under_five_percent(
    extractor: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare, run = RATES.get(("bare", extractor)), RATES.get(("run", extractor))
    if not bare or not run:
        pytest.skip("the measuring benchmarks did not run (e.g. --benchmark-disable or -k)")
    ratio = statistics.median(run) / statistics.median(bare)
    line = (
        f"{extractor}: bare loop {statistics.median(bare):.1f} pages/s, ingest run --workers 0 "
        f"{statistics.median(run):.1f} pages/s: {ratio:.3f} of the loop (target >= {TARGET})"
    )
    if ratio < TARGET:
        again_bare, again_run = [], []
        for number in range(ROUNDS):
            again_bare.append(bare_loop(extractor))
            again_run.append(ingest_in_process(extractor, tmp_path / f"again-{number}"))
        ratio = statistics.median(again_run) / statistics.median(again_bare)
        line += f"; interleaved re-check {ratio:.3f}"
    full = ingest_in_process(extractor, tmp_path / "full", transforms=True)
    line += f"; with the default transform chain {full:.1f} pages/s"
    with capsys.disabled():
        print(f"\n{line}")
    assert ratio >= TARGET
