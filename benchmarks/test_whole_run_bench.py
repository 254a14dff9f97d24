"""Whole ``ingest run`` processes against bare parser loops, start-up included.

Users wait for the whole command, so each side here is one whole process, timed from
``subprocess.run`` to its exit (wall) with its CPU time (its own and its children's, from
``RUSAGE_CHILDREN``). The two sides of a pair alternate, round by round, so a burst of load on
this shared machine falls on both; each figure is the median of :data:`ROUNDS` rounds.

* ``corpus``: ``ingest run CORPUS --sink jsonl:out.jsonl`` (the defaults: pdfium, two
  workers, the transform chain, the cache) against the bare PDFium loop: pypdfium2 reading
  every page's text in a 2-process ``multiprocessing.Pool``, largest file first. Target:
  at most 1.3 times the loop's wall time.
* ``small``: the same pair over 2,000 generated PDFs of 1 to 3 pages. Target: 1.3 times.
* ``one``: the same command on one generated 1-page PDF against ``python -c`` importing
  pypdfium2 and reading that page. Target: at most 0.25 s, or 2.5 times the bare process when
  that is more (a slower machine). Beside it, not asserted: a process that only imports the
  libraries ingest is built on (click, pluggy, pydantic, asyncio) and then reads the page,
  the floor under any ``ingest run``.
* ``pypdf``: ``ingest run CORPUS --workers 2 --extractor pypdf`` against the bare
  single-process loop of ``extract_with_pypdf`` over the corpus. Target: at least 1.85 times
  as fast (the loop's wall time over the run's).

Every run starts in a fresh folder (an empty cache: nothing is skipped). A pair that misses
its target is measured again, :data:`ROUNDS` more interleaved rounds, and the second median
decides: noise on this machine comes in bursts. Each process starts unpinned from the CPU
the benchmarks' conftest pins pytest to. ``extract_with_pdfium`` in the same pool is measured
with the corpus and the small files and reported (not asserted), to tell the parser from the
extractor plugin; so is, with the corpus, the bare loop plus the box of each line's first and
last character (what ordering lines must read at the least).

With ``--bench-before TREE`` (a source tree of another version, ``git archive main | tar -x
-C TREE``), the same ``ingest run`` command is also timed with that version's ``core`` and
``plugins`` first on ``PYTHONPATH``, in the same rounds, and shown in the table (not asserted):
the before/after figures of a change.

Run: ``pytest benchmarks/test_whole_run_bench.py -s`` (3 to 10 minutes, by the machine's
load; half as long again with ``--bench-before``); the table at the end gives the commands,
the medians and the ratios.
"""

from __future__ import annotations

import itertools
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _harness import unpin

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
ROUNDS = 5
SMALL_FILES = 2000
#: The words of the generated PDFs.
WORDS = ("ingest", "page", "text", "chunk", "worker", "driver", "fork", "pool", "sink", "alpha")

INGEST = "import sys\nfrom ingest.cli import main\nsys.argv[0] = 'ingest'\nmain()\n"

# The bare loop in a pool: ``pdfium`` is pypdfium2 alone, ``plugin`` the extractor plugin's
# plain function (its metadata, page checks, reading order and newline rules on top of the
# parser), ``boxes`` the bare loop plus the line geometry reading order cannot do without.
BARE_POOL = (
    """
import sys
from multiprocessing import Pool
from pathlib import Path
import pypdfium2 as pdfium

def pdfium_pages(path):
    document = pdfium.PdfDocument(path)
    try:
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            textpage.get_text_range()
            textpage.close()
            page.close()
        return len(document)
    finally:
        document.close()

def plugin_pages(path):
    from ingest_plugins.pdfium_extractor import extract_with_pdfium
    return len(extract_with_pdfium(Path(path), password=None, min_chars=16)[1])

def boxes_pages(path):
    # The least that ordering a page's lines reads beyond the bare loop: the box of each
    # line's first and last character, through a prototype without argument conversion
    # (as the extractor calls it), and nothing done with them. ingest is not imported.
    import ctypes
    import pypdfium2.raw as raw
    address = ctypes.cast(raw.FPDFText_GetLooseCharBox, ctypes.c_void_p).value
    loose_box = ctypes.CFUNCTYPE(ctypes.c_int)(address)
    box = raw.FS_RECTF()
    box_ref = ctypes.byref(box)
    document = pdfium.PdfDocument(path)
    try:
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            handle = ctypes.c_void_p(ctypes.cast(textpage.raw, ctypes.c_void_p).value)
            start = 0
            for line in textpage.get_text_range().split("\\r\\n"):
                if line.strip():
                    loose_box(handle, start, box_ref)
                    loose_box(handle, start + len(line) - 1, box_ref)
                start += len(line) + 2
            textpage.close()
            page.close()
        return len(document)
    finally:
        document.close()

def read(path):
    try:
        return READ(path)
    except Exception:
        return 0

if __name__ == "__main__":
    READ = {"pdfium": pdfium_pages, "plugin": plugin_pages, "boxes": boxes_pages}[sys.argv[1]]
    files = sorted(Path(sys.argv[2]).rglob("*.pdf"), key=lambda p: -p.stat().st_size)
    with Pool(2) as pool:
        print(sum(pool.imap_unordered(read, [str(f) for f in files], chunksize=1)))
"""
)

