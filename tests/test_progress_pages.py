"""Progress that moves while long documents are read: pages count as page ranges finish, the
percentage and ETA follow the work, and without a terminal a line comes at a regular
interval and at the end (none with ``-q``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import ingest
import pdfgen
import pytest
from helpers import run_ingest
from hypothesis import given
from hypothesis import strategies as st
from ingest import ProgressTracker, hookimpl

pytestmark = pytest.mark.slow

LONG_PAGES = 60


class Events:
    """Keeps every progress event."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    @hookimpl
    def ingest_progress(self, event: Any) -> None:
        self.events.append(event)


def test_pages_count_as_page_ranges_finish(tmp_path: Path) -> None:
    """The bar showed ``0 pages`` and no rate or ETA until a whole (long) document ended."""
    pdfgen.multipage_pdf(tmp_path / "long.pdf", pages=LONG_PAGES)
    heard = Events()
    result = ingest.run(
        [tmp_path / "long.pdf"],
        plugins=[("events", heard)],
        run={"workers": 2},
        sinks=[f"jsonl:{tmp_path / 'o.jsonl'}"],
        progress="none",
    )
    assert result.ingested == 1
    kinds = [event.kind for event in heard.events]
    assert "pages" in kinds
    first = kinds.index("pages")
    assert first < kinds.index("ingested")
    state = heard.events[first].state
    assert 0 < state["pages"] < LONG_PAGES
    assert state["current"] == 0  # the document is still in progress
    assert 0 < state["work_done"] < state["work_total"]
    assert state["eta_s"] is not None and state["pages_rate"] > 0
    assert 0 < state["percentage"] < 100
    pages = [event.state["pages"] for event in heard.events if event.kind == "pages"]
    assert pages == sorted(pages)
    end = heard.events[-1].state
    assert end["pages"] == LONG_PAGES and end["work_done"] == end["work_total"]
    assert end["percentage"] == 100.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_percentage_and_eta_follow_the_work() -> None:
    clock = FakeClock()
    tracker = ProgressTracker(total=2, clock=clock)
    tracker.add_work(1000)
    clock.now = 10.0
    tracker.update_sync(0, pages=16, work=250)
    state = tracker.get_state()
    assert state["current"] == 0
    assert state["percentage"] == 25.0
    assert state["eta_s"] == pytest.approx(30.0)  # 250 units in 10 s, 750 to go
    assert state["pages_rate"] == pytest.approx(1.6)


@given(st.lists(st.floats(min_value=0, max_value=500), min_size=1, max_size=20))
def test_work_never_goes_past_its_total(steps: list[float]) -> None:
    clock = FakeClock()
    tracker = ProgressTracker(total=len(steps), clock=clock)
    tracker.add_work(1000)
    last = 0.0
    for step in steps:
        clock.now += 1
        tracker.update_sync(0, work=step)
        state = tracker.get_state()
        assert last <= state["work_done"] <= 1000
        assert state["percentage"] is not None and 0 <= state["percentage"] <= 100
        last = state["work_done"]


def test_a_negative_amount_of_work_is_refused() -> None:
    tracker = ProgressTracker()
    with pytest.raises(ValueError, match="work"):
        tracker.add_work(-1)
    with pytest.raises(ValueError, match="work"):
        tracker.update_sync(0, work=-1)


LINE = re.compile(r"\[ingest\] (\d+)/(\d+) documents, (\d+)%")


@pytest.fixture
def slow_docs(tmp_path: Path) -> Path:
    """Two documents that take 1.5 s each (``tests/plugins/worker_faults.py``: ``slow``)."""
    folder = tmp_path / "docs"
    folder.mkdir()
    pdfgen.multipage_pdf(folder / "one-slow.pdf", pages=1)
    pdfgen.multipage_pdf(folder / "two-slow.pdf", pages=2)
    return folder


def log_run(docs: Path, tmp_path: Path, *args: str) -> tuple[int, str]:
    done = run_ingest(
        [
            "run", docs, "-p", "plugins.worker_faults", "--workers", "1", "--progress", "log",
            "-o", "progress_interval=0.25", "--sink", f"jsonl:{tmp_path / 'o.jsonl'}", *args,
        ],
        cwd=tmp_path,
    )
    return done.returncode, done.stderr


def test_the_log_reporter_prints_at_an_interval_and_at_the_end(
    slow_docs: Path, tmp_path: Path
) -> None:
    """Only the opening ``0/N`` line came, and none at the end."""
    code, err = log_run(slow_docs, tmp_path)
    assert code == 0, err
    lines = [LINE.match(line) for line in err.splitlines() if line.startswith("[ingest]")]
    assert all(lines), err
    assert len(lines) >= 5, err  # the first, one per 0.25 s over 3 s or more, the last
    first, last = lines[0], lines[-1]
    assert first is not None and last is not None
    assert first.group(1, 2) == ("0", "2")
    assert last.group(1, 2, 3) == ("2", "2", "100")


def test_quiet_prints_no_progress_line(slow_docs: Path, tmp_path: Path) -> None:
    code, err = log_run(slow_docs, tmp_path, "-q")
    assert code == 0, err
    assert "[ingest]" not in err
