"""Worker processes: crashes, timeouts and memory fail one document each, large
documents are split into page ranges and merged back, the window is bounded, close() kills.

Real worker processes and real PDFs throughout. The misbehaving plugin
(``tests/plugins/worker_faults.py``) is loaded by dotted path, as a user's plugin would be,
so the workers import it by name; what it does to a file depends on words in the file's name.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pdfgen
import pytest
from click.testing import CliRunner
from helpers import EXAMPLES, env_log
from ingest.cli import main
from ingest.config import build_settings_model
from ingest.errors import UsageError
from ingest.manager import build_manager
from ingest.model import Document, Failure, Source
from ingest.workers import SourceFeed
from ingest.workers.dispatch import LOOKAHEAD_PER_WORKER
from ingest_plugins.process import ProcessBackend

pytestmark = pytest.mark.slow

FAULTS = "plugins.worker_faults"


def run_cli(tmp_path: Path, *args: str) -> tuple[int, dict[str, dict[str, Any]], str]:
    """``ingest run`` with JSON progress; returns the exit code, the one outcome event of
    each file (by name) and the output. Fails if a file has no outcome or more than one."""
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "run",
            *args,
            "--progress",
            "json",
            "--sink",
            f"jsonl:{out}",
            "-o",
            "cache.enabled=false",
        ],
        catch_exceptions=False,
    )
    outcomes: dict[str, dict[str, Any]] = {}
    for line in result.stdout.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event["event"] in {"ingested", "failed", "skipped"}:
            name = Path(event["source"]).name
            assert name not in outcomes, f"two outcomes for {name}"
            outcomes[name] = event
    return result.exit_code, outcomes, result.output


def records(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    return sorted(rows, key=lambda r: str(r["chunk_id"]))


def variant(folder: Path, name: str, original: Path = EXAMPLES / "guide.pdf") -> Path:
    """A copy of ``original`` named ``name`` with its own content id (a comment appended)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    target.write_bytes(original.read_bytes() + f"\n% variant {name}\n".encode())
    return target


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet counts as dead)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] not in {"Z", "X"}


