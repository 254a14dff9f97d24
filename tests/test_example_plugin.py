"""The README's "Writing a plugin" section, proven.

The example distribution in ``plugins/examples/ingest_text`` is installed with pip into a
temporary site directory, exactly as the section tells a newcomer to install theirs, and the
real ``ingest`` command is run in subprocesses that see it through ``PYTHONPATH``: listed by
``ingest plugins``, used by ``ingest run -p text`` in-process and in worker processes, ignored
unless named, configured through its own settings section, and tested by its own test suite
with the ``ingest_pipeline`` fixture.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO / "plugins" / "examples" / "ingest_text"
PLUGIN_META: dict[str, Any] = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text("utf-8"))[
    "project"
]
PLUGIN_HOOKS = [
    "ingest_collect_file",
    "ingest_extract",
    "ingest_extract_claim",
    "ingest_register_settings",
    "ingest_sink_open",
]

# Installing and a dozen interpreter starts (two of them spawn worker pools) take some 20 s;
# the margin is for a loaded CI machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

NOTES = "Herons wade in shallow water.\n\fEgrets roost in colonies.\n"
GUIDE = "# Field guide\n\nKingfishers dive for fish.\n"
REPORT = "Cormorants dry their wings in the sun."
LATIN = "Caf\u00e9 cr\u00e8me, na\u00efve fa\u00e7ade."


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin, installed by pip into a fresh site directory (no network, no index)."""
    if importlib.util.find_spec("hatchling") is None:
        pytest.fail("the example plugin builds with hatchling: pip install -e '.[test]'")
    # Build from a copy: pip builds in the source tree, which others may be editing.
    source = tmp_path_factory.mktemp("src") / "ingest_text"
    shutil.copytree(PLUGIN_DIR, source, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path_factory.mktemp("site")
    completed = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
            "--no-index", "--disable-pip-version-check", "--quiet",
            "--target", str(target), str(source),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return target


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a .txt (two pages), a .md, a PDF, and a .csv that nobody claims."""
    folder = tmp_path_factory.mktemp("docs")
    (folder / "notes.txt").write_text(NOTES, encoding="utf-8")
    (folder / "guide.md").write_text(GUIDE, encoding="utf-8")
    (folder / "table.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(text=REPORT)
    pdf.output(str(folder / "report.pdf"))
    return folder


def ingest(
    *args: str, site: Path, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``ingest`` console script with the plugin's site directory on the path.

    ``PYTHONPATH`` (not ``sys.path`` tricks) is what lets ``importlib.metadata`` find the
    entry point, and spawned worker processes inherit it.
    """
    script = Path(sys.executable).parent / "ingest"
    command = [str(script)] if script.exists() else [
        sys.executable, "-c", "from ingest.cli import main; main()"
    ]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(site), environ.get("PYTHONPATH", "")) if p
    )
    environ.update(env or {})
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_into(
    tmp_path: Path, site: Path, *args: str, env: Mapping[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, list[dict[str, Any]]]]:
    """``ingest run ARGS --sink jsonl:OUT`` in a folder of its own (so no run sees another's
    cache); returns the process and the records by source file name."""
    cwd = tmp_path / f"run-{len(list(tmp_path.glob('run-*')))}"
    out = cwd / "out.jsonl"
    completed = ingest(
        "run", *args, "--sink", f"jsonl:{out}", "--progress", "none", site=site, cwd=cwd, env=env
    )
    records: dict[str, list[dict[str, Any]]] = {}
    if out.exists():
        for line in out.read_text("utf-8").splitlines():
            record = json.loads(line)
            records.setdefault(Path(record["source"]).name, []).append(record)
    return completed, records


def text_of(records: list[dict[str, Any]]) -> str:
    return " ".join(record["text"] for record in records)


def summary(completed: subprocess.CompletedProcess[str]) -> str:
    return completed.stdout + completed.stderr


# --------------------------------------------------------------------------------------------
# Listed
# --------------------------------------------------------------------------------------------


