"""Where settings come from: precedence of the layers, config file discovery, ``INGEST_*``
variables, ``-o`` parsing and origin tracking."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from ingest.config import LoadedSettings, SettingsStack, load_settings
from ingest.errors import ConfigError
from pydantic import BaseModel, ConfigDict

LAYERS = ("file", "env", "cli", "override")


class OcrSettings(BaseModel):
    """Settings of a test OCR plugin."""

    model_config = ConfigDict(extra="forbid")

    dpi: int = 300
    languages: list[str] = ["eng"]


def _load_with(root: Path, sizes: dict[str, int]) -> LoadedSettings:
    """Set chunk.size in the given layers only (value per layer) and load."""
    if "file" in sizes:
        (root / "ingest.yaml").write_text(f"chunk:\n  size: {sizes['file']}\n")
    return load_settings(
        cwd=root,
        environ={"INGEST_CHUNK__SIZE": str(sizes["env"])} if "env" in sizes else {},
        cli={"chunk.size": sizes["cli"]} if "cli" in sizes else None,
        overrides=[f"chunk.size={sizes['override']}"] if "override" in sizes else (),
    )


@pytest.mark.parametrize(
    "layers",
    [combo for size in range(5) for combo in itertools.combinations(LAYERS, size)],
    ids=lambda layers: "+".join(layers) or "defaults",
)
def test_the_highest_layer_wins(tmp_path: Path, layers: tuple[str, ...]) -> None:
    """Every pair (and set) of layers: defaults < file < env < CLI flags < -o."""
    sizes = {layer: 1000 + index for index, layer in enumerate(LAYERS) if layer in layers}
    loaded = _load_with(tmp_path, sizes)
    root = tmp_path.resolve()
    expected_origin = {
        "file": f"file:{root / 'ingest.yaml'}:2",
        "env": "env:INGEST_CHUNK__SIZE",
        "cli": "cli:--size",
        "override": "override:-o chunk.size=1003",
    }
    if not layers:
        assert (loaded.settings.chunk.size, loaded.origin("chunk.size")) == (1200, "default")
        return
    top = layers[-1]
    assert loaded.settings.chunk.size == sizes[top]
    assert loaded.origin("chunk.size") == expected_origin[top]
    assert loaded.origin("chunk.overlap") == "default"


def test_layers_merge_key_by_key(tmp_path: Path) -> None:
    (tmp_path / "ingest.yaml").write_text(
        "chunk:\n  size: 900\n  overlap: 10\nrun:\n  workers: 3\n"
    )
    loaded = load_settings(
        cwd=tmp_path, environ={"INGEST_CHUNK__OVERLAP": "20"}, overrides=["run.timeout=5"]
    )
    s = loaded.settings
    assert (s.chunk.size, s.chunk.overlap, s.run.workers, s.run.timeout) == (900, 20, 3, 5.0)


def test_plugins_accumulate_across_layers(tmp_path: Path) -> None:
    """Like pytest's -p: `-p no:ocr` on the command line can block a plugin the file names."""
    (tmp_path / "ingest.yaml").write_text("plugins: [ocr, sqlite]\n")
    loaded = load_settings(
        cwd=tmp_path,
        environ={"INGEST_PLUGINS": "extra,ocr"},
        cli={"plugins": ("no:ocr",)},
        overrides=["plugins=[mine]"],
    )
    assert loaded.settings.plugins == ["ocr", "sqlite", "extra", "no:ocr", "mine"]
    path = tmp_path.resolve() / "ingest.yaml"
    assert loaded.origin("plugins") == (
        f"file:{path}:1, env:INGEST_PLUGINS, cli:--plugins, override:-o plugins=[mine]"
    )


def test_cli_none_and_empty_values_mean_not_given(tmp_path: Path) -> None:
    (tmp_path / "ingest.yaml").write_text("collect:\n  inputs: [papers]\nrun:\n  workers: 2\n")
    loaded = load_settings(
        cwd=tmp_path, environ={}, cli={"collect.inputs": (), "run.workers": None}
    )
    assert (loaded.settings.collect.inputs, loaded.settings.run.workers) == (["papers"], 2)


