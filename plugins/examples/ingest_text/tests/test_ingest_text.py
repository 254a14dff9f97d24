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


# --------------------------------------------------------------------------------------------
# Reruns: the store mirrors the files (ingest_pipeline's store= shares one sink and the cache)
# --------------------------------------------------------------------------------------------


def _texts(run: PipelineRun) -> dict[str, str]:
    texts: dict[str, str] = {}
    for record in run.records:
        name = Path(record["source"]).name
        texts[name] = f"{texts.get(name, '')} {record['text']}".strip()
    return texts


def test_an_edited_file_is_replaced_and_a_deleted_one_pruned(
    tmp_path: Path, ingest_pipeline: Runner
) -> None:
    notes, guide = tmp_path / "notes.txt", tmp_path / "guide.md"
    notes.write_text("Herons wade in shallow water.", encoding="utf-8")
    guide.write_text("# Guide\n\nKingfishers dive.", encoding="utf-8")
    first = ingest_pipeline([tmp_path], plugins=["text"], store="corpus")
    assert first.result.ingested == 2

    notes.write_text("Egrets roost in colonies.", encoding="utf-8")
    edited = ingest_pipeline([tmp_path], plugins=["text"], store="corpus")
    assert (edited.result.ingested, edited.result.skipped) == (1, 1)
    assert _texts(edited)["notes.txt"] == "Egrets roost in colonies."  # the herons are gone

    guide.unlink()
    kept = ingest_pipeline([tmp_path], plugins=["text"], store="corpus")
    assert kept.result.gone == 1 and "guide.md" in _texts(kept)
    pruned = ingest_pipeline([tmp_path], plugins=["text"], store="corpus", prune=True)
    assert pruned.result.removed == 1 and set(_texts(pruned)) == {"notes.txt"}


def test_changing_an_encoding_setting_replaces_the_records(
    tmp_path: Path, ingest_pipeline: Runner
) -> None:
    """The plugin's own settings shape its records: changing one rewrites them."""
    menu = tmp_path / "menu.txt"
    menu.write_bytes("Caf\u00e9 cr\u00e8me".encode("latin-1"))
    replaced = ingest_pipeline([menu], plugins=["text"], store="menu", text={"errors": "replace"})
    assert _texts(replaced)["menu.txt"] == "Caf\ufffd cr\ufffdme"
    decoded = ingest_pipeline([menu], plugins=["text"], store="menu", text={"encoding": "latin-1"})
    assert decoded.result.ingested == 1
    assert _texts(decoded) == {"menu.txt": "Caf\u00e9 cr\u00e8me"}


def test_the_text_sink_keeps_the_sink_contract(tmp_path: Path) -> None:
    from ingest.testing import SinkReport, check_sink
    from ingest_text.sink import TextFolderSink

    folder = tmp_path / "out"

    def held() -> dict[str, list[str]]:
        return {p.stem: p.read_text("utf-8").split("\f") for p in folder.glob("*.txt")}

    report = check_sink(lambda: TextFolderSink(folder), held)
    assert report == SinkReport(deletes=True, states=True)


def test_the_text_sink_is_filled_again_when_its_files_are_deleted(
    tmp_path: Path, ingest_pipeline: Runner
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Alpha.\fBeta.", encoding="utf-8")
    (docs / "b.txt").write_text("Gamma.", encoding="utf-8")
    out = tmp_path / "out"

    def run() -> Any:
        sinks = [f"text:{out}"]
        return ingest_pipeline([docs], plugins=["text"], sinks=sinks, cache={"enabled": True})

    assert run().result.ingested == 2
    assert run().result.skipped == 2
    next(out.glob("*.txt")).unlink()  # lost behind the sink's back
    assert run().result.ingested == 2
    assert sorted(p.read_text("utf-8") for p in out.glob("*.txt")) == ["Alpha.\fBeta.", "Gamma."]


def test_a_file_that_is_not_ascii_fails_alone(ingest_cli: IngestCli) -> None:
    """The real ``ingest`` command, in-process: its exit code and output as a user sees them."""
    (ingest_cli.path / "menu.txt").write_bytes(b"caf\xff\xfe")
    run = ingest_cli.run("run", "menu.txt", "-p", "text", "-o", "text.encoding=ascii")
    assert run.ret == 1
    run.stdout.re_match_lines([r"FAILED menu\.txt: unreadable: .*menu\.txt.* \[plugin text\]"])
    run.assert_outcomes(failed=1)
