"""The Dask executor's batches (several ingest tasks per Dask task): the same records as a
local run, a timeout inside a batch fails only its document, a Dask worker killed while
running a batch loses no document.

Whether batches were used is read from the driver's own count, logged at the end of a run
with ``-v``: ``N ingest tasks sent in M Dask tasks (at most K per Dask task)``."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from helpers import MISSING_DASK

pytest.importorskip("distributed", reason=MISSING_DASK)

import pdfgen
import psutil
from helpers import EXAMPLES
from test_dask_executor import (
    FAULTS,
    assert_each_file_ingested_once,
    assert_same_run,
    ingest_run,
    probe,  # noqa: F401 - a fixture
    probed,
    spawn_driver,
    worker_pids,
)

pytestmark = pytest.mark.slow

COUNT = re.compile(r"(\d+) ingest tasks sent in (\d+) Dask tasks \(at most (\d+) per Dask task\)")


@pytest.fixture
def address(dask_address: str) -> str:
    """The shared cluster's scheduler (conftest's ``dask_address``)."""
    return dask_address


def sent(output: str) -> tuple[int, int, int]:
    """(ingest tasks, Dask tasks, largest batch) from a run's ``-v`` log."""
    found = COUNT.search(output)
    assert found, f"no task count in the log: {output[-2000:]}"
    tasks, futures, largest = map(int, found.groups())
    return tasks, futures, largest


def copies(folder: Path, count: int, *names: str) -> Path:
    """``count`` copies of the examples (each its own content), plus ``names`` made from
    guide.pdf; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        for pdf in EXAMPLES.glob("*.pdf"):
            data = pdf.read_bytes() + f"\n% copy {number}\n".encode()
            (folder / f"{pdf.stem}-{number}.pdf").write_bytes(data)
    guide = (EXAMPLES / "guide.pdf").read_bytes()
    for name in names:
        (folder / f"{name}.pdf").write_bytes(guide + f"\n% {name}\n".encode())
    return folder


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Many small documents, a long one (split into ranges) and two broken ones."""
    folder = copies(tmp_path_factory.mktemp("many"), 16)
    pdfgen.multipage_pdf(folder / "long.pdf", 40)
    pdfgen.encrypted_pdf(folder / "locked.pdf", user_password="secret")
    pdfgen.not_a_pdf(folder / "zip.pdf")
    return folder


@pytest.mark.parametrize("ship", [False, True], ids=["paths", "ship-bytes"])
def test_batched_runs_write_what_a_local_run_writes(
    address: str, many: Path, tmp_path: Path, ship: bool
) -> None:
    """Records, pages and outcomes (failures included) equal a ``--workers 2`` run's, while
    most Dask tasks carried several documents."""
    local = ingest_run(tmp_path / "local", [many], "--workers", "2")
    extra = ("--ship-bytes",) if ship else ()
    dask = ingest_run(tmp_path / "dask", [many], "--scheduler", address, "-v", *extra)
    assert_same_run(dask, local)
    assert len(local.outcomes) > 40
    assert {o[1] for o in local.outcomes.values()} >= {"not-a-pdf", "encrypted"}
    assert any(o[5] == 40 for o in local.outcomes.values())  # the split one
    tasks, futures, largest = sent(dask.output)
    assert tasks > len(local.outcomes)  # the long one's ranges and transform too
    assert largest > 1 and futures < tasks / 2, (tasks, futures, largest)


def test_a_timeout_in_a_batch_fails_only_its_document(
    address: str,
    tmp_path: Path,
    probe: tuple[str, Path],  # noqa: F811 - the fixture
) -> None:
    """8 documents over 2 threads go in 2 batches of 4; the first of one batch hangs. Its
    supervised process is killed at the deadline; the 3 others of its batch are ingested,
    in the replacement process."""
    module, log = probe
    log.unlink(missing_ok=True)
    folder = copies(tmp_path / "docs", 0, *(f"fine-{n}" for n in range(7)))
    # The largest file: it starts first (largest first), at the head of the first batch.
    guide = (EXAMPLES / "guide.pdf").read_bytes()
    (folder / "hang.pdf").write_bytes(guide + b"\n% hang" + b" " * 64 + b"\n")
    started = time.monotonic()
    run = ingest_run(
        tmp_path / "run",
        [folder],
        *("--scheduler", address, "-p", FAULTS, "-p", module, "-v", "--timeout", "2"),
        *("-o", "run.timeout_per_page=0"),
    )
    assert time.monotonic() - started < 30
    assert sent(run.output) == (8, 2, 4)  # so the hanging one shared its batch with 3
    assert run.exit_code == 1, run.output
    by_name = {Path(source).stem: outcome for source, outcome in run.outcomes.items()}
    assert sorted(by_name) == sorted(p.stem for p in folder.iterdir())
    hang = by_name.pop("hang")
    assert hang[:2] == ("failed", "timeout") and "took longer than 2s" in hang[2]
    assert {outcome[0] for outcome in by_name.values()} == {"ingested"}
    # One supervised process per thread, plus the hanging one's replacement, which ran
    # the rest of its batch; the killed one ran nothing more.
    seen = probed(log)
    killed = next(pid for pid, path in seen if path.stem == "hang")
    runs = {pid: [path.stem for p, path in seen if p == pid] for pid, _ in seen}
    assert runs.pop(killed) == ["hang"]
    assert sorted(len(stems) for stems in runs.values()) == [3, 4], runs


def _ppid(pid: int) -> int | None:
    try:
        return psutil.Process(pid).ppid()
    except psutil.Error:
        return None


def test_a_dask_worker_killed_in_a_batch_loses_no_document(
    address: str,
    tmp_path: Path,
    probe: tuple[str, Path],  # noqa: F811 - the fixture
) -> None:
    """SIGKILL a Dask worker in the middle of its batch (after its second document): Dask
    runs the whole batch again on the other worker; every source ends with exactly one
    outcome and every record is in the sink exactly once."""
    module, log = probe
    log.unlink(missing_ok=True)
    folder = copies(tmp_path / "docs", 0, *(f"sleepy-{n:02}" for n in range(12)))
    args = (str(folder), "--scheduler", address, "-p", module, "-v")
    driver = spawn_driver(tmp_path, log, *args, "--sink", "jsonl:out.jsonl")
    workers = set(worker_pids(address).values())
    deadline = time.monotonic() + 60
    victim = None
    while victim is None:
        assert time.monotonic() < deadline and driver.poll() is None
        by_worker: dict[int, list[Path]] = {}
        for pid, path in probed(log):
            if (ppid := _ppid(pid)) in workers:
                by_worker.setdefault(ppid, []).append(path)
        victim = next((w for w, paths in by_worker.items() if len(paths) >= 2), None)
        time.sleep(0.02)
    os.kill(victim, signal.SIGKILL)  # 0.3 s per document: its batch has 4 more to go
    stdout, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 0, stderr
    tasks, futures, largest = sent(stderr)
    assert tasks == 12 and largest == 6 and futures == 2, (tasks, futures, largest)
    names = [path.name for _, path in probed(log)]
    assert any(names.count(name) > 1 for name in names), "no document was run again"
    assert_each_file_ingested_once(stdout, folder, tmp_path / "out.jsonl")
    assert victim not in worker_pids(address).values()  # the nanny replaced it
