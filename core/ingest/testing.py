"""A pytest plugin for plugin authors (and for ingest's own tests).

Installed through the ``pytest11`` entry point, so its fixtures are available in any
project that has ingest installed:

* ``ingest_manager`` builds a plugin manager with the built-ins plus the plugins you name.
* ``ingest_pipeline`` runs a whole pipeline in-process over given files and gives back the
  records every sink received, the failures (with their tracebacks) and every progress
  event. With ``store=NAME`` the runs of a test share one JSONL sink and the cache, so a
  test can change a file, a setting or delete a file and check that a rerun replaces or
  prunes what it must.
* ``ingest_cli`` runs the real ``ingest`` command in-process and gives back its exit code and
  output, to match with :class:`pytest.LineMatcher` as pytester's ``runpytest`` does.
* :func:`check_sink` drives a sink through the hooks exactly as a run does (replace, delete,
  state, close and reopen) and fails, naming the rule, where it does not keep the contract
  of ``ingest_sink`` and ``ingest_sink_state``.

The environment's ``INGEST_*`` variables and ``LOG_LEVEL`` are ignored, so a developer's own
settings never leak into a test; a config file is looked for from the test's temporary
folder upwards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ingest.hookspecs import hookimpl

if TYPE_CHECKING:
    from ingest.cache import SinkState
    from ingest.manager import IngestPluginManager
    from ingest.model import Document, Failure
    from ingest.progress import ProgressEvent
    from ingest.result import RunResult
    from ingest.session import Session

# This module is loaded by every pytest run in an environment where ingest is installed, so
# it imports the rest of ingest only when a fixture is used.

__all__ = [
    "CliRun",
    "EventRecorder",
    "IngestCli",
    "PipelineFailed",
    "PipelineRun",
    "SinkReport",
    "check_sink",
    "ingest_cli",
    "ingest_manager",
    "ingest_pipeline",
    "restored_logging",
    "sample_document",
]


class PipelineFailed(AssertionError):
    """Raised by ``ingest_pipeline(..., raise_on_failure=True)`` at a document's failure.

    :param failure: the failure; its message and traceback are in the exception's text.
    """

    def __init__(self, failure: Failure) -> None:
        text = f"ingest failed on {failure.describe()}"
        if failure.traceback:
            text += f"\n{failure.traceback}"
        if failure.logs:
            text += "\ncaptured library log:\n" + "\n".join(e.describe() for e in failure.logs)
        super().__init__(text)
        self.failure = failure


class EventRecorder:
    """A plugin that keeps every progress event, the documents the sinks received and the
    final result."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self.documents: list[Document] = []
        self.result: RunResult | None = None
        self.hook_calls: list[str] = []

    @hookimpl
    def ingest_progress(self, event: ProgressEvent) -> None:
        """Keep the event."""
        self.events.append(event)

    @hookimpl
    def ingest_sink(self, batch: Sequence[Document]) -> None:
        """Keep the documents every sink receives, whatever the sinks are."""
        self.documents.extend(batch)

    @hookimpl
    def ingest_session_finish(self, result: RunResult) -> None:
        """Keep the result."""
        self.result = result


@dataclass
class PipelineRun:
    """What ``ingest_pipeline`` returns: the result plus what was written and heard.

    :param records: the chunk records of every document the sinks received, as JSON (the
        shape every sink writes), whichever sinks the run had; with ``store=NAME``, every
        record ``NAME.jsonl`` holds after the run.
    :param documents: those documents, with pages, chunks and captured library logs.
    :param output: the default JSONL sink's file (it exists only when that sink was used).
    :param failures: the failures, each with its traceback when an exception caused it.
    """

    result: RunResult
    records: list[dict[str, Any]]
    events: list[ProgressEvent]
    output: Path
    session: Session
    manager: IngestPluginManager
    failures: list[Failure] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)

    def kinds(self) -> list[str]:
        """The kinds of the progress events, in order."""
        return [event.kind for event in self.events]


Runner = Callable[..., PipelineRun]


@pytest.fixture
def ingest_manager() -> Callable[..., IngestPluginManager]:
    """Build a plugin manager: ``ingest_manager("ocr", my_plugin_object)``.

    Strings are plugin specs (entry-point names, module paths, ``no:NAME``); other
    arguments are plugin objects registered as they are.
    """

    def build(*plugins: object) -> IngestPluginManager:
        from ingest.manager import build_manager

        specs = [p for p in plugins if isinstance(p, str)]
        manager = build_manager(specs)
        for plugin in plugins:
            if not isinstance(plugin, str):
                manager.register(plugin)
        return manager

    return build


