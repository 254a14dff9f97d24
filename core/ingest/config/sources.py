"""Where settings come from: the config file, ``INGEST_*`` variables, CLI flags and ``-o``.

Each source becomes a :class:`Layer`: nested data plus, for every key it sets, an origin such
as ``file:/p/ingest.yaml:12`` or ``env:INGEST_CHUNK__SIZE``. Layers merge lowest to highest,
and a validation error is reported against the layer that set the bad value, so the message
names the file and line, the variable or the ``-o`` text.

Nothing here knows the concrete settings models: functions take the model class, so plugin
sections are handled exactly like core ones.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ingest.config.schema import (
    ENV_PREFIX,
    MASK,
    config_error,
    env_var_name,
    field_at,
    is_secret,
    optional_yaml,
    parse_text,
    suggest_key,
    unchecked_extra_keys,
    unknown_key_problem,
    validation_problems,
)
from ingest.errors import ConfigError

#: ``INGEST_*`` variables that are not settings (read by the plugin manager or the hook
#: tracer). Keep in sync with ``manager.py``: anything listed here is never a setting.
NON_SETTING_ENV_VARS = frozenset({"INGEST_TRACE_HOOKS", "INGEST_DISABLE_PLUGIN_AUTOLOAD"})
YAML_NAMES = ("ingest.yaml", "ingest.yml")
PYPROJECT = "pyproject.toml"
PIP_HINT = "pip install pyyaml"

Model = TypeVar("Model", bound=BaseModel)
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
_MISSING: Any = object()


# -- layers ----------------------------------------------------------------------------------


@dataclass
class Layer:
    """One source of settings: nested data, and the origin of every dotted key it sets."""

    data: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def set(self, path: Sequence[str], value: Any, origin: str) -> None:
        """Set ``value`` at ``path``, creating the mappings on the way.

        :param path: the key's segments, e.g. ``["chunk", "size"]``.
        :param value: the parsed value; a mapping is merged later like a file's section.
        :param origin: what :meth:`LoadedSettings.origin` reports for it.
        """
        node = self.data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
        dotted = ".".join(path)
        # A later `-o chunk={...}` replaces what an earlier `-o chunk.size=` said.
        for stale in [key for key in self.origins if key.startswith(dotted + ".")]:
            del self.origins[stale]
        record_origins(self.origins, dotted, value, origin)


def record_origins(origins: dict[str, str], dotted: str, value: Any, origin: str) -> None:
    """Record ``origin`` for ``dotted`` and every key nested in ``value``."""
    origins[dotted] = origin
    if isinstance(value, dict):
        for key, child in value.items():
            record_origins(origins, f"{dotted}.{key}", child, origin)


def deep_merge(base: Any, update: Any) -> Any:
    """Merge ``update`` into a deep copy of ``base``: mappings merge, anything else replaces.

    :returns: a new structure sharing no mutable container with either argument.
    """
    if isinstance(base, dict) and isinstance(update, dict):
        merged = {key: copy.deepcopy(value) for key, value in base.items()}
        for key, value in update.items():
            merged[key] = deep_merge(merged.get(key, _MISSING), value)
        return merged
    return copy.deepcopy(update)


def merge_layers(layers: Sequence[Layer]) -> dict[str, Any]:
    """Merge layers lowest first; ``plugins`` accumulates instead of being replaced.

    ``plugins`` adds up like pytest's ``-p``, so ``-p no:ocr`` on the command line can block a
    plugin the config file names instead of wiping the file's whole list.
    """
    merged: dict[str, Any] = {}
    plugins: list[Any] = []
    bad_plugins = _MISSING
    seen_plugins = False
    for layer in layers:
        for key, value in layer.data.items():
            if key != "plugins":
                merged[key] = deep_merge(merged.get(key, _MISSING), value)
                continue
            seen_plugins = True
            items = [value] if isinstance(value, str) else value
            if isinstance(items, list | tuple):
                plugins.extend(item for item in items if item not in plugins)
            else:
                bad_plugins = value  # left for validation to report with its origin
    if bad_plugins is not _MISSING:
        merged["plugins"] = bad_plugins
    elif seen_plugins:
        merged["plugins"] = copy.deepcopy(plugins)
    return merged


def origin_of(layers: Sequence[Layer], dotted: str) -> str:
    """The origin of a leaf: the highest layer that set it (or a key inside it).

    :returns: ``"default"`` when no layer set it; for ``plugins``, which accumulates, every
        contributing layer, lowest first, joined with ``", "``.
    """
    if dotted == "plugins":
        found = [origin for layer in layers if (origin := _layer_origin(layer, dotted))]
        return ", ".join(dict.fromkeys(found)) or "default"
    for layer in reversed(layers):
        origin = _layer_origin(layer, dotted)
        if origin:
            return origin
    return "default"


def _layer_origin(layer: Layer, dotted: str) -> str:
    if dotted in layer.origins:
        return layer.origins[dotted]
    for key, origin in layer.origins.items():
        if key.startswith(dotted + "."):
            return origin
    return ""


def locate(layers: Sequence[Layer], parts: Sequence[str]) -> str | None:
    """The origin of the value at ``parts`` (or, failing that, of its closest parent).

    :returns: e.g. ``file:/p/ingest.yaml:4``, or None when it is a built-in default.
    """
    for size in range(len(parts), 0, -1):
        dotted = ".".join(parts[:size])
        for layer in reversed(layers):
            if dotted in layer.origins:
                return layer.origins[dotted]
    return None


# -- the layers ------------------------------------------------------------------------------


def env_layer(environ: Mapping[str, str], model: type[BaseModel], problems: list[str]) -> Layer:
    """Settings from ``INGEST_<KEY>`` variables, nested with ``__``.

    Unknown variables are ignored, except when they look meant for ingest: nested with
    ``__``, or close to a real key or to one of :data:`NON_SETTING_ENV_VARS` (a typo).

    :param problems: collects one line per bad variable.
    """
    layer = Layer()
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in NON_SETTING_ENV_VARS:
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        info = field_at(model, parts) if all(parts) else None
        if info is None:
            problem = _unknown_env(name, parts, model)
            if problem:
                problems.append(problem)
            continue
        layer.set(parts, parse_text(environ[name], info.annotation), f"env:{name}")
    return layer


def _unknown_env(name: str, parts: list[str], model: type[BaseModel]) -> str | None:
    nested = len(parts) > 1
    # A flat name needs a close match to be taken for a typo: other tools may use INGEST_ too.
    suggestion = suggest_key(model, parts, cutoff=0.6 if nested else 0.8) if all(parts) else None
    if suggestion:
        return f"{name}: unknown setting; did you mean {env_var_name(suggestion)}?"
    close = difflib.get_close_matches(name, sorted(NON_SETTING_ENV_VARS), n=1, cutoff=0.85)
    if close:
        return f"{name}: not a setting nor a variable ingest reads; did you mean {close[0]}?"
    if nested:
        if parts[0] in model.model_fields:
            return f"{name}: unknown setting {'.'.join(parts)!r}"
        return (
            f"{name}: unknown setting {'.'.join(parts)!r}: no loaded plugin has a section "
            f"{parts[0]!r} (is the plugin that provides it loaded?)"
        )
    return None


def cli_layer(cli: Mapping[str, Any], flags: Mapping[str, str]) -> Layer:
    """Settings from CLI flags, given as dotted keys to already typed values.

    None and empty sequences mean "flag not given" (click's ``multiple=True`` gives ``()``).

    :param flags: the flag each key came from, for :meth:`LoadedSettings.origin`; the
        default is ``--`` + the last segment (``run.workers`` → ``--workers``).
    """
    layer = Layer()
    for key, value in cli.items():
        if value is None or (isinstance(value, list | tuple) and not value):
            continue
        if isinstance(value, tuple):
            value = list(value)
        flag = flags.get(key) or "--" + key.rsplit(".", 1)[-1].replace("_", "-")
        layer.set(key.split("."), copy.deepcopy(value), f"cli:{flag}")
    return layer


def override_layer(overrides: Sequence[str], model: type[BaseModel], problems: list[str]) -> Layer:
    """Settings from ``-o key=value`` texts, applied in order (a later one wins).

    :param problems: collects one line per malformed override.
    """
    layer = Layer()
    for text in overrides:
        key, sep, raw = text.partition("=")
        key = key.strip()
        parts = key.split(".")
        # The origin is shown by `ingest config`: never echo a secret.
        where = f"-o {key}={MASK}" if all(parts) and is_secret(model, parts) else f"-o {text}"
        if not sep or not key:
            problems.append(f"{where}: expected KEY=VALUE, e.g. -o chunk.size=500")
            continue
        if not all(parts):
            problems.append(f"{where}: {key!r} is not a dotted settings key like chunk.size")
            continue
        info = field_at(model, parts)
        value = parse_text(raw, info.annotation if info else None)
        layer.set(parts, value, f"override:{where}")
    return layer


# -- config files ----------------------------------------------------------------------------


def load_file(config_file: str | Path | None, base: Path) -> tuple[Path | None, Layer]:
    """Read the explicit config file, or the one found walking up from ``base``.

    :returns: the file's absolute path (None when there is none) and its layer.
    :raises ConfigError: the file is missing, unreadable, malformed or not a mapping.
    """
    if config_file is not None:
        path = base / Path(config_file).expanduser()  # an absolute path replaces base
        layer = read_config_file(path, explicit=True)
        assert layer is not None  # explicit files never come back empty-handed
        return path, layer
    for directory in (base, *base.parents):
        for name in (*YAML_NAMES, PYPROJECT):
            candidate = directory / name
            if candidate.is_file():
                found = read_config_file(candidate, explicit=False)
                if found is not None:
                    return candidate, found
    return None, Layer()


def read_config_file(path: Path, *, explicit: bool) -> Layer | None:
    """Read one config file; its kind comes from its name.

    :param explicit: named with ``-c``; a pyproject.toml without ``[tool.ingest]`` is then
        an error rather than a file to walk past.
    :returns: the layer, or None for a discovered pyproject.toml without ``[tool.ingest]``.
    :raises ConfigError: see :func:`load_file`.
    """
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml"):
        raise ConfigError(
            f"{path}: cannot tell the config format from the file name; "
            "use a .yaml/.yml file or a .toml file ([tool.ingest] in pyproject.toml)"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    if suffix == ".toml":
        return _read_toml(path, text, pyproject=path.name == PYPROJECT, explicit=explicit)
    return _read_yaml(path, text)


def _read_yaml(path: Path, text: str) -> Layer:
    yaml = optional_yaml()
    if yaml is None:
        raise ConfigError(
            f"{path}: reading a YAML config file needs PyYAML, which is not installed: "
            f"run `{PIP_HINT}`, or move the settings to [tool.ingest] in pyproject.toml"
        )
    # The safe loader only (hostile input, DESIGN.md); composing first keeps each key's line.
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Layer()
        origins: dict[str, str] = {}
        _walk_yaml(node, [], path, origins)  # before construction rewrites merge keys
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        reason = "; ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError(f"{where}: invalid YAML: {reason}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}:{node.start_mark.line + 1}: the top level must be a mapping of settings "
            f"(like `chunk: {{size: 800}}`), not {type(data).__name__}"
        )
    return Layer(_str_keys(data), origins)


def _walk_yaml(node: Any, prefix: list[str], path: Path, origins: dict[str, str]) -> None:
    if node.id != "mapping":
        return
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        if key_node.id != "scalar" or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = str(key_node.value)
        line = key_node.start_mark.line + 1
        dotted = ".".join([*prefix, key])
        if key in lines:
            # PyYAML silently keeps the last one; a duplicate is almost always a mistake.
            raise ConfigError(
                f"{path}:{line}: duplicate key {dotted!r} (first at line {lines[key]})"
            )
        lines[key] = line
        origins[dotted] = f"file:{path}:{line}"
        _walk_yaml(value_node, [*prefix, key], path, origins)


def _str_keys(value: Any) -> Any:
    # YAML allows `1:` or `yes:` as keys; settings keys are strings, so compare them as such.
    if isinstance(value, dict):
        return {str(key): _str_keys(child) for key, child in value.items()}
    return value


def _read_toml(path: Path, text: str, *, pyproject: bool, explicit: bool) -> Layer | None:
    if pyproject and not explicit and "ingest" not in text:
        return None  # cheap: an unrelated pyproject.toml up the tree is not even parsed
    import tomllib  # lazily: keeps `ingest --help` fast

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION.search(message)
        where = f"{path}:{position[1]}:{position[2]}" if position else str(path)
        raise ConfigError(f"{where}: invalid TOML: {_TOML_POSITION.sub('', message)}") from None
    data: Any = document
    if pyproject:
        tool = document.get("tool")
        data = tool.get("ingest") if isinstance(tool, dict) else None
        if data is None:
            if explicit:
                raise ConfigError(f"{path}: has no [tool.ingest] table")
            return None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: tool.ingest must be a table, like [tool.ingest]")
    layer = Layer(data)
    for key, value in data.items():
        record_origins(layer.origins, key, value, f"file:{path}")
    return layer


def validate(model: type[Model], layers: Sequence[Layer], problems: list[str]) -> Model:
    """Merge ``layers`` and validate them with ``model``.

    :param problems: problems found while building the layers, reported with the rest.
    :returns: the validated instance.
    :raises ConfigError: listing ``problems`` and every validation error, each with the
        file and line, variable, flag or ``-o`` text that set the bad value; a key that no
        model declares is an error in every section, whatever the section's model says.
    """
    merged = merge_layers(layers)
    locator = functools.partial(locate, layers)
    extras = unchecked_extra_keys(model, merged)
    problems = [*problems, *(unknown_key_problem(model, parts, locator) for parts in extras)]
    try:
        instance = model.model_validate(merged)
    except ValidationError as exc:
        raise config_error([*problems, *validation_problems(exc, model, locator)]) from None
    if problems:
        raise config_error(problems)
    return instance