def wait_dead(pid: int) -> bool:
    """Wait (up to 10 s) for ``pid`` to be gone; SIGKILL is asynchronous."""
    for _ in range(1000):
        if not alive(pid):
            return True
        time.sleep(0.01)
    return False


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The run's cache and default outputs land in the working directory.
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def extractions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file where worker_faults logs every extraction (``pid name extractor start stop``)."""
    return env_log(tmp_path, monkeypatch, "WORKER_FAULTS_LOG")


def logged(log: Path) -> list[tuple[int, str, str, int, int]]:
    rows = []
    for line in log.read_text().splitlines():
        pid, name, extractor, start, stop = line.split()
        rows.append((int(pid), name, extractor, int(start), int(stop)))
    return rows


# -- one document fails, the others go on --------------------------------------------------


def test_crashes_and_exceptions_fail_only_their_document(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    for name in ["good-1.pdf", "abort.pdf", "segv.pdf", "exit.pdf", "raise.pdf", "good-2.pdf"]:
        variant(docs, name)
    code, outcomes, output = run_cli(tmp_path, str(docs), "--workers", "2", "-p", FAULTS)
    assert code == 1, output
    assert set(outcomes) == {p.name for p in docs.iterdir()}
    assert outcomes["good-1.pdf"]["event"] == outcomes["good-2.pdf"]["event"] == "ingested"
    for name, signal_name in [("abort.pdf", "SIGABRT"), ("segv.pdf", "SIGSEGV")]:
        event = outcomes[name]
        assert (event["event"], event["reason"], event["plugin"]) == (
            "failed",
            "crash",
            FAULTS,
        )
        assert signal_name in event["message"]
    assert outcomes["exit.pdf"]["reason"] == "crash"
    assert "exited with code 3" in outcomes["exit.pdf"]["message"]
    raised = outcomes["raise.pdf"]
    assert (raised["reason"], raised["plugin"]) == ("error", FAULTS)
    assert raised["message"].startswith("worker_faults refuses raise.pdf")


def test_timeout_kills_the_worker_and_its_children(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    for name in ["hang.pdf", "child.pdf", "good.pdf"]:
        variant(docs, name)
    code, outcomes, output = run_cli(
        tmp_path, str(docs), "--workers", "2", "-p", FAULTS,
        "--timeout", "2", "-o", "run.timeout_per_page=0",
    )  # fmt: skip
    assert code == 1, output
    assert outcomes["good.pdf"]["event"] == "ingested"
    for name in ["hang.pdf", "child.pdf"]:
        event = outcomes[name]
        assert (event["reason"], event["plugin"]) == ("timeout", FAULTS)
        assert "longer than 2s" in event["message"] and "run.timeout" in event["message"]
    # The OCR-engine case: what the worker started dies with it (its process group).
    child = int((docs / "child.pdf.child").read_text())
    assert wait_dead(child)


def test_memory_cap_fails_the_document_and_the_run_goes_on(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    for name in ["hog.pdf", "memerr.pdf", "good-1.pdf", "good-2.pdf", "good-3.pdf"]:
        variant(docs, name)
    code, outcomes, output = run_cli(
        tmp_path, str(docs), "--workers", "1", "-p", FAULTS, "--max-memory", "300MiB"
    )
    assert code == 1, output
    hog = outcomes["hog.pdf"]
    assert (hog["reason"], hog["plugin"]) == ("memory", FAULTS)
    assert "run.max_memory" in hog["message"]
    assert outcomes["memerr.pdf"]["reason"] == "memory"
    # One worker: each good file was done by a worker that replaced a killed one.
    assert all(outcomes[f"good-{n}.pdf"]["event"] == "ingested" for n in (1, 2, 3))


def test_a_worker_that_cannot_start_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKER_FAULTS_CONFIGURE", "1")
    variant(tmp_path / "docs", "good.pdf")
    code, _, output = run_cli(tmp_path, str(tmp_path / "docs"), "--workers", "1", "-p", FAULTS)
    assert code == 4
    assert "a worker process could not start" in output
    assert "this worker refuses to start" in output


def worker_children() -> list[int]:
    """Worker processes this test process started and has not reaped."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"ingest.workers.child" in cmdline:
            found.append(int(stat.parent.name))
    return found


def test_workers_started_during_collection_stop_when_unused(tmp_path: Path) -> None:
    """Workers start while the session collects; a run with nothing to parse stops them."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "fake.pdf").write_bytes(b"PK\x03\x04 a zip file, not a PDF")
    code, outcomes, output = run_cli(tmp_path, str(docs), "--workers", "2")
    assert code == 1, output
    assert outcomes["fake.pdf"]["reason"] == "not-a-pdf"
    assert worker_children() == []
    variant(docs, "good.pdf")
    assert run_cli(tmp_path, str(docs), "--workers", "2")[0] == 1
    assert worker_children() == []


# -- large documents are split and merged back ----------------------------------------------


_WORDS = [
    *("river", "stone", "lantern", "orchard", "meadow", "harbor", "candle", "willow", "ember"),
    *("thistle", "falcon", "granite", "saffron", "quiver", "marble", "cobalt", "juniper"),
    *("velvet", "hollow", "summit", "beacon", "tundra", "prairie"),
]


def prose(page: int) -> str:
    """Six lines of words that differ on every page (no running header for strip_headers)."""
    rng = random.Random(page)
    return "\n".join(" ".join(rng.choice(_WORDS) for _ in range(9)) for _ in range(6))


@pytest.fixture
def forty_pages(tmp_path: Path) -> Path:
    """A folder with one 40-page PDF, ``forty.pdf``, page ``n`` saying :func:`prose` (n)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    pdfgen.text_pdf(docs / "forty.pdf", [prose(n) for n in range(1, 41)])
    return docs


