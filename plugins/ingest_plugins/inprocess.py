"""The in-process backend (``--workers 0``): documents are processed one by one in the driver.

For debugging (a breakpoint in a plugin works) and for measuring the framework's own
overhead against a bare parser loop. No timeout or memory cap can be enforced here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ingest import hookimpl
from ingest.workers import process_source

if TYPE_CHECKING:
    from ingest import Document, Failure, IngestPluginManager, Settings, Source
    from ingest.workers import SourceFeed

NAME = "inprocess"


class InProcessBackend:
    """Runs :func:`ingest.workers.process_source` in the calling thread, in feed order."""

    largest_first = False

    def __init__(self, manager: IngestPluginManager, settings: Settings) -> None:
        self._manager = manager
        self._settings = settings

    def start(self) -> None:
        """Nothing to start."""

    def run(self, feed: SourceFeed) -> Iterator[tuple[Source, Document | Failure]]:
        """Yield each source with its outcome, in feed order."""
        for source in feed:
            yield source, process_source(self._manager, self._settings, source)

    def close(self) -> None:
        """Nothing to stop."""


@hookimpl
def ingest_executor(
    name: str, settings: Settings, manager: IngestPluginManager
) -> InProcessBackend | None:
    """Provide the in-process backend when asked for ``inprocess``."""
    if name != NAME:
        return None
    return InProcessBackend(manager, settings)
