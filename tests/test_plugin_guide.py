"""The README's "Writing a plugin" worked examples, proven: each ``example-module`` block is
installed as written (a module and an entry point in a site folder on ``sys.path``) and run
through the real ``ingest`` command with the ``ingest_cli`` fixture, as an author would test
their own plugin."""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pdfgen
import pytest
from ingest.testing import IngestCli

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"<!-- example-module: (\w+) -->\n```python\n(.*?)```", re.DOTALL)


def examples() -> dict[str, str]:
    """The README's example modules, by module name."""
    return dict(_BLOCK.findall(README.read_text("utf-8")))


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Both examples installed as distributions, with their entry points (``pagewise``,
    ``csv``), in a folder on ``sys.path``; worker processes get the path too."""
    site = tmp_path / "site"
    site.mkdir()
    for module, entry in (("ingest_pagewise", "pagewise"), ("ingest_csv", "csv")):
        (site / f"{module}.py").write_text(examples()[module], "utf-8")
        info = site / f"{module}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[ingest]\n{entry} = {module}\n", "utf-8")
    monkeypatch.syspath_prepend(str(site))
    yield site
    for module in ("ingest_pagewise", "ingest_csv"):
        sys.modules.pop(module, None)


def test_the_readme_has_both_examples() -> None:
    assert set(examples()) == {"ingest_pagewise", "ingest_csv"}


WORDS = [
    "heron", "egret", "kingfisher", "cormorant", "plover",
    "curlew", "dunlin", "godwit", "avocet", "stilt",
]


def page_text(number: int) -> str:
    """A page unlike every other (no line repeats, so no transform takes it for a header)."""
    words = " ".join(WORDS[(number * 3 + i) % len(WORDS)] for i in range(8))
    return f"marker-{number:04d} {words}\n{words[::-1]} at dawn {number}"


@pytest.fixture
def docs(ingest_cli: IngestCli) -> Path:
    folder = ingest_cli.path / "docs"
    folder.mkdir()
    pdfgen.text_pdf(folder / "long.pdf", [page_text(n) for n in range(1, 41)])
    pdfgen.text_pdf(folder / "locked.pdf", [page_text(n) for n in (41, 42)], user_password="sesame")
    return folder


def test_the_worked_extractor(installed: Path, docs: Path, ingest_cli: IngestCli) -> None:
    """Naming it loads it; long documents come in page ranges on two workers and are merged
    in order; an encrypted file fails alone, without trying the fallbacks."""
    run = ingest_cli.run("run", "docs", "--extractor", "pagewise", "--workers", "2")
    assert run.ret == 1, run.outlines + run.errlines
    run.assert_outcomes(ingested=1, failed=1)
    run.stdout.re_match_lines(
        [re.escape("FAILED docs/locked.pdf: encrypted: needs a password (--password) ")
         + re.escape("[plugin pagewise]")]
    )
    records = (ingest_cli.path / "ingest-out.jsonl").read_text("utf-8")
    markers = re.findall(r"marker-(\d{4})", records)
    assert sorted(set(markers)) == [f"{n:04d}" for n in range(1, 41)]
    assert markers == sorted(markers)


def test_the_worked_sink(installed: Path, docs: Path, ingest_cli: IngestCli) -> None:
    """Naming its scheme loads it; a rerun with ``--force`` writes no row twice."""
    args = ("run", "docs", "--sink", "csv:chunks.csv", "--password", "sesame", "--workers", "0")
    first = ingest_cli.run(*args)
    assert first.ret == 0, first.outlines + first.errlines
    first.assert_outcomes(ingested=2)
    table = ingest_cli.path / "chunks.csv"
    with table.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and set(rows[0]) == {"doc_id", "chunk_id", "page_start", "page_end", "text"}
    assert {"1", "40"} <= {row["page_start"] for row in rows} | {row["page_end"] for row in rows}
    again = ingest_cli.run(*args, "--force")
    again.assert_outcomes(ingested=2)
    with table.open(newline="", encoding="utf-8") as handle:
        assert list(csv.DictReader(handle)) == rows


def test_the_worked_sink_names_its_target_when_it_cannot_open(
    installed: Path, docs: Path, ingest_cli: IngestCli
) -> None:
    (ingest_cli.path / "taken").mkdir()
    run = ingest_cli.run("run", "docs", "--sink", "csv:taken", "--workers", "0")
    assert run.ret == 4
    run.stderr.fnmatch_lines([f"ERROR: csv sink {ingest_cli.path / 'taken'}: *Is a directory*"])
