"""Shared fixtures: a clean environment for every test, the shared corpus, a Dask cluster.

Fixtures only: what tests import (paths, small helpers) is in :mod:`helpers`.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import CORPUS, EXAMPLES, HOSTILE, MISSING_DASK
from ingest.testing import restored_logging


def pytest_configure(config: pytest.Config) -> None:
    """The ``ingest`` processes and workers the tests start run from bytecode, as an installed
    package does: where the environment forbids writing it (PYTHONDONTWRITEBYTECODE, set on
    some CI images), each of those processes would compile ingest's modules from source again,
    about a tenth of the suite's time."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


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


@pytest.fixture(autouse=True)
def _restore_ingest_logger() -> Iterator[None]:
    """A test that drives the CLI in-process sets the ``ingest`` logger up (level, handlers);
    the next test gets it back as it was."""
    with restored_logging():
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


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    """A real Dask ``LocalCluster`` of 2 single-threaded worker processes for one test
    module; afterwards nothing it started may be left. Per module, not per session: its
    worker processes keep what they imported (the modules' probe plugins share a name)."""
    distributed = pytest.importorskip("distributed", reason=MISSING_DASK)
    psutil = pytest.importorskip("psutil")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as started:
        yield started
    deadline = time.monotonic() + 10
    while len(psutil.Process().children(recursive=True)) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    # multiprocessing's resource tracker is the interpreter's, started once, not the cluster's.
    left = [
        p.cmdline()
        for p in psutil.Process().children(recursive=True)
        if "resource_tracker" not in " ".join(p.cmdline())
    ]
    assert not left, f"processes left behind by the cluster: {left}"


@pytest.fixture
def dask_address(dask_cluster: Any) -> str:
    """The shared cluster's scheduler address, once both workers are up (a test may have
    killed one; its nanny starts another)."""
    from distributed import Client

    with Client(dask_cluster.scheduler_address, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
    return str(dask_cluster.scheduler_address)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working folder, the current directory (a run's rootdir), with ``docs/``: the three
    example PDFs."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("guide.pdf", "field-notes.pdf", "budget-encrypted.pdf"):
        shutil.copyfile(EXAMPLES / name, docs / name)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A throwaway PostgreSQL server for the session (:mod:`pgserver`); tests using it skip,
    with the reason, where one cannot be started."""
    import pgserver

    reason = pgserver.unavailable()
    if reason is not None:
        pytest.skip(reason)
    with pgserver.running() as server:
        yield server


_databases = iter(range(1_000_000))


@pytest.fixture
def pg_url(pg_server: Any) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    return str(pg_server.create_database(f"test_{next(_databases)}"))


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """A real S3 API (moto's server) on a free loopback port, for one test module."""
    from s3server import S3Server

    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer's AWS profile or variables reach a test's runs."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