BARE_ONE = (
    """
import sys
import pypdfium2 as pdfium
document = pdfium.PdfDocument(sys.argv[1])
page = document[0]
textpage = page.get_textpage()
print(len(textpage.get_text_range()))
textpage.close()
page.close()
document.close()
"""
)

# What any program built on ingest's libraries pays before its first page: the CLI (click),
# the plugin host (pluggy), validated settings (one pydantic model), one turn of an asyncio
# loop (the executor's), then the same read as BARE_ONE. Reported beside the one-file pair,
# not asserted: the floor under the quarter-second target on this machine.
STACK_FLOOR = (
    """
import asyncio
import click
import pluggy
from pydantic import BaseModel

class Settings(BaseModel):
    workers: int = 2

async def turn():
    return Settings.model_validate({"workers": 2})

asyncio.run(turn())
"""
    + BARE_ONE
)

BARE_PYPDF = (
    """
import sys
from pathlib import Path
from ingest_plugins.pypdf_extractor import extract_with_pypdf
pages = 0
for path in sorted(Path(sys.argv[1]).glob("*.pdf")):
    try:
        pages += len(extract_with_pypdf(path, password=None, min_chars=16)[1])
    except Exception:
        continue
print(pages)
"""
)


@dataclass
class Side:
    """One contender: how to run it, and what each round measured."""

    label: str
    command: Callable[[Path], list[str]]
    #: Set in the environment of its process (``PYTHONPATH`` of another version).
    env: dict[str, str] = field(default_factory=dict)
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def shown(self, folder: Path) -> str:
        """The command line, for the table (the Python scripts by name)."""
        words = self.command(folder)
        return " ".join(word if "\n" not in word else "<script>" for word in words[1:])


@dataclass
class Pair:
    """A target: ``run`` against ``bare``, asserted on the medians of the wall times."""

    work: str
    run: Side
    bare: Side
    target: str
    check: Callable[[float, float], bool]
    ratio: Callable[[float, float], float]
    #: Measured in the same rounds and shown in the table, not asserted.
    extras: list[Side] = field(default_factory=list)
    rechecked: bool = False
    warmed: bool = False

    @property
    def sides(self) -> list[Side]:
        return [self.run, self.bare, *self.extras]


#: Every pair measured in this session, for the table at the end.
MEASURED: list[Pair] = []
_ROUND_NUMBERS = itertools.count()


def _env(extra: dict[str, str]) -> dict[str, str]:
    # An installed package runs from its bytecode: a PYTHONDONTWRITEBYTECODE set where the
    # benchmarks run would compile ingest's modules from source in every process (0.2 s of
    # each start), while the bare loops import only libraries compiled when installed.
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("INGEST_") and k != "PYTHONDONTWRITEBYTECODE"
    } | extra


