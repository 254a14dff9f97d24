"""A rerun where 1 of 1,000 documents changed, against a rerun where none did, per sink.

The corpus is 1,000 generated three-page PDFs, ingested once (``--workers 2``). Then, for the
JSONL sink and for the SQLite sink, each alone in a folder of its own, rounds of two real
``ingest run --workers 0`` processes, interleaved: one over the unchanged corpus (everything
skipped), and one after document 500 was rewritten with new text (one document extracted,
its old records replaced; for JSONL the file is rewritten once, at the end of the run). Each
is timed inside its process from the call of the CLI to the exit, so the interpreter's
start-up and imports are left out and the sink's close (the rewrite) is counted.

Target, for each sink: the median changed rerun costs at most the median unchanged rerun plus
twice that document's own extraction (extraction and transforms, as a worker does them, as
the first document of a fresh process with the same imports done). The three are measured in
each round, side by side, and the medians of the rounds' differences compared. SQLite must
meet it. The JSONL sink meets it only for small files, since it rewrites the whole file (five
fsyncs and a copy, see its docstring): a miss is reported as an expected failure with its
figures.

The JSONL rewrite is a copy of the whole file, so its cost grows with the file. A second
test measures it on a file of 1 GiB (``--bench-rewrite-mib`` to change): one document
replaced and the sink closed, against the sink opened and closed with no change; it reports
seconds per GiB, and from the first test's figures the largest file for which the target
above still holds.

Run: ``pytest benchmarks/test_rerun_bench.py -s`` (3 to 5 minutes; 1 GiB of temporary files,
deleted afterwards).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fpdf import FPDF

DOCUMENTS = 1000
CHANGED = 500
ROUNDS = 9
SINKS = {"jsonl": "out.jsonl", "sqlite": "out.db"}
RESULTS: dict[str, dict[str, float]] = {}

# Making 1,000 PDFs, filling each store and 14 timed runs take minutes on a loaded machine.
pytestmark = pytest.mark.timeout(1800)

# Times the CLI from its call to the process's exit (atexit), writing seconds to $TIMED_OUT.
# The modules every run imports (the built-in plugins, the pipeline) are imported before the
# clock starts: the same in both runs, and on a shared machine their time swings by more than
# the difference measured. Unpinned from the CPU the benchmarks' conftest pins pytest to, for
# the --workers 2 fill.
TIMED_CLI = """
import atexit, os, sys, time
if hasattr(os, "sched_setaffinity") and os.environ.get("UNPIN"):
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
import ingest.api, ingest.workers.pipeline
from ingest.manager import build_manager
from ingest.cli import main
build_manager([])
started = time.perf_counter()
def report():
    with open(os.environ["TIMED_OUT"], "w") as out:
        out.write(repr(time.perf_counter() - started))
atexit.register(report)
sys.argv = ["ingest", *sys.argv[1:]]
main()
"""


def make_pdf(path: Path, number: int, version: int = 0) -> None:
    """Three pages of distinct sentences: document ``number`` in its ``version``."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    for page in range(1, 4):
        pdf.add_page()
        text = " ".join(
            f"Document {number} version {version} page {page} sentence {line}: the heron "
            f"{hashlib.sha256(f'{number}/{version}/{page}/{line}'.encode()).hexdigest()[:12]} "
            "waits by the water while the reeds move."
            for line in range(12)
        )
        pdf.multi_cell(0, 5, text)
    pdf.output(str(path))


def ingest(workdir: Path, docs: Path, sink: str, *extra: str, unpin: bool = False) -> float:
    """One ``ingest run`` in ``workdir``: the seconds from the CLI's call to exit."""
    timed = workdir / "timed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env["TIMED_OUT"] = str(timed)
    env["UNPIN"] = "1" if unpin else ""
    command = [
        sys.executable, "-c", TIMED_CLI, "run", str(docs), "--sink", sink,
        "--progress", "none", *extra,
    ]  # fmt: skip
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return float(timed.read_text())


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("rerun-docs")
    for number in range(DOCUMENTS):
        make_pdf(folder / f"doc{number:04d}.pdf", number)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# The first extraction of a fresh process, after the imports TIMED_CLI makes before its clock:
# what extracting that one document costs a rerun (pdfium's first open, first regexes...).
OWN_EXTRACTION = """
import os, sys, time
import ingest.api, ingest.workers.pipeline
from ingest.manager import build_manager
build_manager([])
from pathlib import Path
from ingest.api import prepare
from ingest.model import Source
from ingest.workers.pipeline import process_source
path = Path(sys.argv[1])
prepared = prepare(cwd=Path.cwd(), environ={}, cli={"collect.inputs": [str(path)]})
source = Source.from_path(path)
started = time.perf_counter()
process_source(prepared.manager, prepared.loaded.settings, source)
print(repr(time.perf_counter() - started))
"""


