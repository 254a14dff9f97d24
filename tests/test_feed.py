"""The feed of sources a session hands its backend: order, bytes left, stop."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from ingest.interrupt import GracefulStop
from ingest.model import Source
from ingest.workers.feed import SourceFeed


def sources_of(sizes: list[int]) -> list[Source]:
    return [Source(Path(f"f{i}.pdf"), f"{i:064x}", size) for i, size in enumerate(sizes)]


@given(st.lists(st.integers(min_value=0, max_value=10**9), max_size=40), st.booleans())
def test_order_and_the_bytes_left_at_every_step(sizes: list[int], largest_first: bool) -> None:
    sources = sources_of(sizes)
    feed = SourceFeed(sources, None, largest_first=largest_first)
    seen: list[Source] = []
    assert feed.remaining_bytes == sum(sizes)
    for source in feed:
        seen.append(source)
        assert feed.remaining_bytes == sum(sizes) - sum(s.size for s in seen)
    assert feed.remaining_bytes == 0
    assert sorted(seen, key=lambda s: s.path.name) == sorted(sources, key=lambda s: s.path.name)
    if largest_first:
        # Largest first; equal sizes keep the collected order (the sort is stable).
        assert seen == sorted(sources, key=lambda s: -s.size)
    else:
        assert seen == sources


def test_a_requested_stop_ends_the_feed_and_says_so() -> None:
    stop = GracefulStop()
    feed = SourceFeed(sources_of([5, 3, 9]), stop, largest_first=True)
    assert next(feed).size == 9
    assert not feed.stopped
    stop.requested = True
    assert feed.stopped
    assert list(feed) == []
    # Nothing more was handed out, so those bytes are still not read.
    assert feed.remaining_bytes == 8