def test_cli_values_are_copied(tmp_path: Path) -> None:
    inputs = ["a.pdf"]
    loaded = load_settings(cwd=tmp_path, environ={}, cli={"collect.inputs": inputs})
    inputs.append("b.pdf")
    assert loaded.settings.collect.inputs == ["a.pdf"]


def test_cli_flag_names_for_origins(tmp_path: Path) -> None:
    loaded = load_settings(
        cwd=tmp_path,
        environ={},
        cli={"run.workers": 2, "extract.extractor": "pypdf", "run.max_memory": "1GiB"},
        cli_flags={"run.workers": "-n"},
    )
    assert loaded.origin("run.workers") == "cli:-n"
    assert loaded.origin("extract.extractor") == "cli:--extractor"
    assert loaded.origin("run.max_memory") == "cli:--max-memory"


# -- discovery --------------------------------------------------------------------------------


def test_config_file_is_found_walking_up(tmp_path: Path) -> None:
    (tmp_path / "ingest.yaml").write_text("chunk: {size: 700}\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    loaded = load_settings(cwd=deep, environ={})
    assert loaded.settings.chunk.size == 700
    assert loaded.config_path == tmp_path.resolve() / "ingest.yaml"
    assert loaded.rootdir == tmp_path.resolve()


def test_the_nearest_directory_with_a_config_wins(tmp_path: Path) -> None:
    (tmp_path / "ingest.yaml").write_text("chunk: {size: 700}\n")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "pyproject.toml").write_text("[tool.ingest.chunk]\nsize = 600\n")
    loaded = load_settings(cwd=inner, environ={})
    assert loaded.settings.chunk.size == 600
    assert loaded.rootdir == inner.resolve()
    assert loaded.origin("chunk.size") == f"file:{inner.resolve() / 'pyproject.toml'}"


def test_a_pyproject_without_tool_ingest_does_not_stop_the_walk(tmp_path: Path) -> None:
    (tmp_path / "ingest.yml").write_text("chunk: {size: 700}\n")
    inner = tmp_path / "inner"
    inner.mkdir()
    # Mentions "ingest" so it is parsed, not skipped by the cheap text check.
    (inner / "pyproject.toml").write_text('[project]\nname = "uses-ingest"\n[tool.other]\nx = 1\n')
    loaded = load_settings(cwd=inner, environ={})
    assert loaded.config_path == tmp_path.resolve() / "ingest.yml"
    assert loaded.settings.chunk.size == 700


@pytest.mark.parametrize(
    ("present", "chosen"),
    [
        (("ingest.yaml", "ingest.yml", "pyproject.toml"), "ingest.yaml"),
        (("ingest.yml", "pyproject.toml"), "ingest.yml"),
        (("pyproject.toml",), "pyproject.toml"),
    ],
)
def test_order_within_a_directory(tmp_path: Path, present: tuple[str, ...], chosen: str) -> None:
    contents = {
        "ingest.yaml": "progress: bar\n",
        "ingest.yml": "progress: log\n",
        "pyproject.toml": '[tool.ingest]\nprogress = "json"\n',
    }
    for name in present:
        (tmp_path / name).write_text(contents[name])
    loaded = load_settings(cwd=tmp_path, environ={})
    assert loaded.config_path == tmp_path.resolve() / chosen
    expected = {"ingest.yaml": "bar", "ingest.yml": "log", "pyproject.toml": "json"}[chosen]
    assert loaded.settings.progress == expected


def test_no_config_file(tmp_path: Path) -> None:
    loaded = load_settings(cwd=tmp_path, environ={})
    assert (loaded.config_path, loaded.rootdir) == (None, tmp_path.resolve())
    assert {origin for _, _, origin in loaded.as_rows()} == {"default"}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("custom.yaml", "chunk:\n  size: 640\n"),
        ("custom.yml", "chunk:\n  size: 640\n"),
        ("pyproject.toml", "[tool.ingest.chunk]\nsize = 640\n"),
        ("ingest.toml", "[chunk]\nsize = 640\n"),
    ],
)
def test_explicit_config_file_of_each_kind(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / "ingest.yaml").write_text("chunk: {size: 1}\n")  # ignored: -c wins
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / name).write_text(text)
    loaded = load_settings(config_file=f"conf/{name}", cwd=tmp_path, environ={})
    assert loaded.settings.chunk.size == 640
    assert loaded.config_path == conf.resolve() / name
    assert loaded.rootdir == conf.resolve()


