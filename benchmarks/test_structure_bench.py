"""Structure: how well headings, lists and tables are found, and what it costs.

* ``test_structure_fidelity``: :data:`DOCUMENTS` documents generated with known structure
  (``tests/structgen.py``: a title, numbered and unnumbered sections, subsections and bold
  sub-subsections, one heading in each that wraps, bulleted, numbered and nested lists,
  a ruled table, one without rules and one with three horizontal rules; every other
  document in two columns, every other pair with bookmarks) go through ``ingest run
  --format markdown`` in-process, and the blocks the sink receives are scored against what
  was written (``benchmarks/_structure_score.py``). Targets: heading F1 at least 0.95 with
  the right level for at least 0.9 of them, list item F1 at least 0.95, table cell accuracy
  at least 0.9.
* ``test_structure_cost``: ``ingest run ../shared/corpus --workers 0`` with the default
  settings (plain text) and with ``--format markdown``, in fresh processes, round after
  round interleaved; the CPU time of each process (user + system, the machine's other load
  does not count) and its wall time. Target: the Markdown run's median CPU time at most
  :data:`COST_TARGET` times the plain run's.

Run: ``pytest benchmarks/test_structure_bench.py -s`` (about 4 minutes; ``-s`` shows the
tables).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _structure_score import (
    Matches,
    bag_matches,
    heading_scores,
    item_text,
    norm,
    table_scores,
)
from test_workers_bench import CORPUS, INGEST_RUN, _env

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers import Collect  # tests/ is put on the path above
from structgen import Truth, structured_pdf

DOCUMENTS = 24
ROUNDS = 3
COST_TARGET = 2.0
HEADING_F1 = 0.95
LEVELS = 0.9
LIST_F1 = 0.95
CELLS = 0.9

SUMMARY: list[str] = []


def _variant(seed: int) -> tuple[int, bool]:
    return 1 + seed % 2, seed % 4 >= 2


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Truth, int, bool]]:
    folder = tmp_path_factory.mktemp("structured")
    made: dict[str, tuple[Truth, int, bool]] = {}
    for seed in range(DOCUMENTS):
        columns, outline = _variant(seed)
        path = folder / f"doc{seed:02d}.pdf"
        made[str(path)] = (structured_pdf(path, seed=seed, columns=columns, outline=outline),
                           columns, outline)  # fmt: skip
    return made


def test_structure_fidelity(
    generated: dict[str, tuple[Truth, int, bool]], ingest_pipeline: Callable[..., Any]
) -> None:
    collect = Collect()
    run = ingest_pipeline(sorted(generated), plugins=[collect], format="markdown")
    assert not run.failures
    by_variant: dict[str, list[Any]] = {}
    totals = [Matches(), 0, 0, Matches(), 0, 0, 0]
    for document in collect.documents:
        truth, columns, outline = generated[str(document.source.path)]
        blocks = [b for page in document.pages for b in page.blocks]
        found_headings = [(b.text, b.level) for b in blocks if b.kind == "heading"]
        headings, right, matched = heading_scores(found_headings, truth.headings)
        items = bag_matches(
            [item_text(b.text) for b in blocks if b.kind == "list_item"],
            [norm(text) for text in truth.list_items],
        )
        tables = [(p.number, b.table.grid()) for p in document.pages for b in p.blocks if b.table]
        cells_right, cells, spurious = table_scores(
            tables, [(t.page, t.rows) for t in truth.tables]
        )
        plural = "s" if columns > 1 else ""
        key = f"{columns} column{plural}, {'outline' if outline else 'no outline'}"
        for bucket in (totals, by_variant.setdefault(key, [Matches(), 0, 0, Matches(), 0, 0, 0])):
            bucket[0].add(headings)
            bucket[1] += right
            bucket[2] += matched
            bucket[3].add(items)
            bucket[4] += cells_right
            bucket[5] += cells
            bucket[6] += spurious
    SUMMARY.append(f"structure fidelity, {len(collect.documents)} generated documents")
    SUMMARY.append(
        f"{'':<26}{'heading F1':>11}{'levels':>8}{'list F1':>9}{'cells':>8}{'spurious':>9}"
    )
    for key, bucket in [*sorted(by_variant.items()), ("all", totals)]:
        SUMMARY.append(
            f"{key:<26}{bucket[0].f1:>11.3f}{bucket[1] / max(1, bucket[2]):>8.3f}"
            f"{bucket[3].f1:>9.3f}{bucket[4] / max(1, bucket[5]):>8.3f}{bucket[6]:>9}"
        )
    print("\n" + "\n".join(SUMMARY))
    heading_f1 = totals[0].f1
    levels = totals[1] / max(1, totals[2])
    cells_accuracy = totals[4] / max(1, totals[5])
    assert heading_f1 >= HEADING_F1
    assert levels >= LEVELS
    assert totals[3].f1 >= LIST_F1
    assert cells_accuracy >= CELLS


def _timed_run(workdir: Path, *extra: str) -> tuple[float, float]:
    """One ``ingest run`` over the corpus in a fresh process: (CPU seconds, wall seconds)."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-c", INGEST_RUN, "run", str(CORPUS), "--workers", "0",
        "--sink", "jsonl:out.jsonl", "--progress", "none", "-o", "cache.enabled=false", *extra,
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=1800
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not present")
@pytest.mark.skipif(os.name != "posix", reason="child CPU times come from getrusage")
@pytest.mark.timeout(3600)  # six runs over the corpus; minutes each on a loaded machine
def test_structure_cost(tmp_path: Path) -> None:
    plain: list[tuple[float, float]] = []
    markdown: list[tuple[float, float]] = []
    for round_number in range(ROUNDS):
        plain.append(_timed_run(tmp_path / f"plain{round_number}"))
        markdown.append(_timed_run(tmp_path / f"markdown{round_number}", "--format", "markdown"))
    cpu_plain = statistics.median(c for c, _ in plain)
    cpu_markdown = statistics.median(c for c, _ in markdown)
    wall_plain = statistics.median(w for _, w in plain)
    wall_markdown = statistics.median(w for _, w in markdown)
    ratio = cpu_markdown / cpu_plain
    SUMMARY.append(
        f"corpus cost, medians of {ROUNDS} interleaved rounds: plain {cpu_plain:.2f} s CPU "
        f"({wall_plain:.2f} s wall), --format markdown {cpu_markdown:.2f} s CPU "
        f"({wall_markdown:.2f} s wall): {ratio:.2f}x CPU, {wall_markdown / wall_plain:.2f}x "
        f"wall (target <= {COST_TARGET}x CPU)"
    )
    print("\n" + SUMMARY[-1])
    assert ratio <= COST_TARGET
