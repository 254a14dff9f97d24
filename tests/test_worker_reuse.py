"""What a worker keeps between tasks: the parsed file for the next page range of
a long document, given to the worker that read the previous range, and a collector tuned for
parsers that allocate millions of small objects.

Real PDFs, real worker processes; ``tests/plugins/worker_probe.py`` reports from inside them.
"""

from __future__ import annotations

import gc
import json
import threading
import time
from pathlib import Path
from typing import Any

import pdfgen
import pytest
from click.testing import CliRunner
from helpers import env_log
from ingest.cli import main
from ingest.config import build_settings_model
from ingest.manager import build_manager
from ingest.model import Document, Source
from ingest.workers.child import GC_THRESHOLDS
from ingest.workers.pool import WorkerPool
from ingest.workers.tasks import FirstTask, RangeTask
from ingest_plugins import pdfminer_extractor, pypdf_extractor
from ingest_plugins.pdf_common import LastOpened

pytestmark = pytest.mark.slow

PROBE = "plugins.worker_probe"


def page_text(page: int, edition: str = "first") -> str:
    return f"{edition} edition page {page}\nwords that belong to page {page} only"


def long_pdf(path: Path, pages: int = 40, edition: str = "first") -> Path:
    return pdfgen.text_pdf(path, [page_text(n, edition) for n in range(1, pages + 1)])


def texts(pages: list[Any]) -> list[str]:
    return [page.text for page in pages]