def run_once(
    command: list[str], workdir: Path, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Run ``command`` in ``workdir`` to its end: (wall seconds, CPU seconds of it all)."""
    workdir.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=workdir,
        env=_env(env or {}),
        capture_output=True,
        text=True,
        timeout=900,
        preexec_fn=unpin,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, f"{command[3:]}: {done.stderr[-2000:]}"
    if command[2] == INGEST:
        assert " skipped" not in done.stdout, f"a run skipped documents: {done.stdout[-500:]}"
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(pair: Pair, folder: Path) -> None:
    """:data:`ROUNDS` interleaved rounds of both sides, each in a fresh folder, after one
    round not counted (it writes the bytecode a user's installation already has)."""
    if not pair.warmed:
        for side in pair.sides:
            run_once(side.command(folder), folder / f"{side.label}-warm-up", side.env)
        pair.warmed = True
    for number in range(ROUNDS):
        sides = pair.sides
        for side in sides[number % len(sides) :] + sides[: number % len(sides)]:
            # A folder of its own every time: an earlier round's cache would skip everything.
            workdir = folder / f"{side.label}-{next(_ROUND_NUMBERS)}"
            wall, cpu = run_once(side.command(folder), workdir, side.env)
            side.wall.append(wall)
            side.cpu.append(cpu)


def judge(pair: Pair, folder: Path) -> tuple[bool, float]:
    """Measure the pair, again if it misses; (met, ratio of the deciding medians)."""
    measure(pair, folder)
    run, bare = statistics.median(pair.run.wall), statistics.median(pair.bare.wall)
    if pair.check(run, bare):
        return True, pair.ratio(run, bare)
    pair.rechecked = True
    for side in pair.sides:
        side.wall.clear()
        side.cpu.clear()
    measure(pair, folder)
    run, bare = statistics.median(pair.run.wall), statistics.median(pair.bare.wall)
    return pair.check(run, bare), pair.ratio(run, bare)


def ingest(*args: str) -> Callable[[Path], list[str]]:
    return lambda _folder: [sys.executable, "-c", INGEST, "run", *args]


@pytest.fixture(scope="module")
def before(pytestconfig: pytest.Config) -> Callable[[Side], list[Side]]:
    """With ``--bench-before TREE``: a copy of a pair's run side on that version, else none."""
    tree = pytestconfig.getoption("--bench-before")
    if tree is None:
        return lambda _run: []
    root = Path(tree).resolve()
    assert (root / "core" / "ingest").is_dir(), f"--bench-before {tree}: no core/ingest in it"
    path = os.pathsep.join([str(root / "core"), str(root / "plugins")])
    return lambda run: [Side("before", run.command, env={"PYTHONPATH": path})]


def small_pdfs(folder: Path, count: int, *, seed: int = 17) -> list[Path]:
    """``count`` PDFs of 1 to 3 pages of random words, the same every time for a seed."""
    from fpdf import FPDF

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for number in range(count):
        pdf = FPDF()
        pdf.set_font("Helvetica", size=11)
        for page in range(rng.randint(1, 3)):
            pdf.add_page()
            pdf.text(15, 15, f"Document {number}, page {page + 1}")
            for line in range(rng.randint(8, 30)):
                pdf.text(15, 25 + 6 * line, " ".join(rng.choices(WORDS, k=12)))
        path = folder / f"doc-{number:05d}.pdf"
        pdf.output(str(path))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("small") / "pdfs"
    small_pdfs(folder, SMALL_FILES)
    return folder


@pytest.fixture(scope="module")
def one_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("one")
    return small_pdfs(folder, 1, seed=1)[0]


def _pool(kind: str, inputs: Path) -> Callable[[Path], list[str]]:
    return lambda _folder: [sys.executable, "-c", BARE_POOL, kind, str(inputs)]


def _report(pair: Pair, ratio: float, capsys: pytest.CaptureFixture[str]) -> None:
    MEASURED.append(pair)
    line = (
        f"{pair.work}: ingest {statistics.median(pair.run.wall):.3f} s, bare "
        f"{statistics.median(pair.bare.wall):.3f} s: {ratio:.2f} (target {pair.target})"
    )
    with capsys.disabled():
        print(f"\n{line}{' after a re-check' if pair.rechecked else ''}")


needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not present")

# Ten rounds of whole runs, twenty when re-checked: far beyond the tests' 300 s on a busy day.
pytestmark = pytest.mark.timeout(3600)


@needs_corpus
def test_corpus_within_1_3x_of_a_bare_pdfium_pool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], before: Callable[[Side], list[Side]]
) -> None:
    pair = Pair(
        "corpus (77 files)",
        Side("run", ingest(str(CORPUS), "--sink", "jsonl:out.jsonl")),
        Side("bare", _pool("pdfium", CORPUS)),
        "<= 1.3x",
        check=lambda run, bare: run <= 1.3 * bare,
        ratio=lambda run, bare: run / bare,
        extras=[
            Side("bare, extract_with_pdfium", _pool("plugin", CORPUS)),
            Side("bare + two char boxes a line", _pool("boxes", CORPUS)),
        ],
    )
    pair.extras += before(pair.run)
    met, ratio = judge(pair, tmp_path)
    _report(pair, ratio, capsys)
    assert met, f"ingest run is {ratio:.2f}x the bare pool (target 1.3x)"


