"""Seconds per stage of a run, summed over documents and workers (``ingest run -v``).

Each process that runs stages adds their durations to a :class:`StageTimes`: the pipeline
(extraction per extractor, each transform step) wherever it runs, the worker its messages'
(de)serialization, the driver collection, the pool's receiving, the sinks and the cache. A
worker sends what it added since its last answer with each answer, and the pool adds it to
the driver's, so the session can show where a run's time went, as ``pytest --durations``
shows the slowest tests.

The figures are wall time of each stage where it ran: the workers' stages overlap each other
and the driver's, so their sum exceeds the run's duration by about the number of workers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import final


@final
class StageTimes:
    """Seconds per stage name (``extract:pdfium``, ``transform:chunk``, ``sinks``...)."""

    __slots__ = ("_seconds",)

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        """Count ``seconds`` more for ``stage``."""
        self._seconds[stage] = self._seconds.get(stage, 0.0) + seconds

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        """Count the time the ``with`` block takes for ``stage``, even if it raises."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - started)

    def merge(self, other: Mapping[str, float]) -> None:
        """Add every stage of ``other`` (what a worker sent)."""
        for stage, seconds in other.items():
            self.add(stage, seconds)

    def take(self) -> dict[str, float]:
        """The seconds counted since the last :meth:`take`, which starts the count afresh."""
        taken, self._seconds = self._seconds, {}
        return taken

    def totals(self) -> dict[str, float]:
        """The seconds per stage so far, largest first."""
        return dict(sorted(self._seconds.items(), key=lambda item: -item[1]))


def describe_stages(seconds: Mapping[str, float]) -> str:
    """A table of the stages, largest first, with their share of the time of all stages.

    :param seconds: seconds per stage.
    :returns: one line per stage, for a log record or a terminal.
    """
    total = sum(seconds.values())
    lines = []
    for stage, spent in sorted(seconds.items(), key=lambda item: -item[1]):
        share = f"{100 * spent / total:5.1f}%" if total > 0 else "    -"
        lines.append(f"  {spent:8.3f}s {share}  {stage}")
    return "\n".join(lines)
