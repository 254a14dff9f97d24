"""ingest: turn piles of PDFs into clean text, pages and chunks in a store.

Public API only. Heavy modules (parsers, pydantic models of plugins, the executor) are not
imported here, so ``import ingest`` and ``ingest --help`` stay fast.
"""

from __future__ import annotations

import importlib

from ingest.errors import ConfigError, DocumentError, IngestError, PluginError, UsageError
from ingest.hookspecs import hookimpl
from ingest.log import configure_level_from_env as _configure_level_from_env
from ingest.model import (
    BLOCK_KINDS,
    PAGE_SEPARATOR,
    PDF_MEDIA_TYPE,
    BBox,
    Block,
    Chunk,
    Document,
    Failure,
    Metadata,
    Page,
    Source,
    Table,
    TableCell,
)

__version__ = "0.1.0"

_configure_level_from_env()

# Loaded on first use: the executor, the pipeline and pydantic are not needed by
# `ingest --help` or by a plugin module that only imports `hookimpl`.
_LAZY = {
    "run": "ingest.api",
    "arun": "ingest.api",
    "run_sync": "ingest.execution",
    "run_sync_many": "ingest.execution",
    "shutdown_executors": "ingest.execution",
    "ProgressTracker": "ingest.progress",
    "Settings": "ingest.config",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ingest' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

__all__ = [
    "BLOCK_KINDS",
    "PAGE_SEPARATOR",
    "PDF_MEDIA_TYPE",
    "BBox",
    "Block",
    "Chunk",
    "ConfigError",
    "Document",
    "DocumentError",
    "Failure",
    "IngestError",
    "Metadata",
    "Page",
    "PluginError",
    "ProgressTracker",
    "Settings",
    "Source",
    "Table",
    "TableCell",
    "UsageError",
    "__version__",
    "arun",
    "hookimpl",
    "run",
    "run_sync",
    "run_sync_many",
    "shutdown_executors",
]