def test_a_large_document_is_split_and_merged_in_order(
    tmp_path: Path, forty_pages: Path, extractions: Path
) -> None:
    pooled, local = tmp_path / "pooled", tmp_path / "local"
    pooled.mkdir()
    local.mkdir()
    code, _, output = run_cli(pooled, str(forty_pages), "--workers", "2", "-p", FAULTS)
    assert code == 0, output
    ranges = sorted((start, stop) for _, _, _, start, stop in logged(extractions))
    # The first range learns the page count; the other 24 pages go in two ranges.
    assert ranges == [(1, 17), (17, 29), (29, 41)]
    extractions.write_text("")
    assert run_cli(local, str(forty_pages), "--workers", "0", "-p", FAULTS)[0] == 0
    assert logged(extractions)[0][3:] == (0, 0)
    split, whole = records(pooled / "out.jsonl"), records(local / "out.jsonl")
    # Same chunks, offsets and page spans as when the document is read in one piece,
    # including chunks that cross from one range into the next.
    assert split == whole
    assert any(r["page_start"] <= 16 < r["page_end"] for r in split)
    assert max(r["page_end"] for r in split) == 40


def test_a_long_document_amid_other_work_is_read_in_two_pieces(
    tmp_path: Path, extractions: Path
) -> None:
    """Splitting costs an open per range: while other documents keep the other worker busy,
    the rest of a long document goes in one range."""
    docs = tmp_path / "docs"
    docs.mkdir()
    pdfgen.text_pdf(docs / "a-long.pdf", [prose(n) for n in range(1, 41)])
    for n in range(20):
        pdfgen.text_pdf(docs / f"b-{n:02d}.pdf", [prose(100 * n + p) for p in range(1, 13)])
    code, outcomes, output = run_cli(tmp_path, str(docs), "--workers", "2", "-p", FAULTS)
    assert code == 0, output
    assert outcomes["a-long.pdf"]["pages"] == 40
    rows = logged(extractions)
    pieces = sorted((start, stop) for _, name, _, start, stop in rows if name == "a-long.pdf")
    assert pieces == [(1, 17), (17, 41)]


