"""Tests for ``ingest.progress.ProgressTracker``."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest.progress import ProgressState, ProgressTracker


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_rate_percentage_and_eta_follow_the_clock() -> None:
    clock = FakeClock()
    tracker = ProgressTracker(100, clock=clock)
    clock.now += 10.0
    tracker.update_sync(20, pages=50)
    state = tracker.get_state()
    assert state["current"] == 20
    assert state["total"] == 100
    assert state["elapsed_s"] == 10.0
    assert state["rate"] == 2.0
    assert state["percentage"] == 20.0
    assert state["eta_s"] == 40.0
    assert state["pages"] == 50
    assert state["pages_rate"] == 5.0


def test_before_any_time_passes_rates_are_zero_and_eta_unknown() -> None:
    tracker = ProgressTracker(10, clock=FakeClock())
    tracker.update_sync(0)
    state = tracker.get_state()
    assert state["rate"] == 0.0
    assert state["pages_rate"] == 0.0
    assert state["eta_s"] is None
    assert state["percentage"] == 0.0


def test_unknown_total_has_no_percentage_or_eta_but_a_rate() -> None:
    clock = FakeClock()
    tracker = ProgressTracker(clock=clock)
    clock.now += 4.0
    tracker.update_sync(8)
    state = tracker.get_state()
    assert state["total"] is None
    assert state["percentage"] is None
    assert state["eta_s"] is None
    assert state["rate"] == 2.0


def test_finished_and_overshooting_runs_cap_at_100_percent_and_zero_eta() -> None:
    clock = FakeClock()
    tracker = ProgressTracker(5, clock=clock)
    clock.now += 1.0
    tracker.update_sync(7)
    state = tracker.get_state()
    assert state["percentage"] == 100.0
    assert state["eta_s"] == 0.0
    empty = ProgressTracker(0, clock=clock).get_state()
    assert empty["percentage"] == 100.0
    assert empty["eta_s"] == 0.0


def test_set_total_and_add_total() -> None:
    tracker = ProgressTracker(clock=FakeClock())
    tracker.add_total(3)
    assert tracker.get_state()["total"] == 3
    tracker.add_total(4)
    assert tracker.get_state()["total"] == 7
    tracker.set_total(10)
    tracker.update_sync(5)
    assert tracker.get_state()["percentage"] == 50.0
    tracker.set_total(None)
    assert tracker.get_state()["percentage"] is None


def test_failed_and_skipped_are_counted_within_current() -> None:
    tracker = ProgressTracker(clock=FakeClock())
    tracker.update_sync(failed=1)
    tracker.update_sync(skipped=1)
    tracker.update_sync(3, failed=1, pages=12)
    state = tracker.get_state()
    assert (state["current"], state["failed"], state["skipped"], state["pages"]) == (5, 2, 1, 12)


@pytest.mark.parametrize("field", ["n", "failed", "skipped", "pages"])
def test_negative_counts_are_rejected_with_their_name(field: str) -> None:
    tracker = ProgressTracker(clock=FakeClock())
    kwargs = {"n": 1, "failed": 0, "skipped": 0, "pages": 0, field: -1}
    n = kwargs.pop("n")
    with pytest.raises(ValueError, match=f"progress {field} must be 0 or more, got -1"):
        tracker.update_sync(n, **kwargs)
    assert tracker.get_state()["updates"] == 0
    with pytest.raises(ValueError, match="total"):
        tracker.set_total(-1)
    with pytest.raises(ValueError, match="total"):
        ProgressTracker(-5)


def test_get_state_is_a_plain_dict_snapshot() -> None:
    tracker = ProgressTracker(2, clock=FakeClock())
    state = tracker.get_state()
    assert type(state) is dict
    state["current"] = 99
    assert tracker.get_state()["current"] == 0


def test_listeners_get_each_new_state_until_they_unsubscribe() -> None:
    tracker = ProgressTracker(4, clock=FakeClock())
    seen: list[ProgressState] = []
    unsubscribe = tracker.subscribe(seen.append)
    tracker.update_sync(1)
    tracker.add_total(1)
    asyncio.run(tracker.update(2, pages=3))
    assert [(s["current"], s["total"], s["pages"]) for s in seen] == [
        (1, 4, 0),
        (1, 5, 0),
        (3, 5, 3),
    ]
    assert [s["updates"] for s in seen] == [1, 2, 3]
    unsubscribe()
    unsubscribe()
    tracker.update_sync()
    assert len(seen) == 3


def test_a_failing_listener_is_logged_and_breaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    tracker = ProgressTracker(clock=FakeClock())
    after: list[int] = []

    def broken(state: ProgressState) -> None:
        raise ZeroDivisionError("listener bug")

    tracker.subscribe(broken)
    tracker.subscribe(lambda state: after.append(state["current"]))
    # A listener that mutates its state must not change what the next one sees.
    tracker.subscribe(lambda state: state.update(current=-1))
    tracker.subscribe(lambda state: after.append(state["current"]))
    with caplog.at_level(logging.ERROR, logger="ingest.progress"):
        tracker.update_sync(2)
    assert tracker.get_state()["current"] == 2
    assert after == [2, 2]
    [record] = caplog.records
    assert "broken" in record.getMessage()
    assert record.exc_info is not None
    assert record.exc_info[0] is ZeroDivisionError


def test_a_listener_may_read_the_tracker_without_deadlock() -> None:
    tracker = ProgressTracker(clock=FakeClock())
    inner: list[int] = []
    tracker.subscribe(lambda state: inner.append(tracker.get_state()["current"]))
    tracker.update_sync(3)
    assert inner == [3]


counts = st.tuples(st.integers(0, 5), st.integers(0, 2), st.integers(0, 2), st.integers(0, 20))
workers = st.lists(
    st.tuples(st.sampled_from(["thread", "task"]), st.lists(counts, max_size=40)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(workers)
def test_concurrent_threads_and_tasks_sum_exactly(
    plan: list[tuple[str, list[tuple[int, int, int, int]]]],
) -> None:
    tracker = ProgressTracker()
    notified = []
    tracker.subscribe(lambda state: notified.append(state["updates"]))
    start = threading.Barrier(1 + sum(kind == "thread" for kind, _ in plan))

    def thread_worker(steps: list[tuple[int, int, int, int]]) -> None:
        start.wait()
        for n, failed, skipped, pages in steps:
            tracker.update_sync(n, failed=failed, skipped=skipped, pages=pages)

    async def task_worker(steps: list[tuple[int, int, int, int]]) -> None:
        for n, failed, skipped, pages in steps:
            await tracker.update(n, failed=failed, skipped=skipped, pages=pages)
            await asyncio.sleep(0)

    async def run_tasks() -> None:
        start.wait()
        await asyncio.gather(*(task_worker(steps) for kind, steps in plan if kind == "task"))

    threads = [
        threading.Thread(target=thread_worker, args=(steps,))
        for kind, steps in plan
        if kind == "thread"
    ]
    for thread in threads:
        thread.start()
    asyncio.run(run_tasks())
    for thread in threads:
        thread.join()

    steps = [step for _, worker_steps in plan for step in worker_steps]
    state = tracker.get_state()
    assert state["current"] == sum(step[0] for step in steps)
    assert state["failed"] == sum(step[1] for step in steps)
    assert state["skipped"] == sum(step[2] for step in steps)
    assert state["pages"] == sum(step[3] for step in steps)
    assert state["updates"] == len(steps)
    # Every update notified once, each with a distinct sequence number.
    assert sorted(notified) == list(range(1, len(steps) + 1))
