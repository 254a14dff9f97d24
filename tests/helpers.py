"""Paths and small helpers the tests share; ``conftest.py`` holds only fixtures.

:func:`run_ingest` runs the ``ingest`` command as a separate process, the way a user's shell
does, for what an in-process run cannot show: a process started without the right to bypass
file permissions (tests run as root in containers, and root reads a ``chmod 000`` folder), a
process with a limit on file size (``ulimit -f``), the processes a run starts, and what a
worker process prints to the terminal.

Importable as ``helpers`` because pyproject puts ``tests/`` on ``sys.path``
(``[tool.pytest.ini_options] pythonpath``), as it does for :mod:`pdfgen` and the other
generators here.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from ingest import hookimpl

if TYPE_CHECKING:
    from click.testing import Result
    from ingest import Document

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
#: The ``ingest`` command of this environment.
INGEST = Path(sys.executable).with_name("ingest")
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
HOSTILE = SHARED / "hostile"
EXAMPLES = REPO / "examples"

#: Skip reasons of the modules that need an extra (``pytest.importorskip`` at their top).
MISSING_OCR = "the ocr extra is not installed: pip install 'ingest[ocr]'"
MISSING_DASK = "the dask extra is not installed: pip install 'ingest[dask]'"
MISSING_EMBED = "the embed extra is not installed: pip install 'ingest[embed]'"


def env_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str) -> Path:
    """An empty file in ``tmp_path`` whose path is in the environment variable ``variable``:
    where a test plugin running in worker processes writes what it saw.

    :returns: the file's path.
    """
    log = tmp_path / f"{variable.lower()}.log"
    log.touch()
    monkeypatch.setenv(variable, str(log))
    return log


#: Without these capabilities root obeys file permissions like any user.
_DROP = "-dac_override,-dac_read_search"


def unprivileged() -> list[str]:
    """The command prefix that makes a process obey file permissions (empty for a normal
    user; ``setpriv`` dropping root's overrides, when the tests run as root).

    :raises pytest.skip.Exception: as root without ``setpriv``.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    return [setpriv, "--bounding-set", _DROP]


def run_ingest(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    obey_permissions: bool = False,
    max_file_size: int | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """``ingest ARGS...`` in ``cwd``, with this process's environment plus ``env``.

    :param obey_permissions: run without root's right to ignore file permissions.
    :param max_file_size: the limit on the size of any file the run writes (``ulimit -f``),
        in bytes.
    """
    prefix = unprivileged() if obey_permissions else []
    limit: Callable[[], None] | None = None
    if max_file_size is not None:
        size = max_file_size

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    # Test plugins load by dotted path (plugins.chatty), from this folder, as in-process.
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [*prefix, str(INGEST), *map(os.fspath, args)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        check=False,
    )


class Collect:
    """A sink that keeps the documents it is given (in-process runs hand over the objects
    themselves, blocks and tables included)."""

    def __init__(self) -> None:
        self.documents: list[Document] = []

    @hookimpl
    def ingest_sink(self, batch: Sequence[Document]) -> None:
        self.documents.extend(batch)


def ingest_run(*args: str, workers: int) -> Result:
    """``ingest run ARGS --workers N --progress none`` in the current folder, in this process;
    the result of the command."""
    from click.testing import CliRunner
    from ingest.cli import main

    command = ["run", *args, "--workers", str(workers), "--progress", "none"]
    return CliRunner().invoke(main, command, catch_exceptions=False)


def summary(result: Result) -> str:
    """The summary line of a run that succeeded, without its ``=`` rule."""
    assert result.exit_code == 0, result.output
    return str(result.output).strip().splitlines()[-1].strip("= ")
