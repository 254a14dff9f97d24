"""The sources a session hands its backend, in the order that keeps every worker busy.

Pool backends schedule better knowing what is still to come: a long document is split into
page ranges only when too little other work is left to keep the other workers busy while
one worker reads it (see :mod:`ingest.workers.dispatch`). :class:`SourceFeed` tells them the bytes
not handed out yet, and gives the largest files first when asked: the longest tasks start
while plenty of small ones remain to fill in around them, so the run's tail is made of small
files and a large one rarely has to be split (each split range opens the file again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, final

if TYPE_CHECKING:
    from ingest.interrupt import GracefulStop
    from ingest.model import Source


class Feed(Protocol):
    """What a backend takes sources from: an iterator that also says what is left and
    whether the run is stopping, and hears of pages done before their document is.
    :class:`SourceFeed` is the session's."""

    def __iter__(self) -> Iterator[Source]: ...

    def __next__(self) -> Source: ...

    @property
    def stopped(self) -> bool:
        """A stop was requested: sources read ahead should be dropped, not started."""
        ...

    @property
    def remaining_bytes(self) -> int:
        """Bytes of the sources not handed out yet (0 when unknown)."""
        ...

    def pages_done(self, source: Source, pages: int, page_count: int) -> None:
        """``pages`` more pages of ``source`` (of ``page_count``) were extracted while the
        document is still in progress (a page range of a long document)."""
        ...


@final
class SourceFeed(Iterator["Source"]):
    """An iterator over ``sources`` that ends early once ``stop`` is requested.

    :param sources: the collected sources.
    :param stop: the session's Ctrl-C handler, or ``None``.
    :param largest_first: yield the largest files first (ties keep their collected order).
    :param on_pages: called as ``on_pages(source, pages, page_count)`` when a backend
        reports pages of a document in progress (:meth:`pages_done`).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        stop: GracefulStop | None,
        *,
        largest_first: bool,
        on_pages: Callable[[Source, int, int], None] | None = None,
    ) -> None:
        ordered = sorted(sources, key=lambda s: -s.size) if largest_first else list(sources)
        self._on_pages = on_pages
        self._items = iter(ordered)
        self._stop = stop
        #: How many sources the feed holds in all.
        self.total = len(ordered)
        #: Bytes of the sources not yet handed out.
        self.remaining_bytes = sum(source.size for source in ordered)
        #: Sources handed out so far.
        self.taken = 0

    def pages_done(self, source: Source, pages: int, page_count: int) -> None:
        """Say that ``pages`` more pages of ``source`` (of ``page_count``) were extracted
        while the document is still in progress (a page range of a long document), so that
        progress moves before the whole document is done."""
        if self._on_pages is not None and pages > 0:
            self._on_pages(source, pages, page_count)

    @property
    def stopped(self) -> bool:
        """A stop was requested: sources read ahead should be dropped, not started."""
        return self._stop is not None and self._stop.requested

    def __iter__(self) -> SourceFeed:
        return self

    def __next__(self) -> Source:
        if self.stopped:
            raise StopIteration
        source = next(self._items)
        self.remaining_bytes -= source.size
        self.taken += 1
        return source
