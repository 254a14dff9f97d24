"""When a sink or the cache cannot write: a full disk (here the limit on file size,
``ulimit -f``, which fails writes the same way), a read-only file or folder. One clear line
naming what could not write and why, a documented exit code, what was committed kept, the
cache consistent, and no files left behind by an open that failed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pdfgen
import pytest
from click.testing import CliRunner
from helpers import run_ingest
from ingest.cli import main

pytestmark = pytest.mark.slow

DOCUMENTS = 8


def heavy_pdf(path: Path, number: int) -> Path:
    """About 50 KB of text: 20 pages of 40 distinct lines."""
    pages = [
        "\n".join(
            f"Document {number} page {page} line {line}: herons wade in the shallow water."
            for line in range(40)
        )
        for page in range(20)
    ]
    return pdfgen.text_pdf(path, pages, title=f"Heavy {number}")


@pytest.fixture(scope="module")
def heavy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("heavy")
    for number in range(DOCUMENTS):
        heavy_pdf(folder / f"heavy-{number}.pdf", number)
    return folder


def sink_documents(kind: str, target: Path) -> tuple[int, int]:
    """(documents, records) the sink holds; records counted with duplicates."""
    if kind == "jsonl":
        records = [json.loads(line) for line in target.read_text("utf-8").splitlines()]
        ids = [record["chunk_id"] for record in records]
        assert len(ids) == len(set(ids)), "a record was written twice"
        return len({record["doc_id"] for record in records}), len(records)
    with sqlite3.connect(target) as connection:
        (documents,) = connection.execute("SELECT COUNT(*) FROM documents").fetchone()
        (chunks,) = connection.execute("SELECT COUNT(*) FROM chunks").fetchone()
    return documents, chunks


@pytest.mark.parametrize(("kind", "limit"), [("jsonl", 200_000), ("sqlite", 1_500_000)])
def test_a_full_disk_stops_the_run_with_one_clear_error(
    heavy: Path, tmp_path: Path, kind: str, limit: int
) -> None:
    """``(ulimit -f 1500; ingest run corpus --sink sqlite:c.db)`` printed "INTERNAL ERROR ...
    please report" with the same traceback twice."""
    target = tmp_path / f"out.{kind}"
    args = ["run", heavy, "--workers", "0", "--sink", f"{kind}:{target}", "-o", "run.batch_size=1"]
    done = run_ingest(args, cwd=tmp_path, max_file_size=limit)
    assert done.returncode == 6, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "INTERNAL ERROR" not in done.stderr
    [error] = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    assert error.startswith(f"ERROR: sink {kind}:{target} ({target}) could not write a batch")
    assert "file too large: the limit on file size (ulimit -f) is" in error
    summary = done.stdout.strip().splitlines()[-1]
    assert "(stopped early)" in summary
    ingested = int(summary.split(" ingested")[0].split()[-1])
    assert 0 < ingested < DOCUMENTS, done.stdout
    # What was committed is in the sink, and only that.
    assert sink_documents(kind, target)[0] == ingested
    # The cache is consistent with the sink: a rerun with room skips exactly what was
    # written and writes the rest, each record once.
    again = run_ingest(args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{DOCUMENTS - ingested} ingested, {ingested} skipped (unchanged)" in again.stdout
    assert sink_documents(kind, target)[0] == DOCUMENTS


def test_the_exit_code_of_a_write_error_is_documented() -> None:
    from ingest import ExitCode

    readme = (Path(__file__).parents[1] / "README.md").read_text("utf-8")
    assert ExitCode.WRITE_ERROR == 6
    assert "`6` a sink or the cache could not write" in readme


def run_once(pdf: Path, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    done = run_ingest(
        ["run", pdf, "--workers", "0", *args], cwd=tmp_path, obey_permissions=True
    )
    return done.returncode, done.stdout, done.stderr


def test_a_read_only_cache_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    """It used to say the cache "is damaged ... starting an empty one", then fail."""
    pdf = pdfgen.multipage_pdf(tmp_path / "a.pdf")
    cache = tmp_path / "cache"
    out = f"jsonl:{tmp_path / 'o.jsonl'}"
    code, _, err = run_once(pdf, tmp_path, "--sink", out, "-o", f"cache.dir={cache}")
    assert code == 0, err
    (cache / "cache.db").chmod(0o444)
    before = sorted(p.name for p in cache.iterdir())
    code, _, err = run_once(pdf, tmp_path, "--sink", out, "-o", f"cache.dir={cache}", "--force")
    assert code == 4, err
    assert "damaged" not in err
    assert f"ERROR: the cache '{cache / 'cache.db'}' is read-only" in err
    assert "set cache.dir to a writable folder or cache.enabled to false" in err
    assert sorted(p.name for p in cache.iterdir()) == before  # no -wal, no -shm
    cache.chmod(0o555)  # a read-only folder says the same
    try:
        code, _, err = run_once(pdf, tmp_path, "--sink", out, "-o", f"cache.dir={cache}")
    finally:
        cache.chmod(0o755)
    assert code == 4 and "is read-only" in err and "damaged" not in err


def test_a_read_only_sqlite_sink_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    pdf = pdfgen.multipage_pdf(tmp_path / "a.pdf")
    out = tmp_path / "out"
    out.mkdir()
    db = out / "corpus.db"
    code, _, err = run_once(pdf, tmp_path, "--sink", f"sqlite:{db}")
    assert code == 0, err
    db.chmod(0o444)
    code, _, err = run_once(pdf, tmp_path, "--sink", f"sqlite:{db}", "--force")
    assert code == 4, err
    assert f"ERROR: sqlite sink '{db}': cannot open or create the database: read-only:" in err
    assert sorted(p.name for p in out.iterdir()) == ["corpus.db"]  # no -wal, no -shm


def test_a_read_only_folder_gets_no_jsonl_files(tmp_path: Path) -> None:
    pdf = pdfgen.multipage_pdf(tmp_path / "a.pdf")
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, _, err = run_once(pdf, tmp_path, "--sink", f"jsonl:{out / 'o.jsonl'}")
    finally:
        out.chmod(0o755)
    assert code == 4, err
    assert f"ERROR: jsonl sink '{out / 'o.jsonl'}': cannot open: read-only: " in err
    assert list(out.iterdir()) == []


def test_a_sink_that_refuses_to_open_leaves_no_marker_behind(tmp_path: Path) -> None:
    """A target that is not a file ingest wrote is refused; the refused open must not leave
    the ``.commit`` marker it created."""
    pdf = pdfgen.multipage_pdf(tmp_path / "a.pdf")
    target = tmp_path / "notes.jsonl"
    target.write_text("my own notes\n", "utf-8")
    result = CliRunner().invoke(
        main, ["run", str(pdf), "--workers", "0", "--sink", f"jsonl:{target}"]
    )
    assert result.exit_code == 4, result.output
    assert "is not JSON" in result.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".ingest_cache") == [
        "a.pdf",
        "notes.jsonl",
    ]
    assert target.read_text("utf-8") == "my own notes\n"
