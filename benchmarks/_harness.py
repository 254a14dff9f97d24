"""Shared by the benchmarks' conftest and tests: targets, results and the summary table.

A module of its own rather than ``from conftest import``: a second conftest.py elsewhere in
the tree (tests/) would make the name ``conftest`` ambiguous.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

KINDS = ("return", "sleep0")


@dataclass(frozen=True)
class Target:
    """``fast`` must cost at most ``max_ratio`` times ``slow`` per call, for ``kinds``."""

    fast: str
    slow: str
    max_ratio: float
    label: str
    kinds: tuple[str, ...] = KINDS
    #: Measured only where uvloop is installed; skipped, not missing, without it.
    optional: bool = False


TARGETS = (
    Target("run_sync", "asyncio_run", 1 / 4, "run_sync >= 4x faster than asyncio.run"),
    # On asyncio's loop, asserted for the bare handoff only. With one sleep(0), the extra
    # loop iteration costs run_sync 11-13 us when measured across threads (3 us within one
    # thread; not the epoll call: skipping it changes nothing). The portal's own handoff
    # absorbs most of it (+5 us), so the sleep0 ratio comes out near 3.5x. On uvloop, where
    # an iteration is C, it is asserted for both kinds. Against the portal also on uvloop it
    # is reported only: 3.9-4.3x here, the portal gaining more from uvloop than we do.
    Target(
        "run_sync", "anyio_portal", 1 / 4, "run_sync >= 4x faster than anyio's portal", ("return",)
    ),
    Target("run_sync", "floor_threadsafe", 2.0, "run_sync within 2x of the cross-thread floor"),
    Target("run_sync_many", "run_sync", 1.0, "batch per coroutine < one run_sync"),
    Target(
        "run_sync_uvloop",
        "anyio_portal",
        1 / 4,
        "run_sync on uvloop >= 4x faster than anyio's portal",
        optional=True,
    ),
    Target(
        "run_sync_uvloop",
        "anyio_portal_uvloop",
        1 / 4,
        "the same, both on uvloop",
        (),
        optional=True,
    ),
    Target(
        "run_sync_uvloop",
        "floor_threadsafe_uvloop",
        2.0,
        "run_sync within 2x of uvloop's floor",
        optional=True,
    ),
)
REPEATS = 5


@dataclass
class Results:
    """Per-call medians in seconds, keyed by (contender, kind), and how to measure again."""

    per_call: dict[tuple[str, str], float] = field(default_factory=dict)
    runners: dict[tuple[str, str], tuple[Callable[[int], object], int]] = field(
        default_factory=dict
    )
    rechecked: dict[tuple[str, str, str], float] = field(default_factory=dict)

    def get(self, name: str, kind: str) -> float | None:
        # The floor does not run a coroutine, so one measurement serves both kinds.
        return self.per_call.get((name, kind), self.per_call.get((name, "-")))

    def ratios(self) -> list[tuple[Target, str, float | None]]:
        rows: list[tuple[Target, str, float | None]] = []
        have_uvloop = any(name.endswith("_uvloop") for name, _ in self.per_call)
        for target in TARGETS:
            if target.optional and not have_uvloop:
                continue
            for kind in KINDS:
                fast, slow = self.get(target.fast, kind), self.get(target.slow, kind)
                rows.append((target, kind, None if not fast or not slow else fast / slow))
        return rows

    def recheck(self, target: Target, kind: str) -> float | None:
        """Measure the pair again, interleaved, and return the ratio of the medians.

        Noise on a shared machine comes in bursts that can land on one contender's rounds
        and not the other's; alternating them puts both under the same conditions.
        """
        fast = self.runners.get((target.fast, kind)) or self.runners.get((target.fast, "-"))
        slow = self.runners.get((target.slow, kind)) or self.runners.get((target.slow, "-"))
        if fast is None or slow is None:
            return None
        fast_times: list[float] = []
        slow_times: list[float] = []
        for _ in range(REPEATS):
            for (run, calls), times in ((fast, fast_times), (slow, slow_times)):
                n = max(1, calls // 4)
                started = time.perf_counter()
                run(n)
                times.append((time.perf_counter() - started) / n)
        ratio = statistics.median(fast_times) / statistics.median(slow_times)
        self.rechecked[(target.fast, target.slow, kind)] = ratio
        return ratio

    def table(self) -> list[str]:
        names = sorted({name for name, _ in self.per_call}, key=self._order)
        lines = [f"{'per call (us)':<22}" + "".join(f"{kind:>12}" for kind in KINDS)]
        for name in names:
            cells = [self.get(name, kind) for kind in KINDS]
            lines.append(
                f"{name:<22}" + "".join(f"{c * 1e6:>12.2f}" if c else f"{'-':>12}" for c in cells)
            )
        lines.append("")
        for target, kind, ratio in self.ratios():
            if ratio is None:
                shown = "missing"
            elif target.max_ratio < 1:
                shown = f"{ratio:.3f} ({1 / ratio:.2f}x faster)"
            else:
                shown = f"{ratio:.3f}"
            if kind not in target.kinds:
                verdict = "reported only"
            elif ratio is None:
                verdict = ""
            else:
                verdict = "ok" if ratio <= target.max_ratio else "over"
                again = self.rechecked.get((target.fast, target.slow, kind))
                if again is not None:
                    verdict += f"; interleaved re-check {again:.3f}"
            lines.append(
                f"{target.fast}/{target.slow} [{kind}] = {shown}, "
                f"target <= {target.max_ratio:.3f}: {verdict}"
            )
        return lines

    @staticmethod
    def _order(name: str) -> tuple[int, str]:
        first = ("floor_send", "floor_threadsafe", "run_sync_many", "run_sync")
        return (first.index(name) if name in first else len(first), name)


def unpin() -> None:
    """Let a child process run on every CPU, whatever affinity the benchmark runner has."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))


def whole_run(
    source: str, workdir: Path, args: Sequence[str], env: Mapping[str, str]
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """One ``ingest run SOURCE ARGS`` in a fresh process, start-up included, writing JSONL in
    ``workdir`` with the cache off: the finished process and its JSON summary event (the
    last line of ``--progress json``; empty when the run printed none)."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-c", "from ingest.cli import main; main()", "run", source, *args,
        "--sink", "jsonl:out.jsonl", "--progress", "json", "-o", "cache.enabled=false",
    ]  # fmt: skip
    done = subprocess.run(
        command,
        cwd=workdir,
        # As installed: from bytecode, even where the caller's environment forbids writing it.
        env={k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"},
        capture_output=True,
        text=True,
        timeout=900,
        preexec_fn=unpin,
    )
    lines = done.stdout.strip().splitlines()
    summary: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    return done, summary
