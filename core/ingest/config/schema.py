"""What settings keys exist and what their values look like, for every settings model.

Used by :mod:`ingest.config.sources` to parse text from ``INGEST_*`` variables and ``-o``
into the type a field expects, and to turn pydantic errors into one line per bad key with
a did-you-mean for unknown keys. Works on any model class, so plugin sections
are handled exactly like core ones.
"""

from __future__ import annotations

import difflib
import importlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import ModuleType, NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from ingest.errors import ConfigError

ENV_PREFIX = "INGEST_"
MASK = "**********"
_NOT_A_LIST: Any = object()

#: Where a value came from, as an origin (``file:/p/ingest.yaml:4``), given its key path.
Locator = Callable[[Sequence[str]], "str | None"]


# -- model introspection ---------------------------------------------------------------------


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """Strip ``Annotated`` and ``| None``: returns (the inner annotation, whether None is ok)."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType):
        args = get_args(annotation)
        rest = [arg for arg in args if arg is not NoneType]
        if len(rest) == 1:
            return _unwrap(rest[0])[0], len(rest) < len(args)
        return annotation, len(rest) < len(args)
    return annotation, False


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (``Model`` or ``Model | None``), else None."""
    inner, _ = _unwrap(annotation)
    if get_origin(inner) is None and isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner
    return None


def field_at(model: type[BaseModel], parts: Sequence[str]) -> FieldInfo | None:
    """The field a dotted key names, walking through nested models; None if there is none."""
    current: type[BaseModel] | None = model
    info: FieldInfo | None = None
    for part in parts:
        if current is None:
            return None
        info = current.model_fields.get(part)
        if info is None:
            return None
        current = model_of(info.annotation)
    return info


def model_at(model: type[BaseModel], parts: Sequence[str]) -> type[BaseModel] | None:
    """The model class at a dotted key (``[]`` is ``model`` itself), else None."""
    if not parts:
        return model
    info = field_at(model, parts)
    return None if info is None else model_of(info.annotation)


