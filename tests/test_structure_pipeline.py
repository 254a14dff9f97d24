"""Structure end to end: real PDFs through ``ingest run``, real SQLite files.

The PDFs come from ``structgen`` (known headings, lists and tables) and fpdf2; the corpus
and the hostile files from ../shared when present.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fpdf import FPDF
from helpers import Collect
from ingest.cli import main
from ingest_plugins.pdfium_extractor import extract_with_pdfium
from ingest_plugins.structure.settings import StructureSettings
from structgen import Truth, structured_pdf

Pipeline = Callable[..., Any]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Truth]:
    path = tmp_path_factory.mktemp("structure") / "report.pdf"
    return path, structured_pdf(path, seed=3, columns=1, outline=False)


def test_markdown_chunks_carry_headings_and_the_store_gets_markdown_and_tables(
    report: tuple[Path, Truth], ingest_pipeline: Pipeline, tmp_path: Path
) -> None:
    path, truth = report
    database = tmp_path / "out.db"
    run = ingest_pipeline(
        [path], format="markdown", sinks=[f"jsonl:{tmp_path / 'o.jsonl'}", f"sqlite:{database}"]
    )
    assert not run.failures
    records = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    title = truth.headings[0][0]
    assert records[0]["text"].startswith(f"# {title}")
    assert all(record["headings"][:1] == [title] for record in records)
    joined = "\n".join(record["text"] for record in records)
    for text, level in truth.headings:
        assert f"{'#' * level} {text}" in joined
    with sqlite3.connect(database) as connection:
        markdown = [row[0] for row in connection.execute("SELECT markdown FROM pages")]
        assert all(text and text.strip() for text in markdown)
        tables = connection.execute(
            "SELECT page, n_rows, n_cols, cells, ruled FROM tables ORDER BY idx"
        ).fetchall()
        headings = [json.loads(row[0]) for row in connection.execute("SELECT headings FROM chunks")]
    assert [json.loads(cells) for _, _, _, cells, _ in tables] == [t.rows for t in truth.tables]
    assert [(page, rows, cols) for page, rows, cols, _, _ in tables] == [
        (t.page, len(t.rows), len(t.rows[0])) for t in truth.tables
    ]
    assert {ruled for *_, ruled in tables} == {0, 1}
    assert all(trail and trail[0] == title for trail in headings)
    # JSONL: the same table records, each on the first chunk that reaches its page.
    carried = [(r, t) for r in records for t in r.get("tables", [])]
    assert [t["cells"] for _, t in carried] == [t.rows for t in truth.tables]
    assert all(r["page_start"] <= t["page"] <= r["page_end"] for r, t in carried)


def test_rerun_replaces_the_tables_of_a_document(
    report: tuple[Path, Truth], ingest_pipeline: Pipeline, tmp_path: Path
) -> None:
    path, truth = report
    database = tmp_path / "out.db"
    for _ in range(2):
        ingest_pipeline([path], format="markdown", sinks=[f"sqlite:{database}"])
    with sqlite3.connect(database) as connection:
        (count,) = connection.execute("SELECT count(*) FROM tables").fetchone()
    assert count == len(truth.tables)


def test_section_chunks_follow_the_sections(
    report: tuple[Path, Truth], ingest_pipeline: Pipeline
) -> None:
    path, truth = report
    collect = Collect()
    ingest_pipeline([path], format="markdown", chunk={"by": "section", "size": 400,
                                                      "overlap": 0}, plugins=[collect])  # fmt: skip
    (document,) = collect.documents
    leading: set[str] = set()
    for chunk in document.chunks:
        assert chunk.headings, chunk.text
        body = False
        for line in chunk.text.split("\n"):
            if line.startswith("#"):
                # A heading opens its chunk, or follows the headings that open it.
                assert not body, chunk.text
                leading.add(line)
            elif line.strip():
                body = True
    assert leading == {f"{'#' * level} {text}" for text, level in truth.headings}


def test_plain_text_is_the_same_with_structure(
    report: tuple[Path, Truth], ingest_pipeline: Pipeline
) -> None:
    """Asking for structure adds to the records; the text and its chunks do not change."""
    path, _ = report
    plain = ingest_pipeline([path])
    structured = ingest_pipeline([path], structure={"enabled": True})
    assert [r["text"] for r in plain.records] == [r["text"] for r in structured.records]
    assert all(r["headings"] == [] for r in plain.records)
    assert any(r["headings"] for r in structured.records)


@pytest.mark.slow  # the corpus or the hostile files, end to end
def test_pdfium_text_is_identical_with_and_without_structure(corpus: Path) -> None:
    checked = 0
    for path in sorted(corpus.glob("*.pdf"))[:30]:
        try:
            _, plain = extract_with_pdfium(path, password=None, min_chars=16)
        except Exception:  # files PDFium refuses are the fallback's business
            continue
        _, structured = extract_with_pdfium(
            path, password=None, min_chars=16, structure=StructureSettings()
        )
        assert [p.text for p in plain] == [p.text for p in structured], path.name
        assert all(p.blocks == [] for p in plain)
        checked += 1
    assert checked >= 20


def long_pdf(path: Path, pages: int) -> list[str]:
    pdf = FPDF()
    titles = []
    for number in range(1, pages + 1):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 16)
        title = f"{number} Chapter {number}"
        pdf.cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        pdf.multi_cell(0, 6, f"Text of chapter {number}. " * 30)
        titles.append(title)
    pdf.output(str(path))
    return titles


def test_split_documents_get_the_same_structure_as_whole_ones(
    tmp_path: Path, ingest_pipeline: Pipeline
) -> None:
    """Large documents are read in page ranges by several workers; headings are decided on
    the merged document, so the split changes nothing."""
    path = tmp_path / "long.pdf"
    titles = long_pdf(path, 40)
    whole = ingest_pipeline([path], format="markdown")
    collect = Collect()
    split = ingest_pipeline([path], format="markdown", run={"workers": 2}, plugins=[collect])
    assert not whole.failures and not split.failures
    assert [r["text"] for r in whole.records] == [r["text"] for r in split.records]
    (document,) = collect.documents
    assert [page.markdown.split("\n")[0] for page in document.pages] == [  # type: ignore[union-attr]
        f"# {title}" for title in titles
    ]


@pytest.mark.parametrize(
    ("overrides", "wanted"),
    [
        (["-o", "transforms=[normalize,chunk]", "--format", "markdown"], "format: markdown"),
        (["-o", "transforms=[chunk,structure]", "-o", "chunk.by=section"], "chunk.by: section"),
    ],
)
def test_a_chain_that_cannot_make_the_structure_is_refused(
    report: tuple[Path, Truth], tmp_path: Path, overrides: list[str], wanted: str
) -> None:
    path, _ = report
    result = CliRunner().invoke(
        main, ["run", str(path), "--sink", f"jsonl:{tmp_path / 'o.jsonl'}", *overrides]
    )
    assert result.exit_code == 4
    for word in (wanted, "'structure'", "transforms"):
        assert word in result.output


def test_an_old_database_gets_the_new_columns(tmp_path: Path, report: tuple[Path, Truth],
                                               ingest_pipeline: Pipeline) -> None:  # fmt: skip
    database = tmp_path / "old.db"
    with sqlite3.connect(database) as connection:
        connection.executescript(
            """
            CREATE TABLE documents (doc_id TEXT PRIMARY KEY, source TEXT NOT NULL,
                content_id TEXT NOT NULL, size INTEGER NOT NULL, media_type TEXT NOT NULL,
                title TEXT, author TEXT, subject TEXT, creator TEXT, producer TEXT,
                created TEXT, modified TEXT, page_count INTEGER NOT NULL,
                encrypted INTEGER NOT NULL, metadata TEXT NOT NULL,
                chunk_count INTEGER NOT NULL, ingested_at TEXT NOT NULL);
            CREATE TABLE pages (doc_id TEXT NOT NULL REFERENCES documents(doc_id)
                ON DELETE CASCADE, number INTEGER NOT NULL, text TEXT NOT NULL,
                extractor TEXT NOT NULL, needs_ocr INTEGER NOT NULL, provenance TEXT NOT NULL,
                PRIMARY KEY (doc_id, number));
            PRAGMA user_version = 1;
            """
        )
    path, _ = report
    run = ingest_pipeline([path], format="markdown", sinks=[f"sqlite:{database}"])
    assert not run.failures
    with sqlite3.connect(database) as connection:
        (filled,) = connection.execute(
            "SELECT count(*) FROM pages WHERE markdown IS NOT NULL"
        ).fetchone()
    assert filled >= 1


@pytest.mark.slow  # the corpus or the hostile files, end to end
def test_hostile_files_end_in_one_outcome_each_with_structure(
    hostile: Path, ingest_pipeline: Pipeline
) -> None:
    files = sorted(hostile.glob("*.pdf"))
    collect = Collect()
    run = ingest_pipeline(files, format="markdown", chunk={"by": "section"}, plugins=[collect],
                          run={"timeout": 20})  # fmt: skip
    assert len(collect.documents) + len(run.failures) == len(files)
    assert len(collect.documents) > len(files) // 3
    internal = [f for f in run.failures if f.reason not in {"error", "encrypted", "not-a-pdf",
                                                            "unreadable", "timeout", "memory",
                                                            "crash", "recursion"}]  # fmt: skip
    assert not internal
