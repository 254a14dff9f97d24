"""The settings reference in the README, generated from the models so it cannot drift.

Regenerate with ``python -m ingest.config --readme-table``; a test compares it with the
block between ``<!-- settings-table:start -->`` and ``<!-- settings-table:end -->``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ByteSize, SecretStr
from pydantic.fields import FieldInfo

from ingest.config import schema

_BOUNDS = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "<="),
)


def type_name(annotation: Any) -> str:
    """A reader's name for a field type: ``int or null``, ``list[str]``, ``"a", "b"``."""
    while hasattr(annotation, "__metadata__"):  # Annotated[...]
        annotation = get_args(annotation)[0]
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        args = get_args(annotation)
        names = [type_name(arg) for arg in args if arg is not NoneType]
        return " or ".join(names + (["null"] if NoneType in args else []))
    if origin is Literal:
        return ", ".join(json.dumps(arg) for arg in get_args(annotation))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(arg) for arg in get_args(annotation))}]"
    if annotation is SecretStr:
        return "secret str"
    if annotation is ByteSize:
        return "bytes (e.g. 2GiB)"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(info: FieldInfo) -> str:
    bounds = [
        f"{symbol} {getattr(item, attribute)}"
        for item in info.metadata
        for kind, attribute, symbol in _BOUNDS
        if isinstance(item, kind)
    ]
    return f" ({', '.join(bounds)})" if bounds else ""


def _default(info: FieldInfo) -> str:
    value = info.get_default(call_default_factory=True, validated_data={})
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, default=str)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_table(model: type[BaseModel]) -> str:
    """The Markdown table of every leaf setting of ``model``.

    :param model: :class:`~ingest.config.Settings` or a class built with plugin sections.
    :returns: the table, without a trailing newline.
    """
    lines = [
        "| Key | Type | Default | Environment variable | Description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for dotted, info in schema.iter_field_paths(model):
        kind = type_name(info.annotation) + _constraints(info)
        lines.append(
            f"| `{dotted}` | {_cell(kind)} | `{_cell(_default(info))}` "
            f"| `{schema.env_var_name(dotted)}` | {_cell(info.description or '')} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ingest.config --readme-table``: print the README's settings table.

    :returns: the exit status.
    """
    parser = argparse.ArgumentParser(prog="python -m ingest.config")
    parser.add_argument(
        "--readme-table", action="store_true", help="print the README's settings table"
    )
    args = parser.parse_args(argv)
    if not args.readme_table:
        parser.print_help()
        return 2
    from ingest.config import settings_table_markdown  # the real module, not __main__

    print(settings_table_markdown())
    return 0
