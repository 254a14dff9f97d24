"""Benchmark harness for ``ingest.bridge``: per-call cost, table and targets.

Each benchmark runs ``calls`` coroutines per round; pytest-benchmark's median round time
divided by ``calls`` is the per-call cost recorded here. ``test_targets`` (always moved to
the end of the run) asserts the ratios, and the terminal summary prints the table. Only
ratios measured in the same run are asserted, so the targets hold on a slow or noisy machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from _harness import Results

RESULTS = pytest.StashKey[Results]()
PINNED = pytest.StashKey["int | None"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ingest benchmarks")
    group.addoption(
        "--bench-no-pin",
        action="store_true",
        help="do not pin the benchmark process to one CPU",
    )
    group.addoption(
        "--bench-rewrite-mib",
        type=int,
        default=1024,
        help="size of the JSONL file whose rewrite is timed (test_rerun_bench; 1024: 1 GiB)",
    )
    group.addoption(
        "--bench-scale",
        type=float,
        default=1.0,
        help="multiply the calls per round (1.0: 10,000 for the fast contenders)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESULTS] = Results()
    # A cross-thread handoff is two thread wake-ups. Between two idle vCPUs of a VM each one
    # is an inter-processor interrupt costing up to ~40 us, more than the work measured, and
    # it swings with whatever else the machine runs. On one CPU a wake-up is a plain context
    # switch, so runs agree. Threads inherit the mask: this must precede any thread start.
    config.stash[PINNED] = None
    if not config.getoption("--bench-no-pin") and hasattr(os, "sched_setaffinity"):
        cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        config.stash[PINNED] = cpu


@pytest.fixture(scope="session")
def results(pytestconfig: pytest.Config) -> Results:
    return pytestconfig.stash[RESULTS]


@pytest.fixture(scope="session")
def calls(pytestconfig: pytest.Config) -> Callable[[int], int]:
    scale = pytestconfig.getoption("--bench-scale")
    return lambda base: max(1, round(base * scale))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The targets compare what the other benchmarks measured, so they run last whatever
    # order another plugin chose.
    last = [item for item in items if item.name == "test_targets"]
    items[:] = [item for item in items if item.name != "test_targets"] + last


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    found = config.stash.get(RESULTS, None)
    if found is None or not found.per_call:
        return
    cpu = config.stash.get(PINNED, None)
    pinned = f"pinned to CPU {cpu}" if cpu is not None else "not pinned"
    terminalreporter.write_sep("=", f"ingest run_sync: per-call medians ({pinned})")
    for line in found.table():
        terminalreporter.write_line(line)