def iter_field_paths(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """Every leaf field of a model class as (dotted key, field), in declaration order."""
    for name, info in model.model_fields.items():
        nested = model_of(info.annotation)
        dotted = f"{prefix}{name}"
        if nested is None:
            yield dotted, info
        else:
            yield from iter_field_paths(nested, dotted + ".")


def env_var_name(dotted: str) -> str:
    """The variable that sets a key: ``chunk.size`` is ``INGEST_CHUNK__SIZE``."""
    return ENV_PREFIX + dotted.upper().replace(".", "__")


def is_secret(model: type[BaseModel], parts: Sequence[str]) -> bool:
    """Whether the field at ``parts`` holds a secret whose value must never be echoed."""
    info = field_at(model, parts)
    return info is not None and _unwrap(info.annotation)[0] is SecretStr


# -- parsing text from the environment and -o ------------------------------------------------


def optional_yaml() -> ModuleType | None:
    """PyYAML if it can be imported, else None (env and -o then fall back to JSON)."""
    # Imported lazily: `ingest --help` stays fast, and ingest keeps working without PyYAML.
    try:
        return importlib.import_module("yaml")
    except ImportError:
        return None


def _is_text(annotation: Any) -> bool:
    inner, _ = _unwrap(annotation)
    if inner in (str, SecretStr):
        return True
    if get_origin(inner) is Literal:
        return all(isinstance(arg, str) for arg in get_args(inner))
    if get_origin(inner) in (Union, UnionType):
        return all(_is_text(arg) for arg in get_args(inner) if arg is not NoneType)
    return False


def _list_item(annotation: Any) -> Any:
    inner, _ = _unwrap(annotation)
    if get_origin(inner) in (list, set, frozenset, Sequence):
        return get_args(inner)[0] if get_args(inner) else Any
    return _NOT_A_LIST


def parse_scalar(text: str) -> Any:
    """Parse text as a YAML value (``2`` → 2, ``true`` → True, ``[a, b]`` → a list).

    Without PyYAML, JSON is tried; text that parses as neither stays a string.
    """
    if not text.strip():
        return None
    yaml = optional_yaml()
    if yaml is not None:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_list(text: str, *, text_items: bool) -> list[Any]:
    """Parse ``a,b`` or a flow list ``[a, b]`` into a list.

    :param text_items: the items are strings; YAML's typing is then undone (``[1, yes]``
        stays ``["1", "yes"]``), and ``[*.pdf,*.txt]`` (which YAML reads as aliases) works.
    """
    stripped = text.strip()
    if not stripped:
        return []
    if stripped.startswith("[") and stripped.endswith("]"):
        loaded = parse_scalar(stripped)
        if isinstance(loaded, list) and (
            not text_items or all(isinstance(item, str) for item in loaded)
        ):
            return loaded
        return _split(stripped[1:-1])
    return _split(stripped)


def parse_text(text: str, annotation: Any) -> Any:
    """Turn the text of a variable or an ``-o`` into a value for a field of this type.

    Strings stay verbatim (a password ``0123`` is not a number), lists split on commas or
    parse as a flow list, an empty value unsets an optional field, anything else is YAML.

    :param annotation: the field's type, or None when the key is unknown.
    """
    if annotation is None:
        return parse_scalar(text)
    _, optional = _unwrap(annotation)
    if optional and not text.strip():
        return None
    if _is_text(annotation):
        return text
    item = _list_item(annotation)
    if item is not _NOT_A_LIST:
        return parse_list(text, text_items=_is_text(item))
    return parse_scalar(text)


# -- errors ----------------------------------------------------------------------------------


def suggest_key(model: type[BaseModel], parts: Sequence[str], cutoff: float = 0.6) -> str | None:
    """A real dotted key close to an unknown one (``chunk.sise`` → ``chunk.size``), or None.

    The first unknown segment is matched against its siblings; a last segment that matches
    nothing there may match a key in another section (``workers`` → ``run.workers``).
    """
    index = next((i for i in range(len(parts)) if field_at(model, parts[: i + 1]) is None), None)
    if index is None:
        return ".".join(parts)
    parent = model_at(model, parts[:index])
    if parent is None:
        return None  # the path runs through a plain value such as an int
    close = difflib.get_close_matches(parts[index], list(parent.model_fields), n=1, cutoff=cutoff)
    if close:
        candidate = [*parts[:index], close[0], *parts[index + 1 :]]
        if index == len(parts) - 1:
            return ".".join(candidate)
        return suggest_key(model, candidate, cutoff)
    if index == len(parts) - 1:
        leaves = [dotted for dotted, _ in iter_field_paths(model)]
        elsewhere = [
            dotted
            for dotted in leaves
            if difflib.get_close_matches(parts[index], [dotted.rsplit(".", 1)[-1]], cutoff=0.85)
        ]
        if len(elsewhere) == 1:
            return elsewhere[0]
    return None


def _loc_text(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validation_problems(
    exc: ValidationError, model: type[BaseModel], locate: Locator | None = None
) -> list[str]:
    """One line per pydantic error: ``[where: ]chunk.size: reason``.

    ``where`` is the file and line, variable, flag or ``-o`` text that set the value;
    unknown keys get a did-you-mean; the bad value is echoed unless it is a secret.
    """
    problems = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        parts = [str(part) for part in loc if not isinstance(part, int)]
        origin = locate(parts) if locate else None
        # The origin without its kind: `/p/ingest.yaml:4`, `INGEST_X`, `--workers`, `-o k=v`.
        where = origin.partition(":")[2] if origin else None
        if error["type"] == "extra_forbidden":
            reason = _unknown_key_reason(model, parts)
        else:
            reason = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
            value = error.get("input")
            echo = error["type"] != "value_error" and not isinstance(value, dict | BaseModel)
            if echo and not isinstance(value, SecretStr) and not is_secret(model, parts):
                reason += f" (got {_short_repr(value)})"
            from_file = origin is not None and origin.startswith("file:")
            if error["type"] == "string_type" and isinstance(value, int | float) and from_file:
                # YAML and TOML read `password: 0123` as a number; env and -o keep text as is.
                reason += "; quote it in the config file to keep it as text"
        line = f"{_loc_text(loc)}: {reason}"
        problems.append(f"{where}: {line}" if where else line)
    return problems


def _field_names(model: type[BaseModel]) -> dict[str, str]:
    """The keys a model accepts (names, and string aliases) to their field names."""
    names = {name: name for name in model.model_fields}
    for name, info in model.model_fields.items():
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                names[alias] = name
    return names


def unchecked_extra_keys(
    model: type[BaseModel], data: Any, prefix: Sequence[str] = ()
) -> Iterator[list[str]]:
    """Keys of ``data`` that ``model`` does not declare, in the models that let pydantic
    accept or ignore them (a plugin's section without ``extra="forbid"``).

    Every key of every section is checked by the host, so ``-o section.typo=1`` is an error
    even when the plugin's model would drop it silently; models that forbid extra keys are
    left to pydantic, which reports them itself.

    :param data: the merged settings data, before validation.
    :returns: the path of each such key, e.g. ``["ocr", "dpii"]``.
    """
    if not isinstance(data, Mapping):
        return
    forbids = model.model_config.get("extra") == "forbid"
    names = _field_names(model)
    for key, value in data.items():
        name = names.get(key)
        if name is None:
            if not forbids:
                yield [*prefix, str(key)]
            continue
        nested = model_of(model.model_fields[name].annotation)
        if nested is not None:
            yield from unchecked_extra_keys(nested, value, [*prefix, name])


def unknown_key_problem(
    model: type[BaseModel], parts: Sequence[str], locate: Locator | None = None
) -> str:
    """One line for an unknown key, as :func:`validation_problems` words it."""
    origin = locate(parts) if locate else None
    where = origin.partition(":")[2] if origin else None
    line = f"{'.'.join(parts)}: {_unknown_key_reason(model, parts)}"
    return f"{where}: {line}" if where else line


def _unknown_key_reason(model: type[BaseModel], parts: Sequence[str]) -> str:
    suggestion = suggest_key(model, parts)
    if suggestion:
        return f"unknown setting; did you mean {suggestion!r}?"
    if len(parts) == 1:
        return (
            "unknown setting: neither a core setting nor the section of a loaded plugin "
            "(is the plugin that provides it loaded?)"
        )
    return "unknown setting"


def config_error(problems: Sequence[str], header: str = "invalid configuration") -> ConfigError:
    """One :class:`ConfigError` listing every problem, one per line."""
    body = "\n".join(f"  {problem}" for problem in problems)
    return ConfigError(f"{header}:\n{body}")
