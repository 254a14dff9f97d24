"""A transform with its own output-shaping setting (``shaping.mark``), as a third party's is.

Loaded by dotted path (``-p plugins.shaping``), which is also its step name in the chain
(``-o transforms=[normalize,plugins.shaping,chunk]``); worker processes import it by name. It
puts ``shaping.mark`` in front of every page: a run with another mark must replace every
record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ingest import Document, hookimpl
from pydantic import BaseModel, ConfigDict


class ShapingSettings(BaseModel):
    """The ``shaping`` section: the text put in front of every page."""

    model_config = ConfigDict(extra="forbid")

    mark: str = "plain"


@hookimpl
def ingest_register_settings(register: Callable[[str, type[BaseModel]], None]) -> None:
    """Declare the ``shaping`` section."""
    register("shaping", ShapingSettings)


@hookimpl
def ingest_transform(document: Document, settings: Any, step: str) -> None:
    """Prefix every page with the configured mark (only as its own step)."""
    if step != __name__:
        return
    for page in document.pages:
        page.text = f"[{settings.shaping.mark}] {page.text}"
