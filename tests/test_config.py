"""The settings models: defaults, validation, independent copies, pickling, plugin sections,
the rendering of ``ingest config`` and the README table."""

from __future__ import annotations

import concurrent.futures
import importlib
import json
import multiprocessing
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest.config import (
    ChunkSettings,
    LoadedSettings,
    Settings,
    build_settings_model,
    load_settings,
    render_config,
    settings_table_markdown,
)
from ingest.errors import ConfigError, UsageError
from pydantic import BaseModel, ConfigDict, Field, SecretStr

REPO = Path(__file__).resolve().parents[1]
PLUGINS_DIR = Path(__file__).resolve().parent / "plugins"


class OcrSettings(BaseModel):
    """Settings of a test OCR plugin."""

    model_config = ConfigDict(extra="forbid")

    dpi: int = 300
    languages: list[str] = Field(default_factory=lambda: ["eng"])
    engine: Literal["auto", "tesseract", "rapidocr"] = "auto"


@pytest.fixture
def importable_ocr(monkeypatch: pytest.MonkeyPatch) -> type[BaseModel]:
    """The OCR section model from a real module, importable by name in worker processes."""
    monkeypatch.syspath_prepend(str(PLUGINS_DIR))
    section: type[BaseModel] = importlib.import_module("config_ocr_section").OcrSettings
    return section


# -- the core model ---------------------------------------------------------------------------


def test_defaults_are_the_documented_ones() -> None:
    s = Settings()
    assert s.plugins == []
    assert (s.collect.inputs, s.collect.patterns) == ([], ["*.pdf"])
    assert (s.collect.select, s.collect.follow_symlinks) == (None, True)
    assert (s.extract.extractor, s.extract.fallback) == ("pdfium", ["pypdf"])
    assert (s.extract.password, s.extract.min_chars_per_page) == (None, 16)
    assert s.transforms == [
        "normalize", "dehyphenate", "strip_headers", "structure", "chunk", "dedup"
    ]
    assert (s.format, s.chunk.by) == ("text", "size")
    assert (s.chunk.unit, s.chunk.size, s.chunk.overlap) == ("chars", 1200, 150)
    assert s.sinks == ["jsonl:ingest-out.jsonl"]
    assert (s.run.workers, s.run.executor, s.run.timeout) == (None, "process", 60.0)
    assert (s.run.timeout_per_page, s.run.max_memory) == (2.0, None)
    assert (s.run.maxfail, s.run.batch_size) == (0, 16)
    assert (s.cache.dir, s.cache.enabled) == (".ingest_cache", True)
    assert (s.progress, s.log_level) == ("auto", None)


def test_defaults_are_not_shared_between_instances() -> None:
    first, second = Settings(), Settings()
    first.collect.patterns.append("*.txt")
    assert second.collect.patterns == ["*.pdf"]


def test_every_field_has_a_description() -> None:
    sections = [Settings, *(info.annotation for info in Settings.model_fields.values())]
    for model in sections:
        if isinstance(model, type) and issubclass(model, BaseModel):
            for name, info in model.model_fields.items():
                assert info.description, f"{model.__name__}.{name} has no description"


@pytest.mark.parametrize("given_level", ["debug", "Warning", "INFO"])
def test_log_level_accepts_any_case(given_level: str) -> None:
    assert Settings(log_level=given_level).log_level == given_level.upper()  # type: ignore[arg-type]  # the validator normalises


def test_memory_cap_accepts_units() -> None:
    assert Settings.model_validate({"run": {"max_memory": "2GiB"}}).run.max_memory == 2 * 1024**3


