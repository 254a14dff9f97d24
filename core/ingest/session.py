"""One run: open the sinks, collect, dispatch to the backend, write batches, report.

The session is plain synchronous code on the driver's main thread. Async hook
implementations still run on the persistent loop (the manager bridges them through
``run_sync``), and workers are processes, so nothing here needs to be a coroutine; that
keeps Ctrl-C handling and ``--maxfail`` simple and lets ``arun`` wrap it in a thread. One
thing runs beside it: the sinks write each step on a thread of their own
(:class:`_SinkWriter`), so that dispatch goes on while a batch is made durable.
"""

from __future__ import annotations

import difflib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

from ingest.cache import SKIP_UNCHANGED, InputScope, RunCache, StorePlan, abspath, open_run_cache
from ingest.errors import UsageError, WriteError
from ingest.interrupt import GracefulStop
from ingest.model import Document, Failure, LogEntry, Source, display_path, is_url
from ingest.progress import ProgressEvent, ProgressTracker
from ingest.result import RunResult
from ingest.select import compile_selection
from ingest.sinks import SinkSet, mask_secrets
from ingest.storage import explain_write_error
from ingest.workers.feed import SourceFeed
from ingest.workers.timing import StageTimes, describe_stages

if TYPE_CHECKING:
    from ingest.config import Settings
    from ingest.manager import IngestPluginManager
    from ingest.workers import ExecutorBackend

logger = logging.getLogger("ingest.session")

#: A batch goes to the sinks once its documents hold this much text, even with fewer than
#: ``run.batch_size`` documents. Backends send the largest files first, and 16 of the
#: test corpus's largest (510,000 characters each) held 35 MB in the driver: about 5 bytes per
#: character, in pages, chunks and their records. This keeps a batch near 1 MB plus its
#: last document.
BATCH_MAX_CHARS = 250_000

#: The values of ``--tb``, as pytest's.
TB_STYLES = ("auto", "long", "short", "line", "no")


