"""Tests of ingest-text through a real pipeline, with the ``ingest_pipeline`` fixture.

The fixture comes from ingest's pytest plugin (``ingest.testing``), active wherever ingest
is installed. It runs in-process, ignores ``INGEST_*`` variables and config files outside
the test's folder, and returns the records its JSONL sink wrote. The plugin is loaded by its
entry-point name, as ``-p text`` would, so install it first (``pip install -e .``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ingest import ConfigError
from ingest.testing import IngestCli, PipelineRun, Runner


def _text_of(run: PipelineRun) -> str:
    return " ".join(record["text"] for record in run.records)


def _metadata_of(run: PipelineRun) -> dict[str, Any]:
    metadata: dict[str, Any] = run.records[0]["metadata"]
    return metadata


def test_text_file_is_split_into_pages_on_form_feeds(
    tmp_path: Path, ingest_pipeline: Runner
) -> None:
    notes = tmp_path / "notes.txt"
    # The final form feed ends page 2; it does not start an empty page 3.
    notes.write_bytes(b"Herons wade in shallow water.\r\n\fEgrets roost in colonies.\n\f")

    run = ingest_pipeline([notes], plugins=["text"])

    assert run.result.ingested == 1, run.failures
    assert {record["source"] for record in run.records} == {str(notes)}
    assert "Herons wade" in _text_of(run) and "Egrets roost" in _text_of(run)
    assert "\r" not in _text_of(run)
    assert _metadata_of(run)["page_count"] == 2
    assert _metadata_of(run)["title"] == "Herons wade in shallow water."
    assert max(record["page_end"] for record in run.records) == 2


def test_markdown_is_one_page_titled_by_its_first_heading(
    tmp_path: Path, ingest_pipeline: Runner
) -> None:
    guide = tmp_path / "guide.md"
    guide.write_text(
        "```sh\n# not a title\n```\n\n# Field guide #\n\nKingfishers dive.\n\f\nStill page 1.\n",
        encoding="utf-8",
    )

    run = ingest_pipeline([guide], plugins=["text"])

    assert run.result.ingested == 1, run.failures
    assert _metadata_of(run)["title"] == "Field guide"
    assert _metadata_of(run)["page_count"] == 1
    assert "Still page 1." in _text_of(run)


def test_invalid_utf8_fails_the_file_naming_it(tmp_path: Path, ingest_pipeline: Runner) -> None:
    bad = tmp_path / "latin.txt"
    bad.write_bytes("Caf\u00e9 au lait".encode("latin-1"))

    run = ingest_pipeline([bad], plugins=["text"])

    assert run.result.failed == 1
    [failure] = run.failures
    assert failure.reason == "unreadable"
    assert failure.plugin == "text"
    assert "latin.txt" in failure.message and "text.encoding" in failure.message


def test_encoding_setting_decodes_other_encodings(tmp_path: Path, ingest_pipeline: Runner) -> None:
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Caf\u00e9 au lait".encode("latin-1"))

    run = ingest_pipeline([latin], plugins=["text"], text={"encoding": "latin-1"})

    assert run.result.ingested == 1, run.failures
    assert "Caf\u00e9 au lait" in _text_of(run)


def test_errors_replace_keeps_an_undecodable_file(tmp_path: Path, ingest_pipeline: Runner) -> None:
    mixed = tmp_path / "mixed.txt"
    mixed.write_bytes(b"good start \xff good end")

    run = ingest_pipeline([mixed], plugins=["text"], text={"errors": "replace"})

    assert run.result.ingested == 1, run.failures
    assert "good start \ufffd good end" in _text_of(run)


def test_an_unknown_encoding_is_a_configuration_error(
    tmp_path: Path, ingest_pipeline: Runner
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("x", encoding="utf-8")

    with pytest.raises(ConfigError, match="unknown encoding 'klingon'"):
        ingest_pipeline([notes], plugins=["text"], text={"encoding": "klingon"})


def test_without_the_plugin_text_files_are_not_collected(
    tmp_path: Path, ingest_pipeline: Runner
) -> None:
    (tmp_path / "notes.txt").write_text("Herons.", encoding="utf-8")

    run = ingest_pipeline([tmp_path])

    assert run.result.collected == 0
    assert run.records == []


def test_a_file_that_is_not_ascii_fails_alone(ingest_cli: IngestCli) -> None:
    """The real ``ingest`` command, in-process: its exit code and output as a user sees them."""
    (ingest_cli.path / "menu.txt").write_bytes(b"caf\xff\xfe")
    run = ingest_cli.run("run", "menu.txt", "-p", "text", "-o", "text.encoding=ascii")
    assert run.ret == 1
    run.stdout.re_match_lines([r"FAILED menu\.txt: unreadable: .*menu\.txt.* \[plugin text\]"])
    run.assert_outcomes(failed=1)