def test_a_single_string_where_a_list_is_expected_is_a_list_of_one() -> None:
    s = Settings.model_validate({"plugins": "ocr", "collect": {"patterns": "*.PDF"}})
    assert (s.plugins, s.collect.patterns) == (["ocr"], ["*.PDF"])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"chunk": {"size": 0}}, "chunk.size: Input should be greater than 0"),
        ({"chunk": {"size": 100}}, r"chunk.overlap: must be smaller than chunk.size \(100\)"),
        ({"chunk": {"unit": "lines"}}, "chunk.unit: Input should be 'chars' or 'words'"),
        ({"sinks": ["out.jsonl"]}, r"sinks\[0\]: a sink is 'scheme:target'"),
        ({"sinks": ["JSONL:x"]}, r"sinks\[0\]: a sink is 'scheme:target'"),
        ({"sinks": ["jsonl:"]}, r"sinks\[0\]: a sink is 'scheme:target'"),
        ({"plugins": ["no:"]}, r"plugins\[0\]: a plugin is a name"),
        ({"run": {"workers": -1}}, "run.workers: Input should be greater than or equal to 0"),
        ({"run": {"timeout": 0}}, "run.timeout: Input should be greater than 0"),
        ({"run": {"batch_size": 0}}, "run.batch_size: Input should be greater than 0"),
        ({"progress": "fancy"}, "progress: Input should be 'auto', 'bar'"),
        ({"log_level": "loud"}, "log_level: Input should be 'DEBUG'"),
        ({"chunk": {"sise": 3}}, "chunk.sise: unknown setting; did you mean 'chunk.size'"),
    ],
)
def test_invalid_values_are_config_errors_naming_the_key(data: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Settings().with_overrides(**data)


def test_sink_targets_may_contain_colons() -> None:
    assert Settings(sinks=["sqlite:C:/data/corpus.db"]).sinks == ["sqlite:C:/data/corpus.db"]


def test_assignment_is_validated() -> None:
    s = Settings()
    with pytest.raises(ValueError, match="greater than 0"):
        s.chunk.size = 0


def test_config_error_is_a_usage_error_and_a_value_error() -> None:
    """The CLI maps UsageError to exit code 4; library users may catch ValueError."""
    with pytest.raises(ConfigError) as info:
        Settings().with_overrides(chunk={"size": -1})
    assert isinstance(info.value, UsageError)
    assert isinstance(info.value, ValueError)


# -- with_overrides ---------------------------------------------------------------------------


def test_with_overrides_merges_into_nested_sections() -> None:
    base = Settings()
    changed = base.with_overrides(chunk={"size": 500}, run={"workers": 2})
    assert (changed.chunk.size, changed.chunk.overlap, changed.chunk.unit) == (500, 150, "chars")
    assert (changed.run.workers, changed.run.timeout) == (2, 60.0)
    assert (base.chunk.size, base.run.workers) == (1200, None)


def test_with_overrides_replaces_a_section_given_as_a_model() -> None:
    changed = Settings(chunk=ChunkSettings(size=900)).with_overrides(
        chunk=ChunkSettings(size=300, overlap=0)
    )
    assert (changed.chunk.size, changed.chunk.overlap) == (300, 0)


def test_with_overrides_validates() -> None:
    with pytest.raises(ConfigError, match=r"invalid settings override:\n  chunk.size: .*0"):
        Settings().with_overrides(chunk={"size": 0})


def test_with_overrides_rejects_unknown_keys_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"plugin: unknown setting; did you mean 'plugins'\?"):
        Settings().with_overrides(plugin=["ocr"])


def test_with_dotted() -> None:
    base = Settings()
    changed = base.with_dotted({"chunk.size": 10, "chunk.overlap": 0, "progress": "none"})
    assert (changed.chunk.size, changed.chunk.overlap, changed.progress) == (10, 0, "none")
    assert base.chunk.size == 1200
    with pytest.raises(ConfigError, match=r"chunk\.\.size.* not a dotted settings key"):
        base.with_dotted({"chunk..size": 1})
    with pytest.raises(
        ConfigError, match=r"run.wrokers: unknown setting; did you mean 'run.workers'"
    ):
        base.with_dotted({"run.wrokers": 1})


def test_with_overrides_keeps_the_class_of_a_settings_with_sections() -> None:
    model = build_settings_model({"ocr": OcrSettings})
    changed = model().with_dotted({"ocr.dpi": 150})
    assert type(changed) is model
    assert changed.ocr.dpi == 150  # type: ignore[attr-defined]  # a field added at run time


def test_with_overrides_shares_nothing_with_the_changes_passed() -> None:
    patterns = ["*.pdf"]
    changed = Settings().with_overrides(collect={"patterns": patterns})
    patterns.append("*.txt")
    assert changed.collect.patterns == ["*.pdf"]


_text = st.text(alphabet="abcxyz*._-", min_size=1, max_size=8)
_changes = st.fixed_dictionaries(
    {},
    optional={
        "plugins": st.lists(_text, max_size=3),
        "transforms": st.lists(_text, max_size=3),
        "collect": st.fixed_dictionaries(
            {}, optional={"patterns": st.lists(_text, max_size=3), "select": st.none() | _text}
        ),
        "chunk": st.fixed_dictionaries(
            {},
            optional={
                "size": st.integers(-5, 3000),
                "overlap": st.integers(-5, 3000),
                "unit": st.sampled_from(["chars", "words", "lines"]),
            },
        ),
        "run": st.fixed_dictionaries(
            {}, optional={"workers": st.none() | st.integers(-2, 64), "timeout": st.floats(-1, 1e3)}
        ),
        "ocr": st.fixed_dictionaries(
            {}, optional={"dpi": st.integers(1, 600), "languages": st.lists(_text, max_size=3)}
        ),
        "sinks": st.lists(st.sampled_from(["jsonl:a.jsonl", "sqlite:b.db", "bad"]), max_size=2),
    },
)


