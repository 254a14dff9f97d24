"""What a run did, and the exit code it calls for (as pytest's)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from ingest.model import Failure

#: Why a document was skipped, as the summary and ``skipped`` progress events say it.
SKIP_UNCHANGED = "unchanged"
SKIP_NOT_FAILED = "did not fail last time (--lf)"


class ExitCode(enum.IntEnum):
    """Exit codes, as pytest's (0 to 5), and one of ours for storage (6)."""

    OK = 0
    FAILED = 1
    INTERRUPTED = 2
    INTERNAL_ERROR = 3
    USAGE_ERROR = 4
    NO_INPUT = 5
    #: A sink or the cache could not write (disk full, file too large, read-only); what was
    #: committed before is kept.
    WRITE_ERROR = 6


@dataclass(slots=True)
class RunResult:
    """What a run did; ``ingest.run()`` returns it and reporters print it."""

    collected: int = 0
    ingested: int = 0
    skipped: int = 0
    failed: int = 0
    pages: int = 0
    chunks: int = 0
    #: Stored documents whose file no longer exists: deleted from the sinks (``--prune``),
    #: or left there and counted (``gone``).
    removed: int = 0
    gone: int = 0
    duration_s: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    skipped_sources: list[tuple[Path | str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sinks: list[str] = field(default_factory=list)
    #: Library log records captured while documents were processed, by library (the
    #: logger's first part: ``pypdf``); each document's own are on its events and failure.
    captured_logs: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False
    stopped_early: bool = False
    collect_only: bool = False
    #: Seconds per stage (``driver: collect``, ``extract:pdfium``, ``transform:chunk``...),
    #: summed over documents and processes; ``ingest run -v`` logs them.
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        """The process exit code this result calls for."""
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.failed:
            return ExitCode.FAILED
        if self.collected == 0:
            return ExitCode.NO_INPUT
        return ExitCode.OK

    @property
    def pages_per_s(self) -> float:
        """Pages extracted per second of wall time."""
        return self.pages / self.duration_s if self.duration_s > 0 else 0.0

    def summary_line(self) -> str:
        """``42 ingested, 3 failed, 5 skipped, 1 removed in 12.3s (180 pages/s)``."""
        if self.collect_only:
            return f"{self.collected} collected in {self.duration_s:.2f}s"
        parts = [f"{self.ingested} ingested"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.skipped:
            # "skipped (unchanged)" when every skip is a cache hit.
            unchanged = sum(why == SKIP_UNCHANGED for _, why in self.skipped_sources)
            detail = "unchanged" if unchanged == self.skipped else f"{unchanged} unchanged"
            parts.append(f"{self.skipped} skipped" + (f" ({detail})" if unchanged else ""))
        if self.removed:
            parts.append(f"{self.removed} removed")
        if self.gone:
            pronoun = "it" if self.gone == 1 else "them"
            parts.append(f"{self.gone} no longer on disk (--prune removes {pronoun})")
        line = f"{', '.join(parts)} in {self.duration_s:.1f}s ({self.pages_per_s:.0f} pages/s)"
        if self.interrupted:
            line += " (interrupted)"
        elif self.stopped_early:
            line += " (stopped early)"
        return line
