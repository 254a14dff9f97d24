"""The Dask executor on a real cluster: the same records as a local run, failures
included; shipped bytes; timeouts, memory caps and crashes on the cluster; a Dask worker
killed mid-run loses no document.

One ``LocalCluster`` (2 single-threaded worker processes, conftest's ``dask_cluster``)
serves the module, reached through ``--scheduler`` as a user's cluster is. The
:data:`PROBE` plugin (loaded by module path: the driver's ``sys.path`` reaches the workers)
logs the path each extraction reads and pauses on files named so;
``tests/plugins/worker_faults.py`` makes workers misbehave on demand."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import MISSING_DASK

pytest.importorskip("distributed", reason=MISSING_DASK)

import pdfgen
import psutil
from click.testing import CliRunner
from distributed import Client, LocalCluster
from helpers import EXAMPLES, HOSTILE
from ingest.cli import main

pytestmark = pytest.mark.slow

FAULTS = "plugins.worker_faults"

PROBE = '''
"""Written by tests/test_dask_executor.py: log each extraction's path; pause on request."""
import os, time
from ingest import hookimpl

LOG = {log!r}

@hookimpl(wrapper=True)
def ingest_extract(source):
    with open(LOG, "a", encoding="utf-8") as handle:
        handle.write(f"{{os.getpid()}} {{source.path}}\\n")
    words = set(source.path.stem.split("-"))
    time.sleep(0.3 if "sleepy" in words else 600 if "stall" in words else 0)
    return (yield)