@pytest.fixture
def ingest_pipeline(tmp_path: Path) -> Runner:
    """Run a pipeline in-process: ``ingest_pipeline([pdf], plugins=[obj], chunk={"size": 80})``.

    Keyword arguments are settings (nested sections as dicts), plus these options, with
    their defaults:

    * ``plugins=()``: specs, modules (loaded by name), other plugin objects and
      ``(name, object)`` pairs;
    * ``cache=False``: no cache; ``True`` keeps one in the test's temporary folder, shared
      by the calls of one test (with one default JSONL sink for them all), so a second call
      skips what the first ingested; a mapping is the ``cache`` section of the settings
      (``cache={"enabled": True}`` with sinks of your own);
    * ``force=False``, ``last_failed=False``, ``cache_clear=False``: ``--force``, ``--lf``,
      ``--cache-clear``;
    * ``raise_on_failure=False``: ``True`` stops at the first failed document and raises
      :class:`PipelineFailed` with its message and traceback;
    * ``store=None``: ``"NAME"`` makes the runs that name it share one JSONL file,
      ``NAME.jsonl``, with the cache on, as reruns of ``ingest run`` do; the records are then
      all the file holds after the run;
    * ``prune=False``: ``--prune``;
    * ``collect_only=False``: ``--collect-only``.

    And these settings unless given: ``run={"workers": 0}`` (in this process, so plugin
    objects and breakpoints work), ``progress="none"``, and one JSONL sink in the test's
    temporary folder (:attr:`PipelineRun.output`). :attr:`PipelineRun.records` holds what
    every sink received, whatever the sinks (with ``store``: what its file holds).
    """
    counter = iter(range(1_000_000))

    def run(
        paths: Sequence[str | os.PathLike[str]],
        *,
        plugins: Sequence[object | tuple[str, object]] = (),
        collect_only: bool = False,
        cache: bool | Mapping[str, Any] = False,
        force: bool = False,
        last_failed: bool = False,
        cache_clear: bool = False,
        raise_on_failure: bool = False,
        store: str | None = None,
        prune: bool = False,
        **settings: Any,
    ) -> PipelineRun:
        from ingest.api import prepare, settings_as_cli, split_plugins

        if isinstance(cache, Mapping):  # the cache section of the settings, as any other
            settings["cache"] = cache
            cache = bool(cache.get("enabled", False))
        # With the cache, one file for every call: the cache knows documents per sink, so a
        # later call skips only what an earlier one wrote to the same sink.
        if store is not None:
            output = tmp_path / f"{store}.jsonl"
        elif cache:
            output = tmp_path / "ingest-cached.jsonl"
        else:
            output = tmp_path / f"ingest-run-{next(counter)}.jsonl"
        recorder = EventRecorder()
        cli: dict[str, Any] = {
            "run.workers": 0,
            "run.prune": prune,
            "sinks": [f"jsonl:{output}"],
            "progress": "none",
            "cache.enabled": cache or store is not None,
            "cache.dir": str(tmp_path / ".ingest_cache"),
        }
        if raise_on_failure:
            cli["run.maxfail"] = 1
        cli.update(settings_as_cli(paths, settings, None))
        specs, objects = split_plugins(plugins)
        prepared = prepare(
            plugins=specs, cwd=tmp_path, environ={}, cli=cli, extra_plugins=[recorder, *objects]
        )
        session = prepared.session(
            collect_only=collect_only,
            force=force,
            last_failed=last_failed,
            cache_clear=cache_clear,
        )
        result = session.run()
        if raise_on_failure and result.failures:
            raise PipelineFailed(result.failures[0])
        if store is not None:
            records = (
                [json.loads(line) for line in output.read_text("utf-8").splitlines()]
                if output.exists()
                else []
            )
        else:
            records = [
                json.loads(json.dumps(record, ensure_ascii=False, default=str))
                for document in recorder.documents
                for record in document.chunk_records()
            ]
        return PipelineRun(
            result=result,
            records=records,
            events=recorder.events,
            output=output,
            session=session,
            manager=prepared.manager,
            failures=list(result.failures),
            documents=list(recorder.documents),
        )

    return run


# -- the command line -----------------------------------------------------------------------

_OUTCOME = re.compile(r"(\d+) (ingested|failed|skipped|collected)")