def test_small_files_within_1_3x_of_a_bare_pdfium_pool(
    small_folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    before: Callable[[Side], list[Side]],
) -> None:
    pair = Pair(
        f"{SMALL_FILES} small PDFs",
        Side("run", ingest(str(small_folder), "--sink", "jsonl:out.jsonl")),
        Side("bare", _pool("pdfium", small_folder)),
        "<= 1.3x",
        check=lambda run, bare: run <= 1.3 * bare,
        ratio=lambda run, bare: run / bare,
        extras=[Side("bare, extract_with_pdfium", _pool("plugin", small_folder))],
    )
    pair.extras += before(pair.run)
    met, ratio = judge(pair, tmp_path)
    _report(pair, ratio, capsys)
    assert met, f"ingest run is {ratio:.2f}x the bare pool (target 1.3x)"


def test_one_page_in_a_quarter_second(
    one_page: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    before: Callable[[Side], list[Side]],
) -> None:
    pair = Pair(
        "one 1-page PDF",
        Side("run", ingest(str(one_page), "--sink", "jsonl:out.jsonl")),
        Side("bare", lambda _folder: [sys.executable, "-c", BARE_ONE, str(one_page)]),
        "<= max(0.25 s, 2.5x)",
        check=lambda run, bare: run <= max(0.25, 2.5 * bare),
        ratio=lambda run, bare: run / bare,
        extras=[
            Side(
                "libraries only (click, pluggy, pydantic, asyncio) + the read",
                lambda _folder: [sys.executable, "-c", STACK_FLOOR, str(one_page)],
            )
        ],
    )
    pair.extras += before(pair.run)
    met, ratio = judge(pair, tmp_path)
    _report(pair, ratio, capsys)
    run = statistics.median(pair.run.wall)
    assert met, f"ingest run takes {run:.3f} s, {ratio:.2f}x the bare process"


@needs_corpus
def test_pypdf_on_two_workers_is_1_85x_the_bare_loop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], before: Callable[[Side], list[Side]]
) -> None:
    pair = Pair(
        "corpus, pypdf",
        Side(
            "run",
            ingest(str(CORPUS), "--workers", "2", "--extractor", "pypdf", "--sink", "jsonl:o"),
        ),
        Side("bare", lambda _folder: [sys.executable, "-c", BARE_PYPDF, str(CORPUS)]),
        ">= 1.85x faster",
        check=lambda run, bare: bare >= 1.85 * run,
        ratio=lambda run, bare: bare / run,
    )
    pair.extras += before(pair.run)
    met, ratio = judge(pair, tmp_path)
    _report(pair, ratio, capsys)
    assert met, f"ingest run is {ratio:.2f}x as fast as the bare loop (target 1.85x)"


def test_zz_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The table of every pair measured in this session (runs last in this module)."""
    if not MEASURED:
        pytest.skip("no pair was measured")
    lines = [
        "| work | side | command | wall median (s) | CPU median (s) | ratio | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for pair in MEASURED:
        ratio = pair.ratio(statistics.median(pair.run.wall), statistics.median(pair.bare.wall))
        for side in pair.sides:
            if side is pair.run:
                verdict = (
                    f"{ratio:.2f} | {pair.target}{' (re-checked)' if pair.rechecked else ''} |"
                )
            elif side is pair.bare:
                verdict = " | |"
            elif side.label == "before":
                theirs = pair.ratio(statistics.median(side.wall), statistics.median(pair.bare.wall))
                verdict = f"{theirs:.2f} | before, not asserted |"
            else:
                own = statistics.median(pair.run.wall) / statistics.median(side.wall)
                verdict = f"run / this: {own:.2f} | reported |"
            lines.append(
                f"| {pair.work} | {side.label} | `{side.shown(tmp_path)}` | "
                f"{statistics.median(side.wall):.3f} | {statistics.median(side.cpu):.3f} | "
                + verdict
            )
    with capsys.disabled():
        print("\n" + "\n".join(lines))