def test_explicit_absolute_config_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("progress: log\n")
    loaded = load_settings(config_file=path, cwd=Path("/"), environ={})
    assert loaded.settings.progress == "log"


# -- environment ------------------------------------------------------------------------------


def test_env_nesting_and_types(tmp_path: Path) -> None:
    env = {
        "INGEST_RUN__WORKERS": "2",
        "INGEST_RUN__TIMEOUT_PER_PAGE": "0.5",
        "INGEST_RUN__MAX_MEMORY": "512MiB",
        "INGEST_CACHE__ENABLED": "false",
        "INGEST_LOG_LEVEL": "debug",
        "INGEST_COLLECT__SELECT": "2024 and not draft",
        "INGEST_EXTRACT__PASSWORD": "0123",
        "INGEST_OCR__DPI": "200",
        "PATH": "/usr/bin",
    }
    s: Any = load_settings(sections={"ocr": OcrSettings}, cwd=tmp_path, environ=env).settings
    assert (s.run.workers, s.run.timeout_per_page, s.run.max_memory) == (2, 0.5, 512 * 1024**2)
    assert (s.cache.enabled, s.log_level, s.collect.select) == (
        False,
        "DEBUG",
        "2024 and not draft",
    )
    assert s.extract.password.get_secret_value() == "0123"  # text stays text, not 83 or 123
    assert s.ocr.dpi == 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a,b", ["a", "b"]),
        (" a , b ,", ["a", "b"]),
        ("[a, b]", ["a", "b"]),
        ("[*.pdf,*.txt]", ["*.pdf", "*.txt"]),
        ('["x,y", z]', ["x,y", "z"]),
        ("[1, yes]", ["1", "yes"]),
        ("single", ["single"]),
        ("", []),
    ],
)
def test_env_lists(tmp_path: Path, value: str, expected: list[str]) -> None:
    loaded = load_settings(cwd=tmp_path, environ={"INGEST_COLLECT__PATTERNS": value})
    assert loaded.settings.collect.patterns == expected


def test_env_empty_value_unsets_an_optional_setting(tmp_path: Path) -> None:
    (tmp_path / "ingest.yaml").write_text("run: {workers: 4}\nlog_level: INFO\n")
    env = {"INGEST_RUN__WORKERS": "", "INGEST_LOG_LEVEL": ""}
    s = load_settings(cwd=tmp_path, environ=env).settings
    assert (s.run.workers, s.log_level) == (None, None)


@pytest.mark.parametrize(
    "name", ["INGEST_TRACE_HOOKS", "INGEST_DISABLE_PLUGIN_AUTOLOAD", "INGEST_HOME", "INGESTION"]
)
def test_env_variables_that_are_not_settings_are_ignored(tmp_path: Path, name: str) -> None:
    loaded = load_settings(cwd=tmp_path, environ={name: "1"})
    assert {origin for _, _, origin in loaded.as_rows()} == {"default"}


def test_env_is_read_from_the_mapping_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGEST_CHUNK__SIZE", "321")
    assert load_settings(cwd=tmp_path, environ={}).settings.chunk.size == 1200
    assert load_settings(cwd=tmp_path).settings.chunk.size == 321


# -- -o ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("run.workers=2", ("run", "workers"), 2),
        ("run.workers=", ("run", "workers"), None),
        ("run.timeout=1.5", ("run", "timeout"), 1.5),
        ("cache.enabled=no", ("cache", "enabled"), False),
        ("collect.patterns=[*.pdf,*.txt]", ("collect", "patterns"), ["*.pdf", "*.txt"]),
        ("collect.patterns=*.pdf,*.PDF", ("collect", "patterns"), ["*.pdf", "*.PDF"]),
        ("collect.select=a or b", ("collect", "select"), "a or b"),
        ("extract.extractor=123", ("extract", "extractor"), "123"),
        ("sinks=[jsonl:a.jsonl, sqlite:b.db]", ("sinks",), ["jsonl:a.jsonl", "sqlite:b.db"]),
        ("chunk={size: 99, overlap: 9}", ("chunk", "size"), 99),
        ("chunk.unit=words", ("chunk", "unit"), "words"),
        ("run.max_memory=1KiB", ("run", "max_memory"), 1024),
        ("ocr.dpi=200", ("ocr", "dpi"), 200),
        ("ocr.languages=[eng, deu]", ("ocr", "languages"), ["eng", "deu"]),
        ("collect.select=x=y", ("collect", "select"), "x=y"),
    ],
)
def test_override_parsing(
    tmp_path: Path, override: str, key: tuple[str, ...], expected: Any
) -> None:
    value: Any = load_settings(
        sections={"ocr": OcrSettings}, cwd=tmp_path, environ={}, overrides=[override]
    ).settings
    for part in key:
        value = getattr(value, part)
    assert value == expected


