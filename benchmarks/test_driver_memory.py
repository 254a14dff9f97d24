"""The driver's memory does not grow with the corpus: peak RSS, 10 vs 1,000 documents.

Both runs are the real ``ingest run`` (pdfium, ``--workers 2``, a JSONL sink, the cache on) in
a subprocess that records its own peak RSS (``ru_maxrss`` of the driver alone: the workers are
other processes) when it exits. The documents are the shared corpus cycled: copy ``i`` is
corpus file ``i mod n`` with a comment line ``% ingest benchmark copy i`` appended after its
end, so every copy is a distinct document (identical bytes would be collected once, as "same
content"). The 10-document run takes the first ten of that cycle, which are among the smaller
files, so the comparison is the unfavourable one: the 1,000-document run also meets every
large document of the corpus.

What still grows in the driver, by design: the JSONL sink's index of documents (about 100 bytes
a document, read when a run writes), the run's list of sources, and batches of finished
documents waiting for the sinks (``run.batch_size`` documents at most).

Run: ``pytest benchmarks/test_driver_memory.py -s`` (about a minute; 400 MB of copies in a
temporary folder, deleted afterwards).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
TARGET_RATIO = 1.2
SMALL, LARGE = 10, 1000

# Runs the real CLI and writes the driver's peak RSS (KiB on Linux) to $RSS_OUT at exit. The
# benchmarks' conftest pins pytest to one CPU and children inherit that: unpin, or the two
# workers would share one CPU.
DRIVER = """
import atexit, os, resource, sys
if hasattr(os, "sched_setaffinity"):
    try:
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    except OSError:
        pass
def report():
    with open(os.environ["RSS_OUT"], "w") as out:
        out.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
atexit.register(report)
from ingest.cli import main
sys.argv = ["ingest", *sys.argv[1:]]
main()
"""

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="ru_maxrss is in KiB on Linux (bytes on macOS)"
)


def make_copies(target: Path, count: int) -> None:
    """``count`` distinct documents: the corpus cycled, each copy with a unique trailer."""
    files = sorted(CORPUS.glob("*.pdf"))
    target.mkdir(parents=True)
    for number in range(count):
        source = files[number % len(files)]
        trailer = f"\n% ingest benchmark copy {number}\n".encode()
        (target / f"{number:04d}-{source.name}").write_bytes(source.read_bytes() + trailer)


def driver_peak_rss(inputs: Path, workdir: Path) -> tuple[int, str]:
    """Run ``ingest run`` over ``inputs`` in ``workdir``: (peak RSS in KiB, summary line)."""
    workdir.mkdir()
    rss = workdir / "rss"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env["RSS_OUT"] = str(rss)
    command = [
        sys.executable, "-c", DRIVER, "run", str(inputs),
        "--workers", "2", "--extractor", "pdfium",
        "--sink", "jsonl:out.jsonl", "--progress", "none",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode in (0, 1), done.stderr  # 1: a corpus file may fail, as it should
    return int(rss.read_text()), done.stdout.strip().splitlines()[-1].strip("= ")


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Path]]:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present")
    root = tmp_path_factory.mktemp("driver-memory")
    folders = {SMALL: root / f"docs{SMALL}", LARGE: root / f"docs{LARGE}"}
    for count, folder in folders.items():
        make_copies(folder, count)
    yield folders
    shutil.rmtree(root, ignore_errors=True)  # 400 MB: not for pytest's kept temp folders


def test_driver_peak_rss_does_not_grow_with_the_corpus(
    copies: dict[int, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    record_property: pytest.RecordProperty,
) -> None:
    small, small_summary = driver_peak_rss(copies[SMALL], tmp_path / "small")
    large, large_summary = driver_peak_rss(copies[LARGE], tmp_path / "large")
    assert f"{LARGE} ingested" in large_summary or "failed" in large_summary
    ratio = large / small
    record_property("driver_peak_rss_kib", {SMALL: small, LARGE: large})
    record_property("driver_peak_rss_ratio", round(ratio, 3))
    with capsys.disabled():
        print(
            f"\ndriver peak RSS: {SMALL} documents {small / 1024:.1f} MiB ({small_summary}); "
            f"{LARGE} documents {large / 1024:.1f} MiB ({large_summary}); "
            f"ratio {ratio:.2f} (target <= {TARGET_RATIO})"
        )
    assert ratio <= TARGET_RATIO