class Session:
    """One ``ingest run`` on the driver.

    :param manager: the loaded plugin manager.
    :param settings: the validated settings.
    :param rootdir: where relative sink targets and the cache live.
    :param collect_only: list what would be ingested, parse nothing.
    :param verbosity: ``-v`` count minus ``-q`` count, for reporters.
    :param tb: how reporters show a failure's traceback (``--tb``): ``auto`` (the line
        where it was raised; short with ``-v``, long with ``-vv``), ``long``, ``short``,
        ``line`` or ``no``.
    :param force: process every document, even those the cache has as ingested (``--force``).
    :param last_failed: process only the documents that failed last time (``--lf``).
    :param cache_clear: empty the cache before the run (``--cache-clear``).
    """

    def __init__(
        self,
        manager: IngestPluginManager,
        settings: Settings,
        *,
        rootdir: Path | None = None,
        collect_only: bool = False,
        verbosity: int = 0,
        tb: str = "auto",
        force: bool = False,
        last_failed: bool = False,
        cache_clear: bool = False,
    ) -> None:
        if tb not in TB_STYLES:
            raise UsageError(f"--tb={tb}: not one of {', '.join(TB_STYLES)}")
        self.manager = manager
        self.settings = settings
        self.rootdir = rootdir or Path.cwd()
        self.collect_only = collect_only
        self.verbosity = verbosity
        self.tb = tb
        self.tracker = ProgressTracker()
        self.result = RunResult(collect_only=collect_only)
        self.sources: list[Source] = []
        #: True when a usage error stopped the run before it could start.
        self.aborted = False
        #: For ``--collect-only``: the extractor that would take each source.
        self.claims: dict[Path | str, str | None] = {}
        self.cache_options = {"force": force, "last_failed": last_failed, "clear": cache_clear}
        #: Pages and work already counted of the documents in progress, by path.
        self._in_progress: dict[Path | str, list[float]] = {}
        #: The run's view of the cache (``None`` when disabled), open while the run lasts.
        self.cache: RunCache | None = None
        self.stop = GracefulStop()
        #: Every path collected (absolute) to its content id; ``None``: found, not readable;
        #: ``""``: not known until a worker reads it (an object in a store).
        self.collected: dict[str, str | None] = {}
        #: The first path of each content id of the run, for "same content as".
        self._seen_content: dict[str, Path | str] = {}
        #: The ids of the documents whose bytes are under the inputs: never deleted.
        self._present: set[str] = set()
        #: What the run must delete from its sinks (known once collection is done).
        self.plan = StorePlan()
        #: The open sinks, in the order of ``settings.sinks``.
        self.sinks = SinkSet(manager, settings)
        self._unchanged: set[str] = set()
        #: Seconds per stage of this run (the backend's workers' added at the end).
        self.stage_times = StageTimes()

    # -- validation ---------------------------------------------------------------------

    def check_components(self) -> None:
        """Fail early, before any work, on an extractor, transform, embedder or sink nobody
        provides.

        :raises UsageError: naming the setting and the unknown name, with suggestions.
        """
        extractors = self.manager.plugins_with_hook("ingest_extract")
        for key, name in [
            ("extract.extractor", self.settings.extract.extractor),
            *(("extract.fallback", n) for n in self.settings.extract.fallback),
        ]:
            _require(name, extractors, f"extractor (setting {key})", self.manager)
        transforms = self.manager.plugins_with_hook("ingest_transform")
        for step in self.settings.transforms:
            _require(step, transforms, "transform step (setting transforms)", self.manager)
        embedder = self.settings.embed.embedder
        if embedder:
            embedders = self.manager.plugins_with_hook("ingest_embed")
            _require(embedder, embedders, "embedder (setting embed.embedder)", self.manager)

    # -- the run ------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Run the whole session; always calls ``ingest_session_finish``.

        :raises UsageError: for a configuration the run cannot start with.
        """
        hook = self.manager.hook
        started = time.monotonic()
        self.check_components()
        hook.ingest_session_start(session=self)
        backend: ExecutorBackend | None = None
        try:
            self.cache = open_run_cache(
                self.manager, self.settings, self.rootdir, **self.cache_options
            )
            if not self.collect_only:
                # Started before collection, so that a backend able to warm up without
                # knowing the documents overlaps the walk (the built-in ones start their
                # workers in run(): never more workers than documents).
                backend = self._backend()
                backend.start()
            with self.stage_times.measure("driver: collect"):
                self.collect()
            if self.collect_only:
                self._claim_extractors()
            else:
                with self.stage_times.measure("driver: cache"):
                    self._plan_store()
                if self.sources or self._has_deletions():
                    self._open_sinks()
                    with self.stage_times.measure("driver: cache"):
                        self._verify_sinks()
                if self.sources:
                    with self.stage_times.measure("driver: cache"):
                        self._skip_cached()
            if self.sources and backend is not None:
                with self.stop:  # Ctrl-C now stops dispatch and keeps what is done
                    self._dispatch(backend)
            if not self.collect_only and not self.stop.requested:
                with self.stop:  # a Ctrl-C waits for the deleting step, then stops
                    self._settle_store()
            self.result.interrupted = self.stop.requested
        except KeyboardInterrupt:
            self.result.interrupted = True
        except WriteError as exc:
            self.result.stopped_early = True
            exc.result = self.result
            raise
        except UsageError:
            # Sinks still close in ingest_session_finish, but reporters print no summary
            # for a run that never started: the CLI prints the error alone.
            self.aborted = True
            raise
        finally:
            if backend is not None:
                backend.close()
            if self.cache is not None:
                self.cache.close(self.manager)
            self.result.duration_s = time.monotonic() - started
            self._report_stage_times(backend)
            self._emit("finished")
            hook.ingest_session_finish(session=self, result=self.result)
        return self.result

    def collect(self) -> list[Source]:
        """Turn the inputs into sources: sorted per input, deduplicated, ``-k`` applied."""
        settings = self.settings
        if not settings.collect.inputs:
            raise UsageError("no input given: name files, folders or globs to ingest")
        select = compile_selection(settings.collect.select)
        seen_paths: set[Path | str] = set()
        for raw in settings.collect.inputs:
            found = self.manager.hook.ingest_collect(
                path=raw, settings=settings, manager=self.manager
            )
            if found is None:
                raise UsageError(f"no collector understands the input {raw!r}")
            for item in found:
                given = item.source if isinstance(item, Failure) else item.path
                # realpath, not Path.resolve(): a symlink loop must fail alone (it is a
                # Failure already), not raise here.
                key = given if is_url(given) else Path(os.path.realpath(given))
                if key in seen_paths or not select(display_path(given)):
                    continue
                seen_paths.add(key)
                self.result.collected += 1
                if isinstance(item, Failure):
                    self.collected[abspath(given)] = None
                    self._record_failure(item)
                    continue
                if not item.content_id and self.cache is not None:
                    item = self.cache.known(item)
                self.collected[abspath(given)] = item.content_id
                if item.content_id and not self._first_of_content(item):
                    continue
                self.sources.append(item)
        self.tracker.set_total(self.result.collected)
        self.tracker.update_sync(0, failed=0)
        self._emit("collected", message=f"{self.result.collected} collected")
        return self.sources

    def _first_of_content(self, source: Source) -> bool:
        """Whether ``source`` is the first of its content in the run; else skip it as the
        same content as the first."""
        twin = self._seen_content.get(source.content_id)
        if twin is not None:
            self._record_skip(source, f"same content as {display_path(twin)}")
            return False
        self._seen_content[source.content_id] = source.path
        self._present.add(source.doc_id)
        return True

    def _read_by_worker(self, document: Document) -> bool:
        """Take in the content id a worker found for a source collected without one: whether
        the document is to be written (else it is the same content as another, skipped)."""
        key = abspath(document.source.path)
        if self.collected.get(key) != "":
            return True
        self.collected[key] = document.source.content_id
        if self._first_of_content(document.source):
            return True
        # Its bytes are stored under another path: what this path held goes at the end.
        old = self.plan.unread.pop(key, set())
        self.plan.replaced.setdefault(document.source.content_id, set()).update(old)
        self._unchanged.add(document.source.content_id)
        if self.cache is not None:
            self.cache.remember([document.source])
        return False

    def _skip_cached(self) -> None:
        """Skip, before any parsing, what the cache has as done (or, with --lf, not failed)."""
        if self.cache is None:
            return
        self.sources, skipped = self.cache.select(self.sources)
        for source, why in skipped:
            if why == SKIP_UNCHANGED:
                self._unchanged.add(source.content_id)
            self._record_skip(source, why)

    def _claim_extractors(self) -> None:
        for source in self.sources:
            self.claims[source.path] = self.manager.hook.ingest_extract_claim(
                source=source, settings=self.settings, extractor=self.settings.extract.extractor
            )

    def _open_sinks(self) -> None:
        schemes = self.manager.plugins_with_hook("ingest_sink_open")
        for spec in self.settings.sinks:
            scheme, _, target = spec.partition(":")
            sink = self.manager.hook.ingest_sink_open(
                scheme=scheme, target=target, settings=self.settings, rootdir=self.rootdir
            )
            if sink is None:
                _require(scheme, schemes, f"sink (in {spec!r})", self.manager)
                raise UsageError(f"plugin {scheme!r} did not open the sink {spec!r}")
            self.sinks.add(spec, sink)
            self.result.sinks.append(mask_secrets(spec))

    def _backend(self) -> ExecutorBackend:
        run = self.settings.run
        name = "inprocess" if run.workers == 0 else run.executor
        backend: ExecutorBackend | None = self.manager.hook.ingest_executor(
            name=name, settings=self.settings, manager=self.manager
        )
        if backend is None:
            executors = self.manager.plugins_with_hook("ingest_executor")
            _require(name, executors, "executor", self.manager)
            raise UsageError(f"plugin {name!r} provided no executor backend")
        return backend

    def _dispatch(self, backend: ExecutorBackend) -> None:
        batch: list[Document] = []
        batch_chars = 0
        maxfail = self.settings.run.maxfail
        writer = _SinkWriter(self._write_step)
        # Progress follows the bytes of the documents, done as their pages are extracted.
        self.tracker.add_work(sum(source.size for source in self.sources))
        try:
            feed = SourceFeed(
                self.sources,
                self.stop,
                largest_first=backend.largest_first,
                on_pages=self._pages_done,
            )
            for source, outcome in backend.run(feed):
                self._commit(writer.done(block=False))
                self._work_done(source, outcome)
                if isinstance(outcome, Failure):
                    self._record_failure(outcome)
                    if maxfail and self.result.failed >= maxfail:
                        self.result.stopped_early = True
                        break
                    continue
                if not self._read_by_worker(outcome):
                    continue
                batch.append(outcome)
                batch_chars += sum(len(page.text) for page in outcome.pages)
                if len(batch) >= self.settings.run.batch_size or batch_chars >= BATCH_MAX_CHARS:
                    # Handed over and forgotten in one stretch: a batch is written once
                    # (a batch a sink refused is not written again by the final flush).
                    with self.stop.critical():
                        self._hand_over(writer, batch)
                        batch, batch_chars = [], 0
        finally:
            # Whatever stopped the loop (end, --maxfail, Ctrl-C), what was done is kept.
            with self.stop.critical():
                try:
                    if batch and not writer.failed:
                        self._hand_over(writer, batch)
                    self._commit(writer.done(block=True))
                finally:
                    writer.close()

    def _hand_over(self, writer: _SinkWriter, batch: list[Document]) -> None:
        """Hand ``batch`` to the sinks' thread once the step before it is written and
        committed (so the cache sees the steps one after the other, as the sinks do)."""
        self._commit(writer.done(block=True))
        deleted = self._deletions(batch)
        self._begin(batch, deleted)
        writer.start(batch, deleted)

    def _flush(self, batch: list[Document], deleted: Sequence[str] | None = None) -> None:
        """One step written on this thread: begun, written by every sink, committed."""
        if deleted is None:
            deleted = self._deletions(batch)
        # Ctrl-C waits until all is done: a step some sinks wrote and the cache does not
        # know is written again by the next run (exactly once).
        with self.stop.critical():
            self._begin(batch, deleted)
            self._write_step(batch, deleted)
            self._commit((batch, deleted))

    def _deletions(self, batch: Sequence[Document]) -> list[str]:
        keys = [abspath(document.source.path) for document in batch]
        return [
            doc_id
            for doc_id in self.plan.deletions_for(batch, keys)
            if doc_id not in self._present
        ]

    def _begin(self, batch: Sequence[Document], deleted: Sequence[str]) -> None:
        if self.cache is not None:
            with self.stage_times.measure("driver: cache"):
                try:
                    self.cache.begin(batch, deleted)
                except Exception as exc:
                    raise self._cache_error(exc, "record the batch it is writing") from exc

    def _write_step(self, batch: Sequence[Document], deleted: Sequence[str]) -> None:
        # On the sinks' thread during dispatch; the session commits the step when it returned.
        with self.stage_times.measure("driver: sinks"):
            try:
                self.sinks.write(batch, deleted)
            except WriteError as exc:
                raise WriteError(
                    f"{exc}. The {self.result.ingested} documents written before are kept, "
                    "and a rerun writes the rest."
                ) from exc

    def _commit(self, step: _Step | None) -> None:
        """Record a step every sink wrote: in the cache (exactly once), counts, progress."""
        if step is None:
            return
        batch, deleted = step
        if self.cache is not None:
            # Ctrl-C waits for it: the sinks hold the step, the cache must know it.
            with self.stop.critical(), self.stage_times.measure("driver: cache"):
                try:
                    # Only after every sink returned: exactly once.
                    self.cache.commit(batch, deleted, self.sinks.states(), self._kept_sinks())
                except Exception as exc:
                    raise self._cache_error(exc, "record a batch as ingested") from exc
        for warning in self.sinks.warnings:
            if warning not in self.result.warnings:
                self.result.warnings.append(warning)
        for document in batch:
            pages = len(document.pages)
            self.result.ingested += 1
            self.result.pages += pages
            self.result.chunks += len(document.chunks)
            self._count_logs(document.logs)
            self._emit("ingested", source=document.source, pages=pages, logs=document.logs)

    def _pages_done(self, source: Source, pages: int, page_count: int) -> None:
        """Pages of a document in progress were extracted: progress moves now, not when the
        whole document is done (a long one takes many seconds)."""
        counted = self._in_progress.setdefault(source.path, [0, 0.0])
        work = source.size * pages / page_count if page_count > 0 else 0.0
        work = max(0.0, min(work, source.size - counted[1]))
        counted[0] += pages
        counted[1] += work
        self.tracker.update_sync(0, pages=pages, work=work)
        self._emit("pages", source=source, pages=pages)

    def _work_done(self, source: Source, outcome: Document | Failure) -> None:
        """Count a document as done, with what is left of its pages and work, as soon as it
        comes back (a failure counts itself in :meth:`_record_failure`), not when its batch
        is written."""
        pages, work = self._in_progress.pop(source.path, (0, 0.0))
        done = isinstance(outcome, Document)
        rest = len(outcome.pages) - int(pages) if isinstance(outcome, Document) else 0
        self.tracker.update_sync(
            1 if done else 0, pages=max(0, rest), work=max(0.0, source.size - work)
        )

    def _cache_error(self, exc: Exception, doing: str) -> WriteError:
        path = self.cache.store.path if self.cache is not None else None
        cause = explain_write_error(exc, path)
        where = f" ({display_path(path)})" if path else ""
        return WriteError(f"the cache{where} could not {doing}: {cause}; the run stopped")

    def _count_logs(self, logs: list[LogEntry]) -> None:
        counts = self.result.captured_logs
        for entry in logs:
            library = entry.logger.partition(".")[0]
            counts[library] = counts.get(library, 0) + entry.count

    def _report_stage_times(self, backend: ExecutorBackend | None) -> None:
        """Add the backend's seconds per stage, keep them in the result, log them (``-v``)."""
        from_backend: StageTimes | None = getattr(backend, "stage_times", None)
        if from_backend is not None:
            self.stage_times.merge(from_backend.totals())
        self.result.stage_seconds = self.stage_times.totals()
        if self.result.stage_seconds and logger.isEnabledFor(logging.INFO):
            logger.info(
                "time by stage, summed over the processes (the run took %.2fs):\n%s",
                self.result.duration_s,
                describe_stages(self.result.stage_seconds),
            )

    # -- the store mirrors the corpus ------------------------------------------------------

    def _plan_store(self) -> None:
        """Find the stored documents this run must delete: those of files whose bytes
        changed, and those of files under the inputs that no longer exist."""
        if self.cache is None:
            return
        scope = InputScope(
            self.settings.collect.inputs, compile_selection(self.settings.collect.select)
        )
        self.plan = self.cache.plan(self.collected, scope)

    def _has_deletions(self) -> bool:
        return bool(self.plan.replaced) or (self.settings.run.prune and bool(self.plan.gone))

    def _verify_sinks(self) -> None:
        """Refill the sinks that lost or changed records since the cache last saw them."""
        if self.cache is not None:
            self.cache.check_sinks(self.sinks.states())

    def _settle_store(self) -> None:
        """At the end of the run: delete the old documents of files whose new bytes a sink
        already held, and the documents of files that no longer exist (``--prune``), or
        count those."""
        deleted = [d for d in self.plan.leftovers(self._unchanged) if d not in self._present]
        gone = sorted(d for d in self.plan.gone if d not in self._present)
        if self.settings.run.prune:
            deleted = sorted({*deleted, *gone})
        else:
            self.result.gone = len(gone)
        if deleted and self.sinks:
            self._flush([], deleted)
            if self.settings.run.prune and len(self.sinks.cannot_delete) < len(self.sinks.specs):
                self.result.removed = len(gone)

    def _kept_sinks(self) -> list[str]:
        """The cache's keys of the sinks that cannot delete."""
        if self.cache is None:
            return []
        keys = dict(zip(self.sinks.specs, self.cache.sinks, strict=False))
        return [keys[spec] for spec in self.sinks.cannot_delete]

    def _record_failure(self, failure: Failure) -> None:
        # A message may quote a file name that is not UTF-8; failures are stored and shown.
        failure.message = display_path(failure.message)
        self.result.failed += 1
        self.result.failures.append(failure)
        self._count_logs(failure.logs)
        if failure.traceback:
            logger.debug("%s failed:\n%s", display_path(failure.source), failure.traceback)
        if self.cache is not None:
            try:
                self.cache.fail(failure)  # kept for --lf
            except Exception as exc:
                raise self._cache_error(exc, "record a failure") from exc
        self.tracker.update_sync(1, failed=1)
        self._emit("failed", failure=failure)

    def _record_skip(self, source: Source, why: str) -> None:
        self.result.skipped += 1
        self.result.skipped_sources.append((source.path, why))
        self.tracker.update_sync(1, skipped=1)
        self._emit("skipped", source=source, message=why)

    def _emit(self, kind: str, **fields: Any) -> None:
        event = ProgressEvent(kind=kind, state=self.tracker.get_state(), **fields)
        self.manager.hook.ingest_progress(event=event)


