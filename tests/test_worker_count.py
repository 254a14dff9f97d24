"""A run never starts more worker processes than it has tasks (``--workers 8`` for one
document started eight), and starts more only when page ranges wait for one."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from pathlib import Path

import pdfgen
import pytest
from helpers import INGEST

pytestmark = pytest.mark.slow

psutil = pytest.importorskip("psutil")


def _workers(driver: psutil.Process) -> int:
    """The driver's workers: its descendants but the worker template, the child it forks as
    it starts (workers forked from it are its children; fresh interpreters, the driver's)."""
    count = 0
    for process in driver.children(recursive=True):
        if process.ppid() != driver.pid or "ingest.workers.child" in " ".join(process.cmdline()):
            count += 1
    return count


def peak_workers(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``ingest ARGS`` and count its workers every 10 ms; the most seen."""
    process = subprocess.Popen(
        [str(INGEST), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    watched = psutil.Process(process.pid)
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            with contextlib.suppress(psutil.Error):  # the run may end between two looks
                peak = max(peak, _workers(watched))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        output, _ = process.communicate(timeout=600)
    finally:
        done.set()
        watcher.join()
    assert process.returncode == 0, output
    return peak, output


def test_one_document_starts_one_worker(tmp_path: Path) -> None:
    pdf = pdfgen.multipage_pdf(tmp_path / "one.pdf", pages=2)
    args = ["run", str(pdf), "--workers", "8", "--sink", f"jsonl:{tmp_path / 'o.jsonl'}"]
    peak, output = peak_workers(args, tmp_path)
    assert peak == 1, output
    # A rerun that skips everything starts none.
    peak, output = peak_workers(args, tmp_path)
    assert "1 skipped (unchanged)" in output
    assert peak == 0, output


def test_page_ranges_start_the_workers_they_need(tmp_path: Path) -> None:
    """One long document is split into page ranges once its first range tells the page
    count: the ranges waiting for a worker start more, up to ``--workers``."""
    pdf = pdfgen.multipage_pdf(tmp_path / "long.pdf", pages=60)
    args = ["run", str(pdf), "--workers", "3", "--sink", f"jsonl:{tmp_path / 'o.jsonl'}"]
    peak, output = peak_workers(args, tmp_path)
    assert "1 ingested" in output
    assert 2 <= peak <= 3, output
