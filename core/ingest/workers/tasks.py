"""What crosses between the driver and a worker: tasks, answers, and the page arithmetic.

Both sides import this module and nothing here touches a plugin or a process. The driver
(:mod:`ingest.workers.dispatch`) cuts documents into tasks and merges the answers; the
worker (:mod:`ingest.workers.pipeline`) does the tasks. Everything here pickles.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ingest.model import Document, Failure, Page, Source

if TYPE_CHECKING:
    from ingest.config import Settings

#: Failure reasons that end a document at once: a file that is encrypted or not a PDF fails
#: the same way in every extractor, so trying the fallbacks only repeats the failure.
FINAL_REASONS = frozenset({"encrypted", "not-a-pdf", "unreadable"})


@dataclass(slots=True)
class Extraction:
    """A successful extraction: the document and how it was made.

    :param document: what the extractor returned (for a range: only those pages).
    :param extractor: the name of the extractor, from the chain, that returned it.
    :param errors: failures of the extractors tried before it, for the message if a later
        range fails and no fallback is left.
    """

    document: Document
    extractor: str
    errors: list[Failure] = field(default_factory=list)


def extractor_chain(settings: Settings) -> list[str]:
    """The extractors to try, in order: the configured one, then the fallbacks, each once."""
    return list(dict.fromkeys([settings.extract.extractor, *settings.extract.fallback]))


def extraction_failure(source: Source, errors: Sequence[Failure], tried: Sequence[str]) -> Failure:
    """The failure of a document no extractor could read.

    :param errors: the extractors' failures in the order they were tried; the first one is
        the document's failure, the others are summed up in its message.
    :param tried: every extractor name of the chain, for ``no-extractor``.
    """
    if errors:
        first = replace(errors[0])
        if len(errors) > 1:
            others = "; ".join(f"{f.plugin}: {f.exc_type or f.reason}" for f in errors[1:])
            first.message = f"{first.message} (fallbacks failed too: {others})"
        return first
    return Failure(
        source=source.path,
        reason="no-extractor",
        message=f"no extractor took this {source.media_type} file (tried: {', '.join(tried)})",
        doc_id=source.doc_id or None,
    )


def split_ranges(page_count: int, *, start: int, size: int, max_ranges: int) -> list[range]:
    """Cut pages ``start..page_count`` into consecutive ranges of about ``size`` pages.

    At most ``max_ranges`` ranges: every range makes the extractor open the document again,
    which costs time in proportion to the page count in pypdf and pdfminer (they walk the
    whole page tree), so a huge document gets longer ranges rather than more of them.

    :returns: ranges covering ``start..page_count`` in order, sizes differing by at most 1.
    """
    remaining = page_count - start + 1
    if remaining <= 0:
        return []
    count = min(max(1, max_ranges), -(-remaining // max(1, size)))
    base, extra = divmod(remaining, count)
    ranges: list[range] = []
    first = start
    for index in range(count):
        length = base + (1 if index < extra else 0)
        ranges.append(range(first, first + length))
        first += length
    return ranges


def merge_pages(document: Document, parts: Iterable[Sequence[Page]]) -> Document:
    """The document with the pages of ``parts`` added, all in page order, each number once.

    :param document: the first range's document; its metadata is kept.
    :param parts: the pages of the other ranges, in any order.
    """
    by_number: dict[int, Page] = {page.number: page for page in document.pages}
    for pages in parts:
        for page in pages:
            by_number.setdefault(page.number, page)
    return replace(document, pages=[by_number[n] for n in sorted(by_number)])


# --------------------------------------------------------------------------------------------
# Tasks: the small messages a pool sends to its workers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FirstTask:
    """Extract the first range of a document (or all of it), and finish it if that was all.

    :param pages: ``range(1, n + 1)`` to split documents of more than ``n`` pages, or
        ``None`` to read the whole document at once.
    """

    source: Source
    chain: tuple[str, ...]
    tried: tuple[str, ...]
    pages: range | None
    errors: tuple[Failure, ...] = ()


@dataclass(frozen=True, slots=True)
class RangeTask:
    """Extract one more range of a split document with the extractor that read the first."""

    source: Source
    extractor: str
    pages: range


@dataclass(frozen=True, slots=True)
class FinishTask:
    """Run the transform chain on a split document whose pages were merged."""

    document: Document


Task = FirstTask | RangeTask | FinishTask


def source_of(task: Task) -> Source:
    """The source a task works on (for a transform task: its merged document's)."""
    return task.document.source if isinstance(task, FinishTask) else task.source


@dataclass(slots=True)
class Partial:
    """The answer to a :class:`FirstTask` when the document has pages past the range."""

    extraction: Extraction


@dataclass(frozen=True, slots=True)
class WorkerInit:
    """What a worker needs to become a copy of the driver's plugin setup.

    :param sys_path: the driver's ``sys.path``, so plugins importable there (a dotted module
        path from a test folder, say) are importable here too.
    :param specs: the driver's plugin specs (``manager.specs``).
    :param settings: the pickled settings, unpickled only after ``sys_path`` is set.
    :param log_levels: the levels the driver's loggers have (``""`` is the root), so the
        worker sends only the records the driver would show.
    :param memory_limit: ``RLIMIT_DATA`` in bytes, or ``None``.
    :param trace_hooks: log every hook call, as the driver does.
    :param installed: the installed plugins the driver found (name to ``module:attribute``),
        so the worker loads the same ones without scanning the installed distributions;
        ``None``: the worker scans.
    """

    sys_path: list[str]
    specs: list[str]
    settings: bytes
    log_levels: dict[str, int]
    memory_limit: int | None
    trace_hooks: bool = False
    installed: dict[str, str] | None = None
