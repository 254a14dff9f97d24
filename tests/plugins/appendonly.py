"""A sink written before sinks could delete: it appends, and its ``ingest_sink`` takes no
``deleted``. Loaded with ``-p plugins.appendonly``; ``--sink appendonly:FILE``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ingest import Document, hookimpl


class AppendOnlySink:
    """Appends every record of every batch to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @hookimpl
    def ingest_sink(self, batch: Sequence[Document]) -> None:
        """Append the batch's records."""
        with self.path.open("a", encoding="utf-8") as handle:
            for document in batch:
                for record in document.chunk_records():
                    handle.write(json.dumps(record) + "\n")


@hookimpl
def ingest_sink_open(scheme: str, target: str, rootdir: Path) -> AppendOnlySink | None:
    """Open ``appendonly:FILE``."""
    return AppendOnlySink(rootdir / target) if scheme == "appendonly" else None
