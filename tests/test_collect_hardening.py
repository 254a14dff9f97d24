"""Inputs that used to end a run with "INTERNAL ERROR" or vanish from it: file names that are
not UTF-8, symlinks that lead back to themselves, folders that cannot be read, and names in
upper case. Each must end in one outcome, named readably."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pdfgen
import pytest
from click.testing import CliRunner, Result
from helpers import run_ingest
from hypothesis import given
from hypothesis import strategies as st
from ingest.cli import main

NOT_UTF8 = b"caf\xe9.pdf"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["run", *args], catch_exceptions=False)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    pdfgen.multipage_pdf(folder / "a.pdf", pages=2)
    return folder


def test_a_file_name_that_is_not_utf8_is_ingested_and_named_readably(
    docs: Path, tmp_path: Path
) -> None:
    """A name made of Latin-1 bytes (a file copied from an old archive) crashed the stat
    cache's query; now the file is ingested, and its name is shown with ``\\xe9``."""
    pdfgen.text_pdf(Path(os.fsdecode(bytes(docs) + b"/" + NOT_UTF8)), ["Menu of the cafe"])
    out, db = tmp_path / "out.jsonl", tmp_path / "out.db"
    first = invoke(str(docs), "--workers", "0", "--sink", f"jsonl:{out}", "--sink", f"sqlite:{db}")
    assert first.exit_code == 0, first.output
    assert "2 ingested" in first.output
    sources = {json.loads(line)["source"] for line in out.read_text("utf-8").splitlines()}
    assert sources == {str(docs / "a.pdf"), f"{docs}/caf\\xe9.pdf"}
    with sqlite3.connect(db) as connection:
        stored = {row[0] for row in connection.execute("SELECT source FROM documents")}
    assert stored == sources
    # The cache knows the file by its name too: the rerun skips both.
    again = invoke(str(docs), "--workers", "0", "--sink", f"jsonl:{out}", "--sink", f"sqlite:{db}")
    assert again.exit_code == 0, again.output
    assert "2 skipped (unchanged)" in again.output


def test_a_broken_file_with_such_a_name_fails_alone_named_readably(
    docs: Path, tmp_path: Path
) -> None:
    Path(os.fsdecode(bytes(docs) + b"/bad\xff.pdf")).write_bytes(b"%PDF-1.7\nnot really")
    result = invoke(str(docs), "--workers", "2", "--sink", f"jsonl:{tmp_path / 'o.jsonl'}")
    assert result.exit_code == 1, result.output
    [failed] = [line for line in result.output.splitlines() if line.startswith("FAILED")]
    assert failed.startswith(f"FAILED {docs}/bad\\xff.pdf: ")
    assert "1 ingested, 1 failed" in result.output


@given(st.lists(st.binary(min_size=1, max_size=12), min_size=2, max_size=6, unique=True))
def test_every_file_name_has_its_own_storable_cache_key(names: list[bytes]) -> None:
    """Any bytes may make a POSIX file name; the cache keys must be text SQLite stores
    (valid UTF-8), and two names never share one."""
    from ingest.cache.precheck import abspath

    paths = [os.fsdecode(b"/d/" + name.replace(b"/", b"_").replace(b"\0", b"_")) for name in names]
    keys = [abspath(path) for path in paths]
    for key in keys:
        key.encode("utf-8")  # raises for a lone surrogate
    assert len(set(keys)) == len(set(paths))


@given(st.binary(min_size=1, max_size=20))
def test_display_path_is_printable_and_keeps_valid_names(name: bytes) -> None:
    from ingest import display_path

    path = os.fsdecode(name)
    shown = display_path(path)
    shown.encode("utf-8")  # printable anywhere
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        assert "\\x" in shown
    else:
        assert shown == path


def test_a_symlink_to_itself_fails_alone_with_a_reason(docs: Path, tmp_path: Path) -> None:
    """``ln -s self.pdf self.pdf``: Path.resolve() raised for the loop and ended the run."""
    (docs / "self.pdf").symlink_to("self.pdf")
    result = invoke(str(docs), "--workers", "0", "--sink", f"jsonl:{tmp_path / 'o.jsonl'}")
    assert result.exit_code == 1, result.output
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED")]
    assert failed == [f"FAILED {docs / 'self.pdf'}: unreadable: OSError: symlink loop: "
                      "Too many levels of symbolic links"]
    assert "1 ingested, 1 failed" in result.output


@pytest.mark.slow  # the real ingest command in a subprocess
def test_an_unreadable_folder_counts_as_a_failure(docs: Path, tmp_path: Path) -> None:
    """Its files were silently missing from the run, which could still exit 0."""
    hidden = docs / "private"
    hidden.mkdir()
    pdfgen.multipage_pdf(hidden / "b.pdf")
    hidden.chmod(0)
    try:
        done = run_ingest(
            ["run", docs, "--workers", "0", "--sink", f"jsonl:{tmp_path / 'o.jsonl'}"],
            cwd=tmp_path,
            obey_permissions=True,
        )
    finally:
        hidden.chmod(0o755)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"FAILED {hidden}: unreadable: PermissionError: cannot read this folder" in done.stdout
    assert "1 ingested, 1 failed" in done.stdout


@pytest.mark.parametrize("names", [["A.PDF", "b.Pdf"], ["REPORT.pdf", "notes.PDF"]])
def test_name_patterns_match_case_insensitively(
    tmp_path: Path, names: list[str]
) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in names:
        pdfgen.multipage_pdf(folder / name, pages=1, title=name)
    out = tmp_path / "o.jsonl"
    result = invoke(str(folder), "--workers", "0", "--sink", f"jsonl:{out}")
    assert result.exit_code == 0, result.output
    assert "2 ingested" in result.output
    strict = invoke(
        str(folder), "--workers", "0", "--sink", f"jsonl:{out}", "-o", "collect.case_sensitive=true"
    )
    lower = sum(name.endswith(".pdf") for name in names)
    assert strict.exit_code == (0 if lower else 5), strict.output
    assert f"{lower} ingested" in strict.output or f"{lower} skipped" in strict.output


@given(
    st.text(alphabet="abcXYZ", min_size=1, max_size=8),
    st.sampled_from([".pdf", ".PDF", ".Pdf", ".pDf"]),
)
def test_any_case_of_the_suffix_matches_the_default_pattern(stem: str, suffix: str) -> None:
    from ingest_plugins.collect import matches

    assert matches(stem + suffix, ["*.pdf"])
    assert matches(stem + suffix, ["*.pdf"], case_sensitive=True) == (suffix == ".pdf")
