"""``ingest run`` end to end through the CLI: summary, exit codes, sinks, -k, -x."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import ingest
import pytest
from click.testing import CliRunner, Result
from helpers import EXAMPLES
from ingest.cli import main

pytestmark = pytest.mark.slow


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["run", *args], catch_exceptions=False)


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("*.py"))
    return folder


def test_examples_end_to_end(examples: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = invoke(str(examples), "--workers", "0", "--sink", f"jsonl:{out}", "--progress", "none")
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert "3 ingested in " in last and "pages/s" in last
    records = read_jsonl(out)
    text = " ".join(str(r["text"]) for r in records)
    assert "Teams that build search" in text and "forty-two herons" in text
    assert "Quarterly budget summary" in text
    # Running headers and footers are gone, body text stays.
    assert "Page 2 of 3" not in text and "A short guide to ingest" not in text
    encrypted = [r for r in records if str(r["source"]).endswith("budget-encrypted.pdf")]
    assert encrypted and all(r["metadata"]["encrypted"] for r in encrypted)  # type: ignore[index]
    guide = [r for r in records if str(r["source"]).endswith("guide.pdf")]
    assert {r["page_start"] for r in guide} >= {1, 3}
    for record in records:
        assert record["chunk_id"] == f"{record['doc_id']}:{record['index']}"


def test_rerun_gives_identical_records(examples: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    invoke(str(examples), "--workers", "0", "--sink", f"jsonl:{first}", "-q")
    renamed = tmp_path / "moved"
    examples.rename(renamed)
    invoke(str(renamed), "--workers", "0", "--sink", f"jsonl:{second}", "-q")
    strip = [{k: v for k, v in r.items() if k != "source"} for r in read_jsonl(first)]
    again = [{k: v for k, v in r.items() if k != "source"} for r in read_jsonl(second)]
    assert strip == again  # ids come from content: a moved file is the same document


def test_worker_processes_give_the_same_records(examples: Path, tmp_path: Path) -> None:
    local, pooled = tmp_path / "local.jsonl", tmp_path / "pooled.jsonl"
    assert invoke(str(examples), "--workers", "0", "--sink", f"jsonl:{local}").exit_code == 0
    assert invoke(str(examples), "--workers", "2", "--sink", f"jsonl:{pooled}").exit_code == 0
    key = lambda r: r["chunk_id"]  # noqa: E731 - completion order differs between backends
    assert sorted(read_jsonl(local), key=key) == sorted(read_jsonl(pooled), key=key)


def test_collect_only_lists_without_parsing(examples: Path, tmp_path: Path) -> None:
    out = tmp_path / "never.jsonl"
    result = invoke(str(examples), "--collect-only", "--sink", f"jsonl:{out}")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert any(
        line.startswith(str(examples / "guide.pdf")) and "[pdfium]" in line for line in lines
    )
    assert "3 collected" in lines[-1]
    assert not out.exists()


def test_select_with_k(examples: Path, tmp_path: Path) -> None:
    out = tmp_path / "k.jsonl"
    result = invoke(
        str(examples), "-k", "notes or budget", "--workers", "0", "--sink", f"jsonl:{out}"
    )
    assert result.exit_code == 0 and "2 ingested" in result.output
    assert {Path(str(r["source"])).name for r in read_jsonl(out)} == {
        "field-notes.pdf",
        "budget-encrypted.pdf",
    }


def test_nothing_collected_exits_5(tmp_path: Path) -> None:
    result = invoke(str(tmp_path), "--workers", "0")
    assert result.exit_code == 5 and "0 ingested" in result.output


def test_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke(str(tmp_path / "nope"))
    assert result.exit_code == 4
    assert result.output.strip() == f"ERROR: file or folder not found: {tmp_path / 'nope'}"


def test_bad_files_fail_alone_with_their_names(examples: Path, tmp_path: Path) -> None:
    (examples / "fake.pdf").write_text("this is not a pdf")
    (examples / "truncated.pdf").write_bytes((examples / "guide.pdf").read_bytes()[:300])
    out = tmp_path / "out.jsonl"
    result = invoke(str(examples), "--workers", "0", "--sink", f"jsonl:{out}")
    assert result.exit_code == 1
    assert f"FAILED {examples / 'fake.pdf'}: not-a-pdf" in result.output
    assert f"FAILED {examples / 'truncated.pdf'}: " in result.output
    assert "3 ingested, 2 failed" in result.output.splitlines()[-1]
    assert len({r["doc_id"] for r in read_jsonl(out)}) == 3  # nothing good was lost


def test_exitfirst_stops_after_one_failure_and_keeps_what_was_done(
    examples: Path, tmp_path: Path
) -> None:
    (examples / "a-bad.pdf").write_text("%PDF-1.4 garbage that no parser reads")
    (examples / "zz-bad.pdf").write_text("%PDF-1.4 more garbage")
    result = invoke(str(examples), "-x", "--workers", "0", "--extractor", "pypdf", "--fallback", "")
    assert result.exit_code == 1
    assert "1 failed" in result.output and "(stopped early)" in result.output


def test_json_progress_is_machine_readable(examples: Path, tmp_path: Path) -> None:
    result = invoke(
        str(examples),
        "--workers",
        "0",
        "--progress",
        "json",
        "--sink",
        f"jsonl:{tmp_path / 'o.jsonl'}",
    )
    events = [json.loads(line) for line in result.output.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "collected" and kinds[-1] == "summary" and kinds.count("ingested") == 3
    assert events[-1]["exit_code"] == 0 and events[-1]["pages"] == 5


def test_sqlite_sink_and_search(examples: Path, tmp_path: Path) -> None:
    db = tmp_path / "corpus.db"
    out = tmp_path / "out.jsonl"
    result = invoke(
        str(examples), "--workers", "0", "--sink", f"sqlite:{db}", "--sink", f"jsonl:{out}"
    )
    assert result.exit_code == 0, result.output
    with sqlite3.connect(db) as connection:
        (chunks,) = connection.execute("select count(*) from chunks").fetchone()
    assert chunks == len(read_jsonl(out)) > 0  # several sinks, every batch
    again = invoke(str(examples), "--workers", "0", "--sink", f"sqlite:{db}")
    assert again.exit_code == 0
    with sqlite3.connect(db) as connection:
        assert connection.execute("select count(*) from chunks").fetchone() == (chunks,)
    found = CliRunner().invoke(main, ["search", str(db), "herons"])
    assert found.exit_code == 0 and "field-notes.pdf" in found.output


def test_library_api_run_and_arun(examples: Path, tmp_path: Path) -> None:
    out = tmp_path / "lib.jsonl"
    result = ingest.run(examples, sinks=[f"jsonl:{out}"], run={"workers": 0}, progress="none")
    assert (result.ingested, result.failed, result.exit_code) == (3, 0, 0)
    assert result.sinks == [f"jsonl:{out}"] and out.exists()
    again = asyncio.run(
        ingest.arun(
            [examples], sinks=[f"jsonl:{out}"], overrides={"run.workers": 0}, progress="none"
        )
    )
    # The cache remembers what the first run wrote: unchanged files are skipped.
    assert (again.ingested, again.skipped) == (0, 3)


def test_unknown_extractor_is_a_usage_error(examples: Path) -> None:
    result = invoke(str(examples), "--extractor", "pdfiun")
    assert result.exit_code == 4
    assert "unknown extractor (setting extract.extractor) 'pdfiun'; did you mean 'pdfium'?" in (
        result.output
    )


def test_every_corpus_file_gets_one_outcome(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus.jsonl"
    result = invoke(str(corpus), "--workers", "2", "--sink", f"jsonl:{out}", "--progress", "json")
    events = [json.loads(line) for line in result.output.splitlines()]
    summary = events[-1]
    assert summary["collected"] == 77
    assert summary["ingested"] + summary["failed"] + summary["skipped"] == 77
    outcomes = [e["source"] for e in events if e["event"] in {"ingested", "failed", "skipped"}]
    assert len(outcomes) == len(set(outcomes)) == 77
    text = " ".join(str(r["text"]) for r in read_jsonl(out))
    assert "Hello World" in text or "Hello world" in text


def test_a_plugin_named_by_an_override_is_loaded_by_run(examples: Path, tmp_path: Path) -> None:
    """``-o plugins=...`` names a plugin for every command, so its own section is known."""
    named = ["-o", "plugins=[plugins.section_plugin]", "-o", "myplug.x=3"]
    listed = CliRunner().invoke(main, ["config", *named, "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)["settings"]["myplug"] == {"x": 3}
    result = invoke(str(examples), "--collect-only", *named)
    assert result.exit_code == 0, result.output
    assert "unknown setting" not in result.output