def test_the_largest_file_starts_first_and_is_not_cut_up_while_work_remains(
    tmp_path: Path, extractions: Path
) -> None:
    """Collected last by name, the long document is still dispatched first, when the rest of
    the corpus (not yet read by the dispatcher) keeps the other worker busy: two pieces, not
    the four a run's tail gets."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(20):
        pdfgen.text_pdf(docs / f"a-{n:02d}.pdf", [prose(100 * n + p) for p in range(1, 4)])
    pdfgen.text_pdf(docs / "z-long.pdf", [prose(n) for n in range(1, 41)])
    code, outcomes, output = run_cli(tmp_path, str(docs), "--workers", "2", "-p", FAULTS)
    assert code == 0, output
    assert outcomes["z-long.pdf"]["pages"] == 40
    rows = logged(extractions)
    pieces = sorted((start, stop) for _, name, _, start, stop in rows if name == "z-long.pdf")
    assert pieces == [(1, 17), (17, 41)]
    first_two = [name for _, name, _, _, _ in rows[:2]]
    assert "z-long.pdf" in first_two, rows[:4]


def test_a_failing_later_range_falls_back_like_a_whole_document(
    tmp_path: Path, forty_pages: Path, extractions: Path
) -> None:
    (forty_pages / "forty.pdf").rename(forty_pages / "raiselater.pdf")
    code, outcomes, output = run_cli(tmp_path, str(forty_pages), "--workers", "2", "-p", FAULTS)
    assert code == 0, output
    assert outcomes["raiselater.pdf"]["pages"] == 40
    # pdfium failed on a later range, so the document started over with the fallback.
    assert ("pypdf", 1, 17) in [row[2:] for row in logged(extractions)]

    code, outcomes, _ = run_cli(
        tmp_path, str(forty_pages), "--workers", "2", "-p", FAULTS, "-o", "extract.fallback=[]"
    )
    assert code == 1
    failed = outcomes["raiselater.pdf"]
    assert (failed["reason"], failed["plugin"]) == ("error", FAULTS)
    assert "refuses pages" in failed["message"]


def test_a_hanging_later_range_fails_the_whole_document(tmp_path: Path, forty_pages: Path) -> None:
    (forty_pages / "forty.pdf").rename(forty_pages / "hanglater.pdf")
    variant(forty_pages, "good.pdf")
    code, outcomes, output = run_cli(
        tmp_path, str(forty_pages), "--workers", "2", "-p", FAULTS,
        "--timeout", "2", "-o", "run.timeout_per_page=0",
    )  # fmt: skip
    assert code == 1, output
    failed = outcomes["hanglater.pdf"]
    assert failed["reason"] == "timeout"
    assert re.search(r"extracting pages (17|29)-(28|40) took longer than 2s", failed["message"])
    assert outcomes["good.pdf"]["event"] == "ingested"


def test_a_crash_in_the_transforms_of_a_merged_document(tmp_path: Path, forty_pages: Path) -> None:
    (forty_pages / "forty.pdf").rename(forty_pages / "transformcrash.pdf")
    code, outcomes, _ = run_cli(tmp_path, str(forty_pages), "--workers", "2", "-p", FAULTS)
    assert code == 1
    failed = outcomes["transformcrash.pdf"]
    assert (failed["reason"], failed["plugin"]) == ("crash", FAULTS)
    assert "transforming the 40 merged pages" in failed["message"]


# -- the backend itself ---------------------------------------------------------------------


def backend_for(tmp_path: Path, workers: int, **dotted: Any) -> ProcessBackend:
    manager = build_manager([FAULTS])
    model = build_settings_model(manager.collect_sections())
    settings = model().with_dotted({"collect.inputs": [str(tmp_path)], **dotted})
    return ProcessBackend(manager, settings, workers)


def test_documents_in_flight_and_sources_read_ahead_are_bounded(
    tmp_path: Path, extractions: Path
) -> None:
    count = 30
    sources = [
        Source.from_path(variant(tmp_path / "docs", f"doc-{n:03d}.pdf")) for n in range(count)
    ]
    feed = SourceFeed(sources, None, largest_first=False)
    backend = backend_for(tmp_path, 2)
    done = 0
    try:
        for _source, outcome in backend.run(feed):
            pulled = feed.taken
            assert isinstance(outcome, Document)
            done += 1
            started = len({name for _, name, *_ in logged(extractions)})
            # Never more than 2 x workers documents started and not given back...
            assert started - done <= 4
            # ...and sources (small records) read at most 2 per worker ahead of those.
            assert pulled - done <= 4 + 2 * LOOKAHEAD_PER_WORKER
    finally:
        backend.close()
    assert (feed.taken, done) == (count, count)


def test_close_kills_busy_workers_at_once(tmp_path: Path, extractions: Path) -> None:
    """What the session does on --maxfail and Ctrl-C: stop reading, close, workers die."""
    names = ["hang.pdf", "good-1.pdf", "good-2.pdf", "good-3.pdf"]
    sources = [Source.from_path(variant(tmp_path / "docs", name)) for name in names]
    backend = backend_for(tmp_path, 2, **{"run.timeout": 600.0})
    outcomes = backend.run(SourceFeed(sources, None, largest_first=False))
    # hang.pdf is first in line, so it went to a worker before any good file came back.
    source, outcome = next(outcomes)
    assert source.path.name.startswith("good") and isinstance(outcome, Document)
    for _ in range(1000):
        hanging = [pid for pid, name, *_ in logged(extractions) if name == "hang.pdf"]
        if hanging:
            break
        time.sleep(0.01)
    assert hanging and alive(hanging[0])
    backend.close()
    backend.close()  # idempotent
    assert wait_dead(hanging[0])
    outcomes.close()


def test_ctrl_c_ends_the_run_and_kills_its_workers(tmp_path: Path, extractions: Path) -> None:
    """A real SIGINT to a real ``ingest run``: dispatch stops, the hanging document is given
    up after the grace period, every worker dies, exit code 2."""
    docs = tmp_path / "docs"
    for name in ["hang.pdf", *(f"good-{n}.pdf" for n in range(3))]:
        variant(docs, name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    command = [
        sys.executable, "-c", "from ingest.cli import main; main()", "run", str(docs),
        "--workers", "2", "-p", FAULTS, "--timeout", "600", "--progress", "none",
        "--sink", f"jsonl:{tmp_path / 'out.jsonl'}", "-o", "cache.enabled=false",
    ]  # fmt: skip
    run = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3000):
            hanging = [pid for pid, name, *_ in logged(extractions) if name == "hang.pdf"]
            if hanging:
                break
            time.sleep(0.01)
        assert hanging, "the hanging document never started"
        run.send_signal(signal.SIGINT)
        out, _ = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 2
    assert "(interrupted)" in out
    assert wait_dead(hanging[0])


def test_every_source_gets_exactly_one_outcome_under_faults(tmp_path: Path) -> None:
    names = [f"good-{n}.pdf" for n in range(6)] + ["segv.pdf", "raise.pdf", "exit.pdf"]
    sources = [Source.from_path(variant(tmp_path / "docs", name)) for name in names]
    backend = backend_for(tmp_path, 2)
    try:
        seen = [
            (source.path.name, outcome)
            for source, outcome in backend.run(SourceFeed(sources, None, largest_first=False))
        ]
    finally:
        backend.close()
    assert sorted(name for name, _ in seen) == sorted(names)
    outcomes = dict(seen)
    raised = outcomes["raise.pdf"]
    assert isinstance(raised, Failure)
    # An exception names its type, its message and the plugin that raised it.
    assert (raised.reason, raised.exc_type, raised.plugin) == ("error", "ValueError", FAULTS)
    crashed = outcomes["segv.pdf"]
    assert isinstance(crashed, Failure) and crashed.reason == "crash"
    assert crashed.doc_id == Source.from_path(tmp_path / "docs" / "segv.pdf").doc_id


def test_a_split_document_without_transforms_is_merged_in_the_driver(
    tmp_path: Path, forty_pages: Path
) -> None:
    backend = backend_for(tmp_path, 2, transforms=[])
    try:
        [(_, outcome)] = list(
            backend.run(
                SourceFeed([Source.from_path(forty_pages / "forty.pdf")], None, largest_first=False)
            )
        )
    finally:
        backend.close()
    assert not isinstance(outcome, Failure)
    assert [page.number for page in outcome.pages] == list(range(1, 41))
    assert [page.text.split() for page in outcome.pages] == [prose(n).split() for n in range(1, 41)]
    assert outcome.metadata.page_count == 40


def test_default_worker_count_and_memory_cap(tmp_path: Path) -> None:
    backend = backend_for(tmp_path, 2)
    cap = backend.max_memory
    assert cap is not None and (256 << 20) <= cap <= (2 << 30)
    assert backend_for(tmp_path, 2, **{"run.max_memory": "0"}).max_memory is None
    assert backend_for(tmp_path, 2, **{"run.max_memory": "1GiB"}).max_memory == 1 << 30


def test_plugins_add_seconds_per_page_to_the_deadlines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow but healthy document (OCR, say) is killed as hung unless its plugin says how
    long a page may take (ingest_page_seconds); the answers add to run.timeout_per_page."""
    docs = tmp_path / "docs"
    docs.mkdir()
    pdfgen.text_pdf(docs / "slow.pdf", [prose(n) for n in range(1, 4)])
    limits = ["-o", "run.timeout=1", "-o", "run.timeout_per_page=0.01"]
    code, outcomes, output = run_cli(tmp_path, str(docs), "--workers", "1", "-p", FAULTS, *limits)
    assert (code, outcomes["slow.pdf"]["reason"]) == (1, "timeout"), output
    monkeypatch.setenv("WORKER_FAULTS_PAGE_SECONDS", "0.5")
    code, outcomes, output = run_cli(tmp_path, str(docs), "--workers", "1", "-p", FAULTS, *limits)
    assert code == 0 and outcomes["slow.pdf"]["event"] == "ingested", output
    assert backend_for(tmp_path, 1).limits.timeout_per_page == pytest.approx(2.5)


@pytest.mark.parametrize("answer", ["-1", "soon"])
def test_a_bad_seconds_per_page_answer_names_the_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    monkeypatch.setenv("WORKER_FAULTS_PAGE_SECONDS", answer)
    with pytest.raises(UsageError, match=rf"plugin '{FAULTS}': ingest_page_seconds returned"):
        backend_for(tmp_path, 1)
