"""What a plugin author meets: naming a component loads its plugin, errors say which installed
plugins are not loaded, ``-p`` takes a top-level module, import failures say where, objects
get readable labels, modules work with worker processes, and every settings section refuses
unknown keys."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import ingest
import pdfgen
import pytest
from click.testing import CliRunner, Result
from ingest.cli import main
from ingest.errors import PluginError
from ingest.manager import build_manager

CSV_SINK = '''
"""A CSV sink: one row per chunk (doc_id, chunk_id, text)."""
import csv
from pathlib import Path
from ingest import hookimpl

class CsvSink:
    def __init__(self, path):
        self.handle = open(path, "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.handle)

    @hookimpl
    def ingest_sink(self, batch):
        for document in batch:
            for record in document.chunk_records():
                self.writer.writerow([record["doc_id"], record["chunk_id"], record["text"]])

    @hookimpl
    def ingest_session_finish(self):
        self.handle.close()

@hookimpl
def ingest_sink_open(scheme, target, rootdir):
    if scheme == "csv":
        return CsvSink(rootdir / target)
'''

SHOUT = '''
from ingest import hookimpl

@hookimpl
def ingest_transform(document, step):
    if step == "shout":
        for page in document.pages:
            page.text = page.text.upper()
'''

BROKEN = '''
import os
value = os.environ["NO_SUCH_VARIABLE_FOR_INGEST_TESTS"]
'''

LOOSE = '''
from pydantic import BaseModel
from ingest import hookimpl

class Inner(BaseModel):
    depth: int = 1

class LooseSettings(BaseModel):
    """A section whose model lets unknown keys through (pydantic's default)."""
    level: int = 1
    inner: Inner = Inner()

@hookimpl
def ingest_register_settings(register):
    register("loose", LooseSettings)
'''


def install(site: Path, name: str, module: str, source: str) -> None:
    """Install a distribution for real: the module and a dist-info with its entry point."""
    (site / f"{module}.py").write_text(textwrap.dedent(source), "utf-8")
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ingest]\n{name} = {module}\n", "utf-8")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for module in [m for m in sys.modules if m.startswith("naming_")]:
        del sys.modules[module]


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    return pdfgen.multipage_pdf(tmp_path / "a.pdf", pages=2)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_naming_a_sink_scheme_loads_the_installed_plugin(
    site: Path, pdf: Path, tmp_path: Path
) -> None:
    """``--sink csv:out.csv`` needed ``-p csv`` too, while ``--executor dask`` did not."""
    install(site, "csv", "naming_csv", CSV_SINK)
    out = tmp_path / "out.csv"
    result = invoke("run", str(pdf), "--workers", "0", "--sink", f"csv:{out}")
    assert result.exit_code == 0, result.output
    assert "1 ingested" in result.output
    assert "marker-0002" in out.read_text("utf-8")


def test_naming_a_transform_step_loads_the_installed_plugin(
    site: Path, pdf: Path, tmp_path: Path
) -> None:
    install(site, "shout", "naming_shout", SHOUT)
    out = tmp_path / "o.jsonl"
    result = invoke(
        "run", str(pdf), "--workers", "1", "--sink", f"jsonl:{out}",
        "-o", "transforms=[normalize,shout,chunk]",
    )
    assert result.exit_code == 0, result.output
    text = " ".join(json.loads(line)["text"] for line in out.read_text("utf-8").splitlines())
    assert "MARKER-0001" in text


def test_naming_an_extractor_loads_the_installed_plugin(
    site: Path, pdf: Path, tmp_path: Path
) -> None:
    install(
        site,
        "reverse",
        "naming_reverse",
        '''
        from ingest import Document, Metadata, Page, hookimpl

        @hookimpl
        def ingest_extract(source, extractor):
            if extractor == "reverse":
                return Document(source=source, metadata=Metadata(page_count=1),
                                pages=[Page(number=1, text="esrever", extractor="reverse")])
        ''',
    )
    out = tmp_path / "o.jsonl"
    result = invoke("run", str(pdf), "--workers", "0", "--extractor", "reverse",
                    "--sink", f"jsonl:{out}")
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text("utf-8").splitlines()[0])["text"] == "esrever"


def test_an_unknown_component_lists_installed_plugins_not_loaded(
    site: Path, pdf: Path, tmp_path: Path
) -> None:
    install(site, "csv", "naming_csv", CSV_SINK)
    result = invoke("run", str(pdf), "--workers", "0", "--sink", "tsv:out.tsv", "-p", "no:csv")
    assert result.exit_code == 4
    [message] = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert message.startswith("ERROR: unknown sink (in 'tsv:out.tsv') 'tsv' available: jsonl, ")
    listed = "installed but not loaded: csv (blocked), dask, ocr, wordllama (load one with -p NAME"
    assert listed in message


def test_p_takes_a_top_level_module(site: Path, pdf: Path, tmp_path: Path) -> None:
    """``-p some_module`` was only tried as an entry point name."""
    (site / "naming_toplevel.py").write_text(SHOUT.replace('"shout"', '"naming_toplevel"'))
    out = tmp_path / "o.jsonl"
    result = invoke(
        "run", str(pdf), "--workers", "1", "-p", "naming_toplevel", "--sink", f"jsonl:{out}",
        "-o", "transforms=[normalize,naming_toplevel,chunk]",
    )
    assert result.exit_code == 0, result.output
    assert "MARKER-0001" in out.read_text("utf-8")


def test_an_unknown_name_is_still_one_line_with_suggestions() -> None:
    with pytest.raises(PluginError, match=r"unknown plugin 'pdfmner'; did you mean 'pdfminer'\?"):
        build_manager(["pdfmner"])


def test_import_errors_say_where(site: Path) -> None:
    (site / "naming_broken.py").write_text(BROKEN)
    with pytest.raises(PluginError) as raised:
        build_manager(["naming_broken"])
    assert str(raised.value) == (
        "plugin 'naming_broken' (naming_broken) failed to import: KeyError: "
        f"'NO_SUCH_VARIABLE_FOR_INGEST_TESTS' (at {site / 'naming_broken.py'}:3)"
    )


def test_ingest_plugins_reports_import_failures(site: Path) -> None:
    """``ingest plugins`` said "available" for a plugin whose import fails."""
    install(site, "broken", "naming_broken", BROKEN)
    result = invoke("plugins")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    index = lines.index("broken: naming_broken [naming_broken 0.1] import failed")
    assert lines[index + 1] == (
        "    import error: KeyError: 'NO_SUCH_VARIABLE_FOR_INGEST_TESTS' "
        f"(at {site / 'naming_broken.py'}:3)"
    )
    listed = json.loads(invoke("plugins", "--json").output)
    [broken] = [info for info in listed if info["name"] == "broken"]
    assert broken["state"] == "import failed" and not broken["loaded"]


class Probe:
    @ingest.hookimpl
    def ingest_configure(self) -> None:
        pass


def test_an_object_registered_without_a_name_gets_a_readable_label() -> None:
    manager = build_manager()
    first, second = Probe(), Probe()
    manager.register(first)
    manager.register(second)
    assert manager.get_name(first) == f"{__name__}.Probe"
    assert manager.get_name(second) == f"{__name__}.Probe-2"


def test_run_takes_a_module_object_and_workers_load_it(
    site: Path, pdf: Path, tmp_path: Path
) -> None:
    """A module is importable by name, so worker processes load it too."""
    (site / "naming_loud.py").write_text(SHOUT.replace('"shout"', '"naming_loud"'))
    import naming_loud  # type: ignore[import-not-found]  # written by this test

    assert isinstance(naming_loud, ModuleType)
    out = tmp_path / "o.jsonl"
    result = ingest.run(
        [pdf],
        plugins=[naming_loud],
        transforms=["normalize", "naming_loud", "chunk"],
        run={"workers": 1},
        sinks=[f"jsonl:{out}"],
        progress="none",
    )
    assert result.ingested == 1, result.failures
    assert "MARKER-0002" in out.read_text("utf-8")


def test_a_bad_sink_names_the_sink_flag(pdf: Path) -> None:
    """It was reported as ``--sinks: sinks[0]``: a flag that does not exist."""
    result = invoke("run", str(pdf), "--sink", "nocolon")
    assert result.exit_code == 4
    assert "  --sink: sinks[0]: a sink is 'scheme:target'" in result.stderr
    assert "--sinks" not in result.stderr


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (["-o", "loose.levle=2"], "-o loose.levle=2: loose.levle: unknown setting; "
                                  "did you mean 'loose.level'?"),
        (["-o", "loose.inner.dept=2"], "-o loose.inner.dept=2: loose.inner.dept: unknown "
                                       "setting; did you mean 'loose.inner.depth'?"),
    ],
)
def test_every_section_refuses_unknown_keys(
    site: Path, where: list[str], expected: str
) -> None:
    """A plugin's model that does not forbid extra keys let ``-o section.typo=1`` pass."""
    install(site, "loose", "naming_loose", LOOSE)
    result = invoke("config", "-p", "loose", *where)
    assert result.exit_code == 4, result.output
    assert f"  {expected}" in result.stderr.splitlines()


def test_an_unknown_key_in_the_config_file_names_its_line(site: Path, tmp_path: Path) -> None:
    install(site, "loose", "naming_loose", LOOSE)
    config = tmp_path / "ingest.yaml"
    config.write_text("plugins: [loose]\nloose:\n  level: 2\n  colour: red\n", "utf-8")
    result = invoke("config", "-c", str(config))
    assert result.exit_code == 4
    assert f"  {config}:4: loose.colour: unknown setting" in result.stderr
