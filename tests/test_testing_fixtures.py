"""``ingest.testing`` for plugin authors: ``ingest_pipeline`` with a cache, ``force``, records
from any sink, failures with tracebacks, raising on the first failure, documented defaults;
``ingest_cli`` running the real command with pytester-style matching."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pdfgen
import pytest
from ingest import ExitCode
from ingest.testing import IngestCli, PipelineFailed, Runner

FAULTS = "plugins.worker_faults"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    pdfgen.multipage_pdf(folder / "one.pdf", pages=1)
    pdfgen.multipage_pdf(folder / "two.pdf", pages=2)
    return folder


def test_the_cache_is_off_by_default_and_on_when_asked(
    docs: Path, ingest_pipeline: Runner
) -> None:
    assert ingest_pipeline([docs]).result.ingested == 2
    assert ingest_pipeline([docs]).result.ingested == 2  # no cache: everything again
    first = ingest_pipeline([docs], cache=True)
    assert first.result.ingested == 2
    second = ingest_pipeline([docs], cache=True)
    assert (second.result.ingested, second.result.skipped) == (0, 2)
    assert second.records == []


def test_force_redoes_what_the_cache_has(docs: Path, ingest_pipeline: Runner) -> None:
    """``ingest_pipeline(force=True)`` reported ``--force: force: unknown setting``."""
    ingest_pipeline([docs], cache=True)
    forced = ingest_pipeline([docs], cache=True, force=True)
    assert (forced.result.ingested, forced.result.skipped) == (2, 0)
    assert len(forced.records) >= 2


def test_last_failed_and_cache_clear(docs: Path, ingest_pipeline: Runner) -> None:
    pdfgen.multipage_pdf(docs / "three-raise.pdf", pages=3)
    first = ingest_pipeline([docs], cache=True, plugins=[FAULTS])
    assert (first.result.ingested, first.result.failed) == (2, 1)
    again = ingest_pipeline([docs], cache=True, plugins=[FAULTS], last_failed=True)
    assert (again.result.failed, again.result.skipped) == (1, 2)
    cleared = ingest_pipeline([docs], cache=True, plugins=[FAULTS], cache_clear=True)
    assert (cleared.result.ingested, cleared.result.failed) == (2, 1)


def test_records_come_from_any_sink(docs: Path, tmp_path: Path, ingest_pipeline: Runner) -> None:
    """The records were read back from the default JSONL file only."""
    db = tmp_path / "corpus.db"
    run = ingest_pipeline([docs], sinks=[f"sqlite:{db}"])
    assert not run.output.exists()
    with sqlite3.connect(db) as connection:
        stored = sorted(row[0] for row in connection.execute("SELECT chunk_id FROM chunks"))
    assert stored and sorted(record["chunk_id"] for record in run.records) == stored
    assert {document.source.path.name for document in run.documents} == {"one.pdf", "two.pdf"}
    jsonl = ingest_pipeline([docs])
    assert sorted(jsonl.records, key=lambda r: r["chunk_id"]) == sorted(
        run.records, key=lambda r: r["chunk_id"]
    )


def test_failures_carry_their_traceback(docs: Path, ingest_pipeline: Runner) -> None:
    pdfgen.multipage_pdf(docs / "three-raise.pdf", pages=3)
    run = ingest_pipeline([docs], plugins=[FAULTS])
    [failure] = run.failures
    assert failure.traceback is not None and "worker_faults.py" in failure.traceback
    assert failure.traceback_short is not None
    assert failure.traceback_short.endswith("E   ValueError: worker_faults refuses three-raise.pdf")


def test_raise_on_failure_stops_at_the_first_and_raises(
    docs: Path, ingest_pipeline: Runner
) -> None:
    pdfgen.multipage_pdf(docs / "three-raise.pdf", pages=3)
    with pytest.raises(PipelineFailed) as raised:
        ingest_pipeline([docs], plugins=[FAULTS], raise_on_failure=True)
    text = str(raised.value)
    assert text.startswith(f"ingest failed on {docs / 'three-raise.pdf'}: error: ValueError")
    assert "Traceback (most recent call last):" in text and "worker_faults.py" in text
    assert raised.value.failure.reason == "error"
    assert isinstance(raised.value, AssertionError)  # pytest reports it as a failed assert


def test_the_defaults_are_documented() -> None:
    from ingest import testing

    doc = " ".join((testing.ingest_pipeline.__doc__ or "").split())
    for default in (
        '``run={"workers": 0}``',
        '``progress="none"``',
        "``cache=False``",
        "``force=False``",
        "``raise_on_failure=False``",
        "one JSONL sink in the test's temporary folder",
    ):
        assert default in doc


def test_ingest_cli_runs_the_real_command(docs: Path, ingest_cli: IngestCli) -> None:
    pdfgen.multipage_pdf(docs / "three-raise.pdf", pages=3)
    run = ingest_cli.run("run", "docs", "-p", FAULTS, "--workers", "0", "-q")
    assert run.ret == ExitCode.FAILED
    run.stdout.fnmatch_lines(
        ["FAILED docs/three-raise.pdf: error: ValueError: worker_faults refuses *", "*in *s*"]
    )
    run.stdout.no_fnmatch_line("*one.pdf*")
    run.assert_outcomes(ingested=2, failed=1)
    assert run.parse_summary() == {"ingested": 2, "failed": 1}
    assert (ingest_cli.path / "ingest-out.jsonl").exists()  # it ran in the test's folder
    with pytest.raises(AssertionError, match="summary"):
        run.assert_outcomes(ingested=3)


def test_ingest_cli_matches_errors_and_usage_exit_codes(ingest_cli: IngestCli) -> None:
    run = ingest_cli.run("run", "nowhere")
    assert run.ret == ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(["ERROR: file or folder not found: nowhere"])
    assert run.outlines == []


def test_ingest_cli_ignores_the_environment_but_takes_env(
    docs: Path, ingest_cli: IngestCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGEST_SINKS", "nocolon")  # would be a configuration error
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    run = ingest_cli.run("run", "docs", "--workers", "0")
    assert run.ret == 0, run.errlines
    assert not any(line.startswith("DEBUG") for line in run.errlines)
    given = ingest_cli.run("run", "docs", "--workers", "0", env={"INGEST_SINKS": "nocolon"})
    assert given.ret == ExitCode.USAGE_ERROR
    given.stderr.fnmatch_lines(["*INGEST_SINKS: sinks*"])


def test_ingest_cli_leaves_logging_as_it_found_it(docs: Path, ingest_cli: IngestCli) -> None:
    logger = logging.getLogger("ingest")
    before = (logger.level, list(logger.handlers))
    ingest_cli.run("run", "docs", "--workers", "0", "-vv")
    assert (logger.level, list(logger.handlers)) == before
