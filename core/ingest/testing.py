"""A pytest plugin for plugin authors (and for ingest's own tests).

Installed through the ``pytest11`` entry point, so its fixtures are available in any
project that has ingest installed:

* ``ingest_manager`` builds a plugin manager with the built-ins plus the plugins you name.
* ``ingest_pipeline`` runs a whole pipeline in-process over given files and gives back the
  records the JSONL sink wrote, the failures and every progress event. With ``store=NAME``
  the runs of a test share one JSONL sink and the cache, so a test can change a file, a
  setting or delete a file and check that a rerun replaces or prunes what it must.
* :func:`check_sink` drives a sink through the hooks exactly as a run does (replace, delete,
  state, close and reopen) and fails, naming the rule, where it does not keep the contract
  of ``ingest_sink`` and ``ingest_sink_state``.

The environment's ``INGEST_*`` variables and any config file outside the test's temporary
folder are ignored, so a developer's own settings never leak into a test.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
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


class EventRecorder:
    """A plugin that keeps every progress event and the final result."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self.result: RunResult | None = None
        self.hook_calls: list[str] = []

    @hookimpl
    def ingest_progress(self, event: ProgressEvent) -> None:
        """Keep the event."""
        self.events.append(event)

    @hookimpl
    def ingest_session_finish(self, result: RunResult) -> None:
        """Keep the result."""
        self.result = result


@dataclass
class PipelineRun:
    """What ``ingest_pipeline`` returns: the result plus what was written and heard."""

    result: RunResult
    records: list[dict[str, Any]]
    events: list[ProgressEvent]
    output: Path
    session: Session
    manager: IngestPluginManager
    failures: list[Failure] = field(default_factory=list)

    def kinds(self) -> list[str]:
        """The kinds of the progress events, in order."""
        return [event.kind for event in self.events]


Runner = Callable[..., PipelineRun]


@pytest.fixture
def ingest_manager() -> Callable[..., IngestPluginManager]:
    """Build a plugin manager: ``ingest_manager("ocr", my_plugin_object)``.

    Strings are plugin specs (entry-point names, dotted module paths, ``no:NAME``); other
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

    Keyword arguments are settings (nested sections as dicts); ``plugins`` may mix specs,
    plugin objects and ``(name, object)`` pairs; ``sinks`` defaults to one JSONL file in the
    test's temporary folder, whose records come back in :attr:`PipelineRun.records`: a new
    file for each run, with the cache off. ``store="NAME"`` makes the runs that name it share
    one file, ``NAME.jsonl``, with the cache on, as reruns of ``ingest run`` do: the records
    are then all the file holds after the run. ``prune=True`` is ``--prune``.
    """
    counter = iter(range(1_000_000))

    def run(
        paths: Sequence[str | os.PathLike[str]],
        *,
        plugins: Sequence[object | tuple[str, object]] = (),
        collect_only: bool = False,
        store: str | None = None,
        prune: bool = False,
        **settings: Any,
    ) -> PipelineRun:
        from ingest.api import prepare, settings_as_cli

        if store is None:
            output = tmp_path / f"ingest-run-{next(counter)}.jsonl"
        else:
            output = tmp_path / f"{store}.jsonl"
        recorder = EventRecorder()
        cli = {
            "run.workers": 0,
            "run.prune": prune,
            "sinks": [f"jsonl:{output}"],
            "progress": "none",
            "cache.enabled": store is not None,
            "cache.dir": str(tmp_path / ".ingest_cache"),
            **settings_as_cli(paths, settings, None),
        }
        specs = [p for p in plugins if isinstance(p, str)]
        objects = [recorder, *(p for p in plugins if not isinstance(p, str))]
        prepared = prepare(plugins=specs, cwd=tmp_path, environ={}, cli=cli, extra_plugins=objects)
        session = prepared.session(collect_only=collect_only)
        result = session.run()
        records = (
            [json.loads(line) for line in output.read_text("utf-8").splitlines()]
            if output.exists()
            else []
        )
        return PipelineRun(
            result=result,
            records=records,
            events=recorder.events,
            output=output,
            session=session,
            manager=prepared.manager,
            failures=list(result.failures),
        )

    return run


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
