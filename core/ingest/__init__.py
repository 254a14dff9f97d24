"""ingest: turn piles of PDFs into clean text, pages and chunks in a store.

This module is the whole public surface for plugin authors and library users: everything a
plugin needs is importable from ``ingest`` (executor backends add :mod:`ingest.workers`).
Heavy modules (pydantic settings, the pipeline, the event loop) load on first use, so
``import ingest`` and ``ingest --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ingest.errors import (
    ConfigError,
    DocumentError,
    IngestError,
    PluginError,
    UsageError,
    WriteError,
)
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
    Embedding,
    Failure,
    LogEntry,
    Metadata,
    Page,
    Source,
    Table,
    TableCell,
    display_path,
)
from ingest.result import ExitCode, RunResult

if TYPE_CHECKING:
    from ingest.api import arun, run
    from ingest.bridge import run_sync, run_sync_many, shutdown_executors
    from ingest.config import Settings
    from ingest.embedding import Embedder, embed_texts, load_embedder
    from ingest.manager import IngestPluginManager
    from ingest.progress import ProgressEvent, ProgressTracker
    from ingest.session import Session
    from ingest.sinks import StoreSink, mask_secrets
    from ingest.storage import explain_write_error, no_leftovers

__version__ = "0.1.0"

# Quietly: worker processes import ingest too; a run reports a bad value, once.
_configure_level_from_env(warn=False)

# Loaded on first use: the event loop, the pipeline and pydantic are not needed by
# `ingest --help` or by a plugin module that only imports `hookimpl`.
_LAZY = {
    "run": "ingest.api",
    "arun": "ingest.api",
    "run_sync": "ingest.bridge",
    "run_sync_many": "ingest.bridge",
    "shutdown_executors": "ingest.bridge",
    "explain_write_error": "ingest.storage",
    "no_leftovers": "ingest.storage",
    "ProgressTracker": "ingest.progress",
    "ProgressEvent": "ingest.progress",
    "Settings": "ingest.config",
    "Embedder": "ingest.embedding",
    "embed_texts": "ingest.embedding",
    "load_embedder": "ingest.embedding",
    "IngestPluginManager": "ingest.manager",
    "Session": "ingest.session",
    "mask_secrets": "ingest.sinks",
    "StoreSink": "ingest.sinks",
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
    "Embedder",
    "Embedding",
    "ExitCode",
    "Failure",
    "IngestError",
    "IngestPluginManager",
    "LogEntry",
    "Metadata",
    "Page",
    "PluginError",
    "ProgressEvent",
    "ProgressTracker",
    "RunResult",
    "Session",
    "Settings",
    "Source",
    "StoreSink",
    "Table",
    "TableCell",
    "UsageError",
    "WriteError",
    "__version__",
    "arun",
    "display_path",
    "embed_texts",
    "explain_write_error",
    "hookimpl",
    "load_embedder",
    "mask_secrets",
    "no_leftovers",
    "run",
    "run_sync",
    "run_sync_many",
    "shutdown_executors",
]
