"""Every way configuration can be wrong gets a ConfigError naming the file and line, the
variable or the ``-o`` text, each bad key as a dotted path, and a did-you-mean; and ingest
works without PyYAML except for YAML files."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from ingest.config import SettingsStack, load_settings
from ingest.errors import ConfigError
from pydantic import BaseModel, ConfigDict


class OcrSettings(BaseModel):
    """Settings of a test OCR plugin."""

    model_config = ConfigDict(extra="forbid")

    dpi: int = 300


def _error(tmp_path: Path, **kwargs: object) -> str:
    kwargs.setdefault("environ", {})
    with pytest.raises(ConfigError) as info:
        load_settings(cwd=tmp_path, **kwargs)  # type: ignore[arg-type]  # test helper
    return str(info.value)


def _yaml(tmp_path: Path, text: str, name: str = "ingest.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path.resolve()


# -- YAML -------------------------------------------------------------------------------------


def test_invalid_field_names_file_line_key_and_reason(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "chunk:\n  unit: words\n  size: 0\n")
    message = _error(tmp_path)
    assert message == (
        f"invalid configuration:\n  {path}:3: chunk.size: Input should be greater than 0 (got 0)"
    )


def test_every_bad_field_is_listed_one_per_line(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "run:\n  workers: many\n  timeout: -1\nprogress: off\n")
    lines = _error(tmp_path).splitlines()
    assert lines[0] == "invalid configuration:"
    assert lines[1:] == [
        f"  {path}:2: run.workers: Input should be a valid integer, unable to parse string as "
        "an integer (got 'many')",
        f"  {path}:3: run.timeout: Input should be greater than 0 (got -1)",
        f"  {path}:4: progress: Input should be 'auto', 'bar', 'log', 'json' or 'none' (got False)",
    ]


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "chunk:\n  size: 3\n bad: [\n")
    message = _error(tmp_path)
    assert message.startswith(f"{path}:3:")
    assert "invalid YAML" in message


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "- chunk\n- run\n")
    assert _error(tmp_path) == (
        f"{path}:1: the top level must be a mapping of settings (like `chunk: {{size: 800}}`), "
        "not list"
    )


def test_empty_yaml_is_no_settings(tmp_path: Path) -> None:
    _yaml(tmp_path, "# nothing yet\n")
    assert load_settings(cwd=tmp_path, environ={}).settings.chunk.size == 1200


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "chunk:\n  size: 3\n  size: 4\n")
    assert _error(tmp_path) == f"{path}:3: duplicate key 'chunk.size' (first at line 2)"


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    _yaml(tmp_path, "base: &b {size: 500, overlap: 5}\nchunk:\n  <<: *b\n  size: 600\n")
    message = _error(tmp_path)  # `base` is unknown, but the merge itself is fine
    assert "duplicate" not in message
    assert "base: unknown setting" in message


def test_yaml_is_read_with_the_safe_loader(tmp_path: Path) -> None:
    """Config files are untrusted input: no Python object tags (DESIGN.md)."""
    path = _yaml(tmp_path, "progress: !!python/object/apply:os.system ['echo pwned']\n")
    message = _error(tmp_path)
    assert message.startswith(f"{path}:1:")
    assert "could not determine a constructor" in message


def test_non_string_yaml_values_for_text_get_a_quoting_hint(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "extract:\n  extractor: 1234\n")
    assert _error(tmp_path).endswith(
        f"{path}:2: extract.extractor: Input should be a valid string (got 1234); "
        "quote it in the config file to keep it as text"
    )


def test_secrets_are_never_echoed(tmp_path: Path) -> None:
    _yaml(tmp_path, "extract:\n  password: 91827364\n")
    message = _error(tmp_path, overrides=["extract.password"])
    assert "91827364" not in message
    assert "extract.password: Input should be a valid string;" in message


# -- unknown keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("chunk:\n  sise: 3\n", 2, "chunk.sise: unknown setting; did you mean 'chunk.size'?"),
        ("chunck:\n  size: 3\n", 1, "chunck: unknown setting; did you mean 'chunk'?"),
        ("workers: 3\n", 1, "workers: unknown setting; did you mean 'run.workers'?"),
        (
            "run:\n  max_mem: 1GiB\n",
            2,
            "run.max_mem: unknown setting; did you mean 'run.max_memory'?",
        ),
        ("ocr:\n  dpu: 3\n", 2, "ocr.dpu: unknown setting; did you mean 'ocr.dpi'?"),
        ("chunk:\n  zzz: 3\n", 2, "chunk.zzz: unknown setting"),
    ],
)
def test_unknown_keys_get_did_you_mean(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path = _yaml(tmp_path, text)
    message = _error(tmp_path, sections={"ocr": OcrSettings})
    assert message.splitlines()[1] == f"  {path}:{line}: {expected}"


def test_a_section_of_a_plugin_that_is_not_loaded_is_unknown(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "ocr:\n  dpi: 200\n")
    assert _error(tmp_path).splitlines()[1] == (
        f"  {path}:1: ocr: unknown setting: neither a core setting nor the section of a loaded "
        "plugin (is the plugin that provides it loaded?)"
    )


def test_plugin_section_invalid_value_names_file_and_key(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "plugins: [ocr]\nocr:\n  dpi: high\n")
    message = _error(tmp_path, sections={"ocr": OcrSettings})
    assert message.splitlines()[1] == (
        f"  {path}:3: ocr.dpi: Input should be a valid integer, unable to parse string as an "
        "integer (got 'high')"
    )


def test_a_plugin_section_colliding_with_a_core_setting(tmp_path: Path) -> None:
    message = _error(tmp_path, sections={"chunk": OcrSettings})
    assert message.startswith("plugin section 'chunk' collides with the core setting 'chunk'")


# -- TOML -------------------------------------------------------------------------------------


def test_toml_syntax_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.ingest]\nchunk = {size = }\n")
    path = tmp_path.resolve() / "pyproject.toml"
    message = _error(tmp_path)
    assert re.fullmatch(rf"{re.escape(str(path))}:2:\d+: invalid TOML: .+", message), message


def test_toml_invalid_field_names_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.ingest.chunk]\nsize = -5\n")
    path = tmp_path.resolve() / "pyproject.toml"
    assert _error(tmp_path).splitlines()[1] == (
        f"  {path}: chunk.size: Input should be greater than 0 (got -5)"
    )


def test_tool_ingest_must_be_a_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool]\ningest = 3\n")
    assert _error(tmp_path).endswith("tool.ingest must be a table, like [tool.ingest]")


# -- explicit files ---------------------------------------------------------------------------


def test_explicit_pyproject_without_tool_ingest(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    path = tmp_path.resolve() / "pyproject.toml"
    assert _error(tmp_path, config_file="pyproject.toml") == f"{path}: has no [tool.ingest] table"


def test_explicit_file_missing(tmp_path: Path) -> None:
    path = tmp_path.resolve() / "nope.yaml"
    assert _error(tmp_path, config_file="nope.yaml") == f"config file not found: {path}"


def test_explicit_file_of_unknown_kind(tmp_path: Path) -> None:
    (tmp_path / "ingest.ini").write_text("[ingest]\n")
    assert "cannot tell the config format from the file name" in _error(
        tmp_path, config_file="ingest.ini"
    )


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "ingest.yaml").write_bytes(b"progress: \xff\xfe\n")
    assert _error(tmp_path).endswith("the config file is not UTF-8 text")


# -- environment ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "INGEST_CHUNK__SISE",
            "INGEST_CHUNK__SISE: unknown setting; did you mean INGEST_CHUNK__SIZE?",
        ),
        ("INGEST_WORKERS", "INGEST_WORKERS: unknown setting; did you mean INGEST_RUN__WORKERS?"),
        ("INGEST_PLUGIN", "INGEST_PLUGIN: unknown setting; did you mean INGEST_PLUGINS?"),
        (
            "INGEST_CHUNCK__SIZE",
            "INGEST_CHUNCK__SIZE: unknown setting; did you mean INGEST_CHUNK__SIZE?",
        ),
        (
            "INGEST_TRACE_HOOK",
            "INGEST_TRACE_HOOK: not a setting nor a variable ingest reads; did you mean "
            "INGEST_TRACE_HOOKS?",
        ),
        (
            "INGEST_OCR__DPI",
            "INGEST_OCR__DPI: unknown setting 'ocr.dpi': no loaded plugin has a section 'ocr' "
            "(is the plugin that provides it loaded?)",
        ),
        ("INGEST_CHUNK__ZZZZZ", "INGEST_CHUNK__ZZZZZ: unknown setting 'chunk.zzzzz'"),
    ],
)
def test_env_typos_name_the_variable(tmp_path: Path, name: str, expected: str) -> None:
    assert _error(tmp_path, environ={name: "3"}) == f"invalid configuration:\n  {expected}"


def test_env_invalid_value_names_the_variable(tmp_path: Path) -> None:
    message = _error(tmp_path, environ={"INGEST_RUN__TIMEOUT": "soon"})
    assert message.splitlines()[1] == (
        "  INGEST_RUN__TIMEOUT: run.timeout: Input should be a valid number, unable to parse "
        "string as a number (got 'soon')"
    )


# -- -o and CLI flags -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("chunk.size", "-o chunk.size: expected KEY=VALUE, e.g. -o chunk.size=500"),
        ("=3", "-o =3: expected KEY=VALUE, e.g. -o chunk.size=500"),
        (
            "chunk..size=3",
            "-o chunk..size=3: 'chunk..size' is not a dotted settings key like chunk.size",
        ),
        ("chunk.size=-1", "-o chunk.size=-1: chunk.size: Input should be greater than 0 (got -1)"),
        (
            "chunk.sise=3",
            "-o chunk.sise=3: chunk.sise: unknown setting; did you mean 'chunk.size'?",
        ),
        ("sinks=out.jsonl", "-o sinks=out.jsonl: sinks[0]: a sink is 'scheme:target'"),
        (
            "chunk.size=100",
            "chunk.overlap: must be smaller than chunk.size (100), got 150",
        ),
    ],
)
def test_override_errors_quote_the_override(tmp_path: Path, override: str, expected: str) -> None:
    assert _error(tmp_path, overrides=[override]).splitlines()[1].startswith(f"  {expected}")


def test_cli_errors_name_the_flag(tmp_path: Path) -> None:
    message = _error(tmp_path, cli={"run.workers": -2}, cli_flags={"run.workers": "--workers"})
    assert message.splitlines()[1] == (
        "  --workers: run.workers: Input should be greater than or equal to 0 (got -2)"
    )


def test_problems_from_every_layer_are_reported_together(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "chunk:\n  size: 0\n")
    message = _error(
        tmp_path, environ={"INGEST_CHUNK__SISE": "1"}, overrides=["oops", "run.maxfail=-1"]
    )
    assert message.splitlines() == [
        "invalid configuration:",
        "  INGEST_CHUNK__SISE: unknown setting; did you mean INGEST_CHUNK__SIZE?",
        "  -o oops: expected KEY=VALUE, e.g. -o chunk.size=500",
        f"  {path}:2: chunk.size: Input should be greater than 0 (got 0)",
        "  -o run.maxfail=-1: run.maxfail: Input should be greater than or equal to 0 (got -1)",
    ]


# -- without PyYAML ---------------------------------------------------------------------------


@pytest.fixture
def no_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide PyYAML: `import yaml` then fails as if it were not installed."""
    monkeypatch.setitem(sys.modules, "yaml", None)


