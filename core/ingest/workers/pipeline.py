"""What a worker does with a document: extract (with fallbacks) and transform.

The same steps serve every backend. The in-process backend calls :func:`process_source`
for a whole document. Process backends split a large document into page ranges, and
:func:`run_task` does one task of :mod:`ingest.workers.tasks` at a time: a ``FirstTask``
reads the first range and learns the page count, a ``RangeTask`` reads one more range (on
any worker), and a ``FinishTask`` runs :func:`transform_document` on the pages the driver
merged back in order (:func:`ingest.workers.tasks.merge_pages`).

Every exception becomes a :class:`~ingest.model.Failure` naming the plugin that raised, so
one bad document never stops the others.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from ingest.embedding import embed_document
from ingest.errors import DocumentError
from ingest.model import Document, Failure
from ingest.workers.capture import attach_logs, capture_logs, format_tracebacks
from ingest.workers.fetch import fetched, restore
from ingest.workers.tasks import (
    FINAL_REASONS,
    Extraction,
    FinishTask,
    FirstTask,
    Partial,
    RangeTask,
    Task,
    extraction_failure,
    extractor_chain,
)

if TYPE_CHECKING:
    from types import TracebackType

    from ingest.config import Settings
    from ingest.manager import IngestPluginManager
    from ingest.model import Source
    from ingest.workers.timing import StageTimes

#: The hooks that run documents in workers: their plugins must exist in every worker.
WORKER_HOOKS = ("ingest_extract", "ingest_transform", "ingest_embed", "ingest_fetch")


def process_source(
    manager: IngestPluginManager,
    settings: Settings,
    source: Source,
    *,
    times: StageTimes | None = None,
) -> Document | Failure:
    """Extract and transform one whole source.

    :param manager: this process's plugin manager.
    :param settings: the run's settings.
    :param source: the source to process.
    :param times: where to add the seconds of each extractor and transform step.
    :returns: the finished document, or a failure record; never raises for a document's
        fault (``KeyboardInterrupt`` and ``SystemExit`` do propagate).
    """
    with capture_logs() as captured:
        outcome = _process_source(manager, settings, source, times)
    attach_logs(outcome, captured.entries())
    return outcome


def _process_source(
    manager: IngestPluginManager, settings: Settings, source: Source, times: StageTimes | None
) -> Document | Failure:
    chain = extractor_chain(settings)
    try:
        with fetched(manager, settings, source) as used:
            extraction = extract(
                manager, settings, used, chain=chain, pages=None, tried=chain, times=times
            )
            restore(extraction, source, used)
    except Exception as exc:
        return failure_from_exception(manager, source, exc, default_plugin="fetch")
    if isinstance(extraction, Failure):
        return extraction
    return transform_document(manager, settings, extraction.document, times=times)


def extract(
    manager: IngestPluginManager,
    settings: Settings,
    source: Source,
    *,
    chain: Sequence[str],
    pages: range | None,
    tried: Sequence[str],
    errors: Sequence[Failure] = (),
    times: StageTimes | None = None,
) -> Extraction | Failure:
    """Try the extractors of ``chain`` in order on ``pages`` of ``source`` until one succeeds.

    :param chain: extractor names still to try.
    :param pages: 1-based page numbers, or ``None`` for all (see ``ingest_extract``).
    :param tried: the whole chain of the run, for the message when no extractor takes it.
    :param errors: failures of extractors tried earlier for this document (a split document
        whose later range failed starts over with the next fallback).
    :param times: where to add each extractor's seconds (``extract:NAME``).
    :returns: the extraction, or the failure: the first extractor's error, with the
        fallbacks' errors appended to its message, or ``no-extractor``.
    """
    failures = list(errors)
    for name in chain:
        started = time.perf_counter()
        try:
            document = manager.hook.ingest_extract(
                source=source, settings=settings, extractor=name, pages=pages
            )
        except Exception as exc:
            failure = failure_from_exception(manager, source, exc, default_plugin=name)
            failures.append(failure)
            if failure.reason in FINAL_REASONS:
                break
            continue
        finally:
            if times is not None:
                times.add(f"extract:{name}", time.perf_counter() - started)
        if document is not None:
            return Extraction(document=document, extractor=name, errors=failures)
    return extraction_failure(source, failures, tried)


def covers_document(document: Document, asked: range) -> bool:
    """Whether extracting the pages ``asked`` gave the whole document, so nothing is left.

    True when the document has no page past ``asked``, when its page count is unknown
    (``0``), and when the extractor ignored the range and returned pages outside it.
    """
    if any(page.number not in asked for page in document.pages):
        return True
    return document.metadata.page_count < asked.stop


def keep_pages(document: Document, asked: range) -> Document:
    """``document`` with only the pages in ``asked`` (extractors may return more)."""
    if all(page.number in asked for page in document.pages):
        return document
    return replace(document, pages=[p for p in document.pages if p.number in asked])


def transform_document(
    manager: IngestPluginManager,
    settings: Settings,
    document: Document,
    *,
    times: StageTimes | None = None,
) -> Document | Failure:
    """Run the ``transforms`` chain on a whole document, in order, in place, then embed its
    chunks when the run asks for vectors (``embed.embedder``).

    :param times: where to add each step's seconds (``transform:STEP``).
    :returns: the document, or the failure of the first step that raised.
    """
    for step in settings.transforms:
        started = time.perf_counter()
        try:
            manager.hook.ingest_transform(document=document, settings=settings, step=step)
        except Exception as exc:
            return failure_from_exception(manager, document.source, exc, default_plugin=step)
        finally:
            if times is not None:
                times.add(f"transform:{step}", time.perf_counter() - started)
    embedder = settings.embed.embedder
    if embedder:
        started = time.perf_counter()
        try:
            embed_document(manager, settings, document)
        except Exception as exc:
            return failure_from_exception(manager, document.source, exc, default_plugin=embedder)
        finally:
            if times is not None:
                times.add(f"embed:{embedder}", time.perf_counter() - started)
    return document


def run_task(
    manager: IngestPluginManager,
    settings: Settings,
    task: Task,
    *,
    times: StageTimes | None = None,
) -> Document | Failure | Partial:
    """Do one task in this worker.

    :param times: where to add the seconds of each extractor and transform step.

    :returns: for a :class:`FirstTask`, the finished document, a :class:`Partial` when
        more ranges are needed, or a failure; for a :class:`RangeTask`, a document holding
        only the asked pages, or a failure; for a :class:`FinishTask`, the finished
        document or a failure. What libraries logged meanwhile is in its ``logs``.
    """
    with capture_logs() as captured:
        outcome = _run_task(manager, settings, task, times)
    attach_logs(outcome, captured.entries())
    return outcome


def _run_task(
    manager: IngestPluginManager,
    settings: Settings,
    task: Task,
    times: StageTimes | None,
) -> Document | Failure | Partial:
    if isinstance(task, FinishTask):
        return transform_document(manager, settings, task.document, times=times)
    source = task.source
    try:
        same_bytes = isinstance(task, RangeTask)
        with fetched(manager, settings, source, same_bytes=same_bytes, keep=True) as used:
            if isinstance(task, FirstTask):
                extraction = extract(
                    manager,
                    settings,
                    used,
                    chain=task.chain,
                    pages=task.pages,
                    tried=task.tried,
                    errors=task.errors,
                    times=times,
                )
            else:
                extraction = extract(
                    manager,
                    settings,
                    used,
                    chain=(task.extractor,),
                    pages=task.pages,
                    tried=(task.extractor,),
                    times=times,
                )
            restore(extraction, source, used)
    except Exception as exc:
        return failure_from_exception(manager, source, exc, default_plugin="fetch")
    if isinstance(extraction, Failure):
        return extraction
    if isinstance(task, RangeTask):
        return keep_pages(extraction.document, task.pages)
    if task.pages is not None and not covers_document(extraction.document, task.pages):
        return Partial(extraction)
    return transform_document(manager, settings, extraction.document, times=times)


def failure_from_exception(
    manager: IngestPluginManager,
    source: Source,
    exc: BaseException,
    *,
    default_plugin: str | None = None,
) -> Failure:
    """Turn an exception raised while processing ``source`` into a failure record.

    The plugin is the one that said so (:class:`DocumentError`), else the plugin whose code
    is deepest in the traceback, else ``default_plugin``. The traceback is kept, long and
    short (:func:`ingest.workers.capture.format_tracebacks`).
    """
    long, short = format_tracebacks(exc)
    if isinstance(exc, DocumentError):
        plugin = exc.plugin or plugin_in_traceback(manager, exc.__traceback__) or default_plugin
        return Failure(
            source=source.path,
            reason=exc.reason,
            message=exc.message,
            plugin=plugin,
            exc_type=None,
            doc_id=source.doc_id or None,
            traceback=long,
            traceback_short=short,
        )
    plugin = plugin_in_traceback(manager, exc.__traceback__) or default_plugin
    message = str(exc) or repr(exc)
    if isinstance(exc, MemoryError):
        reason = "memory"
    elif isinstance(exc, RecursionError):
        reason = "recursion"
    else:
        reason = "error"
    return Failure(
        source=source.path,
        reason=reason,
        message=message,
        plugin=plugin,
        exc_type=f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins."),
        doc_id=source.doc_id or None,
        traceback=long,
        traceback_short=short,
    )


def plugin_in_traceback(
    manager: IngestPluginManager, tb: TracebackType | None
) -> str | None:
    """The registered plugin whose code is deepest in ``tb``, or ``None``."""
    found: str | None = None
    for frame, _ in traceback.walk_tb(tb):
        # A method of a plugin object names its plugin exactly; several plugins may share a
        # module (tests, embedding), so the module is only the fallback.
        owner = frame.f_locals.get("self")
        name_of_owner = manager.get_name(owner) if owner is not None else None
        if name_of_owner is not None:
            found = name_of_owner
            continue
        module = frame.f_globals.get("__name__")
        if isinstance(module, str):
            name = manager.plugin_name_for_module(module)
            if name is not None:
                found = name
    return found


def document_plugins(manager: IngestPluginManager) -> list[str]:
    """The names of the plugins that implement the hooks workers run (extract, transform,
    embed, fetch)."""
    return sorted({name for hook in WORKER_HOOKS for name in manager.plugins_with_hook(hook)})