@settings(max_examples=150, deadline=None)
@given(changes=_changes)
def test_overrides_never_touch_the_base(changes: dict[str, Any]) -> None:
    """A copy with overrides is independent of its base, both ways."""
    model = build_settings_model({"ocr": OcrSettings})
    base = model.model_validate(
        {"plugins": ["a"], "collect": {"patterns": ["*.pdf"]}, "ocr": {"languages": ["eng"]}}
    )
    before = base.model_dump()
    try:
        copy = base.with_overrides(**changes)
    except ConfigError:
        assert base.model_dump() == before
        return
    assert base.model_dump() == before
    copy.plugins.append("mutated")
    copy.transforms.append("mutated")
    copy.collect.patterns.append("mutated")
    copy.sinks.append("jsonl:mutated")
    copy.ocr.languages.append("mutated")  # type: ignore[attr-defined]  # a plugin section
    assert base.model_dump() == before


# -- plugin sections --------------------------------------------------------------------------


def test_build_settings_model_adds_sections_with_their_defaults() -> None:
    model = build_settings_model({"ocr": OcrSettings})
    s = model()
    assert isinstance(s, Settings)
    assert s.ocr == OcrSettings()  # type: ignore[attr-defined]  # a field added at run time
    assert model.model_fields["ocr"].description == "Settings of a test OCR plugin."


def test_build_settings_model_returns_the_same_class_for_the_same_sections() -> None:
    assert build_settings_model({"ocr": OcrSettings}) is build_settings_model({"ocr": OcrSettings})
    assert build_settings_model({}) is Settings


def test_plugin_section_is_validated_by_its_model() -> None:
    model = build_settings_model({"ocr": OcrSettings})
    with pytest.raises(ConfigError, match=r"ocr.engine: Input should be 'auto', 'tesseract'"):
        model().with_overrides(ocr={"engine": "magic"})
    with pytest.raises(ConfigError, match=r"ocr.dpu: unknown setting; did you mean 'ocr.dpi'"):
        model().with_overrides(ocr={"dpu": 1})


@pytest.mark.parametrize("name", ["chunk", "run", "plugins", "log_level"])
def test_a_section_named_like_a_core_setting_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=f"plugin section '{name}' collides with the core"):
        build_settings_model({name: OcrSettings})


@pytest.mark.parametrize("name", ["Ocr", "my-ocr", "with_overrides", "model_dump", ""])
def test_a_section_name_must_be_a_free_lowercase_identifier(name: str) -> None:
    with pytest.raises(ConfigError, match=f"plugin section '{name}': a section name must be"):
        build_settings_model({name: OcrSettings})


def test_a_section_must_be_a_pydantic_model() -> None:
    with pytest.raises(ConfigError, match=r"plugin section 'ocr': .* is not a pydantic model"):
        build_settings_model({"ocr": dict})  # type: ignore[dict-item]  # the mistake under test


def test_a_section_with_required_fields_is_required(tmp_path: Path) -> None:
    class Keyed(BaseModel):
        api_key: str

    with pytest.raises(ConfigError, match=r"invalid configuration:\n  cloud: Field required"):
        load_settings(sections={"cloud": Keyed}, cwd=tmp_path, environ={})
    loaded = load_settings(
        sections={"cloud": Keyed}, cwd=tmp_path, environ={"INGEST_CLOUD__API_KEY": "k"}
    )
    assert loaded.settings.cloud.api_key == "k"  # type: ignore[attr-defined]  # a run-time field


# -- pickling ---------------------------------------------------------------------------------


def test_settings_pickle() -> None:
    s = Settings(extract={"password": "pw"}, run={"max_memory": "1GiB"})  # type: ignore[arg-type]  # validated from dicts
    back = pickle.loads(pickle.dumps(s))
    assert back == s
    assert back.extract.password.get_secret_value() == "pw"


def test_settings_with_a_section_pickle(importable_ocr: type[BaseModel]) -> None:
    model = build_settings_model({"ocr": importable_ocr})
    s = model().with_dotted({"ocr.dpi": 150, "chunk.size": 500})
    back = pickle.loads(pickle.dumps(s))
    assert type(back) is model
    assert back == s
    assert back.ocr.dpi == 150  # type: ignore[attr-defined]  # a field added at run time


def test_settings_with_a_section_reach_a_spawned_worker(importable_ocr: type[BaseModel]) -> None:
    """Workers receive the settings by pickle; spawn starts a process that shares nothing."""
    echo = importlib.import_module("config_ocr_section").echo
    s = build_settings_model({"ocr": importable_ocr})().with_dotted({"ocr.languages": ["deu"]})
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        back = pool.submit(echo, s).result(timeout=120)
    assert back == s
    assert back.ocr.languages == ["deu"]


