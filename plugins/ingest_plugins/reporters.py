"""Reporters: a progress bar on a terminal, log lines elsewhere, JSON lines for programs,
and the pytest-style summary at the end.

``progress: auto`` picks the bar when stderr is a terminal and log lines otherwise. The
summary goes to stdout (with ``--progress json`` it is a final JSON event instead).

What the end shows, by verbosity (``-v`` count minus ``-q`` count):

* ``-q``: the failures, one line each, and the summary; no bar, no progress lines.
* default: the failures, each with the line where it was raised (``--tb=auto``) and what
  libraries logged while it was processed; one line counting the other documents' library
  log records; the summary.
* ``-v``: the short traceback of each failure, the skipped documents, every document's
  library log records, the sinks; ``-vv``: the long tracebacks.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

from ingest import display_path, hookimpl

if TYPE_CHECKING:
    from pathlib import Path

    from ingest import (
        Failure,
        IngestPluginManager,
        LogEntry,
        ProgressEvent,
        ProgressTracker,
        RunResult,
        Session,
        Settings,
    )

_INDENT = "    "


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
        reporter = LogReporter(sys.stderr, interval=settings.progress_interval)
    else:
        reporter = SummaryReporter(sys.stdout)
    manager.register(reporter, name="reporter")


def traceback_style(tb: str, verbosity: int) -> str:
    """The ``--tb`` style in effect: ``auto`` is ``line``, ``short`` with ``-v``, ``long``
    with ``-vv``."""
    if tb != "auto":
        return tb
    return "long" if verbosity >= 2 else "short" if verbosity == 1 else "line"


def describe_failure(failure: Failure, style: str, *, logs: bool = True) -> list[str]:
    """The lines that report one failure: ``FAILED ...``, its traceback in ``style``, and
    what libraries logged while it was processed (when ``logs``)."""
    head = f"FAILED {failure.describe()}"
    location = failure.location()
    if style == "line" and location:
        head += f" (at {location})"
    lines = [head]
    text = {"short": failure.traceback_short, "long": failure.traceback}.get(style)
    if text:
        lines += [_INDENT + line for line in text.splitlines()]
    if logs and failure.logs:
        lines.append(f"{_INDENT}captured library log:")
        lines += [f"{_INDENT}  {entry.describe()}" for entry in failure.logs]
    return lines


class SummaryReporter:
    """Prints the failures, what libraries logged, and the summary line when the session
    finishes."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.verbosity = 0
        self.tb = "auto"
        #: With ``-v``: every ingested document's library log records, to print at the end.
        self.document_logs: list[tuple[Path, list[LogEntry]]] = []

    @hookimpl
    def ingest_session_start(self, session: Session) -> None:
        """Learn how much to show."""
        self.verbosity = session.verbosity
        self.tb = session.tb

    @hookimpl
    def ingest_progress(self, event: ProgressEvent) -> None:
        """Keep the library log records of ingested documents, when ``-v`` shows them."""
        if self.verbosity > 0 and event.kind == "ingested" and event.logs and event.source:
            self.document_logs.append((event.source.path, event.logs))

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
            self._write_failures(result, verbosity)
            if result.skipped_sources and verbosity > 0:
                write(_rule("skipped"))
                for path, why in result.skipped_sources:
                    write(f"SKIPPED {display_path(path)}: {why}\n")
            self._write_logs(result, verbosity)
            if verbosity > 0 and result.sinks:
                write(f"sinks: {', '.join(result.sinks)}\n")
        line = result.summary_line()
        write(_rule(line) if verbosity >= 0 else line + "\n")
        self.out.flush()

    def _write_failures(self, result: RunResult, verbosity: int) -> None:
        if not result.failures or verbosity < -1:
            return
        style = traceback_style(self.tb, verbosity)
        if verbosity < 0:
            style = "no" if self.tb == "auto" else style
        else:
            self.out.write(_rule("failures"))
        for failure in result.failures:
            for line in describe_failure(failure, style, logs=verbosity >= 0):
                self.out.write(line + "\n")

    def _write_logs(self, result: RunResult, verbosity: int) -> None:
        if verbosity > 0 and self.document_logs:
            self.out.write(_rule("captured library log"))
            for path, entries in self.document_logs:
                self.out.write(f"{display_path(path)}:\n")
                for entry in entries:
                    self.out.write(f"{_INDENT}{entry.describe()}\n")
            return
        # The failures showed their own records; the line counts the others.
        counts = dict(result.captured_logs)
        for failure in result.failures:
            for entry in failure.logs:
                library = entry.logger.partition(".")[0]
                counts[library] = counts.get(library, 0) - entry.count
        counts = {name: count for name, count in counts.items() if count > 0}
        if verbosity == 0 and counts:
            by_library = ", ".join(
                f"{'other' if name == '*' else name}: {count}"
                for name, count in sorted(counts.items(), key=lambda item: -item[1])
            )
            self.out.write(
                f"{sum(counts.values())} library log records captured ({by_library}); "
                "-v shows them\n"
            )


