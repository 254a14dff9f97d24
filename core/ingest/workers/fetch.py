"""Sources that live in a store: copied into the worker before extraction.

A source whose ``path`` is a URL (``s3://bucket/key.pdf``) is never read by the driver.
In the worker that runs one of its tasks, :func:`fetched` asks ``ingest_fetch`` for a local
copy in a private temporary folder, hashes it (a source collected without a content id gets
it here), and hands the extractors a source whose ``path`` is the copy; :func:`restore` then
makes the outcome name the URL again. Extractors, OCR and transforms never see a URL.

The copy is part of the task: its deadline and memory cap cover it, and a copy that fails
(the object is gone, access is denied, the network fails past the plugin's retries) fails
that document alone, with the plugin's one-line reason.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.errors import DocumentError
from ingest.model import Document, Failure, Source, content_id_of
from ingest.workers.tasks import Extraction, Partial

if TYPE_CHECKING:
    from ingest.config import Settings
    from ingest.manager import IngestPluginManager

__all__ = ["fetched", "restore"]


@contextlib.contextmanager
def fetched(
    manager: IngestPluginManager, settings: Settings, source: Source, *, same_bytes: bool = False
) -> Iterator[Source]:
    """The source as extractors read it: itself, or, for a URL, a local copy of it.

    :param manager: this worker's plugin manager.
    :param settings: the run's settings.
    :param source: the source of the task.
    :param same_bytes: the task needs the very bytes an earlier task of the document read
        (a page range): a copy with another content id fails with reason ``changed``.
    :returns: a context giving the source to extract, with the copy's content id; the copy
        is deleted when the context ends.
    :raises DocumentError: the copy could not be made (reason and message from the plugin).
    """
    if not source.remote:
        yield source
        return
    folder = tempfile.mkdtemp(prefix="ingest-fetch-")
    try:
        local = manager.hook.ingest_fetch(source=source, settings=settings, folder=Path(folder))
        if local is None:
            scheme = str(source.path).partition("://")[0]
            raise DocumentError(
                "unsupported",
                f"no plugin reads {scheme}:// URLs (ingest_fetch); for object stores install "
                "'ingest[s3]'",
            )
        content_id = content_id_of(Path(local))
        if same_bytes and source.content_id and content_id != source.content_id:
            raise DocumentError(
                "changed",
                "the object was replaced while the run read it (its pages would mix two "
                "versions); the next run reads it again",
            )
        yield replace(source, path=Path(local), content_id=content_id)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def restore(outcome: Any, source: Source, used: Source) -> Any:
    """Make an outcome name ``source`` (the URL) again, with the content id of ``used``.

    :param outcome: a :class:`~ingest.model.Document`, :class:`~ingest.model.Failure`,
        :class:`~ingest.workers.tasks.Extraction` or :class:`~ingest.workers.tasks.Partial`
        made from ``used``; changed in place.
    :param source: the source as the driver sent it.
    :param used: the source the extractors read (the local copy).
    :returns: ``outcome``.
    """
    if used is source:
        return outcome
    named = replace(source, content_id=used.content_id)
    if isinstance(outcome, Document):
        outcome.source = named
    elif isinstance(outcome, Failure):
        outcome.source = source.path
        outcome.message = outcome.message.replace(str(used.path), str(source.path))
        outcome.doc_id = used.doc_id
    elif isinstance(outcome, Extraction | Partial):
        extraction = outcome.extraction if isinstance(outcome, Partial) else outcome
        extraction.document.source = named
        for failure in extraction.errors:
            restore(failure, source, used)
    return outcome
