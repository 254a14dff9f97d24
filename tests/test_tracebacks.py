"""A plugin's exception keeps its traceback on the failure, from every backend (in-process,
worker processes, Dask workers), and ``--tb`` shows it as pytest does."""

from __future__ import annotations

import re
from pathlib import Path

import ingest
import pdfgen
import pytest
from click.testing import CliRunner, Result
from ingest.cli import main

pytestmark = pytest.mark.slow

FAULTS = "plugins.worker_faults"
FAULTS_FILE = Path(__file__).parent / "plugins" / "worker_faults.py"
RAISED_AT = next(
    number
    for number, line in enumerate(FAULTS_FILE.read_text("utf-8").splitlines(), 1)
    if 'raise ValueError(f"worker_faults refuses {source.path.name}")' in line
)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    pdfgen.multipage_pdf(folder / "fine.pdf", pages=1)
    pdfgen.multipage_pdf(folder / "will-raise.pdf", pages=2)
    return folder


def check_failure(failure: ingest.Failure) -> None:
    assert failure.traceback is not None and failure.traceback_short is not None
    assert failure.traceback.startswith("Traceback (most recent call last):")
    assert f'File "{FAULTS_FILE}", line {RAISED_AT}, in _misbehave' in failure.traceback
    assert failure.traceback.endswith("ValueError: worker_faults refuses will-raise.pdf")
    short = failure.traceback_short.splitlines()
    # The plugin's frames, not ingest's and pluggy's that called it.
    assert short[0] == f"{FAULTS_FILE}:{short[0].split(':')[1]}: in ingest_extract"
    assert f"{FAULTS_FILE}:{RAISED_AT}: in _misbehave" in short
    assert short[-1] == "E   ValueError: worker_faults refuses will-raise.pdf"
    assert not any("pluggy" in line or "/core/ingest/" in line for line in short)
    assert failure.location() == f"{FAULTS_FILE}:{RAISED_AT}"


@pytest.mark.parametrize("workers", [0, 2])
def test_a_failure_keeps_its_traceback(docs: Path, tmp_path: Path, workers: int) -> None:
    result = ingest.run(
        [docs],
        plugins=[FAULTS],
        run={"workers": workers},
        sinks=[f"jsonl:{tmp_path / 'o.jsonl'}"],
        progress="none",
    )
    [failure] = result.failures
    check_failure(failure)


def test_a_dask_workers_failure_keeps_its_traceback(
    docs: Path, tmp_path: Path, dask_address: str
) -> None:
    result = ingest.run(
        [docs],
        plugins=[FAULTS],
        run={"executor": "dask"},
        dask={"scheduler": dask_address},
        sinks=[f"jsonl:{tmp_path / 'o.jsonl'}"],
        progress="none",
    )
    [failure] = result.failures
    check_failure(failure)


def invoke(docs: Path, tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(
        main,
        [
            "run", str(docs), "-p", FAULTS, "--workers", "0", "--progress", "none", "--force",
            "--sink", f"jsonl:{tmp_path / 'o.jsonl'}", "-o", "extract.fallback=[]", *args,
        ],
        catch_exceptions=False,
    )


def failed_block(output: str) -> list[str]:
    """The FAILED line and the indented lines after it."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("FAILED "))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        block.append(line)
    return block


FAILED = "FAILED {docs}/will-raise.pdf: error: ValueError: worker_faults refuses will-raise.pdf"


def test_the_default_shows_where_it_was_raised(docs: Path, tmp_path: Path) -> None:
    result = invoke(docs, tmp_path)
    assert result.exit_code == 1
    head = FAILED.format(docs=docs)
    assert failed_block(result.stdout) == [
        f"{head} [plugin plugins.worker_faults] (at {FAULTS_FILE}:{RAISED_AT})"
    ]


@pytest.mark.parametrize("args", [["-v"], ["--tb=short"]])
def test_verbose_shows_the_short_traceback(
    docs: Path, tmp_path: Path, args: list[str]
) -> None:
    block = failed_block(invoke(docs, tmp_path, *args).stdout)
    assert block[1] == f"    {FAULTS_FILE}:{block[1].split(':')[1]}: in ingest_extract"
    assert f"    {FAULTS_FILE}:{RAISED_AT}: in _misbehave" in block
    assert block[-1] == "    E   ValueError: worker_faults refuses will-raise.pdf"


@pytest.mark.parametrize("args", [["-vv"], ["--tb=long"]])
def test_long_shows_the_whole_traceback(docs: Path, tmp_path: Path, args: list[str]) -> None:
    block = failed_block(invoke(docs, tmp_path, *args).stdout)
    assert block[1] == "    Traceback (most recent call last):"
    assert f'    File "{FAULTS_FILE}", line {RAISED_AT}, in _misbehave' in "\n".join(block)
    assert block[-1] == "    ValueError: worker_faults refuses will-raise.pdf"


@pytest.mark.parametrize("args", [["--tb=no"], ["-v", "--tb=no"], ["-q"]])
def test_no_traceback(docs: Path, tmp_path: Path, args: list[str]) -> None:
    block = failed_block(invoke(docs, tmp_path, *args).stdout)
    assert block == [f"{FAILED.format(docs=docs)} [plugin plugins.worker_faults]"]


def test_debug_logging_shows_the_traceback(docs: Path, tmp_path: Path) -> None:
    result = invoke(docs, tmp_path, "--log-level", "debug")
    assert re.search(
        r"DEBUG ingest.session: .*will-raise.pdf failed:\nTraceback \(most recent call last\):",
        result.stderr,
    ), result.stderr


def test_a_bad_tb_value_is_a_usage_error(docs: Path, tmp_path: Path) -> None:
    result = invoke(docs, tmp_path, "--tb=medium")
    assert result.exit_code == 2
    assert "Invalid value for '--tb'" in result.stderr
