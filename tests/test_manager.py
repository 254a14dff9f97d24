"""Plugin loading and its errors: entry points, -p, no:, validation, tracing."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from ingest.cli import main
from ingest.errors import PluginError
from ingest.hookspecs import hookimpl
from ingest.manager import (
    DEFAULT_PLUGINS,
    ESSENTIAL_PLUGINS,
    build_manager,
    describe_plugins,
    entry_points,
    parse_specs,
)


def make_distribution(
    site: Path, *, dist: str, version: str, module: str, name: str, source: str
) -> None:
    """Write a real installed distribution (module + dist-info with an entry point)."""
    (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[ingest]\n{name} = {module}\n", encoding="utf-8")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path where tests install distributions for real."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for module in [m for m in sys.modules if m.startswith("fake_")]:
        del sys.modules[module]


GOOD_PLUGIN = """
from ingest.hookspecs import hookimpl

@hookimpl
def ingest_configure(settings, role):
    pass
"""


def test_builtins_load_by_entry_point_name() -> None:
    manager = build_manager()
    names = {name for name, _ in manager.list_name_plugin()}
    assert set(DEFAULT_PLUGINS) <= names
    assert manager.get_plugin("pdfium").__name__ == "ingest_plugins.pdfium_extractor"


def test_entry_point_discovered_from_real_dist_info(site: Path) -> None:
    make_distribution(
        site,
        dist="fake-fancy",
        version="1.2.3",
        module="fake_fancy",
        name="fancy",
        source=GOOD_PLUGIN,
    )
    assert "fancy" in entry_points()
    # Installed is not loaded: only named plugins change a run.
    assert not build_manager().has_plugin("fancy")
    manager = build_manager(["fancy"])
    assert manager.get_plugin("fancy").__name__ == "fake_fancy"
    info = {i.name: i for i in describe_plugins(manager)}["fancy"]
    assert (info.distribution, info.version, info.loaded) == ("fake-fancy", "1.2.3", True)
    assert info.hooks == ("ingest_configure",)


def test_dotted_module_path_loads(site: Path) -> None:
    (site / "fake_dotted").mkdir()
    (site / "fake_dotted" / "__init__.py").write_text("")
    (site / "fake_dotted" / "plug.py").write_text(GOOD_PLUGIN)
    manager = build_manager(["fake_dotted.plug"])
    assert manager.has_plugin("fake_dotted.plug")


def test_unknown_plugin_suggests_a_close_name(site: Path) -> None:
    make_distribution(
        site, dist="fake-ocr", version="0.1", module="fake_ocr", name="ocr", source=GOOD_PLUGIN
    )
    with pytest.raises(PluginError) as info:
        build_manager(["ocrr"])
    message = str(info.value)
    assert message.startswith("unknown plugin 'ocrr'; did you mean 'ocr'? installed: ")
    assert "pdfminer" in message and "ocr" in message


def test_plugin_that_fails_to_import_names_itself_and_the_error(site: Path) -> None:
    make_distribution(
        site,
        dist="fake-broken",
        version="0.1",
        module="fake_broken",
        name="broken",
        source="import not_a_module_anywhere\n",
    )
    with pytest.raises(
        PluginError,
        match=r"plugin 'broken' \(fake_broken\) failed to import: "
        r"ModuleNotFoundError: No module named 'not_a_module_anywhere'",
    ):
        build_manager(["broken"])


def test_hookimpl_with_unknown_argument_is_named() -> None:
    class Bad:
        @hookimpl
        def ingest_extract(self, source: object, page_range: object) -> None:
            return None

    manager = build_manager()
    with pytest.raises(PluginError) as info:
        manager.register(Bad(), name="bad")
    assert str(info.value) == (
        "plugin 'bad': hook 'ingest_extract' has no argument 'page_range' "
        "(it takes: source, settings, extractor, pages)"
    )


def test_misspelt_hook_name_is_reported_even_without_marker() -> None:
    class Typo:
        def ingest_extrct(self, source: object) -> None:
            return None

    with pytest.raises(
        PluginError,
        match="plugin 'typo': unknown hook 'ingest_extrct'; did you mean 'ingest_extract'",
    ):
        build_manager().register(Typo(), name="typo")


def test_async_wrapper_is_rejected() -> None:
    class AsyncWrapper:
        @hookimpl(wrapper=True)
        async def ingest_extract(self, source: object) -> None:
            return None

    with pytest.raises(PluginError, match="is a wrapper but not a plain generator"):
        build_manager().register(AsyncWrapper(), name="aw")


def test_block_a_builtin_and_refuse_to_block_an_essential() -> None:
    manager = build_manager(["no:sqlite"])
    assert not manager.has_plugin("sqlite") and manager.is_blocked("sqlite")
    for name in ESSENTIAL_PLUGINS:
        with pytest.raises(PluginError, match=f"plugin '{name}' is essential"):
            build_manager([f"no:{name}"])


def test_parse_specs_keeps_order_and_dedups() -> None:
    assert parse_specs(["b", "a", "b", "no:c"]) == (["b", "a"], {"c"})
    with pytest.raises(PluginError, match="empty plugin name"):
        parse_specs([""])


def test_async_firstresult_impl_returning_none_falls_through() -> None:
    """An async impl's coroutine must not count as a result (firstresult semantics)."""

    class AsyncNone:
        @hookimpl(tryfirst=True)
        async def ingest_extract_claim(self, source: object) -> str | None:
            return None

    class AsyncYes:
        @hookimpl
        async def ingest_extract_claim(self, source: object) -> str | None:
            return "mine"

    manager = build_manager(["no:pdfium", "no:pypdf", "no:pdfminer"])
    manager.register(AsyncYes(), name="yes")
    manager.register(AsyncNone(), name="none")
    result = manager.hook.ingest_extract_claim(source=None, settings=None, extractor="x")
    assert result == "mine"


def test_cli_unknown_plugin_is_one_line_exit_4(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["run", str(tmp_path), "-p", "pdfmner"])
    assert result.exit_code == 4
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("ERROR: unknown plugin 'pdfmner'; did you mean 'pdfminer'?")


def test_cli_plugins_lists_builtins_as_json() -> None:
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    listing = {entry["name"]: entry for entry in json.loads(result.output)}
    assert set(DEFAULT_PLUGINS) <= set(listing)
    pdfium = listing["pdfium"]
    assert pdfium["loaded"] and pdfium["builtin"] and pdfium["distribution"] == "ingest"
    assert "ingest_extract" in pdfium["hooks"]


def test_cli_plugins_text_listing_shows_state() -> None:
    result = CliRunner().invoke(main, ["plugins", "-p", "no:sqlite"])
    assert result.exit_code == 0, result.output
    assert "sqlite (built-in): ingest_plugins.sqlite_sink [ingest 0.1.0] available" in result.output
    assert "pdfium (built-in): ingest_plugins.pdfium_extractor [ingest 0.1.0] loaded" in (
        result.output
    )


def test_trace_hooks_logs_every_call(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    manager = build_manager(trace=True)
    manager.hook.ingest_extract_claim(source=None, settings=None, extractor="none")
    err = capfd.readouterr().err
    assert "[ingest hook]   ingest_extract_claim [hook]" in err
    assert "finish ingest_extract_claim --> None" in err
