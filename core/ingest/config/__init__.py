"""Settings: the validated configuration of a run, and where each value came from.

Sources, lowest to highest: built-in defaults < a config file (``ingest.yaml``,
``ingest.yml`` or ``[tool.ingest]`` in ``pyproject.toml``, found by walking up from the
current directory, or ``-c FILE``) < ``INGEST_*`` environment variables < CLI flags <
``-o key=value`` overrides. Plugins add sections with :func:`build_settings_model` (issue #4).

This module must stay cheap to import (``ingest --help``): no PDF parser, no plugin manager,
and YAML and TOML are imported only when a file is read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, final

from pydantic import BaseModel, ByteSize, SecretStr

from ingest.config import schema, sources
from ingest.config.models import (
    CacheSettings,
    ChunkSettings,
    CollectSettings,
    ExtractSettings,
    RunSettings,
    Settings,
    build_settings_model,
)

__all__ = [
    "CacheSettings",
    "ChunkSettings",
    "CollectSettings",
    "ExtractSettings",
    "LoadedSettings",
    "RunSettings",
    "Settings",
    "build_settings_model",
    "load_settings",
    "peek_executor",
    "peek_plugins",
    "render_config",
    "settings_table_markdown",
]

_NO_SECTIONS: Mapping[str, type[BaseModel]] = MappingProxyType({})


# -- loading ---------------------------------------------------------------------------------


def _leaves(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _leaves(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


@final
@dataclass(frozen=True)
class LoadedSettings:
    """Validated settings plus where they came from.

    :param settings: the validated settings.
    :param config_path: the config file read, or None.
    :param rootdir: the config file's folder, else the current directory.
    :param origins: dotted key of every leaf to its origin (see :meth:`origin`).
    """

    settings: Settings
    config_path: Path | None
    rootdir: Path
    origins: Mapping[str, str]

    def origin(self, key: str) -> str:
        """Where the value of a leaf setting came from.

        :param key: a dotted key such as ``chunk.size`` or ``ocr.dpi``.
        :returns: ``default``, ``file:/p/ingest.yaml:12`` (the line for YAML),
            ``env:INGEST_CHUNK__SIZE``, ``cli:--workers`` or ``override:-o chunk.size=500``.
        :raises KeyError: ``key`` is not a leaf setting.
        """
        try:
            return self.origins[key]
        except KeyError:
            known = ", ".join(self.origins)
            raise KeyError(f"{key!r} is not a leaf setting; the settings are: {known}") from None

    def as_rows(self) -> list[tuple[str, Any, str]]:
        """(dotted key, value, origin) for every leaf, in declaration order.

        Secrets stay :class:`~pydantic.SecretStr`, which never shows its value.
        """
        return [(key, value, self.origins[key]) for key, value in _leaves(self.settings)]

    def describe(self) -> str:
        """The text ``ingest config`` prints: see :func:`render_config`."""
        return render_config(self, as_json=False)


def _base_dir(cwd: str | Path | None) -> Path:
    return Path.cwd() if cwd is None else Path(cwd).expanduser().resolve()


def load_settings(
    *,
    sections: Mapping[str, type[BaseModel]] = _NO_SECTIONS,
    config_file: str | Path | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    cli_flags: Mapping[str, str] | None = None,
) -> LoadedSettings:
    """Read, merge and validate the settings of a run from every source.

    :param sections: the loaded plugins' section models, by section name.
    :param config_file: an explicit config file (``-c``); relative to ``cwd``. Without it
        the first directory from ``cwd`` upwards that has ``ingest.yaml``, ``ingest.yml``
        or a pyproject.toml with ``[tool.ingest]`` provides it (in that order).
    :param cwd: where discovery starts; default the current directory.
    :param environ: the variables to read ``INGEST_*`` from; default ``os.environ``.
    :param cli: dotted key to value from CLI flags, e.g. ``{"run.workers": 2}``; None and
        empty sequences are "not given". ``plugins`` adds to the other layers' plugins.
    :param overrides: raw ``-o key=value`` texts, applied last, in order.
    :param cli_flags: dotted key to the flag that set it, for origins (``--workers``).
    :returns: the settings and their origins.
    :raises ConfigError: listing every problem: file, line or variable, key and reason.
    """
    model = build_settings_model(sections)
    base = _base_dir(cwd)
    config_path, file_layer = sources.load_file(config_file, base)
    problems: list[str] = []
    layers = [
        file_layer,
        sources.env_layer(os.environ if environ is None else environ, model, problems),
        sources.cli_layer(cli or {}, cli_flags or {}),
        sources.override_layer(overrides, model, problems),
    ]
    settings = sources.validate(model, layers, problems)
    origins = {key: sources.origin_of(layers, key) for key, _ in _leaves(settings)}
    rootdir = config_path.parent if config_path else base
    return LoadedSettings(settings, config_path, rootdir, MappingProxyType(origins))


def peek_plugins(
    *,
    config_file: str | Path | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cli_plugins: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
) -> list[str]:
    """The plugins the configuration names, before any plugin (or its section) is loaded.

    Accumulates file < ``INGEST_PLUGINS`` < ``cli_plugins`` < ``-o plugins=...``; every
    other key is left for :func:`load_settings`, once the plugins' sections are known.

    :returns: plugin names in order, duplicates removed, ``no:NAME`` entries kept.
    :raises ConfigError: the config file cannot be read, or a plugins value is invalid.
    """
    _, file_layer = sources.load_file(config_file, _base_dir(cwd))
    env = os.environ if environ is None else environ
    layers = [sources.Layer(), sources.Layer(), sources.Layer(), sources.Layer()]
    if "plugins" in file_layer.data:
        layers[0].set(["plugins"], file_layer.data["plugins"], file_layer.origins["plugins"])
    if "INGEST_PLUGINS" in env:
        layers[1] = sources.env_layer({"INGEST_PLUGINS": env["INGEST_PLUGINS"]}, Settings, [])
    layers[2] = sources.cli_layer({"plugins": cli_plugins}, {"plugins": "-p"})
    mine = [text for text in overrides if text.partition("=")[0].strip() == "plugins"]
    layers[3] = sources.override_layer(mine, Settings, [])
    return sources.validate(Settings, layers, []).plugins


def peek_executor(
    *,
    config_file: str | Path | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cli_executor: str | None = None,
    overrides: Sequence[str] = (),
) -> str:
    """``run.executor`` from every layer, before any plugin (or its section) is loaded.

    Naming an executor names its plugin (issue #8), whose section must be known before the
    settings are validated; so the executor is read first, as the plugins are.

    :returns: the executor's name (``process`` when nothing sets it).
    :raises ConfigError: the config file cannot be read, or the value is invalid.
    """
    _, file_layer = sources.load_file(config_file, _base_dir(cwd))
    env = os.environ if environ is None else environ
    layers = [sources.Layer(), sources.Layer(), sources.Layer(), sources.Layer()]
    run = file_layer.data.get("run")
    if isinstance(run, Mapping) and "executor" in run:
        origin = file_layer.origins.get("run.executor", "file")
        layers[0].set(["run", "executor"], run["executor"], origin)
    variable = "INGEST_RUN__EXECUTOR"
    if variable in env:
        layers[1] = sources.env_layer({variable: env[variable]}, Settings, [])
    layers[2] = sources.cli_layer({"run.executor": cli_executor}, {"run.executor": "--executor"})
    mine = [text for text in overrides if text.partition("=")[0].strip() == "run.executor"]
    layers[3] = sources.override_layer(mine, Settings, [])
    return sources.validate(Settings, layers, []).run.executor


# -- showing settings ------------------------------------------------------------------------


def _display(value: Any) -> str:
    if isinstance(value, SecretStr):
        return schema.MASK
    if isinstance(value, ByteSize):
        return value.human_readable()
    return json.dumps(_masked(value), default=str)


def _masked(value: Any) -> Any:
    """``value`` with the password of any URL in its strings masked (a sink such as
    ``postgresql://user:secret@host/db``)."""
    from ingest.sinks import mask_secrets

    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    return value


def render_config(loaded: LoadedSettings, as_json: bool) -> str:
    """What ``ingest config`` prints: every setting, its value and its origin.

    :param as_json: a JSON document (``config_file``, ``rootdir``, nested ``settings`` and
        ``origins`` by dotted key) instead of aligned text.
    :returns: the text, ending with a newline; secrets are always masked.
    """
    rows = loaded.as_rows()
    config_file = str(loaded.config_path) if loaded.config_path else None
    if as_json:
        payload = {
            "config_file": config_file,
            "rootdir": str(loaded.rootdir),
            "settings": _masked(loaded.settings.model_dump(mode="json")),
            "origins": {key: _masked(origin) for key, _, origin in rows},
        }
        return json.dumps(payload, indent=2) + "\n"
    shown = [(key, _display(value), _masked(origin)) for key, value, origin in rows]
    key_width = max(len(key) for key, _, _ in shown)
    value_width = min(40, max(len(value) for _, value, _ in shown))
    lines = [f"config file: {config_file or '(none)'}", f"rootdir: {loaded.rootdir}", ""]
    lines += [
        f"{key:<{key_width}}  {value:<{value_width}}  {origin}".rstrip()
        for key, value, origin in shown
    ]
    return "\n".join(lines) + "\n"


def settings_table_markdown(sections: Mapping[str, type[BaseModel]] = _NO_SECTIONS) -> str:
    """The README's table of settings: key, type, default, variable and description.

    :param sections: plugin sections to include after the core settings.
    :returns: a Markdown table, without a trailing newline.
    """
    from ingest.config.docs import settings_table  # only needed for docs

    return settings_table(build_settings_model(sections))
