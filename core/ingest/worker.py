"""What a worker does with one source: extract (with fallbacks), then run the transform chain.

The same function serves every backend: in-process, worker processes and Dask workers.
Every exception becomes a :class:`~ingest.model.Failure` naming the plugin that raised, so
one bad document never stops the others.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

from ingest.errors import DocumentError
from ingest.model import Document, Failure, Source

if TYPE_CHECKING:
    from types import TracebackType

    from ingest.config import Settings
    from ingest.manager import IngestPluginManager


def process_source(
    manager: IngestPluginManager, settings: Settings, source: Source
) -> Document | Failure:
    """Extract and transform one source.

    :param manager: this process's plugin manager.
    :param settings: the run's settings.
    :param source: the source to process.
    :returns: the finished document, or a failure record; never raises for a document's
        fault (``KeyboardInterrupt`` and ``SystemExit`` do propagate).
    """
    chain = [settings.extract.extractor, *settings.extract.fallback]
    document: Document | None = None
    errors: list[Failure] = []
    for name in dict.fromkeys(chain):
        try:
            document = manager.hook.ingest_extract(
                source=source, settings=settings, extractor=name, pages=None
            )
        except Exception as exc:
            failure = failure_from_exception(manager, source, exc, default_plugin=name)
            errors.append(failure)
            if failure.reason in _FINAL_REASONS:
                break
            continue
        if document is not None:
            break
    if document is None:
        if errors:
            first = errors[0]
            if len(errors) > 1:
                tried = "; ".join(f"{f.plugin}: {f.exc_type or f.reason}" for f in errors[1:])
                first.message = f"{first.message} (fallbacks failed too: {tried})"
            return first
        return Failure(
            source=source.path,
            reason="no-extractor",
            message=(
                f"no extractor took this {source.media_type} file "
                f"(tried: {', '.join(dict.fromkeys(chain))})"
            ),
            doc_id=source.doc_id,
        )
    for step in settings.transforms:
        try:
            manager.hook.ingest_transform(document=document, settings=settings, step=step)
        except Exception as exc:
            return failure_from_exception(manager, source, exc, default_plugin=step)
    return document


# A file that is encrypted or not a PDF fails the same way in every extractor: trying the
# fallbacks only repeats the failure.
_FINAL_REASONS = frozenset({"encrypted", "not-a-pdf", "unreadable"})


def failure_from_exception(
    manager: IngestPluginManager,
    source: Source,
    exc: BaseException,
    *,
    default_plugin: str | None = None,
) -> Failure:
    """Turn an exception raised while processing ``source`` into a failure record.

    The plugin is the one that said so (:class:`DocumentError`), else the plugin whose code
    is deepest in the traceback, else ``default_plugin``.
    """
    if isinstance(exc, DocumentError):
        plugin = exc.plugin or _plugin_in_traceback(manager, exc.__traceback__) or default_plugin
        return Failure(
            source=source.path,
            reason=exc.reason,
            message=exc.message,
            plugin=plugin,
            exc_type=None,
            doc_id=source.doc_id,
        )
    plugin = _plugin_in_traceback(manager, exc.__traceback__) or default_plugin
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
        doc_id=source.doc_id,
    )


def _plugin_in_traceback(
    manager: IngestPluginManager, tb: TracebackType | None
) -> str | None:
    found: str | None = None
    for frame, _ in traceback.walk_tb(tb):
        module = frame.f_globals.get("__name__")
        if isinstance(module, str):
            name = manager.plugin_name_for_module(module)
            if name is not None:
                found = name
    return found
