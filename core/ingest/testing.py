"""A pytest plugin for plugin authors (and for ingest's own tests).

Installed through the ``pytest11`` entry point, so its fixtures are available in any
project that has ingest installed:

* ``ingest_manager`` builds a plugin manager with the built-ins plus the plugins you name.
* ``ingest_pipeline`` runs a whole pipeline in-process over given files and gives back the
  records the JSONL sink wrote, the failures and every progress event.

The environment's ``INGEST_*`` variables and any config file outside the test's temporary
folder are ignored, so a developer's own settings never leak into a test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ingest.hookspecs import hookimpl

if TYPE_CHECKING:
    from ingest.manager import IngestPluginManager
    from ingest.model import Failure
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
    test's temporary folder, whose records come back in :attr:`PipelineRun.records`.
    """
    counter = iter(range(1_000_000))

    def run(
        paths: Sequence[str | os.PathLike[str]],
        *,
        plugins: Sequence[object | tuple[str, object]] = (),
        collect_only: bool = False,
        **settings: Any,
    ) -> PipelineRun:
        from ingest.api import prepare, settings_as_cli

        output = tmp_path / f"ingest-run-{next(counter)}.jsonl"
        recorder = EventRecorder()
        cli = {
            "run.workers": 0,
            "sinks": [f"jsonl:{output}"],
            "progress": "none",
            "cache.enabled": False,
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