@dataclass
class CliRun:
    """What ``ingest_cli.run(...)`` returns, as pytester's ``RunResult``.

    :param ret: the exit code (:class:`ingest.ExitCode`).
    :param outlines: stdout, line by line.
    :param errlines: stderr, line by line.
    :param stdout: stdout to match: ``stdout.fnmatch_lines(["*3 ingested*"])``.
    :param stderr: stderr to match: ``stderr.re_match_lines([r"ERROR: .*csv"])``.
    :param duration: seconds the command took.
    """

    ret: int
    outlines: list[str]
    errlines: list[str]
    stdout: pytest.LineMatcher
    stderr: pytest.LineMatcher
    duration: float

    def parse_summary(self) -> dict[str, int]:
        """The counts of the summary line (the last line of stdout that has any):
        ``{"ingested": 3, "failed": 1}``."""
        for line in reversed(self.outlines):
            found = _OUTCOME.findall(line)
            if found:
                return {word: int(number) for number, word in found}
        return {}

    def assert_outcomes(
        self, ingested: int = 0, failed: int = 0, skipped: int = 0, collected: int | None = None
    ) -> None:
        """Assert the counts of the summary line; a count not named must be 0."""
        summary = self.parse_summary()
        wanted = {"ingested": ingested, "failed": failed, "skipped": skipped}
        if collected is not None:
            wanted["collected"] = collected
        got = {key: summary.get(key, 0) for key in wanted}
        assert got == wanted, f"summary {summary} != {wanted}\n" + "\n".join(self.outlines)