'''


@dataclass
class Run:
    """What one ``ingest run`` did, as the sinks and the JSON progress events tell."""

    exit_code: int
    outcomes: dict[str, tuple[Any, ...]]
    records: list[dict[str, Any]]
    pages: list[tuple[Any, ...]]
    output: str


@pytest.fixture
def address(dask_address: str) -> str:
    """The shared cluster's scheduler (conftest's ``dask_address``)."""
    return dask_address


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The probe plugin's module name and its log (emptied before each use)."""
    folder = tmp_path_factory.mktemp("probe")
    log = folder / "extractions.log"
    package = folder / "dask_probe"
    package.mkdir()
    (package / "__init__.py").write_text("", "utf-8")
    (package / "plugin.py").write_text(PROBE.format(log=str(log)), "utf-8")
    sys.path.insert(0, str(folder))
    try:
        yield "dask_probe.plugin", log
    finally:
        sys.path.remove(str(folder))


def probe_env(log: Path) -> dict[str, str]:
    """The environment of a driver subprocess that loads the probe plugin (and worker_faults)."""
    paths = [str(log.parent), str(Path(__file__).parent)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def spawn_driver(workdir: Path, log: Path, *args: str) -> subprocess.Popen[str]:
    """``ingest run ARGS`` in a subprocess, with JSON progress and the probe importable."""
    command = [sys.executable, "-c", "from ingest.cli import main; main()", "run", *args]
    return subprocess.Popen(
        [*command, "--progress", "json", "-o", "cache.enabled=false"],
        cwd=workdir,
        env=probe_env(log),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def probed(log: Path) -> list[tuple[int, Path]]:
    """``(pid, path)`` of every extraction the probe saw."""
    if not log.exists():
        return []
    rows = [line.split(" ", 1) for line in log.read_text("utf-8").splitlines()]
    return [(int(pid), Path(path)) for pid, path in rows]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Real and generated PDFs, broken files, and ../shared/hostile when present."""
    folder = tmp_path_factory.mktemp("inputs")
    for pdf in EXAMPLES.glob("*.pdf"):
        shutil.copy(pdf, folder / pdf.name)
    # 40 pages: split into page ranges (16 per range) and merged back on the driver.
    pdfgen.multipage_pdf(folder / "long.pdf", 40)
    pdfgen.multipage_pdf(folder / "short.pdf", 2, title="Short one")
    pdfgen.encrypted_pdf(folder / "locked.pdf", user_password="secret")
    pdfgen.truncated_pdf(folder / "truncated.pdf", pages=4)
    pdfgen.not_a_pdf(folder / "zip.pdf")
    return [folder, HOSTILE] if HOSTILE.is_dir() else [folder]


def ingest_run(workdir: Path, inputs: list[Path], *args: str) -> Run:
    """``ingest run`` through the CLI with a JSONL and an SQLite sink and JSON progress."""
    workdir.mkdir(parents=True, exist_ok=True)
    out, db = workdir / "out.jsonl", workdir / "out.db"
    sinks = ["--sink", f"jsonl:{out}", "--sink", f"sqlite:{db}", "-o", "cache.enabled=false"]
    result = CliRunner().invoke(
        main,
        ["run", *map(str, inputs), *args, "--progress", "json", *sinks],
        catch_exceptions=False,
    )
    assert out.exists(), result.output
    return Run(result.exit_code, outcomes(result.stdout), *sink_contents(out, db), result.output)


def outcomes(stdout: str) -> dict[str, tuple[Any, ...]]:
    """The one outcome of each source, from JSON progress; fails on a second one."""
    found: dict[str, tuple[Any, ...]] = {}
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event["event"] in {"ingested", "failed", "skipped"}:
            source = event["source"]
            assert source not in found, f"two outcomes for {source}"
            fields = ("reason", "message", "plugin", "doc_id", "pages")
            found[source] = (event["event"], *(event.get(f) for f in fields))
    return found


def sink_contents(out: Path, db: Path) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """The JSONL records sorted by chunk id (asserting none twice), and the SQLite pages."""
    records = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    ids = [record["chunk_id"] for record in records]
    assert len(ids) == len(set(ids)), "a record was written twice"
    with sqlite3.connect(db) as connection:
        pages = connection.execute(
            "SELECT doc_id, number, text, extractor FROM pages ORDER BY doc_id, number"
        ).fetchall()
    return sorted(records, key=lambda r: str(r["chunk_id"])), pages


@pytest.fixture(scope="module")
def local_run(inputs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The reference: the same inputs through the local worker processes."""
    return ingest_run(tmp_path_factory.mktemp("local"), inputs, "--workers", "2")


def comparable(outcome: tuple[Any, ...]) -> tuple[Any, ...]:
    """An outcome, blurring what depends on the worker's history in any backend: PDFium keeps
    its last error across documents, so a file it cannot load may report ``encrypted``,
    ``Data format error`` or even ``Success`` depending on the files read before it."""
    event, reason, _, plugin, *rest = outcome
    if plugin == "pdfium" and reason in {"error", "encrypted"}:
        return (event, "pdfium could not load it", plugin, *rest)
    return outcome


def assert_same_run(dask: Run, local: Run) -> None:
    assert dask.exit_code == local.exit_code, dask.output
    assert dask.outcomes.keys() == local.outcomes.keys()
    for source, outcome in local.outcomes.items():
        assert comparable(dask.outcomes[source]) == comparable(outcome), source
    assert dask.records == local.records
    assert dask.pages == local.pages


def test_a_dask_run_writes_what_a_local_run_writes(
    address: str, inputs: list[Path], local_run: Run, tmp_path: Path
) -> None:
    """Same ids, text, chunks and pages, and the same failures with the same messages."""
    dask = ingest_run(tmp_path, inputs, "--executor", "dask", "--scheduler", address)
    assert_same_run(dask, local_run)
    reasons = {outcome[1] for outcome in local_run.outcomes.values()}
    assert {"not-a-pdf", "encrypted"} <= reasons  # failures are part of the comparison
    assert any(outcome[5] == 40 for outcome in local_run.outcomes.values())  # a split one


def test_shipped_bytes_give_the_same_records(
    address: str, inputs: list[Path], local_run: Run, tmp_path: Path, probe: tuple[str, Path]
) -> None:
    """With --ship-bytes the workers read temporary copies, never the driver's files; the
    records still name the driver's paths."""
    module, log = probe
    log.unlink(missing_ok=True)
    dask = ingest_run(
        tmp_path, inputs, "--scheduler", address, "--ship-bytes", "-p", module, "--workers", "2"
    )
    assert_same_run(dask, local_run)
    seen = probed(log)
    assert seen, "the probe plugin did not run on the workers"
    for _, path in seen:
        assert path.parent.name.startswith("ingest-dask-"), path
        assert not path.exists(), f"{path} was not deleted"
    names = {path.name for _, path in seen}
    assert "long.pdf" in names and "guide.pdf" in names


def test_paths_are_sent_absolute(
    address: str, tmp_path: Path, probe: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --ship-bytes a worker reads the file at its absolute path (shared filesystem),
    whatever its own working directory; records keep the path as given."""
    module, log = probe
    log.unlink(missing_ok=True)
    (folder := tmp_path / "docs").mkdir()
    shutil.copy(EXAMPLES / "guide.pdf", folder / "guide.pdf")
    monkeypatch.chdir(tmp_path)
    run = ingest_run(tmp_path / "run", [Path("docs")], "--scheduler", address, "-p", module)
    assert run.exit_code == 0, run.output
    assert list(run.outcomes) == [str(Path("docs") / "guide.pdf")]
    assert {path for _, path in probed(log)} == {folder / "guide.pdf"}
    assert {record["source"] for record in run.records} == {"docs/guide.pdf"}


def test_timeouts_memory_caps_and_crashes_apply_on_the_cluster(
    address: str, tmp_path: Path
) -> None:
    """The workers' supervisors kill what hangs, bloats or crashes, as in a local run; the
    Dask workers survive it and the other documents are ingested."""
    (folder := tmp_path / "faults").mkdir()
    guide = (EXAMPLES / "guide.pdf").read_bytes()
    for name in ("hang", "hog", "segv", "fine"):
        (folder / f"{name}.pdf").write_bytes(guide + f"\n% {name}\n".encode())
    started = time.monotonic()
    run = ingest_run(
        tmp_path / "run",
        [folder],
        *("--scheduler", address, "-p", FAULTS, "--timeout", "2", "--max-memory", "400MiB"),
        *("-o", "run.timeout_per_page=0"),
    )
    assert time.monotonic() - started < 30
    assert run.exit_code == 1, run.output
    by_name = {Path(source).stem: outcome for source, outcome in run.outcomes.items()}
    assert by_name["fine"][0] == "ingested"
    hang, hog, segv = by_name["hang"], by_name["hog"], by_name["segv"]
    assert hang[:2] == ("failed", "timeout")
    assert "took longer than 2s" in hang[2] and hang[3] == FAULTS
    assert hog[:2] == ("failed", "memory") and "400 MiB" in hog[2]
    assert segv[:2] == ("failed", "crash") and "SIGSEGV" in segv[2]


def test_the_cli_runs_end_to_end_on_a_scheduler(address: str, tmp_path: Path) -> None:
    """The installed command, the dask plugin loaded by naming the executor alone."""
    folder = tmp_path / "docs"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("*.py"))
    pdfgen.not_a_pdf(folder / "broken.pdf")
    command = [sys.executable, "-c", "from ingest.cli import main; main()", "run", str(folder)]
    done = subprocess.run(
        [*command, "--executor", "dask", "--scheduler", address, "--sink", "jsonl:out.jsonl"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert "3 ingested, 1 failed in " in summary and "pages/s" in summary
    assert "broken.pdf: not-a-pdf" in done.stdout
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) > 0


def assert_each_file_ingested_once(stdout: str, folder: Path, sink: Path) -> None:
    """Every file of ``folder`` has one outcome, ``ingested``, and ``sink`` (JSONL) holds its
    records exactly once."""
    found = outcomes(stdout)
    assert sorted(Path(s).name for s in found) == sorted(p.name for p in folder.iterdir())
    assert {outcome[0] for outcome in found.values()} == {"ingested"}
    records = [json.loads(line) for line in sink.read_text().splitlines()]
    ids = [record["chunk_id"] for record in records]
    assert len(ids) == len(set(ids))
    assert {record["source"] for record in records} == set(found)


def worker_pids(address: str) -> dict[str, int]:
    """The pid of each Dask worker process, by address."""
    with Client(address, set_as_default=False) as client:
        return {str(k): int(v) for k, v in client.run(os.getpid).items()}


def test_a_killed_dask_worker_loses_no_document(
    address: str, tmp_path: Path, probe: tuple[str, Path]
) -> None:
    """SIGKILL a Dask worker while it runs documents: the scheduler runs its tasks again on
    the other worker, every source ends with exactly one outcome and every record is in the
    sink exactly once."""
    module, log = probe
    log.unlink(missing_ok=True)
    (folder := tmp_path / "docs").mkdir()
    guide = (EXAMPLES / "guide.pdf").read_bytes()
    for number in range(16):  # 0.3 s each: the run lasts while a worker is killed
        (folder / f"sleepy-{number:02}.pdf").write_bytes(guide + f"\n% {number}\n".encode())
    args = (str(folder), "--scheduler", address, "-p", module, "-o", "run.batch_size=1")
    args += ("--sink", "jsonl:out.jsonl")
    driver = spawn_driver(tmp_path, log, *args)
    workers = set(worker_pids(address).values())
    # Kill the Dask worker of the third extraction to start, at once: it is in the middle of
    # its Dask task then (several documents of 0.3 s each, or one just begun).
    deadline = time.monotonic() + 60
    while len(probed(log)) < 3:
        assert time.monotonic() < deadline and driver.poll() is None
        time.sleep(0.005)
    running = probed(log)[2][0]
    victim = psutil.Process(running).ppid()
    os.kill(victim, signal.SIGKILL)
    assert victim in workers
    stdout, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 0, stderr
    names = [path.name for _, path in probed(log)]
    assert any(names.count(name) > 1 for name in names), "no task was run again"
    assert not psutil.pid_exists(running) or psutil.Process(running).status() == "zombie"
    assert_each_file_ingested_once(stdout, folder, tmp_path / "out.jsonl")
    assert victim not in worker_pids(address).values()  # the nanny replaced it


def test_a_worker_that_keeps_dying_fails_its_document_as_a_crash(
    dask_cluster: LocalCluster, address: str, tmp_path: Path, probe: tuple[str, Path]
) -> None:
    """When the scheduler gives up on a task (KilledWorker, after
    ``distributed.scheduler.allowed-failures``), its document fails with reason ``crash``,
    naming the file; the other documents are ingested."""
    module, log = probe
    log.unlink(missing_ok=True)
    (folder := tmp_path / "docs").mkdir()
    shutil.copy(EXAMPLES / "guide.pdf", folder / "guide.pdf")
    shutil.copy(EXAMPLES / "field-notes.pdf", folder / "stall.pdf")
    scheduler = dask_cluster.scheduler
    assert scheduler is not None
    allowed, scheduler.allowed_failures = scheduler.allowed_failures, 0
    try:
        driver = spawn_driver(
            tmp_path, log, str(folder), "--scheduler", address, "-p", module, "--timeout", "300"
        )
        deadline = time.monotonic() + 60
        while not any(p.name == "stall.pdf" for _, p in probed(log)):
            assert time.monotonic() < deadline and driver.poll() is None
            time.sleep(0.05)
        stalled = next(pid for pid, p in probed(log) if p.name == "stall.pdf")
        # The supervised process runs the document; its parent is the Dask worker.
        os.kill(psutil.Process(stalled).ppid(), signal.SIGKILL)
        stdout, stderr = driver.communicate(timeout=120)
    finally:
        scheduler.allowed_failures = allowed
    assert driver.returncode == 1, stderr
    found = {Path(s).name: outcome for s, outcome in outcomes(stdout).items()}
    assert found["guide.pdf"][0] == "ingested"
    event, reason, message = found["stall.pdf"][:3]
    assert (event, reason) == ("failed", "crash")
    assert "stall.pdf" in message and "died" in message