class LogReporter(SummaryReporter):
    """Progress lines for logs and CI: one when collection ends, then one every
    ``interval`` seconds while documents are processed, and a last one at the end; none with
    ``-q``. Then the summary."""

    def __init__(self, out: TextIO, *, interval: float = 5.0) -> None:
        super().__init__(sys.stdout)
        self.log = out
        self.interval = interval
        self._tracker: ProgressTracker | None = None
        self._session: Session | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._lock = threading.Lock()

    @hookimpl
    def ingest_session_start(self, session: Session) -> None:
        """Learn how much to show, and where the progress is counted."""
        super().ingest_session_start(session)
        self._tracker = session.tracker
        self._session = session

    @hookimpl
    def ingest_progress(self, event: ProgressEvent) -> None:
        """Write the first line when collection ends, start the clock, write the last."""
        super().ingest_progress(event)
        if self.verbosity < 0:
            return
        if event.kind == "collected":
            self._write(event.state)
            if self._ticker is None:
                self._ticker = threading.Thread(
                    target=self._tick, name="ingest-progress-log", daemon=True
                )
                self._ticker.start()
        elif event.kind == "finished" and self._ticker is not None:
            # Only after an opening line: a run stopped by a usage error has neither.
            self._stop.set()
            self._ticker.join()
            if self._session is None or not self._session.aborted:
                self._write(event.state)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            if self._tracker is not None:
                self._write(self._tracker.get_state())

    def _write(self, state: Any) -> None:
        with self._lock:
            self.log.write(f"[ingest] {_describe(state)}\n")
            self.log.flush()


class BarReporter(SummaryReporter):
    """A rich progress bar on stderr: documents, pages, pages per second and the ETA, which
    follow the pages as they are extracted (a long document moves the bar before it ends).
    No bar with ``-q``."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        # rich is imported only when a bar is actually shown.
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]ingest"),
            BarColumn(),
            TextColumn("{task.fields[docs]} docs  {task.fields[pages]} pages  {task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("eta {task.fields[eta]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self._task: Any = None
        self._unsubscribe: Any = None

    @hookimpl
    def ingest_session_start(self, session: Session) -> None:
        """Follow the session's tracker, so pages move the bar as soon as they are counted."""
        super().ingest_session_start(session)
        if self.verbosity >= 0:
            self._unsubscribe = session.tracker.subscribe(self._show)

    @hookimpl
    def ingest_progress(self, event: ProgressEvent) -> None:
        """Start the bar when collection ends; stop it at the end."""
        super().ingest_progress(event)
        if self.verbosity < 0:
            return
        if event.kind == "collected" and self._task is None:
            self._progress.start()
            self._task = self._progress.add_task(
                "ingest", total=event.state.get("total"), docs="", pages=0, rate="", eta="-"
            )
            self._show(event.state)
        elif event.kind == "finished" and self._task is not None:
            self._show(event.state)
            self._progress.stop()
            if self._unsubscribe is not None:
                self._unsubscribe()

    def _show(self, state: Any) -> None:
        if self._task is None:
            return
        total, work_total = state.get("total"), state.get("work_total") or 0
        if work_total and state["current"] != total:
            completed, bar_total = state["work_done"], work_total
        else:
            completed, bar_total = state["current"], total
        eta = state.get("eta_s")
        self._progress.update(
            self._task,
            completed=completed,
            total=bar_total,
            docs=f"{state['current']}/{total if total is not None else '?'}",
            pages=state.get("pages", 0),
            rate=f"{state.get('pages_rate') or 0.0:.0f} pages/s",
            eta=_clock(eta) if eta is not None else "-",
        )


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
            if event.failure.traceback:
                record["traceback"] = event.failure.traceback
        logs = event.failure.logs if event.failure is not None else event.logs
        if logs:
            record["logs"] = [entry.describe() for entry in logs]
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
            "removed": result.removed,
            "gone": result.gone,
            "pages": result.pages,
            "chunks": result.chunks,
            "duration_s": round(result.duration_s, 3),
            "sinks": result.sinks,
            "captured_logs": result.captured_logs,
        }
        self.out.write(json.dumps(summary) + "\n")
        self.out.flush()


def _clock(seconds: float) -> str:
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


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
