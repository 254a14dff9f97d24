"""Paths and small helpers the tests share; ``conftest.py`` holds only fixtures.

Importable as ``helpers`` because pyproject puts ``tests/`` on ``sys.path``
(``[tool.pytest.ini_options] pythonpath``), as it does for :mod:`pdfgen` and the other
generators here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ingest import hookimpl

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pytest
    from click.testing import Result
    from ingest import Document

REPO = Path(__file__).resolve().parents[1]
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