@pytest.fixture
def probe_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file where worker_probe writes a JSON line per extraction."""
    return env_log(tmp_path, monkeypatch, "WORKER_PROBE_LOG")


def probed(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text("utf-8").splitlines()]


# -- the parsed file kept for the next range -------------------------------------------------

EXTRACTORS = {
    "pypdf": (pypdf_extractor, pypdf_extractor.extract_with_pypdf),
    "pdfminer": (pdfminer_extractor, pdfminer_extractor.extract_with_pdfminer),
}


@pytest.fixture(params=sorted(EXTRACTORS))
def extractor(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    return EXTRACTORS[request.param]


def test_a_range_with_pages_after_it_keeps_the_file_for_the_next(
    tmp_path: Path, extractor: tuple[Any, Any]
) -> None:
    module, extract = extractor
    path = long_pdf(tmp_path / "long.pdf")
    key = module._LAST.key(path, None)
    _, whole = extract(path, password=None, min_chars=16)
    assert module._LAST.peek(key) is None  # nothing more to read
    _, first = extract(path, password=None, min_chars=16, pages=range(1, 17))
    kept = module._LAST.peek(key)
    assert kept is not None
    _, middle = extract(path, password=None, min_chars=16, pages=range(17, 29))
    assert module._LAST.peek(key) is kept  # the same parsed file, not a new one
    _, last = extract(path, password=None, min_chars=16, pages=range(29, 41))
    assert module._LAST.peek(key) is None  # the end reached: let it go
    assert texts(first + middle + last) == texts(whole)
    assert [p.number for p in first + middle + last] == list(range(1, 41))


def test_a_file_changed_between_ranges_is_read_again(
    tmp_path: Path, extractor: tuple[Any, Any]
) -> None:
    _, extract = extractor
    path = long_pdf(tmp_path / "long.pdf")
    _, first = extract(path, password=None, min_chars=16, pages=range(1, 17))
    assert first[0].text.startswith("first edition")
    time.sleep(0.01)  # a modification time of its own, even on coarse clocks
    long_pdf(tmp_path / "long.pdf", edition="second")  # rewritten in place: same inode
    _, rest = extract(path, password=None, min_chars=16, pages=range(17, 41))
    assert all(text.startswith("second edition") for text in texts(rest))


def test_one_file_is_kept_per_thread(tmp_path: Path, extractor: tuple[Any, Any]) -> None:
    module, extract = extractor
    a, b = long_pdf(tmp_path / "a.pdf"), long_pdf(tmp_path / "b.pdf", edition="other")
    key_a, key_b = (module._LAST.key(p, None) for p in (a, b))
    extract(a, password=None, min_chars=16, pages=range(1, 17))
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(module._LAST.peek(key_a)))
    thread.start()
    thread.join()
    assert seen == [None]  # a parsed file is never shared between threads
    kept_a = module._LAST.peek(key_a)
    assert kept_a is not None
    extract(b, password=None, min_chars=16, pages=range(1, 17))
    assert module._LAST.peek(key_a) is None
    assert module._LAST.peek(key_b) is not None
    if hasattr(kept_a, "handle"):  # pdfminer reads from an open file: dropped, it is closed
        assert kept_a.handle.closed
    extract(b, password=None, min_chars=16, pages=range(17, 41))  # the end: released
    assert module._LAST.peek(key_b) is None


def test_pdfminer_closes_the_file_it_does_not_keep(tmp_path: Path) -> None:
    path = long_pdf(tmp_path / "long.pdf")
    key = pdfminer_extractor._LAST.key(path, None)
    pdfminer_extractor.extract_with_pdfminer(path, password=None, min_chars=16, pages=range(1, 17))
    kept = pdfminer_extractor._LAST.peek(key)
    assert kept is not None and not kept.handle.closed
    pdfminer_extractor.extract_with_pdfminer(path, password=None, min_chars=16, pages=range(17, 41))
    assert kept.handle.closed and pdfminer_extractor._LAST.peek(key) is None


def test_what_is_taken_is_gone_until_kept_again(tmp_path: Path) -> None:
    """An extraction takes the kept reader and keeps it again only when it succeeded, so a
    read that fails half-way leaves nothing behind for the next range to trust."""
    closed: list[str] = []
    cache: LastOpened[str] = LastOpened(close=closed.append)
    path = long_pdf(tmp_path / "long.pdf")
    key = cache.key(path, None)
    assert key is not None and cache.key(tmp_path / "missing.pdf", None) is None
    assert cache.key(path, "secret") != key  # another password, another entry
    assert cache.keep(key, "reader", pages=range(1, 17), page_count=40)
    assert cache.take(key) == "reader"
    assert cache.peek(key) is None and cache.take(key) is None
    # Nothing after these pages (or no range at all): not worth keeping.
    assert not cache.keep(key, "reader", pages=range(17, 41), page_count=40)
    assert not cache.keep(key, "reader", pages=None, page_count=40)
    assert not cache.keep(key, "reader", pages=range(5, 5), page_count=40)
    assert not cache.keep(None, "reader", pages=range(1, 17), page_count=40)
    assert cache.peek(key) is None and closed == []
    # Asked for another file, the kept one is closed.
    assert cache.keep(key, "reader", pages=range(1, 17), page_count=40)
    assert cache.take(cache.key(path, "secret")) is None
    assert closed == ["reader"]


# -- the pool gives the next range to the worker that read the last ------------------------


def wait_idle(pool: WorkerPool, count: int) -> None:
    deadline = time.monotonic() + 60
    while pool.idle < count:
        assert time.monotonic() < deadline, "the workers did not become ready"
        assert pool.wait() == []


def answers(pool: WorkerPool, count: int) -> dict[int, Any]:
    done: dict[int, Any] = {}
    deadline = time.monotonic() + 120
    while len(done) < count:
        assert time.monotonic() < deadline, "no answer from the workers"
        done.update(pool.wait())
    return done


def test_the_next_range_goes_to_the_worker_that_read_the_previous(
    tmp_path: Path, probe_log: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    long, short = long_pdf(docs / "long.pdf"), long_pdf(docs / "short.pdf", pages=2)
    manager = build_manager([PROBE])
    settings = build_settings_model(manager.collect_sections())().with_dotted(
        {"collect.inputs": [str(docs)], "extract.extractor": "pypdf"}
    )
    pool = WorkerPool(2, specs=manager.specs, settings=settings, max_memory=None)
    pool.start()
    try:
        wait_idle(pool, 2)
        chain = ("pypdf",)
        # The first idle worker in line takes short.pdf, the second the first range of
        # long.pdf; then both are idle, and the next range must go to the second.
        assert pool.submit(0, FirstTask(Source.from_path(short), chain, chain, None), 60)
        first = RangeTask(Source.from_path(long), "pypdf", range(1, 17))
        assert pool.submit(1, first, 60)
        done = answers(pool, 2)
        wait_idle(pool, 2)
        assert pool.submit(2, RangeTask(Source.from_path(long), "pypdf", range(17, 41)), 60)
        done.update(answers(pool, 1))
    finally:
        pool.close()
    rows = probed(probe_log)
    pids = {(row["name"], tuple(row["pages"] or ())): row["pid"] for row in rows}
    assert pids[("long.pdf", (1, 17))] == pids[("long.pdf", (17, 41))]
    assert pids[("short.pdf", ())] != pids[("long.pdf", (1, 17))]
    assert all(isinstance(done[task], Document) for task in (1, 2))
    pages = [page for task in (1, 2) for page in done[task].pages]
    assert texts(pages) == [page_text(n) for n in range(1, 41)]


# -- the collector of the workers -------------------------------------------------------------


def test_workers_freeze_start_up_and_collect_less_often_the_driver_is_left_alone(
    tmp_path: Path, probe_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    long_pdf(docs / "one.pdf", pages=2)
    before = gc.get_threshold()
    for workers in ("1", "0"):
        result = CliRunner().invoke(
            main,
            ["run", str(docs), "--workers", workers, "-p", PROBE, "-q",
             "--sink", f"jsonl:{tmp_path / workers}.jsonl", "-o", "cache.enabled=false"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    in_worker, in_process = probed(probe_log)
    assert in_worker["gc_threshold"] == list(GC_THRESHOLDS)
    assert in_worker["gc_frozen"] > 10_000  # modules, plugins, settings
    assert in_process["gc_threshold"] == list(before) == list(gc.get_threshold())
