"""Reporters: a progress bar on a terminal, log lines elsewhere, JSON lines for programs,
and the pytest-style summary at the end.

``progress: auto`` picks the bar when stderr is a terminal and log lines otherwise. The
summary goes to stdout (with ``--progress json`` it is a final JSON event instead).
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from ingest import display_path, hookimpl

if TYPE_CHECKING:
    from ingest import IngestPluginManager, ProgressEvent, RunResult, Session, Settings

# Log lines at most this often, so a run of 100,000 small files does not flood a CI log.
_LOG_INTERVAL_S = 5.0


@hookimpl
def ingest_configure(settings: Settings, manager: IngestPluginManager, role: str) -> None:
    """Register the reporter that ``settings.progress`` asks for (driver only)."""
    if role != "driver":
        return
    mode = settings.progress
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "log"
    reporter: object
    if mode == "json":
        reporter = JsonReporter(sys.stdout)
    elif mode == "bar":
        reporter = BarReporter()
    elif mode == "log":
        reporter = LogReporter(sys.stderr)
    else:
        reporter = SummaryReporter(sys.stdout)
    manager.register(reporter, name="reporter")


class SummaryReporter:
    """Prints the failures and the summary line when the session finishes."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    @hookimpl(trylast=True)
    def ingest_session_finish(self, session: Session, result: RunResult) -> None:
        """Print the collected list (``--collect-only``) or failures, then the summary."""
        if session.aborted:
            return
        write = self.out.write
        verbosity = session.verbosity
        if result.collect_only:
            for source in session.sources:
                extractor = session.claims.get(source.path) or "no extractor"
                write(f"{display_path(source.path)}  [{extractor}]  {source.doc_id[:12]}\n")
            for failure in result.failures:
                write(f"{display_path(failure.source)}  [{failure.reason}]  {failure.message}\n")
        else:
            if result.failures and verbosity >= 0:
                write(_rule("failures"))
                for failure in result.failures:
                    write(f"FAILED {failure.describe()}\n")
            if result.skipped_sources and verbosity > 0:
                write(_rule("skipped"))
                for path, why in result.skipped_sources:
                    write(f"SKIPPED {display_path(path)}: {why}\n")
            if verbosity > 0 and result.sinks:
                write(f"sinks: {', '.join(result.sinks)}\n")
        line = result.summary_line()
        write(_rule(line) if verbosity >= 0 else line + "\n")
        self.out.flush()


class LogReporter(SummaryReporter):
    """Periodic progress lines for logs and CI, then the summary."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(sys.stdout)
        self.log = out
        self._last = 0.0

    @hookimpl
    def ingest_progress(self, event: ProgressEvent) -> None:
        """Write a line at most every few seconds, and one when collection ends."""
        now = time.monotonic()
        if event.kind == "collected" or (
            event.kind != "finished" and now - self._last >= _LOG_INTERVAL_S
        ):
            self._last = now
            self.log.write(f"[ingest] {_describe(event.state)}\n")
            self.log.flush()


class BarReporter(SummaryReporter):
    """A rich progress bar on stderr: documents, pages, rate and ETA."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        # rich is imported only when a bar is actually shown.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]ingest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("docs  {task.fields[pages]} pages  {task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task: Any = None

    @hookimpl
    def ingest_progress(self, event: ProgressEvent) -> None:
        """Advance the bar."""
        state = event.state
        if event.kind == "collected":
            self._progress.start()
            self._task = self._progress.add_task(
                "ingest", total=state.get("total"), pages=0, rate=""
            )
            return
        if self._task is None:
            return
        rate = state.get("pages_rate") or 0.0
        self._progress.update(
            self._task,
            completed=state["current"],
            pages=state.get("pages", 0),
            rate=f"{rate:.0f} pages/s",
        )
        if event.kind == "finished":
            self._progress.stop()


class JsonReporter:
    """One JSON object per event on stdout, for other programs; the summary is the last."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    @hookimpl
    def ingest_progress(self, event: ProgressEvent) -> None:
        """Write the event as one line."""
        record: dict[str, Any] = {"event": event.kind, "state": event.state}
        if event.source is not None:
            record["source"] = display_path(event.source.path)
            record["doc_id"] = event.source.doc_id
        if event.failure is not None:
            record["source"] = display_path(event.failure.source)
            record["reason"] = event.failure.reason
            record["message"] = event.failure.message
            record["plugin"] = event.failure.plugin
        if event.pages:
            record["pages"] = event.pages
        if event.message:
            record["message"] = event.message
        self.out.write(json.dumps(record, default=str) + "\n")
        self.out.flush()

    @hookimpl(trylast=True)
    def ingest_session_finish(self, session: Session, result: RunResult) -> None:
        """Write the summary as the last event."""
        if session.aborted:
            return
        summary = {
            "event": "summary",
            "summary": result.summary_line(),
            "exit_code": int(result.exit_code),
            "collected": result.collected,
            "ingested": result.ingested,
            "failed": result.failed,
            "skipped": result.skipped,
            "pages": result.pages,
            "chunks": result.chunks,
            "duration_s": round(result.duration_s, 3),
            "sinks": result.sinks,
        }
        self.out.write(json.dumps(summary) + "\n")
        self.out.flush()


def _describe(state: dict[str, Any]) -> str:
    total = state.get("total")
    done = f"{state['current']}/{total}" if total is not None else str(state["current"])
    parts = [f"{done} documents"]
    if state.get("percentage") is not None:
        parts.append(f"{state['percentage']:.0f}%")
    parts.append(f"{state.get('pages', 0)} pages")
    if state.get("pages_rate"):
        parts.append(f"{state['pages_rate']:.0f} pages/s")
    if state.get("failed"):
        parts.append(f"{state['failed']} failed")
    if state.get("eta_s") is not None:
        parts.append(f"eta {state['eta_s']:.0f}s")
    return ", ".join(parts)


def _rule(title: str, width: int = 80) -> str:
    text = f" {title} "
    side = max(3, (width - len(text)) // 2)
    return f"{'=' * side}{text}{'=' * side}\n"