def test_ingest_plugins_lists_the_installed_plugin_as_not_loaded(
    site: Path, tmp_path: Path
) -> None:
    completed = ingest("plugins", site=site, cwd=tmp_path)

    assert completed.returncode == 0, summary(completed)
    lines = completed.stdout.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("text"))
    assert lines[index] == (
        f"text: ingest_text [ingest-text {PLUGIN_META['version']}] available"
    )
    assert lines[index + 1].split(": ", 1)[1].split(", ") == PLUGIN_HOOKS


def test_ingest_plugins_json_shows_its_hooks_and_loaded_with_p(site: Path, tmp_path: Path) -> None:
    completed = ingest("plugins", "--json", "-p", "text", site=site, cwd=tmp_path)

    assert completed.returncode == 0, summary(completed)
    [info] = [i for i in json.loads(completed.stdout) if i["name"] == "text"]
    assert info == {
        "name": "text",
        "module": "ingest_text",
        "distribution": PLUGIN_META["name"],
        "version": PLUGIN_META["version"],
        "loaded": True,
        "state": "loaded",
        "builtin": False,
        "hooks": PLUGIN_HOOKS,
        "error": None,
    }


# --------------------------------------------------------------------------------------------
# Used, and only when named
# --------------------------------------------------------------------------------------------


def test_run_with_p_text_ingests_text_markdown_and_pdf(
    site: Path, docs: Path, tmp_path: Path
) -> None:
    completed, records = run_into(tmp_path, site, str(docs), "-p", "text", "--workers", "0")

    assert completed.returncode == 0, summary(completed)
    assert re.search(r"\b3 ingested in\b", completed.stdout), completed.stdout
    assert "failed" not in completed.stdout
    assert set(records) == {"notes.txt", "guide.md", "report.pdf"}
    assert {r["source"] for r in records["notes.txt"]} == {str(docs / "notes.txt")}
    assert {r["source"] for r in records["guide.md"]} == {str(docs / "guide.md")}
    assert "Herons wade" in text_of(records["notes.txt"])
    assert "Egrets roost" in text_of(records["notes.txt"])
    assert "Kingfishers dive" in text_of(records["guide.md"])
    assert "Cormorants" in text_of(records["report.pdf"])
    assert records["notes.txt"][0]["metadata"]["page_count"] == 2
    assert records["guide.md"][0]["metadata"]["title"] == "Field guide"


def test_worker_processes_rebuild_the_plugin_from_its_name(
    site: Path, docs: Path, tmp_path: Path
) -> None:
    """Workers are spawned: they find the plugin only by loading the name ``text`` again."""
    inline, inline_records = run_into(tmp_path, site, str(docs), "-p", "text", "--workers", "0")
    pooled, pooled_records = run_into(tmp_path, site, str(docs), "-p", "text", "--workers", "2")

    assert inline.returncode == 0, summary(inline)
    assert pooled.returncode == 0, summary(pooled)
    assert re.search(r"\b3 ingested in\b", pooled.stdout), pooled.stdout
    # Ids come from content: another worker count gives the very same records.
    assert pooled_records == inline_records


