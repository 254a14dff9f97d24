"""Settings: the validated configuration of a run, and where each value came from.

Sources, lowest to highest: built-in defaults < a config file (``ingest.yaml``,
``ingest.yml`` or ``[tool.ingest]`` in ``pyproject.toml``, found by walking up from the
current directory, or ``-c FILE``) < ``INGEST_*`` environment variables < CLI flags <
``-o key=value`` overrides. Plugins add sections with :func:`build_settings_model`.

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
    EmbedSettings,
    ExtractSettings,
    RunSettings,
    Settings,
    build_settings_model,
)

__all__ = [
    "CacheSettings",
    "ChunkSettings",
    "CollectSettings",
    "EmbedSettings",
    "ExtractSettings",
    "LoadedSettings",
    "RunSettings",
    "Settings",
    "SettingsStack",
    "build_settings_model",
    "load_settings",
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
    *, sections: Mapping[str, type[BaseModel]] = _NO_SECTIONS, **inputs: Any
) -> LoadedSettings:
    """Read, merge and validate the settings of a run: ``SettingsStack(**inputs).load(sections)``.

    :param sections: the loaded plugins' section models, by section name.
    :param inputs: :class:`SettingsStack`'s keyword arguments (``cwd``, ``environ``...).
    :raises ConfigError: listing every problem: file, line or variable, key and reason.
    """
    return SettingsStack(**inputs).load(sections)


#: The settings known before any plugin is loaded: they decide which plugins load (those
#: named, and those whose name picks a component: executor, embedder, extractors,
#: transforms, sinks).
_EARLY_KEYS = (
    "plugins",
    "run.executor",
    "embed.embedder",
    "extract.extractor",
    "extract.fallback",
    "transforms",
    "sinks",
)


@final
class SettingsStack:
    """Every source of one run's settings, read once, in the order they override each other.

    Built-in defaults < the config file < ``INGEST_*`` variables < CLI flags < ``-o``
    overrides. Two answers come from the same stack: first the plugins to load, the executor
    and the embedder (:meth:`plugins`, :meth:`executor`, :meth:`embedder`), which must be
    known before the plugins declare their settings sections; then, with those sections, the
    validated settings (:meth:`load`).

    :param config_file: an explicit config file (``-c``); relative to ``cwd``. Without it
        the first directory from ``cwd`` upwards that has ``ingest.yaml``, ``ingest.yml``
        or a pyproject.toml with ``[tool.ingest]`` provides it (in that order).
    :param cwd: where discovery starts; default the current directory.
    :param environ: the variables to read ``INGEST_*`` from; default ``os.environ``.
    :param cli: dotted key to value from CLI flags, e.g. ``{"run.workers": 2}``; None and
        empty sequences are "not given". ``plugins`` (``-p``) adds to the other layers'.
    :param overrides: raw ``-o key=value`` texts, applied last, in order.
    :param cli_flags: dotted key to the flag that set it, for origins (``--workers``).
    :raises ConfigError: the config file cannot be read.
    """

    def __init__(
        self,
        *,
        config_file: str | Path | None = None,
        cwd: Path | None = None,
        environ: Mapping[str, str] | None = None,
        cli: Mapping[str, Any] | None = None,
        overrides: Sequence[str] = (),
        cli_flags: Mapping[str, str] | None = None,
    ) -> None:
        self.base = _base_dir(cwd)
        self.config_path, self._file = sources.load_file(config_file, self.base)
        self._environ = dict(os.environ if environ is None else environ)
        self._cli = dict(cli or {})
        self._overrides = tuple(overrides)
        self._flags = dict(cli_flags or {})
        self._early: Settings | None = None

    @property
    def environ(self) -> Mapping[str, str]:
        """The environment the stack reads (a snapshot taken when it was built)."""
        return MappingProxyType(self._environ)

    @property
    def rootdir(self) -> Path:
        """The config file's folder, else the directory discovery started from."""
        return self.config_path.parent if self.config_path else self.base

    def plugins(self) -> list[str]:
        """The plugins every layer names, accumulated lowest first (``no:NAME`` kept).

        :raises ConfigError: a ``plugins`` value is invalid.
        """
        return list(self._early_settings().plugins)

    def executor(self) -> str:
        """``run.executor`` (``process`` when nothing sets it).

        :raises ConfigError: the value is invalid.
        """
        return self._early_settings().run.executor

    def components(self) -> list[str]:
        """The plugin names the settings pick components by, in order: the executor, the
        embedder (when the run embeds), the extractor and its fallbacks, the transform
        steps, and the schemes of the sinks.

        :raises ConfigError: one of these settings is invalid.
        """
        early = self._early_settings()
        return list(
            dict.fromkeys(
                [
                    early.run.executor,
                    *([early.embed.embedder] if early.embed.embedder else []),
                    early.extract.extractor,
                    *early.extract.fallback,
                    *early.transforms,
                    *(sink.partition(":")[0] for sink in early.sinks),
                ]
            )
        )
    def embedder(self) -> str | None:
        """``embed.embedder``: the embedder the run names, ``None`` when it does not embed.

        :raises ConfigError: the value is invalid.
        """
        return self._early_settings().embed.embedder

    def load(self, sections: Mapping[str, type[BaseModel]] = _NO_SECTIONS) -> LoadedSettings:
        """Merge and validate every layer, with the loaded plugins' sections.

        :param sections: section name to the plugin's model.
        :returns: the settings and the origin of every leaf.
        :raises ConfigError: listing every problem: file, line or variable, key and reason.
        """
        model = build_settings_model(sections)
        problems: list[str] = []
        layers = self._layers(model, problems)
        settings = sources.validate(model, layers, problems)
        origins = {key: sources.origin_of(layers, key) for key, _ in _leaves(settings)}
        return LoadedSettings(settings, self.config_path, self.rootdir, MappingProxyType(origins))

    def _layers(
        self, model: type[BaseModel], problems: list[str], only: Sequence[str] = ()
    ) -> list[sources.Layer]:
        """The four layers, lowest first; ``only``: just these dotted keys (early pass)."""
        file_layer, environ, cli, overrides = self._file, self._environ, self._cli, self._overrides
        if only:
            file_layer = sources.Layer()
            for key in only:
                value = _dig(self._file.data, key.split("."))
                if value is not _ABSENT:
                    origin = self._file.origins.get(key, f"file:{self.config_path}")
                    file_layer.set(key.split("."), value, origin)
            names = {schema.env_var_name(key) for key in only}
            environ = {name: value for name, value in environ.items() if name in names}
            cli = {key: value for key, value in cli.items() if key in only}
            overrides = tuple(o for o in overrides if o.partition("=")[0].strip() in only)
        return [
            file_layer,
            sources.env_layer(environ, model, problems),
            sources.cli_layer(cli, self._flags),
            sources.override_layer(overrides, model, problems),
        ]

    def _early_settings(self) -> Settings:
        if self._early is None:
            problems: list[str] = []
            layers = self._layers(Settings, problems, only=_EARLY_KEYS)
            self._early = sources.validate(Settings, layers, problems)
        return self._early


_ABSENT: Any = object()


def _dig(data: Mapping[str, Any], parts: Sequence[str]) -> Any:
    node: Any = data
    for part in parts:
        if not isinstance(node, Mapping) or part not in node:
            return _ABSENT
        node = node[part]
    return node


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