def test_later_overrides_win(tmp_path: Path) -> None:
    loaded = load_settings(
        cwd=tmp_path,
        environ={},
        overrides=["chunk.size=500", "chunk={size: 600}", "chunk.size=700"],
    )
    assert loaded.settings.chunk.size == 700
    assert loaded.origin("chunk.size") == "override:-o chunk.size=700"


# -- origins ----------------------------------------------------------------------------------


def test_yaml_origins_carry_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "ingest.yaml").write_text(
        "# settings\n"
        "collect:\n"
        "  patterns:\n"
        "    - '*.pdf'\n"
        "\n"
        "chunk:\n"
        "  unit: words\n"
        "  size: 300\n"
        "ocr: {dpi: 150}\n"
    )
    loaded = load_settings(sections={"ocr": OcrSettings}, cwd=tmp_path, environ={})
    path = tmp_path.resolve() / "ingest.yaml"
    assert loaded.origin("collect.patterns") == f"file:{path}:3"
    assert loaded.origin("chunk.unit") == f"file:{path}:7"
    assert loaded.origin("chunk.size") == f"file:{path}:8"
    assert loaded.origin("ocr.dpi") == f"file:{path}:9"
    assert loaded.origin("ocr.languages") == "default"
    assert loaded.origin("collect.inputs") == "default"


def test_toml_origins_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.ingest]\nprogress = "json"\n')
    loaded = load_settings(cwd=tmp_path, environ={})
    assert loaded.origin("progress") == f"file:{tmp_path.resolve() / 'pyproject.toml'}"


def test_rows_cover_every_leaf_including_plugin_sections(tmp_path: Path) -> None:
    loaded = load_settings(sections={"ocr": OcrSettings}, cwd=tmp_path, environ={})
    keys = [key for key, _, _ in loaded.as_rows()]
    assert keys[:3] == ["plugins", "collect.inputs", "collect.patterns"]
    assert keys[-2:] == ["ocr.dpi", "ocr.languages"]
    assert len(keys) == len(set(keys)) == 36


def test_origin_of_an_unknown_key(tmp_path: Path) -> None:
    loaded = load_settings(cwd=tmp_path, environ={})
    with pytest.raises(KeyError, match="'chunk' is not a leaf setting"):
        loaded.origin("chunk")


# -- the early pass: plugins before their sections are known ---------------------------


def test_early_plugins_merges_without_knowing_sections(tmp_path: Path) -> None:
    (tmp_path / "ingest.yaml").write_text("plugins: [ocr]\nocr: {dpi: 200}\n")
    plugins = SettingsStack(
        cwd=tmp_path,
        environ={"INGEST_PLUGINS": "sqlite", "INGEST_OCR__DPI": "5"},
        cli={"plugins": ["no:sqlite", "ocr"]},
        overrides=["plugins=[x]", "ocr.dpi=7"],
    ).plugins()
    assert plugins == ["ocr", "sqlite", "no:sqlite", "x"]


def test_early_plugins_without_any(tmp_path: Path) -> None:
    assert SettingsStack(cwd=tmp_path, environ={}).plugins() == []


def test_early_plugins_reports_a_bad_plugins_value(tmp_path: Path) -> None:
    (tmp_path / "ingest.yaml").write_text("plugins:\n  ocr: true\n")
    path = tmp_path.resolve() / "ingest.yaml"
    with pytest.raises(ConfigError, match=f"{path}:1: plugins: Input should be a valid list"):
        SettingsStack(cwd=tmp_path, environ={}).plugins()
