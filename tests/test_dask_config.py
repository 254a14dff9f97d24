"""The dask executor's settings and start-up: naming the executor loads its
plugin, the ``dask`` section comes from every settings source, a missing extra or an
unreachable scheduler fails at start in one line, and ``--executor dask`` alone runs on a
LocalCluster of its own that leaves no process behind."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers import MISSING_DASK

pytest.importorskip("distributed", reason=MISSING_DASK)

import psutil
from click.testing import CliRunner
from helpers import EXAMPLES
from ingest.api import prepare
from ingest.cli import main
from ingest.errors import ConfigError

pytestmark = pytest.mark.slow

RUN = [sys.executable, "-c", "from ingest.cli import main; main()", "run"]

#: A ``sitecustomize`` that makes Dask look uninstalled: its imports fail as a missing
#: package's would.
BLOCK_DASK = """
import importlib.abc, sys

class _NoDask(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"dask", "distributed"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoDask())
"""


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("*.py"))
    return folder


def test_naming_the_executor_loads_its_plugin(tmp_path: Path) -> None:
    """``--executor dask`` is ``-p dask`` too; the workers load it as well."""
    prepared = prepare(cwd=tmp_path, cli={"run.executor": "dask"})
    assert prepared.manager.has_plugin("dask")
    assert "dask" in prepared.manager.specs
    settings = prepared.loaded.settings
    assert settings.dask.scheduler is None and settings.dask.ship_bytes is False  # type: ignore[attr-defined]


def test_an_installed_executor_plugin_does_nothing_unless_named(tmp_path: Path) -> None:
    """Installing the plugin changes no run: without the executor named it is not loaded,
    and its section is then unknown."""
    prepared = prepare(cwd=tmp_path)
    assert not prepared.manager.has_plugin("dask")
    with pytest.raises(ConfigError, match=r"dask"):
        prepare(cwd=tmp_path, overrides=["dask.scheduler=tcp://h:1"])


@pytest.mark.parametrize("how", ["yaml", "env", "override"])
def test_the_dask_section_comes_from_every_source(tmp_path: Path, how: str) -> None:
    environ: dict[str, str] = {}
    overrides: list[str] = []
    if how == "yaml":
        (tmp_path / "ingest.yaml").write_text(
            "run:\n  executor: dask\ndask:\n  scheduler: tcp://h:1\n  ship_bytes: true\n"
        )
    elif how == "env":
        environ = {
            "INGEST_RUN__EXECUTOR": "dask",
            "INGEST_DASK__SCHEDULER": "tcp://h:1",
            "INGEST_DASK__SHIP_BYTES": "true",
        }
    else:
        overrides = ["run.executor=dask", "dask.scheduler=tcp://h:1", "dask.ship_bytes=true"]
    loaded = prepare(cwd=tmp_path, environ=environ, overrides=overrides).loaded
    dask = loaded.settings.dask  # type: ignore[attr-defined]
    assert (dask.scheduler, dask.ship_bytes) == ("tcp://h:1", True)
    assert loaded.origin("dask.scheduler").startswith(
        {"yaml": "file:", "env": "env:", "override": "override:"}[how]
    )


def test_a_bad_dask_setting_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"dask\.connect_timeout"):
        prepare(cwd=tmp_path, overrides=["run.executor=dask", "dask.connect_timeout=-1"])
    with pytest.raises(ConfigError, match=r"dask\.shceduler"):
        prepare(cwd=tmp_path, overrides=["run.executor=dask", "dask.shceduler=x"])


def test_a_blocked_executor_plugin_is_an_unknown_executor(examples: Path) -> None:
    result = CliRunner().invoke(
        main, ["run", str(examples), "--executor", "dask", "-p", "no:dask"], catch_exceptions=False
    )
    assert result.exit_code == 4
    assert "unknown executor 'dask'" in result.output


def test_an_unreachable_scheduler_fails_at_start(examples: Path, tmp_path: Path) -> None:
    """``--scheduler`` implies ``--executor dask`` and maps to ``dask.scheduler``."""
    with UnusedPort() as port:
        result = CliRunner().invoke(
            main,
            [
                *("run", str(examples), "--scheduler", f"tcp://127.0.0.1:{port}"),
                *("-o", "dask.connect_timeout=1", "--sink", f"jsonl:{tmp_path / 'o.jsonl'}"),
            ],
            catch_exceptions=False,
        )
    assert result.exit_code == 4, result.output
    assert f"cannot reach the Dask scheduler tcp://127.0.0.1:{port}" in result.output
    assert "dask.scheduler" in result.output


class UnusedPort:
    """A local TCP port nobody listens on, for the time of the block."""

    def __enter__(self) -> int:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        return int(self._socket.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._socket.close()


def test_without_the_extra_the_run_fails_at_once_naming_it(examples: Path, tmp_path: Path) -> None:
    """A real interpreter where ``import distributed`` fails, as without ``ingest[dask]``."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK_DASK)
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [*RUN, str(examples), "--executor", "dask"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 4, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ERROR: the dask executor needs")
    assert "pip install 'ingest[dask]'" in lines[0]
    # The plugin itself still loads (its module does not import Dask): other runs work.
    listed = subprocess.run(
        [*RUN[:3], "plugins", "-p", "dask"], env=env, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0 and "dask: ingest_plugins.dask_executor" in listed.stdout


def marked(mark: str) -> list[psutil.Process]:
    """Processes whose environment carries ``mark`` (a run's descendants, even orphaned)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("DASK_TEST_MARK_INGEST") == mark:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_the_executor_alone_starts_and_stops_a_local_cluster(
    examples: Path, tmp_path: Path
) -> None:
    mark = uuid.uuid4().hex
    done = subprocess.run(
        [*RUN, str(examples), "--executor", "dask", "--workers", "2", "--sink", "jsonl:o.jsonl"],
        cwd=tmp_path,
        env={**os.environ, "DASK_TEST_MARK_INGEST": mark},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "3 ingested in " in done.stdout.strip().splitlines()[-1]
    assert (tmp_path / "o.jsonl").read_text().count("\n") > 0
    deadline = time.monotonic() + 10
    while marked(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not marked(mark), "the LocalCluster or its workers outlived the run"
