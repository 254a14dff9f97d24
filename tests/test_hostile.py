"""Hostile input: broken and malicious PDFs end in one outcome each, in bounded time.

``../shared/hostile`` holds 106 files from the test suites of qpdf, pdf.js, pypdf and
pdfminer.six; :mod:`bombs` makes the rest (a 1 GiB Flate bomb, a 1 TiB ``/Length``, 10,000
pages, a truncated Flate stream, 20,000 scattered words). Every run here uses two workers, a
short timeout and a memory cap, as CI would; pytest-timeout bounds the whole.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

import bombs
import pytest
from click.testing import CliRunner
from ingest.cli import main

pytestmark = pytest.mark.slow

#: Reasons a hostile file may fail with; anything else (an internal error) is a bug.
KNOWN_REASONS = {
    "error",
    "encrypted",
    "not-a-pdf",
    "unreadable",
    "no-extractor",
    "recursion",
    "timeout",
    "memory",
    "crash",
}

LIMITS = ["--workers", "2", "--timeout", "10", "-o", "run.timeout_per_page=0.5"]


def run_json(tmp_path: Path, *args: str) -> tuple[int, dict[str, dict[str, Any]], dict[str, Any]]:
    """``ingest run ... --progress json``: exit code, each file's single outcome, summary."""
    result = CliRunner().invoke(
        main,
        [
            "run",
            *args,
            "--progress",
            "json",
            "--sink",
            f"jsonl:{tmp_path / 'out.jsonl'}",
            "-o",
            "cache.enabled=false",
        ],
        catch_exceptions=False,
    )
    outcomes: dict[str, dict[str, Any]] = {}
    summary: dict[str, Any] = {}
    for line in result.stdout.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event["event"] in {"ingested", "failed", "skipped"}:
            name = Path(event["source"]).name
            assert name not in outcomes, f"two outcomes for {name}"
            outcomes[name] = event
        elif event["event"] == "summary":
            summary = event
    return result.exit_code, outcomes, summary


def outcome(event: dict[str, Any]) -> str:
    """``ingested`` / ``skipped``, or the failure's reason."""
    return str(event["reason"]) if event["event"] == "failed" else str(event["event"])


def peak_rss() -> int:
    """This process's peak resident size in bytes (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    "extractor",
    [[], ["--extractor", "pypdf"], ["--extractor", "pdfminer"]],
    ids=["pdfium-with-fallback", "pypdf", "pdfminer"],
)
def test_the_hostile_corpus_ends_with_one_outcome_per_file(
    hostile: Path, tmp_path: Path, extractor: list[str]
) -> None:
    files = sorted(p.name for p in hostile.glob("*.pdf"))
    code, outcomes, summary = run_json(tmp_path, str(hostile), *LIMITS, *extractor)
    assert code == 1
    assert sorted(outcomes) == files
    assert summary["collected"] == len(files)
    assert summary["ingested"] + summary["failed"] + summary["skipped"] == len(files)
    reasons = {outcome(e) for e in outcomes.values()} - {"ingested", "skipped"}
    assert reasons <= KNOWN_REASONS
    # Broken is not the same as unreadable: plenty of these files still give text.
    assert summary["ingested"] > len(files) // 3
    assert outcome(outcomes["qpdf__bad1.pdf"]) == "not-a-pdf"  # five bytes, no header


@pytest.fixture(scope="module")
def bomb_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bombs")
    bombs.flate_bomb(folder / "flate-bomb.pdf")
    bombs.huge_length(folder / "huge-length.pdf")
    bombs.many_pages(folder / "many-pages.pdf")
    bombs.truncated_flate(folder / "truncated-flate.pdf")
    bombs.scattered_words(folder / "scattered-words.pdf")
    return folder


#: What each extractor makes of each bomb, with a 512 MiB cap and a 10 s floor. Several
#: outcomes are allowed where the machine's speed decides between two limits. The 10,000
#: pages go through the default extractor only: their page ranges are the executor's work,
#: the same whatever reads them, and with the slower parsers they were half the suite's time.
EXPECTED: dict[str, dict[str, set[str]]] = {
    "pdfium": {
        "flate-bomb.pdf": {"memory"},  # PDFium inflates it all: 2 GiB at its peak
        "huge-length.pdf": {"ingested"},
        "many-pages.pdf": {"ingested"},
        "truncated-flate.pdf": {"ingested"},
        "scattered-words.pdf": {"ingested"},
    },
    "pypdf": {
        "flate-bomb.pdf": {"error"},  # pypdf's own decompression limit
        "huge-length.pdf": {"error"},
        "truncated-flate.pdf": {"error", "timeout"},
        "scattered-words.pdf": {"ingested"},
    },
    "pdfminer": {
        "flate-bomb.pdf": {"memory", "timeout"},
        "huge-length.pdf": {"memory"},  # it asks for 1 TiB: MemoryError
        "truncated-flate.pdf": {"timeout"},  # minutes of byte-by-byte inflating
        "scattered-words.pdf": {"timeout"},  # quadratic layout analysis
    },
}


@pytest.mark.parametrize("extractor", sorted(EXPECTED))
def test_bombs_end_within_their_limits(bomb_folder: Path, tmp_path: Path, extractor: str) -> None:
    before = peak_rss()
    code, outcomes, _ = run_json(
        tmp_path,
        str(bomb_folder),
        *LIMITS,
        "--max-memory",
        "512MiB",
        "--extractor",
        extractor,
        "-o",
        "extract.fallback=[]",
        *([] if "many-pages.pdf" in EXPECTED[extractor] else ["-k", "not many"]),
    )
    assert code == 1
    got = {name: outcome(event) for name, event in outcomes.items()}
    assert set(got) == set(EXPECTED[extractor])
    for name, allowed in EXPECTED[extractor].items():
        assert got[name] in allowed, f"{extractor} on {name}: {outcomes[name]}"
    if "many-pages.pdf" in got:
        assert outcomes["many-pages.pdf"]["pages"] == 10_000
    # The bombs go off in the workers; the driver only ever holds finished documents.
    assert peak_rss() - before < 256 << 20
