"""A plugin that misbehaves on purpose, for the worker tests.

Loaded by dotted path (``-p plugins.worker_faults``), so worker processes import it by name.
It does nothing to a file unless a word of the file's name asks for it:

* ``abort``: ``os.abort()`` (SIGABRT); ``segv``: SIGSEGV; ``exit``: ``os._exit(3)``;
* ``hang``: sleeps for an hour; ``hanglater``: the same, only for pages after the first range;
* ``child``: starts ``sleep 600`` (writing its pid to ``<file>.child``), then hangs;
* ``hog``: allocates memory until stopped; ``memerr``: raises ``MemoryError``;
* ``raise``: raises ``ValueError``; ``raiselater``: raises in ``pdfium`` for later ranges;
* ``transformcrash``: SIGSEGV in the transform step ``chunk``;
* ``slow``: sleeps 1.5 s per extraction (a slow but healthy document).

With ``WORKER_FAULTS_LOG`` set to a file, every extraction appends a line
``pid name extractor start stop`` to it (``0 0`` for the whole document). With
``WORKER_FAULTS_CONFIGURE`` set, ``ingest_configure`` fails in workers. With
``WORKER_FAULTS_PAGE_SECONDS`` set, ``ingest_page_seconds`` answers its value (a number, or
the text itself when it is not one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Generator
from pathlib import Path, PurePosixPath
from typing import Any

from ingest import Document, PluginError, Source, hookimpl


def _words(source: Source) -> set[str]:
    # A store object's source carries its URL, a string, where a file's carries a Path.
    return set(PurePosixPath(str(source.path)).stem.replace("_", "-").split("-"))


@hookimpl(wrapper=True)
def ingest_extract(
    source: Source, extractor: str, pages: range | None
) -> Generator[None, Document | None, Document | None]:
    """Record the asked range, misbehave if the file's name says so, then extract."""
    log = os.environ.get("WORKER_FAULTS_LOG")
    if log:
        start, stop = (pages.start, pages.stop) if pages is not None else (0, 0)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()} {source.path.name} {extractor} {start} {stop}\n")
    _misbehave(_words(source), source, extractor, pages)
    return (yield)


@hookimpl
def ingest_page_seconds() -> object:
    """Seconds per page for the deadlines, from ``WORKER_FAULTS_PAGE_SECONDS``."""
    value = os.environ.get("WORKER_FAULTS_PAGE_SECONDS")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


@hookimpl
def ingest_configure(role: str) -> None:
    """Refuse to start in a worker when ``WORKER_FAULTS_CONFIGURE`` is set."""
    if role == "worker" and os.environ.get("WORKER_FAULTS_CONFIGURE"):
        raise PluginError("worker_faults: this worker refuses to start")


@hookimpl
def ingest_transform(document: Document, step: str) -> None:
    """Crash in the ``chunk`` step for files named ``transformcrash``."""
    if step == "chunk" and "transformcrash" in _words(document.source):
        os.kill(os.getpid(), signal.SIGSEGV)


def _misbehave(words: set[str], source: Source, extractor: str, pages: range | None) -> None:
    later = pages is not None and pages.start > 1
    if "abort" in words:
        os.abort()
    if "segv" in words:
        os.kill(os.getpid(), signal.SIGSEGV)
    if "exit" in words:
        os._exit(3)
    if "hang" in words or ("hanglater" in words and later):
        _sleep_forever()
    if "child" in words:
        child = subprocess.Popen(["sleep", "600"])
        Path(f"{source.path}.child").write_text(str(child.pid))
        _sleep_forever()
    if "hog" in words:
        _hog()
    if "memerr" in words:
        raise MemoryError("worker_faults asked for too much")
    if "raise" in words:
        raise ValueError(f"worker_faults refuses {source.path.name}")
    if "slow" in words:
        time.sleep(1.5)
    if "raiselater" in words and later and extractor == "pdfium":
        raise ValueError(f"worker_faults refuses pages {pages} in pdfium")


def _sleep_forever() -> None:
    while True:
        time.sleep(3600)


def _hog() -> None:
    blocks: list[Any] = []
    while True:
        # Touched bytes, so the resident size grows (calloc'd zeros would not).
        blocks.append(b"x" * (16 << 20))
        time.sleep(0.005)
