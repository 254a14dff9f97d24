"""Shared fixtures: a clean environment for every test and the shared corpus paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
HOSTILE = SHARED / "hostile"
EXAMPLES = REPO / "examples"


@pytest.fixture(autouse=True)
def _clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    """A developer's own INGEST_* settings or LOG_LEVEL must not change what a test sees,
    and no test writes its cache or default output into the repository."""
    for name in list(os.environ):
        if name.startswith("INGEST_") or name == "LOG_LEVEL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("INGEST_CACHE__DIR", str(tmp_path / ".ingest_cache"))
    yield


@pytest.fixture
def corpus() -> Path:
    """The shared corpus of real PDFs; tests using it skip when it is absent."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present")
    return CORPUS


@pytest.fixture
def hostile() -> Path:
    """The shared hostile PDFs; tests using it skip when they are absent."""
    if not HOSTILE.is_dir():
        pytest.skip("../shared/hostile is not present")
    return HOSTILE