class IngestCli:
    """Runs the ``ingest`` command in this process, in the test's temporary folder.

    :param path: the folder the command runs in (its working directory).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def run(
        self, *args: str | os.PathLike[str], env: Mapping[str, str] | None = None
    ) -> CliRun:
        """Run ``ingest ARGS...``, as a user would from :attr:`path`.

        :param args: the arguments after ``ingest`` (``"run", "docs/", "-q"``).
        :param env: variables to set for the command (``INGEST_*`` included); the
            environment's own ``INGEST_*`` and ``LOG_LEVEL`` are removed.
        :returns: the exit code and the output, stdout and stderr apart.
        """
        from click.testing import CliRunner

        from ingest.cli import main

        cleared: dict[str, str | None] = {
            name: None for name in os.environ if name.startswith("INGEST_") or name == "LOG_LEVEL"
        }
        cleared.update(env or {})
        before = os.getcwd()
        with restored_logging():
            os.chdir(self.path)
            started = time.monotonic()
            try:
                outcome = CliRunner().invoke(
                    main, [os.fspath(arg) for arg in args], env=cleared, catch_exceptions=False
                )
            finally:
                os.chdir(before)
        outlines = outcome.stdout.splitlines()
        errlines = outcome.stderr.splitlines()
        return CliRun(
            ret=outcome.exit_code,
            outlines=outlines,
            errlines=errlines,
            stdout=pytest.LineMatcher(outlines),
            stderr=pytest.LineMatcher(errlines),
            duration=time.monotonic() - started,
        )


@pytest.fixture
def ingest_cli(tmp_path: Path) -> IngestCli:
    """Run the real ``ingest`` command in-process: ``ingest_cli.run("run", "docs", "-q")``.

    The command runs in the test's temporary folder (``ingest_cli.path``), without the
    environment's ``INGEST_*`` variables and ``LOG_LEVEL``; its exit code and output come
    back as a :class:`CliRun`, whose ``stdout`` and ``stderr`` are :class:`pytest.LineMatcher`
    objects and whose ``assert_outcomes(ingested=..., failed=...)`` checks the summary.
    """
    return IngestCli(tmp_path)


@contextmanager
def restored_logging() -> Iterator[None]:
    """Put the ``ingest`` logger's level and handlers back as they were when the block ends.

    The CLI sets the logger up for its process; a test that runs it in-process must not
    leave that (or its level) for the next test. :class:`IngestCli` runs in one.
    """
    logger = logging.getLogger("ingest")
    level, handlers = logger.level, list(logger.handlers)
    try:
        yield
    finally:
        logger.setLevel(level)
        logger.handlers[:] = handlers
# --------------------------------------------------------------------------------------------
# The sink contract
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SinkReport:
    """What :func:`check_sink` found a sink able to do (each checked when present).

    :param deletes: its ``ingest_sink`` takes ``deleted``, and deleting works.
    :param states: it implements ``ingest_sink_state``, and its answers keep the rules.
    """

    deletes: bool
    states: bool


def sample_document(name: str, texts: Sequence[str], *, structure: bool = False) -> Document:
    """A document ``name`` (its id derived from the name, whatever the texts) with one page
    and one chunk per text, for sink tests.

    :param structure: also give it what the structure step makes: each page a one-cell
        table holding the page's text (a block, and a Markdown table), each chunk the
        headings ``[name]``.
    """
    from ingest.model import Block, Chunk, Document, Metadata, Page, Source, Table, TableCell

    source = Source(Path(f"{name}.txt"), hashlib.sha256(name.encode()).hexdigest(), 1)
    pages = [Page(number=n, text=text, extractor="test") for n, text in enumerate(texts, 1)]
    if structure:
        for page in pages:
            table = Table(1, 1, [TableCell(0, 0, page.text)], header_rows=0)
            box = (72.0, 72.0, 300.0, 90.0)
            page.blocks = [Block("table", page.text, box, table=table)]
            page.markdown = f"| {page.text} |"
    document = Document(source, Metadata(title=name, page_count=len(pages)), pages)
    document.chunks = [
        Chunk(document.doc_id, index, texts[index], number, number, start, end,
              headings=[name] if structure else [])
        for index, (number, start, end) in enumerate(document.page_spans())
    ]  # fmt: skip
    return document


def check_sink(
    open_sink: Callable[[], object],
    held: Callable[[], Mapping[str, Sequence[str]]],
    *,
    structure: bool = False,
) -> SinkReport:
    """Drive a sink through the hooks as a run does, and check that it keeps the contract.

    The sink is opened, given steps (``ingest_sink``), asked for its state
    (``ingest_sink_state``) and closed (``ingest_session_finish``) several times, as
    successive runs would: documents written, written again in another version (they must
    replace the old one), the same bytes again (they must stay once), documents deleted with
    a batch and alone (when ``ingest_sink`` takes ``deleted``; a sink that does not is
    reported as unable to delete, and those steps are left out).

    :param open_sink: opens the sink on the same store every time it is called, as
        ``ingest_sink_open`` would for one target.
    :param held: what the store holds once the sink is closed: each document id to the
        texts of its chunks, in order.
    :param structure: the documents carry structure (:func:`sample_document`): each page a
        one-cell table holding the same text as the page's one chunk, so ``held`` may
        answer with the texts of the tables the store holds, to check that a sink replaces
        and deletes them with their document.
    :returns: what the sink can do.
    :raises AssertionError: naming the rule the sink broke.
    """
    from ingest.config import Settings
    from ingest.manager import IngestPluginManager
    from ingest.sinks import SinkSet

    def version(name: str, number: int) -> Document:
        texts = [f"{name} {number}.{part}" for part in range(number + 1)]
        return sample_document(name, texts, structure=structure)

    def expect(versions: Mapping[str, int], when: str) -> None:
        wanted = {
            version(name, number).doc_id: [f"{name} {number}.{p}" for p in range(number + 1)]
            for name, number in versions.items()
        }
        found = {doc_id: list(texts) for doc_id, texts in held().items()}
        assert found == wanted, f"after {when}, the sink holds {found}, not {wanted}"

    report: SinkReport | None = None
    previous: SinkState | None = None
    steps: list[tuple[list[Document], list[str], dict[str, int], str]] = [
        ([version("a", 2), version("b", 0)], [], {"a": 2, "b": 0}, "writing a and b"),
        ([version("a", 0)], [], {"a": 0, "b": 0}, "writing a again, chunked otherwise"),
        ([version("a", 0)], [], {"a": 0, "b": 0}, "writing a again, the same bytes"),
        ([version("c", 1)], [version("b", 0).doc_id], {"a": 0, "c": 1}, "writing c, deleting b"),
        ([], [version("c", 1).doc_id], {"a": 0}, "deleting c alone"),
    ]
    for batch, deleted, versions, when in steps:
        manager = IngestPluginManager()
        sinks = SinkSet(manager, Settings())
        sinks.add("checked:store", open_sink())
        deletes = not sinks.cannot_delete
        if deleted and not deletes:
            manager.hook.ingest_session_finish(session=None, result=None)
            continue
        [state] = sinks.states()
        if previous is not None and state is not None:
            assert state == previous, (
                f"reopened before {when}, the sink says {state}, not {previous} as it did "
                "when it closed: a store must keep its id and count"
            )
        sinks.write(batch, deleted)
        [after] = sinks.states()
        if state is not None and after is not None:
            assert after[0] == state[0] and after[1] in (state[1], (state[1] or 0) + 1), (
                f"after {when}, the sink says {after}, not the store {state[0]!r} with "
                f"{state[1]} or one more write: a step counts once"
            )
        manager.hook.ingest_session_finish(session=None, result=None)
        previous = after
        expect(versions, when)
        report = SinkReport(deletes=deletes, states=after is not None)
    assert report is not None
    return report
