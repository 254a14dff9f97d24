"""Pages per second of ``ingest run --executor dask`` against ``--workers 2``.

Two inputs, from ../shared/corpus (77 files, 570 pages; the examples repeated 40 times when
it is absent):

* ``corpus``: the corpus as is. Runs last ~1.7 s, so the fixed costs of a run (connecting,
  setting up the workers' supervised processes) dominate: reported only.
* ``corpus-x4``: the corpus repeated 4 times, each copy with its own content (``% copy N``
  appended; ~2280 pages): the target is asserted on this one.

For each input:

* the reference is the real ``ingest run --workers 2`` (local worker processes);
* the contender is ``ingest run --executor dask --scheduler ADDRESS`` on a cluster of 2
  single-threaded workers started with Dask's own commands (``dask scheduler``,
  ``dask worker --nworkers 2 --nthreads 1``), as a user's cluster is: the cluster lives
  across rounds, each round is a whole run (connecting, setting up the workers' supervised
  processes, dispatch, sinks).

Both report the session's own pages/s (the summary's duration, not the interpreter's
start-up); both run in fresh subprocesses unpinned from the CPU the benchmarks' conftest
pins pytest to. Target on ``corpus-x4``: Dask's median pages/s at least 0.85 times the local
run's (overhead at most 15%); when missed, the pair is measured again interleaved and that
ratio decides.

Run: ``pytest benchmarks/test_dask_bench.py -s`` (about two minutes).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _harness import unpin, whole_run
from helpers import MISSING_DASK

pytest.importorskip("distributed", reason=MISSING_DASK)

from pytest_benchmark.fixture import BenchmarkFixture

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
ROUNDS = 3
TARGET = 0.85
COPIES = 4
SIDES = ("workers", "dask")
#: Input name: its fixture. The target is asserted on the last one.
INPUTS = {"corpus": "corpus", "corpus-x4": "corpus_x4"}
WORKER_OPTIONS = ("--nworkers", "2", "--nthreads", "1", "--no-dashboard")

#: pages/s of each round, by input and side.
RATES: dict[tuple[str, str], list[float]] = {}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus, or the examples copied 40 times (each copy its own content)."""
    if CORPUS.is_dir():
        return CORPUS
    folder = tmp_path_factory.mktemp("corpus")
    for number in range(40):
        for pdf in (REPO / "examples").glob("*.pdf"):
            target = folder / f"{pdf.stem}-{number}.pdf"
            target.write_bytes(pdf.read_bytes() + f"\n% copy {number}\n".encode())
    return folder


@pytest.fixture(scope="module")
def corpus_x4(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus 4 times over, each copy of a file with its own content (its own ids)."""
    folder = tmp_path_factory.mktemp("corpus-x4")
    for pdf in sorted(corpus.glob("*.pdf")):
        data = pdf.read_bytes()
        for number in range(COPIES):
            target = folder / f"{pdf.stem}-copy{number}.pdf"
            target.write_bytes(data + f"\n% copy {number}\n".encode())
    return folder


@pytest.fixture
def inputs(request: pytest.FixtureRequest) -> Path:
    """The input named by the test's ``data`` parameter."""
    name: str = request.getfixturevalue("data")
    return Path(request.getfixturevalue(INPUTS[name]))


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A cluster of 2 single-threaded workers, started with Dask's commands."""
    folder = tmp_path_factory.mktemp("cluster")
    info = folder / "scheduler.json"
    dask = shutil.which("dask", path=str(Path(sys.executable).parent)) or "dask"
    common: dict[str, Any] = {
        "cwd": folder,
        "env": _env(),
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
        "preexec_fn": unpin,
    }
    started = [
        subprocess.Popen(
            [dask, "scheduler", "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
            **common,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        started.append(
            subprocess.Popen(
                [dask, "worker", "--scheduler-file", str(info), *WORKER_OPTIONS],
                **common,
            )
        )
        address = str(json.loads(info.read_text())["address"])
        from distributed import Client

        with Client(address, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def ingest_run(inputs: Path, workdir: Path, *args: str) -> float:
    """One ``ingest run`` in a fresh process: its pages per second."""
    done, summary = whole_run(str(inputs), workdir, args, _env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert summary["event"] == "summary" and summary["failed"] == 0
    return float(summary["pages"]) / float(summary["duration_s"])


def _args(side: str, scheduler: str) -> tuple[str, ...]:
    return ("--workers", "2") if side == "workers" else ("--scheduler", scheduler)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("data", list(INPUTS))
def test_pages_per_second(
    benchmark: BenchmarkFixture,
    data: str,
    side: str,
    inputs: Path,
    scheduler: str,
    tmp_path: Path,
) -> None:
    rates = RATES.setdefault((data, side), [])
    rounds = iter(range(1000))
    benchmark.group = f"{data}: --workers 2 against --executor dask"
    benchmark.pedantic(
        lambda: rates.append(
            ingest_run(inputs, tmp_path / str(next(rounds)), *_args(side, scheduler))
        ),
        rounds=ROUNDS,
        iterations=1,
    )
    benchmark.extra_info["pages_per_s"] = [round(rate, 1) for rate in rates]
    benchmark.extra_info["median_pages_per_s"] = round(statistics.median(rates), 1)


def _ratio(data: str) -> tuple[float, str]:
    """Dask's median pages/s over the local run's on ``data``, and a line telling both."""
    local, dask = RATES.get((data, "workers")), RATES.get((data, "dask"))
    if not local or not dask:
        pytest.skip("the measuring benchmarks did not run (e.g. --benchmark-disable or -k)")
    ratio = statistics.median(dask) / statistics.median(local)
    line = (
        f"{data}: --workers 2 {statistics.median(local):.1f} pages/s "
        f"{_rounds(local)}, --executor dask (2 workers) {statistics.median(dask):.1f} pages/s "
        f"{_rounds(dask)}: {ratio:.2f}x"
    )
    return ratio, line


def _rounds(rates: list[float]) -> str:
    return "(" + " ".join(f"{rate:.0f}" for rate in rates) + ")"


def test_dask_overhead_on_the_corpus_as_is(
    capsys: pytest.CaptureFixture[str], record_property: pytest.RecordProperty
) -> None:
    """Reported only: on runs this short the fixed start-up costs dominate."""
    ratio, line = _ratio("corpus")
    record_property("dask_to_workers_ratio_corpus", round(ratio, 3))
    with capsys.disabled():
        print(f"\n{line} (report only)")


def test_dask_overhead_is_within_target(
    corpus_x4: Path,
    scheduler: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    record_property: pytest.RecordProperty,
) -> None:
    ratio, line = _ratio("corpus-x4")
    line += f" (target >= {TARGET}x)"
    if ratio < TARGET:
        again: dict[str, list[float]] = {side: [] for side in SIDES}
        for number in range(ROUNDS):
            for side in SIDES:
                workdir = tmp_path / f"again-{side}-{number}"
                again[side].append(ingest_run(corpus_x4, workdir, *_args(side, scheduler)))
        ratio = statistics.median(again["dask"]) / statistics.median(again["workers"])
        line += (
            f"; interleaved re-check {_rounds(again['workers'])} against "
            f"{_rounds(again['dask'])}: {ratio:.2f}x"
        )
    record_property("dask_to_workers_ratio", round(ratio, 3))
    with capsys.disabled():
        print(f"\n{line}")
    assert ratio >= TARGET