def own_extraction(workdir: Path, path: Path) -> float:
    """Seconds of extracting and transforming ``path`` as the first document of a fresh
    process, as a worker does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    done = subprocess.run(
        [sys.executable, "-c", OWN_EXTRACTION, str(path)],
        cwd=workdir, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", list(SINKS))
def test_one_changed_document_costs_about_its_own_extraction(
    docs: Path, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = f"{kind}:{SINKS[kind]}"
    changed = docs / f"doc{CHANGED:04d}.pdf"
    make_pdf(changed, CHANGED)
    ingest(tmp_path, docs, sink, "--workers", "2", unpin=True)  # fill the store
    unchanged: list[float] = []
    one_changed: list[float] = []
    owns: list[float] = []
    # Each round measures the three side by side, so that the machine's load drifts over
    # all of them alike; the target compares medians of the rounds' differences.
    for version in range(1, ROUNDS + 1):
        unchanged.append(ingest(tmp_path, docs, sink, "--workers", "0"))
        make_pdf(changed, CHANGED, version)
        one_changed.append(ingest(tmp_path, docs, sink, "--workers", "0"))
        owns.append(own_extraction(tmp_path, changed))
    base, cost = statistics.median(unchanged), statistics.median(one_changed)
    extra = statistics.median(c - u for c, u in zip(one_changed, unchanged, strict=True))
    own = statistics.median(owns)
    size = (tmp_path / SINKS[kind]).stat().st_size
    RESULTS[kind] = {"extra": extra, "own": own, "size": size}
    with capsys.disabled():
        print(
            f"\n{kind}: unchanged rerun {base * 1000:.0f} ms, 1 of {DOCUMENTS} changed "
            f"{cost * 1000:.0f} ms, the change adds {extra * 1000:.0f} ms; the document's own "
            f"extraction {own * 1000:.1f} ms: +{extra / own:.2f} extractions (target <= 2); "
            f"{kind} file {size / 2**20:.1f} MiB; medians of {ROUNDS} rounds"
        )
    if kind == "jsonl" and extra > 2 * own:
        # A plain JSON-lines file loses a document's old lines only by being copied whole
        # (see the JSONL sink's docstring): a fixed cost in fsyncs and renames, and a cost per
        # byte that test_jsonl_rewrite_cost_per_gib measures. Reported, not hidden.
        pytest.xfail(
            f"jsonl: +{extra / own:.2f} extractions for a {size / 2**20:.1f} MiB file; "
            "the rewrite of the whole file is the price of a plain JSON-lines file"
        )
    assert extra <= 2 * own


def test_jsonl_rewrite_cost_per_gib(
    tmp_path: Path, pytestconfig: pytest.Config, capsys: pytest.CaptureFixture[str]
) -> None:
    from ingest.testing import sample_document
    from ingest_plugins.jsonl_sink import JsonlSink

    mib = int(pytestconfig.getoption("--bench-rewrite-mib"))
    path = tmp_path / "big.jsonl"
    text = "the heron waits by the water while the reeds move " * 20  # 1 KiB a chunk
    per_doc = 256  # chunks: 256 KiB a document
    with JsonlSink(path) as sink:
        for first in range(0, mib * 4, 64):
            sink.write(
                [
                    sample_document(f"doc{number}", [f"{number} {text}"] * per_doc)
                    for number in range(first, min(first + 64, mib * 4))
                ]
            )
    size = path.stat().st_size
    idle: list[float] = []
    rewrite: list[float] = []
    for round_ in range(3):
        started = time.perf_counter()
        JsonlSink(path).close()
        idle.append(time.perf_counter() - started)
        started = time.perf_counter()
        with JsonlSink(path) as sink:
            sink.write([sample_document("doc7", [f"round {round_} {text}"] * per_doc)])
        rewrite.append(time.perf_counter() - started)
    cost = statistics.median(rewrite) - statistics.median(idle)
    per_gib = cost * 2**30 / size
    lines = [
        f"\njsonl rewrite: {size / 2**30:.2f} GiB in {cost:.2f} s = {per_gib:.2f} s per GiB "
        f"(open and close without a change: {statistics.median(idle) * 1000:.0f} ms)"
    ]
    if "jsonl" in RESULTS:
        found = RESULTS["jsonl"]
        margin = 2 * found["own"] - found["extra"]
        bytes_ok = found["size"] + max(0.0, margin) * 2**30 / per_gib
        lines.append(
            f"the 1-of-{DOCUMENTS} target holds for a JSONL file up to about "
            f"{bytes_ok / 2**20:.0f} MiB here (a {found['size'] / 2**20:.1f} MiB file left "
            f"{margin * 1000:.0f} ms of the {2 * found['own'] * 1000:.0f} ms allowed); at 1 GiB "
            f"the changed rerun costs about {per_gib / found['own']:.0f} extractions more"
        )
    with capsys.disabled():
        print("\n".join(lines))
    with path.open("rb") as handle:
        assert json.loads(handle.readline())["doc_id"]  # still a JSON-lines file
    path.unlink()
    Path(f"{path}.commit").unlink()