#: A sink step: the documents written and the ids deleted.
_Step = tuple[Sequence[Document], Sequence[str]]


@final
class _SinkWriter:
    """Writes steps to the sinks on a thread of its own, one step at a time, in order.

    A sink returns when its step is durable: an fsync or two, 5 to 15 ms on this kind of
    disk. Written on the session's thread, that is as long that the workers wait for their
    next task, at every batch: 125 times in a run of 2,000 small files, a third of its time.
    Here the session goes on dispatching meanwhile and commits the step to the cache when
    its write ended; at most two batches are held (one written, one filling).

    One thread serves the whole run. A thread started for each step cost the session a wait
    at every batch: ``Thread.start`` returns once the new thread runs, which on cores busy
    with the workers took milliseconds each time.

    :param write: calls the sinks with a batch and the ids it deletes.
    """

    def __init__(self, write: Callable[[Sequence[Document], Sequence[str]], None]) -> None:
        self._write = write
        self._thread: threading.Thread | None = None
        self._steps: queue.SimpleQueue[_Step | None] = queue.SimpleQueue()
        self._written = threading.Event()
        self._step: _Step | None = None
        self._error: BaseException | None = None
        #: A sink raised: nothing more is written (the error ends the run).
        self.failed = False

    def start(self, batch: Sequence[Document], deleted: Sequence[str]) -> None:
        """Begin writing a step; :meth:`done` must have returned the step before it."""
        assert self._step is None, "one step at a time"
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="ingest-sinks", daemon=True)
            self._thread.start()
        self._step = (batch, deleted)
        self._written.clear()
        self._steps.put(self._step)

    def _serve(self) -> None:
        while (step := self._steps.get()) is not None:
            try:
                self._write(*step)
            except BaseException as exc:  # raised again on the session's thread by done()
                self._error = exc
            self._written.set()

    def done(self, *, block: bool) -> _Step | None:
        """The step whose write ended (waiting for it when ``block``), once; else ``None``.

        :raises BaseException: what a sink raised while writing it.
        """
        if self._step is None or not self._written.wait(None if block else 0):
            return None
        step, error = self._step, self._error
        self._step = self._error = None
        if error is not None:
            self.failed = True
            raise error
        return step

    def close(self) -> None:
        """Stop the thread once the step it writes, if any, is written."""
        if self._thread is not None:
            self._steps.put(None)
            self._thread.join()
            self._thread = None


def _require(
    name: str, available: list[str], what: str, manager: IngestPluginManager
) -> None:
    if name in available:
        return
    close = difflib.get_close_matches(name, available, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    message = f"unknown {what} {name!r}{hint} available: {', '.join(available) or 'none'}"
    others = manager.not_loaded()
    if others:
        message += (
            f"; installed but not loaded: {', '.join(others)} (load one with -p NAME, if it "
            "provides this)"
        )
    raise UsageError(message)