def test_pickling_a_section_that_cannot_be_imported_says_why() -> None:
    class LocalSection(BaseModel):
        dpi: int = 1

    s = build_settings_model({"local": LocalSection})()
    with pytest.raises(
        pickle.PicklingError, match=r"section 'local' cannot be imported.*module level"
    ):
        pickle.dumps(s)


# -- ingest config ----------------------------------------------------------------------------


def _loaded(tmp_path: Path) -> LoadedSettings:
    (tmp_path / "ingest.yaml").write_text("chunk:\n  size: 500\nextract:\n  password: hunter2\n")
    return load_settings(
        cwd=tmp_path,
        environ={"INGEST_RUN__WORKERS": "2"},
        overrides=["run.max_memory=2GiB", "extract.password=swordfish"],
    )


def test_render_config_text_shows_every_setting_and_masks_secrets(tmp_path: Path) -> None:
    text = render_config(_loaded(tmp_path), as_json=False)
    assert "hunter2" not in text
    assert "swordfish" not in text
    assert text.endswith("\n")
    lines = text.splitlines()
    assert lines[0] == f"config file: {tmp_path.resolve() / 'ingest.yaml'}"
    rows = {line.split()[0]: line.split(maxsplit=2)[1:] for line in lines[3:]}
    assert len(rows) == len(list(_loaded(tmp_path).as_rows()))
    assert rows["chunk.size"] == ["500", f"file:{tmp_path.resolve() / 'ingest.yaml'}:2"]
    assert rows["run.workers"] == ["2", "env:INGEST_RUN__WORKERS"]
    assert rows["run.max_memory"] == ["2.0GiB", "override:-o run.max_memory=2GiB"]
    assert rows["extract.password"] == ["**********", "override:-o extract.password=**********"]
    assert rows["chunk.overlap"] == ["150", "default"]


def test_render_config_json(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    text = render_config(loaded, as_json=True)
    assert "hunter2" not in text and "swordfish" not in text
    data = json.loads(text)
    assert data["config_file"] == str(tmp_path.resolve() / "ingest.yaml")
    assert data["rootdir"] == str(tmp_path.resolve())
    assert data["settings"]["chunk"]["size"] == 500
    assert data["settings"]["run"]["max_memory"] == 2 * 1024**3
    assert data["origins"]["run.workers"] == "env:INGEST_RUN__WORKERS"
    assert set(data["origins"]) == {key for key, _, _ in loaded.as_rows()}
    assert loaded.describe() == render_config(loaded, as_json=False)


# -- the README table -------------------------------------------------------------------------


def test_settings_table_lists_every_setting_with_its_variable(tmp_path: Path) -> None:
    table = settings_table_markdown()
    lines = table.splitlines()
    assert lines[0] == "| Key | Type | Default | Environment variable | Description |"
    assert "| `chunk.size` | int (> 0) | `1200` | `INGEST_CHUNK__SIZE` |" in table
    assert "| `run.workers` | int or null (>= 0) | `null` | `INGEST_RUN__WORKERS` |" in table
    keys = [re.match(r"\| `([^`]+)`", line)[1] for line in lines[2:]]  # type: ignore[index]  # every row starts with a key
    assert keys == [key for key, _, _ in load_settings(cwd=tmp_path, environ={}).as_rows()]
    assert len(keys) == 34


def test_settings_table_includes_plugin_sections() -> None:
    table = settings_table_markdown({"ocr": OcrSettings})
    assert "| `ocr.dpi` | int | `300` | `INGEST_OCR__DPI` |" in table
    assert '| `ocr.engine` | "auto", "tesseract", "rapidocr" | `"auto"` |' in table


def test_readme_settings_table_in_sync() -> None:
    """The README documents every setting.

    Regenerate the table with `python -m ingest.config --readme-table`.
    """
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(
        r"<!-- settings-table:start -->\n(.*?)\n?<!-- settings-table:end -->", readme, re.DOTALL
    )
    assert match, "README.md lacks the <!-- settings-table:start/end --> markers"
    assert match[1].strip() == settings_table_markdown().strip(), (
        "README settings table is stale: run `python -m ingest.config --readme-table`"
    )


def test_readme_table_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ingest.config", "--readme-table"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == settings_table_markdown()


def test_importing_config_stays_light() -> None:
    """`ingest --help` must be fast: no YAML, TOML, PDF parser or plugin manager on import."""
    code = (
        "import sys, ingest.config; "
        "print(sorted(m for m in ('yaml', 'tomllib', 'pypdf', 'pypdfium2', 'pdfminer', "
        "'ingest.manager', 'ingest.session') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_secret_is_masked_in_reprs() -> None:
    s = Settings(extract={"password": SecretStr("hunter2")})  # type: ignore[arg-type]  # validated from a dict
    assert "hunter2" not in repr(s)
    assert s.extract.password is not None
    assert s.extract.password.get_secret_value() == "hunter2"