@pytest.mark.usefixtures("no_yaml")
def test_without_pyyaml_a_yaml_file_says_how_to_install_it(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "chunk: {size: 500}\n")
    message = _error(tmp_path)
    assert message.startswith(f"{path}: reading a YAML config file needs PyYAML")
    assert "pip install pyyaml" in message
    with pytest.raises(ConfigError, match="pip install pyyaml"):
        SettingsStack(cwd=tmp_path, environ={}).plugins()


@pytest.mark.usefixtures("no_yaml")
def test_without_pyyaml_toml_env_and_overrides_still_work(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.ingest]\nplugins = ['ocr']\n[tool.ingest.chunk]\nsize = 640\n"
    )
    loaded = load_settings(
        sections={"ocr": OcrSettings},
        cwd=tmp_path,
        environ={"INGEST_RUN__WORKERS": "2", "INGEST_PLUGINS": "a,b", "INGEST_OCR__DPI": "72"},
        overrides=[
            "collect.patterns=[*.pdf,*.txt]",
            'transforms=["normalize", "chunk"]',
            "cache.enabled=false",
            "run.max_memory=1GiB",
            "collect.select=not draft",
        ],
    )
    s = loaded.settings
    assert s.chunk.size == 640
    assert (s.run.workers, s.plugins, s.ocr.dpi) == (2, ["ocr", "a", "b"], 72)  # type: ignore[attr-defined]  # a run-time field
    assert (s.collect.patterns, s.transforms) == (["*.pdf", "*.txt"], ["normalize", "chunk"])
    assert (s.cache.enabled, s.run.max_memory, s.collect.select) == (False, 1024**3, "not draft")
    assert SettingsStack(cwd=tmp_path, environ={}, cli={"plugins": ["x"]}).plugins() == [
        "ocr",
        "x",
    ]
