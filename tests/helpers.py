"""Paths and small helpers the tests share; ``conftest.py`` holds only fixtures.

Importable as ``helpers`` because pyproject puts ``tests/`` on ``sys.path``
(``[tool.pytest.ini_options] pythonpath``), as it does for :mod:`pdfgen` and the other
generators here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
HOSTILE = SHARED / "hostile"
EXAMPLES = REPO / "examples"

#: Skip reasons of the modules that need an extra (``pytest.importorskip`` at their top).
MISSING_OCR = "the ocr extra is not installed: pip install 'ingest[ocr]'"
MISSING_DASK = "the dask extra is not installed: pip install 'ingest[dask]'"


def env_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str) -> Path:
    """An empty file in ``tmp_path`` whose path is in the environment variable ``variable``:
    where a test plugin running in worker processes writes what it saw.

    :returns: the file's path.
    """
    log = tmp_path / f"{variable.lower()}.log"
    log.touch()
    monkeypatch.setenv(variable, str(log))
    return log
