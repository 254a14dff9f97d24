"""ingest: turn piles of PDFs into clean text, pages and chunks in a store.

Public API only. Heavy modules (parsers, pydantic models of plugins, the executor) are not
imported here, so ``import ingest`` and ``ingest --help`` stay fast.
"""

from __future__ import annotations

from ingest.errors import ConfigError, DocumentError, IngestError, PluginError, UsageError
from ingest.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DocumentError",
    "IngestError",
    "PluginError",
    "UsageError",
    "__version__",
    "hookimpl",
]