@pytest.mark.parametrize(
    ("args", "env"),
    [
        pytest.param((), {}, id="not-named"),
        pytest.param(("-p", "no:text"), {"INGEST_PLUGINS": "text"}, id="blocked"),
    ],
)
def test_installed_but_not_named_the_plugin_changes_nothing(
    site: Path, docs: Path, tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    completed, records = run_into(tmp_path, site, str(docs), *args, "--workers", "0", env=env)

    assert completed.returncode == 0, summary(completed)
    assert re.search(r"\b1 ingested in\b", completed.stdout), completed.stdout
    assert set(records) == {"report.pdf"}


def test_collect_only_names_the_text_extractor(site: Path, docs: Path, tmp_path: Path) -> None:
    completed = ingest(
        "run", str(docs), "-p", "text", "--collect-only", "--progress", "none",
        site=site, cwd=tmp_path,
    )

    assert completed.returncode == 0, summary(completed)
    assert f"{docs / 'notes.txt'}  [text]" in completed.stdout
    assert f"{docs / 'guide.md'}  [text]" in completed.stdout
    assert f"{docs / 'report.pdf'}  [pdfium]" in completed.stdout


def test_the_text_sink_mirrors_the_files_and_prunes(site: Path, docs: Path, tmp_path: Path) -> None:
    """``--sink text:FOLDER``: a file per document; a deleted file's goes with --prune."""
    folder = tmp_path / "docs"
    shutil.copytree(docs, folder)
    args = ("run", str(folder), "-p", "text", "--sink", "text:plain", "--workers", "0")
    first = ingest(*args, site=site, cwd=tmp_path / "run")
    assert first.returncode == 0, summary(first)
    plain = tmp_path / "run" / "plain"
    texts = {path.read_text("utf-8") for path in plain.glob("*.txt")}
    assert len(texts) == 3 and any(REPORT in text for text in texts)
    assert any("Herons" in text and "\fEgrets" in text for text in texts)  # two pages

    (folder / "notes.txt").unlink()
    pruned = ingest(*args, "--prune", site=site, cwd=tmp_path / "run")
    assert pruned.returncode == 0, summary(pruned)
    assert re.search(r"\b0 ingested, 2 skipped \(unchanged\), 1 removed in\b", pruned.stdout)
    texts = {path.read_text("utf-8") for path in plain.glob("*.txt")}
    assert len(texts) == 2 and not any("Herons" in text for text in texts)


# --------------------------------------------------------------------------------------------
# Configured through its own settings section
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def latin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one Latin-1 text file (not valid UTF-8)."""
    folder = tmp_path_factory.mktemp("latin")
    (folder / "menu.txt").write_bytes(LATIN.encode("latin-1"))
    return folder


def test_undecodable_file_fails_alone_naming_the_setting(
    site: Path, latin: Path, docs: Path, tmp_path: Path
) -> None:
    completed, records = run_into(
        tmp_path, site, str(docs), str(latin), "-p", "text", "--workers", "0"
    )

    assert completed.returncode == 1, summary(completed)
    assert re.search(r"\b3 ingested, 1 failed in\b", completed.stdout), completed.stdout
    assert "menu.txt: unreadable:" in completed.stdout
    assert "text.encoding" in completed.stdout
    assert "menu.txt" not in records


@pytest.mark.parametrize(
    ("args", "env"),
    [
        pytest.param(("-o", "text.encoding=latin-1", "--workers", "0"), {}, id="override"),
        # In worker processes too: the settings, with the plugin's section, are pickled there.
        pytest.param(("--workers", "2"), {"INGEST_TEXT__ENCODING": "latin-1"}, id="env-workers"),
    ],
)
def test_encoding_setting_reads_latin1(
    site: Path, latin: Path, tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    completed, records = run_into(tmp_path, site, str(latin), "-p", "text", *args, env=env)

    assert completed.returncode == 0, summary(completed)
    assert LATIN in text_of(records["menu.txt"])


def test_unknown_encoding_is_a_usage_error(site: Path, latin: Path, tmp_path: Path) -> None:
    completed, _ = run_into(
        tmp_path, site, str(latin), "-p", "text", "-o", "text.encoding=klingon", "--workers", "0"
    )

    assert completed.returncode == 4, summary(completed)
    assert "unknown encoding 'klingon'" in completed.stderr
    assert "Traceback" not in completed.stderr


# --------------------------------------------------------------------------------------------
# Tested with the ingest_pipeline fixture, as the section shows
# --------------------------------------------------------------------------------------------


def test_the_plugins_own_tests_pass_against_the_installed_plugin(
    site: Path, tmp_path: Path
) -> None:
    tests = tmp_path / "ingest_text"
    shutil.copytree(PLUGIN_DIR, tests, ignore=shutil.ignore_patterns("__pycache__"))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    environ["PYTHONPATH"] = str(site)

    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tests,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert re.search(r"\b12 passed\b", completed.stdout), completed.stdout
