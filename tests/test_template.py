"""Workers forked from a warm template of the driver, with the real CLI.

The template is a fork of the driver made as the run starts; workers are forked from it
and must keep every guarantee of a worker started as a fresh interpreter: leader of its own
session, stdin from /dev/null, killed when its parent dies, Python's SIGINT handling, log
records forwarded once. A driver that already runs threads must not fork: its workers are
fresh interpreters. ``tests/plugins/process_probe.py`` reports from inside the workers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_workers import FAULTS, alive, logged, variant, wait_dead

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the worker template is Linux only"
)

PROBE = "plugins.process_probe"


def probed(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text("utf-8").splitlines()]


def cli(
    tmp_path: Path, docs: Path | str, *args: str, prelude: str = "", progress: str = "none"
) -> tuple[list[str], dict[str, str]]:
    """The command and environment of a real ``ingest run`` over ``docs``.

    :param prelude: Python run in the driver before the CLI (to start a thread, say).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    env["PROCESS_PROBE_LOG"] = str(tmp_path / "probe.log")
    env["WORKER_FAULTS_LOG"] = str(tmp_path / "faults.log")
    script = f"{prelude}\nfrom ingest.cli import main\nmain()\n"
    command = [
        sys.executable, "-c", script, "run", str(docs), "--workers", "2", "-p", PROBE,
        "--progress", progress, "--sink", f"jsonl:{tmp_path / 'out.jsonl'}",
        "-o", "cache.enabled=false", *args,
    ]  # fmt: skip
    return command, env


def documents(tmp_path: Path, *names: str) -> Path:
    docs = tmp_path / "docs"
    for name in names:
        variant(docs, name)
    return docs


# The reporters start threads of their own (the log's ticker, the bar's refresher) once the
# documents are collected: the template must be forked before them.
@pytest.mark.parametrize("progress", ["none", "log", "bar", "json"])
def test_workers_are_forked_from_a_template_and_set_up_as_fresh_ones(
    tmp_path: Path, progress: str
) -> None:
    docs = documents(tmp_path, *(f"doc-{n}.pdf" for n in range(6)))
    command, env = cli(tmp_path, docs, progress=progress)
    run = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    lines = probed(tmp_path / "probe.log")
    assert sorted(line["name"] for line in lines) == sorted(p.name for p in docs.iterdir())
    templates = {line["parent"] for line in lines}
    assert len(templates) == 1, "every worker comes from the one template"
    for line in lines:
        # A grandchild of the driver, through the template, which leads its own session.
        assert line["grandparent"] == run.pid
        assert line["parent_sid"] == line["parent"]
        assert "ingest.workers.child" not in line["cmdline"]  # no interpreter of its own
        # The guarantees of a worker: its own session, no terminal, dies with its parent.
        assert line["sid"] == line["pgid"] == line["pid"]
        assert line["stdin"] == os.devnull
        assert line["death_signal"] == signal.SIGKILL
        assert line["sigint_default"]
        # The driver's handlers are gone: records go to the driver, once.
        assert line["ingest_handlers"] == 0
        assert [h for h in line["root_handlers"] if h != "LogCapture"] == ["_ForwardHandler"]
        # Only the extractor the run names was imported (pdfium), not pypdf.
        assert not line["pypdf"]
    for path in docs.iterdir():
        assert stderr.count(f"process probe: {path.name}") == 1, stderr
    # The template and its workers are gone with the run.
    for pid in {*templates, *(line["pid"] for line in lines)}:
        assert wait_dead(pid)


def test_a_driver_running_threads_starts_fresh_interpreters(tmp_path: Path) -> None:
    """Forking a process with threads copies their locks in whatever state they are: the
    pool starts workers as new interpreters instead, with the same guarantees."""
    docs = documents(tmp_path, "a.pdf", "b.pdf", "c.pdf")
    prelude = (
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(600,), daemon=True).start()"
    )
    command, env = cli(tmp_path, docs, prelude=prelude)
    driver = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert driver.returncode == 0, driver.stderr
    lines = probed(tmp_path / "probe.log")
    assert len(lines) == 3
    for line in lines:
        assert "ingest.workers.child" in line["cmdline"]
        assert line["sid"] == line["pid"]
        assert line["stdin"] == os.devnull
        assert line["death_signal"] == signal.SIGKILL
        assert [h for h in line["root_handlers"] if h != "LogCapture"] == ["_ForwardHandler"]
    for path in docs.iterdir():
        assert driver.stderr.count(f"process probe: {path.name}") == 1


