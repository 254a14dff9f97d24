"""The cache: reruns skip unchanged documents before parsing, ``--force``, ``--lf``,
``--cache-clear``, the stat cache, the output fingerprint, and Ctrl-C during dispatch.

Runs are real sessions over real PDFs with a real SQLite cache, in-process (``--workers 0``)
so that a counting plugin sees every extraction. Killed and interrupted CLI runs are in
``test_exactly_once.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import sys
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ingest import UsageError, hookimpl
from ingest.api import _flatten, prepare
from ingest.cache import CACHE_FILENAME, SKIP_NOT_FAILED, SKIP_UNCHANGED, describe
from ingest.cache.fingerprint import output_fingerprint, plugin_version
from ingest.cli import main
from ingest.interrupt import GracefulStop
from ingest.model import Source
from ingest.result import RunResult
from ingest.session import Session
from pdfgen import multipage_pdf, not_a_pdf, text_pdf

# The stat cache trusts only files whose ctime is at least this old (see cache._RACY_NS).
RACY_S = 2.1


class ExtractCounter:
    """Counts the documents an extractor was asked for, by file name."""

    def __init__(self) -> None:
        self.names: list[str] = []

    @hookimpl(wrapper=True)
    def ingest_extract(self, source: Source) -> Generator[None, Any, Any]:
        """Note the file, then let the extractors run."""
        self.names.append(source.path.name)
        return (yield)


@dataclass
class Run:
    """A finished run, its session, and the files the extractors were asked for."""

    result: RunResult
    session: Session
    extracted: list[str]

    @property
    def stat_hits(self) -> tuple[int, int]:
        """Sources the stat cache answered, and sources that were hashed."""
        cache = self.session.cache
        assert cache is not None and cache.collector is not None
        return cache.collector.hits, cache.collector.misses


def run(
    rootdir: Path,
    inputs: Sequence[Path],
    *,
    force: bool = False,
    last_failed: bool = False,
    cache_clear: bool = False,
    **settings: Any,
) -> Run:
    """One in-process run with the cache on, rooted at ``rootdir``.

    Every run registers the same counting plugin under one name: a plugin that extracts is
    part of the output fingerprint, so it must be present in every run a test compares.
    """
    counter = ExtractCounter()
    cli: dict[str, Any] = {
        "collect.inputs": [str(p) for p in inputs],
        "run.workers": 0,
        "sinks": [f"jsonl:{rootdir / 'out.jsonl'}"],
        "progress": "none",
    }
    for key, value in settings.items():
        _flatten(key, value, cli)
    prepared = prepare(cwd=rootdir, environ={}, cli=cli, extra_plugins=[("counter", counter)])
    session = Session(
        prepared.manager,
        prepared.loaded.settings,
        rootdir=rootdir,
        force=force,
        last_failed=last_failed,
        cache_clear=cache_clear,
    )
    return Run(session.run(), session, counter.names)


def skip_reasons(result: RunResult) -> dict[str, str]:
    return {path.name: why for path, why in result.skipped_sources}


@pytest.fixture(scope="module")
def aged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five PDFs, older than the stat cache's racy window; read-only for the tests."""
    folder = tmp_path_factory.mktemp("aged")
    for number in range(5):
        text_pdf(folder / f"doc{number}.pdf", [f"Aged document {number} says hello {number}."])
    time.sleep(RACY_S)
    return folder


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """Three PDFs a test may change."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for number in range(3):
        multipage_pdf(folder / f"d{number}.pdf", pages=number + 1, title=f"Doc {number}")
    return folder


def test_rerun_skips_unchanged_before_extraction(aged: Path, tmp_path: Path) -> None:
    first = run(tmp_path, [aged])
    assert first.result.ingested == 5
    assert sorted(first.extracted) == [f"doc{n}.pdf" for n in range(5)]
    lines = (tmp_path / "out.jsonl").read_text("utf-8").splitlines()

    second = run(tmp_path, [aged])
    assert second.extracted == []  # no extractor ran
    result = second.result
    assert (result.ingested, result.skipped, result.collected) == (0, 5, 5)
    assert set(skip_reasons(result).values()) == {SKIP_UNCHANGED}
    assert "0 ingested, 5 skipped (unchanged)" in result.summary_line()
    assert result.exit_code == 0
    assert (tmp_path / "out.jsonl").read_text("utf-8").splitlines() == lines
    # The files were not even read to be hashed: the stat cache knew them.
    assert first.stat_hits == (0, 5) and second.stat_hits == (5, 0)


def test_skipped_documents_emit_skipped_events(aged: Path, tmp_path: Path) -> None:
    run(tmp_path, [aged])
    kinds: list[str] = []

    class Events:
        @hookimpl
        def ingest_progress(self, event: Any) -> None:
            kinds.append(event.kind)

    prepared = prepare(
        cwd=tmp_path,
        environ={},
        cli={"collect.inputs": [str(aged)], "run.workers": 0, "progress": "none",
             "sinks": [f"jsonl:{tmp_path / 'out.jsonl'}"]},
        extra_plugins=[("counter", ExtractCounter()), Events()],
    )
    Session(prepared.manager, prepared.loaded.settings, rootdir=tmp_path).run()
    assert kinds == ["collected", *["skipped"] * 5, "finished"]


def test_changed_content_is_reprocessed(docs: Path, tmp_path: Path) -> None:
    run(tmp_path, [docs])
    text_pdf(docs / "d1.pdf", ["Completely new words in the second document."])
    again = run(tmp_path, [docs])
    assert again.extracted == ["d1.pdf"]
    assert (again.result.ingested, again.result.skipped) == (1, 2)
    assert "1 ingested, 2 skipped (unchanged)" in again.result.summary_line()


def test_a_touched_file_is_hashed_again_and_still_skipped(aged: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    shutil.copytree(aged, folder, copy_function=shutil.copy2)
    assert run(tmp_path, [folder]).stat_hits == (0, 5)
    time.sleep(RACY_S)
    assert run(tmp_path, [folder]).stat_hits == (0, 5)  # only now old enough to remember
    os.utime(folder / "doc0.pdf")  # new mtime, same bytes
    touched = run(tmp_path, [folder])
    assert touched.result.skipped == 5 and touched.extracted == []
    assert touched.stat_hits == (4, 1)


def test_rewritten_file_with_restored_mtime_is_not_trusted(aged: Path, tmp_path: Path) -> None:
    """Same size, same mtime, different bytes: the ctime still gives the change away."""
    folder = tmp_path / "in"
    shutil.copytree(aged, folder, copy_function=shutil.copy2)
    time.sleep(RACY_S)
    run(tmp_path, [folder])
    target = folder / "doc2.pdf"
    stat = target.stat()
    data = bytearray(target.read_bytes())
    at = data.index(b"(D:2024") + 3  # the creation date: one digit changes, not the size
    data[at] = ord("1")
    target.write_bytes(bytes(data))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert target.stat().st_size == stat.st_size
    assert target.stat().st_mtime_ns == stat.st_mtime_ns
    again = run(tmp_path, [folder])
    assert again.extracted == ["doc2.pdf"] and again.result.ingested == 1


def test_collect_file_wrappers_see_each_file_once(aged: Path, tmp_path: Path) -> None:
    """The stat plugin asks the other collectors itself, but not the wrappers around it."""
    seen: list[str] = []

    class Watcher:
        @hookimpl(wrapper=True)
        def ingest_collect_file(self, path: Path) -> Generator[None, Any, Any]:
            seen.append(path.name)
            return (yield)

    for expected_hits in (0, 5):
        seen.clear()
        prepared = prepare(
            cwd=tmp_path,
            environ={},
            cli={"collect.inputs": [str(aged)], "run.workers": 0, "progress": "none",
                 "sinks": [f"jsonl:{tmp_path / 'out.jsonl'}"]},
            extra_plugins=[("watcher", Watcher())],
        )
        session = Session(prepared.manager, prepared.loaded.settings, rootdir=tmp_path)
        session.run()
        assert sorted(seen) == [f"doc{n}.pdf" for n in range(5)]
        assert session.cache is not None and session.cache.collector is not None
        assert session.cache.collector.hits == expected_hits


def test_settings_that_shape_output_invalidate(aged: Path, tmp_path: Path) -> None:
    run(tmp_path, [aged])
    same = run(tmp_path, [aged], run={"batch_size": 2, "maxfail": 3}, progress="log")
    assert same.result.skipped == 5  # speed and display settings do not change records
    other = run(tmp_path, [aged], chunk={"size": 300, "overlap": 10})
    assert (other.result.ingested, other.result.skipped) == (5, 0)
    back = run(tmp_path, [aged])
    assert back.result.ingested == 5  # the sink holds the size-300 records: made again
    assert run(tmp_path, [aged]).result.skipped == 5


def test_each_sink_is_tracked_on_its_own(aged: Path, tmp_path: Path) -> None:
    run(tmp_path, [aged])
    both = ["jsonl:out.jsonl", f"sqlite:{tmp_path / 'out.db'}"]
    added = run(tmp_path, [aged], sinks=both)
    assert added.result.ingested == 5  # the new sink has none of them yet
    with sqlite3.connect(tmp_path / "out.db") as db:
        assert db.execute("SELECT COUNT(*) FROM documents").fetchone() == (5,)
    # Written once to the JSONL file all the same: it skips ids it holds.
    lines = (tmp_path / "out.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == len(set(lines))
    assert run(tmp_path, [aged], sinks=both).result.skipped == 5
    assert run(tmp_path, [aged], sinks=["jsonl:elsewhere.jsonl"]).result.ingested == 5


@pytest.mark.parametrize("scheme", ["jsonl", "sqlite"])
def test_a_deleted_or_replaced_sink_file_is_written_again(
    aged: Path, tmp_path: Path, scheme: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Users delete the output to start it over; the cache must not then skip everything
    and leave the new file empty."""
    target = tmp_path / f"out.{scheme}"
    sinks = [f"{scheme}:{target}", f"jsonl:{tmp_path / 'kept.jsonl'}"]

    def held() -> int:
        if scheme == "jsonl":
            return len({json.loads(line)["doc_id"] for line in target.read_text().splitlines()})
        with sqlite3.connect(target) as db:
            return int(db.execute("SELECT COUNT(*) FROM documents").fetchone()[0])

    assert run(tmp_path, [aged], sinks=sinks).result.ingested == 5
    assert run(tmp_path, [aged], sinks=sinks).result.skipped == 5
    for suffix in ("", "-wal", "-shm", ".commit"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with caplog.at_level("WARNING", logger="ingest.cache"):
        again = run(tmp_path, [aged], sinks=sinks)
    assert again.result.ingested == 5 and held() == 5
    assert f"{scheme}:{target} holds other records than the last run left" in caplog.text
    # The other sink still held them, byte for byte: left alone, not written twice.
    kept = (tmp_path / "kept.jsonl").read_text("utf-8").splitlines()
    assert len(kept) == len(set(kept)) == 5
    # Replaced by a copy: a JSONL file's marker names the file it describes (its inode), so
    # it is written again, without a duplicate; a database carries its own store id, so its
    # copy holds all the same records, and is trusted.
    copy = tmp_path / "copy"
    shutil.copy(target, copy)
    os.replace(copy, target)
    assert run(tmp_path, [aged], sinks=sinks).result.ingested == (5 if scheme == "jsonl" else 0)
    assert held() == 5
    if scheme == "jsonl":
        lines = target.read_text("utf-8").splitlines()
        assert len(lines) == len(set(lines)) == 5
    # Untouched since: skipped as before.
    assert run(tmp_path, [aged], sinks=sinks).result.skipped == 5


def test_force_reprocesses_everything(aged: Path, tmp_path: Path) -> None:
    run(tmp_path, [aged])
    forced = run(tmp_path, [aged], force=True)
    assert len(forced.extracted) == 5
    assert (forced.result.ingested, forced.result.skipped) == (5, 0)
    assert run(tmp_path, [aged]).result.skipped == 5


def test_cache_clear_empties_it(aged: Path, tmp_path: Path) -> None:
    run(tmp_path, [aged], chunk={"size": 300, "overlap": 10})
    run(tmp_path, [aged])
    assert describe(tmp_path / ".ingest_cache")["fingerprints"] == 2
    cleared = run(tmp_path, [aged], cache_clear=True)
    assert cleared.result.ingested == 5 and cleared.stat_hits == (0, 5)
    counts = describe(tmp_path / ".ingest_cache")
    assert counts["held"] == 5 and counts["fingerprints"] == 1  # emptied, then filled again


def test_last_failed_reruns_only_failures(docs: Path, tmp_path: Path) -> None:
    broken = not_a_pdf(docs / "broken.pdf")
    bad = docs / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4\nnothing else at all")
    first = run(tmp_path, [docs]).result
    assert (first.ingested, first.failed) == (3, 2)

    lf = run(tmp_path, [docs], last_failed=True)
    # pdfium, then the pypdf fallback; broken.pdf fails at collection, before extraction.
    assert set(lf.extracted) == {"bad.pdf"}
    assert lf.result.failed == 2 and lf.result.exit_code == 1
    assert skip_reasons(lf.result) == {f"d{n}.pdf": SKIP_NOT_FAILED for n in range(3)}

    broken.unlink()
    multipage_pdf(bad, pages=2, title="Fixed")
    fixed = run(tmp_path, [docs], last_failed=True).result
    assert (fixed.ingested, fixed.failed, fixed.skipped) == (1, 0, 3)
    assert describe(tmp_path / ".ingest_cache")["failures"] == 1  # broken.pdf: never fixed


def test_last_failed_without_failures_runs_all(
    docs: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert run(tmp_path, [docs], last_failed=True).result.ingested == 3
    assert "no previously failed documents; running all" in caplog.text
    gone = tmp_path / "gone"
    gone.mkdir()
    not_a_pdf(gone / "x.pdf")
    run(tmp_path, [gone])
    caplog.clear()
    again = run(tmp_path, [docs], last_failed=True)
    # The known failure is not among these inputs: nothing is deselected.
    assert again.result.skipped == 3 and SKIP_NOT_FAILED not in skip_reasons(again.result).values()
    assert "1 known failures not among the collected documents" in caplog.text


def test_disabled_cache_writes_nothing(aged: Path, tmp_path: Path) -> None:
    run(tmp_path, [aged], cache={"enabled": False})
    again = run(tmp_path, [aged], cache={"enabled": False})
    assert again.result.ingested == 5 and len(again.extracted) == 5
    assert not (tmp_path / ".ingest_cache").exists()
    with pytest.raises(UsageError, match="--lf needs the cache"):
        run(tmp_path, [aged], cache={"enabled": False}, last_failed=True)


def test_cache_dir_setting_and_gitignore(aged: Path, tmp_path: Path) -> None:
    run(tmp_path, [aged], cache={"dir": "state/here"})
    folder = tmp_path / "state" / "here"
    assert (folder / CACHE_FILENAME).is_file()
    assert (folder / ".gitignore").read_text("utf-8").splitlines()[-1] == "*"


def test_a_damaged_cache_is_replaced(
    aged: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / ".ingest_cache"
    folder.mkdir()
    (folder / CACHE_FILENAME).write_bytes(b"this is not a database" * 100)
    assert run(tmp_path, [aged]).result.ingested == 5 and "is damaged" in caplog.text
    assert run(tmp_path, [aged]).result.skipped == 5


def test_fingerprint_ignores_secrets_and_non_output_settings(tmp_path: Path) -> None:
    def fingerprint(**cli: Any) -> tuple[str, str]:
        prepared = prepare(cwd=tmp_path, environ={}, cli=cli)
        return output_fingerprint(prepared.loaded.settings, prepared.manager)

    base, described = fingerprint()
    assert fingerprint(**{"extract.password": "s3cret", "run.workers": 7})[0] == base
    assert "s3cret" not in described and '"run"' not in described
    assert fingerprint(**{"extract.extractor": "pypdf"})[0] != base
    assert fingerprint(transforms=["normalize", "chunk"])[0] != base
    assert "pypdfium2==" in described  # an extractor library upgrade invalidates


def test_a_local_plugin_counts_by_its_source(tmp_path: Path) -> None:
    module = tmp_path / "localplug.py"
    module.write_text("VALUE = 1\n", "utf-8")
    spec = importlib.util.spec_from_file_location("localplug", module)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules["localplug"] = loaded
    try:
        spec.loader.exec_module(loaded)
        first = plugin_version("localplug", loaded)
        module.write_text("VALUE = 2\n", "utf-8")
        assert first.startswith("localplug sha256:")
        assert plugin_version("localplug", loaded) != first
    finally:
        del sys.modules["localplug"]


def test_cli_flags(aged: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("INGEST_")]:
        monkeypatch.delenv(name)  # the cache must come out in its default place
    out = f"jsonl:{tmp_path / 'cli.jsonl'}"
    base = ["run", str(aged), "--workers", "0", "--sink", out, "--progress", "none"]
    runner = CliRunner()
    assert runner.invoke(main, base).exit_code == 0
    assert (tmp_path / ".ingest_cache" / CACHE_FILENAME).is_file()  # beside the cwd
    skipped = runner.invoke(main, base)
    assert "0 ingested, 5 skipped (unchanged)" in skipped.output
    forced = runner.invoke(main, [*base, "--force"])
    assert "5 ingested in" in forced.output
    cleared = runner.invoke(main, [*base, "--cache-clear"])
    assert "5 ingested in" in cleared.output
    lf = runner.invoke(main, [*base, "--lf"])
    assert lf.exit_code == 0 and "no previously failed documents; running all" in lf.output
    assert "0 ingested, 5 skipped (unchanged)" in lf.output  # as without --lf


# -- Ctrl-C ------------------------------------------------------------------------------


def _sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def _wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_first_sigint_stops_dispatch_second_abandons() -> None:
    stop = GracefulStop(grace_s=60)
    with stop:
        items: Iterator[int] = stop.stoppable(range(10))
        assert next(items) == 0
        _sigint()
        _wait_for(lambda: stop.requested)
        assert stop.requested and list(items) == []  # nothing more is dispatched
        with pytest.raises(KeyboardInterrupt):
            _sigint()
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigint_waits_for_the_end_of_a_critical_section() -> None:
    stop = GracefulStop(grace_s=60)
    done = []
    with stop, pytest.raises(KeyboardInterrupt):
        _sigint()
        _wait_for(lambda: stop.requested)
        with stop.critical():
            _sigint()
            time.sleep(0.2)  # a signal handler runs here, and must not raise
            done.append("sink and cache written")
    assert done == ["sink and cache written"]


def test_grace_period_ends_in_keyboard_interrupt() -> None:
    started = time.monotonic()
    with GracefulStop(grace_s=0.3) as stop, pytest.raises(KeyboardInterrupt):
        _sigint()
        while True:  # a document that never finishes
            time.sleep(0.01)
    assert stop.requested and time.monotonic() - started < 3
