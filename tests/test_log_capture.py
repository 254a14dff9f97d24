"""One log level with a documented precedence, a bad ``LOG_LEVEL`` reported once, and the
log records of libraries captured per document instead of flooding the terminal."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pdfgen
import pytest
from click.testing import CliRunner
from helpers import run_ingest
from ingest.cli import main

pytestmark = pytest.mark.slow

CHATTY = "plugins.chatty"
CHAIN = f"transforms=[normalize,{CHATTY},chunk]"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    return pdfgen.multipage_pdf(tmp_path / "a.pdf", pages=1)


def lowest_level_shown(stderr: str) -> str | None:
    shown = [level for level in LEVELS if f"chatty says {level}" in stderr]
    return shown[0] if shown else None


@pytest.mark.parametrize(
    ("environ", "file_level", "args", "expected"),
    [
        ({"LOG_LEVEL": "error"}, None, [], "ERROR"),
        ({"LOG_LEVEL": "error"}, "info", [], "INFO"),
        ({"LOG_LEVEL": "error", "INGEST_LOG_LEVEL": "warning"}, "info", [], "WARNING"),
        ({"INGEST_LOG_LEVEL": "error"}, "info", ["--log-level", "debug"], "DEBUG"),
        ({}, None, ["--log-level", "debug", "-o", "log_level=error"], "ERROR"),
        ({}, None, ["-v"], "INFO"),
        ({}, "error", ["-v"], "ERROR"),
        ({}, None, [], "WARNING"),
    ],
)
def test_one_log_level_with_a_documented_precedence(
    pdf: Path,
    tmp_path: Path,
    environ: dict[str, str],
    file_level: str | None,
    args: list[str],
    expected: str,
) -> None:
    """``--log-level`` > ``INGEST_LOG_LEVEL`` > ``log_level`` in the config file >
    ``LOG_LEVEL`` > ``-v``/``-q`` (``-o log_level=`` is the top layer, as for any setting)."""
    config = tmp_path / "ingest.yaml"
    config.write_text(f"log_level: {file_level}\n" if file_level else "{}\n", "utf-8")
    result = CliRunner().invoke(
        main,
        ["run", str(pdf), "--workers", "0", "-c", str(config), "-p", CHATTY, *args],
        env=environ,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert lowest_level_shown(result.stderr) == expected, result.stderr


def test_the_precedence_is_documented() -> None:
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text("utf-8").split())
    assert (
        "`--log-level` (or `-o log_level=...`) > `INGEST_LOG_LEVEL` > `log_level` in the "
        "config file > `LOG_LEVEL` > `-v`/`-q`" in readme
    )


def test_a_bad_log_level_is_reported_once(pdf: Path, tmp_path: Path) -> None:
    """``LOG_LEVEL=bogus`` printed its warning three times: the driver's and each worker's."""
    pdfgen.multipage_pdf(tmp_path / "b.pdf", pages=1)
    done = run_ingest(
        ["run", tmp_path, "--workers", "2", "-q", "--sink", f"jsonl:{tmp_path / 'o.jsonl'}"],
        cwd=tmp_path,
        env={"LOG_LEVEL": "bogus"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("LOG_LEVEL='bogus' is not a log level; using INFO") == 1


def test_an_invalid_ingest_log_level_is_a_configuration_error(pdf: Path) -> None:
    result = CliRunner().invoke(
        main, ["run", str(pdf)], env={"INGEST_LOG_LEVEL": "loud"}, catch_exceptions=False
    )
    assert result.exit_code == 4
    assert "INGEST_LOG_LEVEL: log_level: " in result.stderr


@pytest.fixture
def chatty_docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    pdfgen.multipage_pdf(folder / "good.pdf", pages=2)
    pdfgen.multipage_pdf(folder / "will-fail.pdf", pages=3)
    return folder


def chatty_run(docs: Path, tmp_path: Path, *args: str) -> tuple[int, list[str], str]:
    done = run_ingest(
        [
            "run", docs, "-p", CHATTY, "-o", CHAIN, "--workers", "2", "--progress", "log",
            "--sink", f"jsonl:{tmp_path / 'o.jsonl'}", *args,
        ],
        cwd=tmp_path,
    )
    return done.returncode, done.stdout.splitlines(), done.stderr


def test_library_records_are_captured_per_document(chatty_docs: Path, tmp_path: Path) -> None:
    """Worker processes forwarded every library record to the terminal, even with ``-q``."""
    code, out, err = chatty_run(chatty_docs, tmp_path)
    assert code == 1
    assert "chattylib" not in err and "FontBBox" not in err
    chatty = Path(__file__).parent / "plugins" / "chatty.py"
    raised = next(
        n for n, line in enumerate(chatty.read_text("utf-8").splitlines(), 1) if "raise" in line
    )
    failed = out.index(
        f"FAILED {chatty_docs / 'will-fail.pdf'}: error: ValueError: chatty gave up "
        f"[plugin {CHATTY}] (at {chatty}:{raised})"
    )
    assert out[failed + 1 : failed + 4] == [
        "    captured library log:",
        "      WARNING chattylib.parser: fontTools is required to fully parse will-fail.pdf",
        "      WARNING chattylib.parser: Could not get FontBBox (x3)",
    ]
    # The other document's records are counted in one line, not shown.
    assert "4 library log records captured (chattylib: 4); -v shows them" in out
    assert "good.pdf" not in "\n".join(out)


def test_verbose_shows_every_documents_records(chatty_docs: Path, tmp_path: Path) -> None:
    code, out, _ = chatty_run(chatty_docs, tmp_path, "-v")
    assert code == 1
    section = out.index(next(line for line in out if " captured library log " in line))
    assert out[section + 1 : section + 4] == [
        f"{chatty_docs / 'good.pdf'}:",
        "    WARNING chattylib.parser: fontTools is required to fully parse good.pdf",
        "    WARNING chattylib.parser: Could not get FontBBox (x3)",
    ]
    assert not any("library log records captured" in line for line in out)


def test_quiet_prints_the_failures_and_the_summary_only(
    chatty_docs: Path, tmp_path: Path
) -> None:
    code, out, err = chatty_run(chatty_docs, tmp_path, "-q")
    assert code == 1
    # Only ingest's own errors (the plugin's ERROR line) may show: no progress, no library.
    assert [line for line in err.splitlines() if "chatty says" not in line] == []
    assert len(out) == 2
    assert out[0] == (
        f"FAILED {chatty_docs / 'will-fail.pdf'}: error: ValueError: chatty gave up "
        f"[plugin {CHATTY}]"
    )
    assert re.fullmatch(r"1 ingested, 1 failed in [\d.]+s \(\d+ pages/s\)", out[1])


def test_a_real_parsers_warnings_are_captured(tmp_path: Path) -> None:
    """pypdf warns about a PDF whose ``startxref`` is wrong, then reads it anyway."""
    pdf = pdfgen.multipage_pdf(tmp_path / "moved.pdf", pages=2)
    data = pdf.read_bytes()
    found = re.search(rb"startxref\s+(\d+)", data)
    assert found is not None
    pdf.write_bytes(data[: found.start(1)] + str(int(found[1]) + 7).encode() + data[found.end(1) :])
    out = f"jsonl:{tmp_path / 'o.jsonl'}"
    args = ["run", pdf, "--extractor", "pypdf", "--workers", "1", "--sink", out]
    args += ["--progress", "log"]
    quiet = run_ingest(args, cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "startxref" not in quiet.stderr
    assert re.search(r"^\d+ library log records captured \(pypdf: \d+\); -v shows them$",
                     quiet.stdout, re.MULTILINE), quiet.stdout
    shutil.rmtree(tmp_path / ".ingest_cache", ignore_errors=True)
    verbose = run_ingest([*args, "-v", "--force"], cwd=tmp_path)
    assert "    WARNING pypdf._reader: incorrect startxref pointer" in verbose.stdout