def _started(tmp_path: Path, name: str) -> tuple[int, int]:
    """The worker extracting ``name`` and its parent, once it started (up to 120 s).

    From worker_faults' log: its wrapper runs before the probe's, and hangs.
    """
    log = tmp_path / "faults.log"
    for _ in range(12000):
        found = [pid for pid, file, *_ in logged(log) if file == name] if log.exists() else []
        if found:
            stat = Path(f"/proc/{found[0]}/stat").read_text()
            return found[0], int(stat.rsplit(")", 1)[1].split()[1])
        time.sleep(0.01)
    raise AssertionError(f"{name} never started")


def test_kill_9_of_the_driver_takes_the_template_and_the_workers(tmp_path: Path) -> None:
    docs = documents(tmp_path, "hang.pdf", "good.pdf")
    command, env = cli(tmp_path, docs, "-p", FAULTS, "--timeout", "600")
    driver = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
    try:
        worker, template = _started(tmp_path, "hang.pdf")
        assert template != driver.pid
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
        assert wait_dead(template), "the template outlived the driver"
        assert wait_dead(worker), "the worker outlived the driver"
    finally:
        driver.kill()


def test_a_killed_template_costs_its_workers_documents_only(tmp_path: Path) -> None:
    """The template killed from outside takes its workers (their documents fail as
    crashes); the pool goes on with fresh interpreters and every document gets its one
    outcome."""
    names = ["slow-1.pdf", "slow-2.pdf", *(f"good-{n}.pdf" for n in range(4))]
    docs = documents(tmp_path, *names)
    for number, name in enumerate(names[:2]):  # the largest: both workers start with them
        path = docs / name
        path.write_bytes(path.read_bytes() + b"% padding\n" * (200 - number))
    command, env = cli(tmp_path, docs, "-p", FAULTS)
    command[command.index("none")] = "json"  # --progress json: one event per document
    driver = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _, template = _started(tmp_path, "slow-1.pdf")
        os.kill(template, signal.SIGKILL)
        out, err = driver.communicate(timeout=300)
    finally:
        driver.kill()
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    outcomes = {
        Path(e["source"]).name: e for e in events if e["event"] in {"ingested", "failed"}
    }
    assert sorted(outcomes) == sorted(names), err
    assert driver.returncode in (0, 1), err
    assert outcomes["slow-1.pdf"]["event"] == "failed"
    assert outcomes["slow-1.pdf"]["reason"] == "crash"
    # The other worker died too, with the document it was running, if any; what they held
    # queued and everything after went to fresh interpreters.
    failed = [name for name, event in outcomes.items() if event["event"] == "failed"]
    assert len(failed) <= 2 and all(outcomes[n]["reason"] == "crash" for n in failed)
    assert len(outcomes) - len(failed) >= 4
    started = {pid for pid, *_ in logged(tmp_path / "faults.log")}
    assert not any(alive(pid) for pid in started)


def test_the_pool_in_a_threaded_process_does_not_fork(tmp_path: Path) -> None:
    """In-process: with a thread running, WorkerPool.start() makes no template."""
    from ingest.config import Settings
    from ingest.workers import WorkerPool

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    pool = WorkerPool(1, specs=[], settings=Settings(), max_memory=None)
    try:
        pool.start()
        assert pool._template is None
        (worker,) = pool._workers
        assert worker.template is None
        # The new process shows its command line once it has exec'd, a moment after spawn.
        deadline = time.monotonic() + 30
        cmdline = ""
        while "ingest.workers.child" not in cmdline and time.monotonic() < deadline:
            cmdline = Path(f"/proc/{worker.pid}/cmdline").read_text()
            time.sleep(0.01)
        assert "ingest.workers.child" in cmdline
    finally:
        pool.close()
        stop.set()


def test_a_worker_loads_the_plugins_the_driver_found_without_scanning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scanning every installed distribution costs each worker milliseconds of its start:
    the driver sends what it found, and the worker loads exactly that."""
    from ingest import manager as manager_module

    driver = manager_module.build_manager([FAULTS])
    found = driver.installed_targets()
    assert found["pdfium"] == "ingest_plugins.pdfium_extractor"

    def no_scan() -> None:
        raise AssertionError("the worker scanned the installed distributions")

    monkeypatch.setattr(manager_module, "entry_points", no_scan)
    worker = manager_module.build_manager(driver.specs, installed=found)
    assert sorted(worker.list_name_plugin()) == sorted(driver.list_name_plugin())
    with pytest.raises(manager_module.PluginError, match="unknown plugin 'nosuch'"):
        manager_module.build_manager(["nosuch"], installed=found)
