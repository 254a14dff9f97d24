"""One test per hookspec, and the order in which the hooks of one run fire.

The plugins here read ``.txt`` files, so the hook contract is tested apart from any PDF
parser; sync and ``async def`` implementations are mixed on purpose.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from ingest import hookspecs
from ingest.hookspecs import hookimpl
from ingest.model import Document, Failure, Metadata, Page, Source
from ingest.testing import Runner
from pydantic import BaseModel

TEXT = "text/plain"


class TextPlugin:
    """Claims .txt files and extracts them as one page each (async extract on purpose)."""

    @hookimpl
    def ingest_collect_file(self, path: Path) -> Source | None:
        return Source.from_path(path, media_type=TEXT) if path.suffix == ".txt" else None

    @hookimpl
    async def ingest_extract(self, source: Source) -> Document | None:
        if source.media_type != TEXT:
            return None
        await asyncio.sleep(0)
        text = source.path.read_text("utf-8")
        return Document(source, Metadata(page_count=1), [Page(1, text, "text")])

    @hookimpl
    def ingest_extract_claim(self, source: Source) -> str | None:
        return "text" if source.media_type == TEXT else None


@pytest.fixture
def texts(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha words here")
    (folder / "b.txt").write_text("beta words here")
    (folder / "skip.bin").write_bytes(b"\0")
    return folder


def run_text(ingest_pipeline: Runner, folder: Path, *plugins: object, **settings: Any) -> Any:
    settings.setdefault("transforms", [])
    return ingest_pipeline([folder], plugins=[TextPlugin(), *plugins], **settings)


def test_every_hookspec_has_a_test() -> None:
    specs = {name for name in dir(hookspecs) if name.startswith("ingest_")}
    tests = {name.removeprefix("test_hook_") for name in globals() if name.startswith("test_hook_")}
    assert specs <= tests, f"hooks without a test: {sorted(specs - tests)}"


def test_every_hookspec_is_documented() -> None:
    for name in dir(hookspecs):
        if not name.startswith("ingest_"):
            continue
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        params = inspect.signature(getattr(hookspecs, name)).parameters
        assert ":returns:" in doc and "versionadded" in doc, name
        for param in params:
            assert f":param {param}:" in doc, f"{name} does not document {param}"


def test_hook_ingest_register_settings(ingest_pipeline: Runner, texts: Path) -> None:
    class Section(BaseModel, extra="forbid"):
        level: int = 1

    seen: list[int] = []

    class Plugin:
        @hookimpl
        def ingest_register_settings(self, register: Callable[..., None]) -> None:
            register("mine", Section)

        @hookimpl
        def ingest_configure(self, settings: Any) -> None:
            seen.append(settings.mine.level)

    run_text(ingest_pipeline, texts, Plugin(), mine={"level": 7})
    assert seen == [7]


def test_hook_ingest_configure(ingest_pipeline: Runner, texts: Path) -> None:
    calls: list[tuple[str, bool]] = []

    class Plugin:
        @hookimpl
        def ingest_configure(self, settings: Any, manager: Any, role: str) -> None:
            calls.append((role, manager.has_plugin("collect")))

    run_text(ingest_pipeline, texts, Plugin())
    assert calls == [("driver", True)]


def test_hook_ingest_session_start(ingest_pipeline: Runner, texts: Path) -> None:
    seen: list[Any] = []

    class Plugin:
        @hookimpl
        async def ingest_session_start(self, session: Any) -> None:
            seen.append(list(session.sources))

    run_text(ingest_pipeline, texts, Plugin())
    assert seen == [[]]  # before collection


def test_hook_ingest_session_finish(ingest_pipeline: Runner, texts: Path) -> None:
    results: list[Any] = []

    class Plugin:
        @hookimpl
        def ingest_session_finish(self, session: Any, result: Any) -> None:
            results.append((result.ingested, result.exit_code))

    run_text(ingest_pipeline, texts, Plugin())
    assert results == [(2, 0)]


def test_hook_ingest_collect(ingest_pipeline: Runner, tmp_path: Path, texts: Path) -> None:
    """A collector for non-path inputs: a list file named with a ``list:`` prefix."""
    listing = tmp_path / "files.lst"
    listing.write_text(f"{texts / 'b.txt'}\n")

    class ListCollector:
        @hookimpl(tryfirst=True)
        def ingest_collect(self, path: str, manager: Any, settings: Any) -> list[Any] | None:
            if not path.startswith("list:"):
                return None
            lines = Path(path[5:]).read_text().split()
            return [
                manager.hook.ingest_collect_file(path=Path(p), settings=settings) for p in lines
            ]

    run = ingest_pipeline(
        [f"list:{listing}"], plugins=[TextPlugin(), ListCollector()], transforms=[]
    )
    assert [s.path.name for s in run.session.sources] == ["b.txt"]
    assert run.result.ingested == 1


def test_hook_ingest_collect_file(ingest_pipeline: Runner, texts: Path) -> None:
    run = run_text(ingest_pipeline, texts)
    assert [s.path.name for s in run.session.sources] == ["a.txt", "b.txt"]


def test_hook_ingest_extract(ingest_pipeline: Runner, texts: Path) -> None:
    class Upper:
        @hookimpl(wrapper=True)
        def ingest_extract(self) -> Iterator[None]:
            document = yield
            for page in document.pages:
                page.text = page.text.upper()
            return document

    run = run_text(ingest_pipeline, texts, Upper(), transforms=["chunk"])
    assert sorted(r["text"] for r in run.records) == ["ALPHA WORDS HERE", "BETA WORDS HERE"]


def test_hook_ingest_fetch(ingest_pipeline: Runner) -> None:
    """A source named by a URL is copied into the worker by ``ingest_fetch``: extractors read
    the copy, the document's id is the hash of the copy, and the record names the URL."""
    texts = {"mem://box/a.txt": "alpha from the box", "mem://box/b.txt": "beta from the box"}
    seen: list[object] = []

    class MemoryStore:
        @hookimpl(tryfirst=True)
        def ingest_collect(self, path: str) -> list[Any] | None:
            if not path.startswith("mem://"):
                return None
            return [Source(path=url, content_id="", size=len(text), media_type=TEXT,
                           stamp="v1") for url, text in texts.items()]  # fmt: skip

        @hookimpl
        def ingest_fetch(self, source: Source, folder: Path) -> Path | None:
            url = str(source.path)
            if not url.startswith("mem://"):
                return None
            copy = folder / "copy.txt"
            copy.write_text(texts[url], "utf-8")
            return copy

    class Watch:
        @hookimpl(tryfirst=True)
        def ingest_extract(self, source: Source) -> None:
            seen.append(source.path)

    run = ingest_pipeline(
        ["mem://box/"], plugins=[TextPlugin(), MemoryStore(), Watch()], transforms=[]
    )
    assert run.result.ingested == 2, run.result.failures
    assert all(isinstance(path, Path) and path.name == "copy.txt" for path in seen)
    assert not any(Path(str(path)).exists() for path in seen)  # the copies are deleted
    by_source = {record["source"]: record for record in run.records}
    assert sorted(by_source) == sorted(texts)
    for url, text in texts.items():
        digest = hashlib.sha256(text.encode()).hexdigest()
        assert by_source[url]["doc_id"] == digest[:32]
        assert by_source[url]["text"] == text


def test_hook_ingest_fetch_missing(ingest_pipeline: Runner) -> None:
    """A URL no plugin fetches fails alone, in one line naming the URL and the scheme."""

    class Lister:
        @hookimpl(tryfirst=True)
        def ingest_collect(self, path: str) -> list[Any] | None:
            if not path.startswith("nowhere://"):
                return None
            return [Source(path=path, content_id="", size=1, media_type=TEXT)]

    run = ingest_pipeline(["nowhere://x/a.txt"], plugins=[TextPlugin(), Lister()])
    (failure,) = run.result.failures
    assert failure.source == "nowhere://x/a.txt"
    assert failure.reason == "unsupported"
    assert "nowhere://" in failure.describe() and "\n" not in failure.describe()


def test_hook_ingest_extract_claim(ingest_pipeline: Runner, texts: Path) -> None:
    run = run_text(ingest_pipeline, texts, collect_only=True)
    assert set(run.session.claims.values()) == {"text"}
    assert run.records == [] and run.result.collected == 2


def test_hook_ingest_transform(ingest_pipeline: Runner, texts: Path) -> None:
    order: list[str] = []

    class Step:
        def __init__(self, name: str) -> None:
            self.name = name

        @hookimpl
        def ingest_transform(self, document: Document, step: str) -> None:
            if step == self.name:
                order.append(step)
                document.pages[0].text += f" {step}"

    run = ingest_pipeline(
        [texts / "a.txt"],
        plugins=[TextPlugin(), ("first", Step("first")), ("second", Step("second"))],
        transforms=["second", "first", "chunk"],
    )
    # The configured chain decides the order, not the registration order.
    assert order == ["second", "first"]
    assert run.records[0]["text"] == "alpha words here second first"


def test_hook_ingest_sink_open(ingest_pipeline: Runner, texts: Path) -> None:
    opened: list[tuple[str, str]] = []

    class MemorySinkPlugin:
        @hookimpl
        def ingest_sink_open(self, scheme: str, target: str) -> object | None:
            if scheme != "memory":
                return None
            opened.append((scheme, target))
            return MemorySink()

    run = run_text(ingest_pipeline, texts, ("memory", MemorySinkPlugin()), sinks=["memory:here"])
    assert opened == [("memory", "here")] and run.result.sinks == ["memory:here"]


class MemorySink:
    batches: list[list[str]]

    def __init__(self) -> None:
        self.batches = []

    @hookimpl
    async def ingest_sink(self, batch: Sequence[Document]) -> None:
        await asyncio.sleep(0)
        self.batches.append([d.source.path.name for d in batch])


def test_hook_ingest_sink(ingest_pipeline: Runner, texts: Path) -> None:
    sinks = [MemorySink(), MemorySink()]
    run = run_text(ingest_pipeline, texts, *sinks, run={"batch_size": 1})
    # Every sink gets every batch, and the default JSONL sink too.
    assert sinks[0].batches == sinks[1].batches == [["a.txt"], ["b.txt"]]
    assert len(run.records) == 2  # the JSONL sink got the same documents


class StateSink:
    """A sink that says which store it is and how many steps it took."""

    def __init__(self) -> None:
        self.store = "first"
        self.writes = 0
        self.steps: list[tuple[list[str], list[str]]] = []

    @hookimpl
    def ingest_sink(self, batch: Sequence[Document], deleted: Sequence[str]) -> None:
        self.steps.append(([d.source.path.name for d in batch], list(deleted)))
        self.writes += 1

    @hookimpl
    def ingest_sink_state(self) -> tuple[str, int]:
        return self.store, self.writes


def test_hook_ingest_sink_state(ingest_pipeline: Runner, texts: Path) -> None:
    """The cache skips what a sink holds only while the sink says it is the same store,
    with the writes the cache saw (or one more: a step a kill cut off before the commit)."""
    sink = StateSink()

    class Opener:
        @hookimpl
        def ingest_sink_open(self, scheme: str) -> StateSink | None:
            return sink if scheme == "state" else None

    def again() -> Any:
        return run_text(
            ingest_pipeline, texts, ("state", Opener()), sinks=["state:x"], cache={"enabled": True}
        ).result

    assert again().ingested == 2 and sink.writes == 1
    assert again().skipped == 2
    sink.writes += 1  # a step the cache never heard of: trusted
    assert again().skipped == 2
    sink.writes += 2  # more than one: not what the cache knows
    assert again().ingested == 2
    assert again().skipped == 2
    sink.store = "emptied"  # the sink found its records lost
    assert again().ingested == 2
    assert again().skipped == 2
    assert [names for names, _ in sink.steps] == [["a.txt", "b.txt"]] * 3


def test_a_batch_goes_to_the_sinks_once_it_holds_enough_text(
    ingest_pipeline: Runner, tmp_path: Path
) -> None:
    """Bounded driver memory: batch_size documents, or fewer when they are large."""
    from ingest import session

    folder = tmp_path / "in"
    folder.mkdir()
    sizes = {"a.txt": 10, "b.txt": 10, "c.txt": session.BATCH_MAX_CHARS, "d.txt": 10}
    for name, size in sizes.items():
        (folder / name).write_text(name[0] * size)  # distinct: equal files are collected once
    sink = MemorySink()
    run_text(ingest_pipeline, folder, sink, run={"batch_size": 16})
    # The large one closes its batch; the small ones after it wait for the end.
    assert sink.batches == [["a.txt", "b.txt", "c.txt"], ["d.txt"]]


def test_hook_ingest_progress(ingest_pipeline: Runner, texts: Path) -> None:
    run = run_text(ingest_pipeline, texts)
    assert run.kinds() == ["collected", "ingested", "ingested", "finished"]
    assert run.events[-1].state["current"] == 2 and run.events[-1].state["total"] == 2


def test_hook_ingest_executor(ingest_pipeline: Runner, texts: Path) -> None:
    class Reverse:
        """A backend that processes sources last-first, in the driver."""

        largest_first = False

        def __init__(self, manager: Any, settings: Any) -> None:
            self.manager, self.settings = manager, settings
            self.started = self.closed = False

        def start(self) -> None:
            self.started = True

        def run(self, feed: Iterable[Source]) -> Iterator[tuple[Source, Any]]:
            from ingest.workers import process_source

            for source in reversed(list(feed)):
                yield source, process_source(self.manager, self.settings, source)

        def close(self) -> None:
            self.closed = True

    backends: list[Reverse] = []

    class Plugin:
        @hookimpl
        def ingest_executor(self, name: str, settings: Any, manager: Any) -> Reverse | None:
            if name != "reverse":
                return None
            backends.append(Reverse(manager, settings))
            return backends[-1]

    sink = MemorySink()
    run = run_text(
        ingest_pipeline,
        texts,
        ("reverse", Plugin()),
        sink,
        run={"workers": 2, "executor": "reverse", "batch_size": 1},
    )
    assert sink.batches == [["b.txt"], ["a.txt"]]
    assert backends[0].started and backends[0].closed
    assert run.result.ingested == 2


def test_hooks_fire_in_order(ingest_pipeline: Runner, texts: Path) -> None:
    calls: list[str] = []

    class Spy:
        @hookimpl
        def ingest_register_settings(self) -> None:
            calls.append("register_settings")

        @hookimpl
        def ingest_configure(self) -> None:
            calls.append("configure")

        @hookimpl
        def ingest_session_start(self) -> None:
            calls.append("session_start")

        @hookimpl(tryfirst=True)
        def ingest_collect(self) -> None:
            calls.append("collect")

        @hookimpl(tryfirst=True)
        def ingest_collect_file(self, path: Path) -> None:
            calls.append(f"collect_file:{path.name}")

        @hookimpl(tryfirst=True)
        def ingest_sink_open(self) -> None:
            calls.append("sink_open")

        @hookimpl(tryfirst=True)
        def ingest_executor(self) -> None:
            calls.append("executor")

        @hookimpl(tryfirst=True)
        def ingest_extract(self, source: Source) -> None:
            calls.append(f"extract:{source.path.name}")

        @hookimpl
        def ingest_transform(self, step: str, document: Document) -> None:
            calls.append(f"transform:{step}:{document.source.path.name}")

        @hookimpl
        def ingest_sink(self, batch: Sequence[Document]) -> None:
            calls.append(f"sink:{len(batch)}")

        @hookimpl
        def ingest_progress(self, event: Any) -> None:
            calls.append(f"progress:{event.kind}")

        @hookimpl
        def ingest_session_finish(self) -> None:
            calls.append("session_finish")

    run_text(ingest_pipeline, texts, Spy(), transforms=["chunk"])
    assert calls == [
        "register_settings",
        "configure",
        "session_start",
        "executor",
        "collect",
        "collect_file:a.txt",
        "collect_file:b.txt",
        "collect_file:skip.bin",
        "progress:collected",
        "sink_open",
        "extract:a.txt",
        "transform:chunk:a.txt",
        "extract:b.txt",
        "transform:chunk:b.txt",
        "sink:2",
        "progress:ingested",
        "progress:ingested",
        "progress:finished",
        "session_finish",
    ]


def test_failure_in_a_plugin_names_it_and_spares_the_others(
    ingest_pipeline: Runner, texts: Path
) -> None:
    class Boom:
        @hookimpl
        def ingest_transform(self, document: Document, step: str) -> None:
            if step == "boom" and document.source.path.name == "a.txt":
                raise ValueError("cannot transform this one")

    run = run_text(ingest_pipeline, texts, ("boom", Boom()), transforms=["boom", "chunk"])
    assert run.result.ingested == 1 and run.result.failed == 1
    failure: Failure = run.failures[0]
    assert (failure.source.name, failure.reason, failure.plugin) == ("a.txt", "error", "boom")
    assert failure.exc_type == "ValueError" and failure.message == "cannot transform this one"
    assert [r["source"].endswith("b.txt") for r in run.records] == [True]


def test_hook_ingest_page_seconds(tmp_path: Path) -> None:
    from ingest.config import build_settings_model
    from ingest.manager import build_manager
    from ingest.workers.dispatch import Limits

    class Slow:
        @hookimpl
        def ingest_page_seconds(self, settings: Any) -> float:
            return 3.0 if settings.run.timeout_per_page == 2 else 0.0

    class Silent:
        @hookimpl
        def ingest_page_seconds(self) -> None:
            return None

    manager = build_manager()
    settings = build_settings_model(manager.collect_sections())()
    base = Limits.from_settings(settings, manager, workers=2, max_memory=None)
    manager.register(Slow(), name="slow")
    manager.register(Silent(), name="silent")
    limits = Limits.from_settings(settings, manager, workers=2, max_memory=None)
    assert base.timeout_per_page == settings.run.timeout_per_page == 2
    assert limits.timeout_per_page == 5.0
    # Deadlines follow: a 16-page task now gets 16 * 5 s rather than run.timeout.
    source = Source(tmp_path / "a.pdf", "0" * 64, size=10**6)
    assert limits.budget(16, source) == 80.0 and base.budget(16, source) == 60.0


def test_hook_ingest_register_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import click
    from click.testing import CliRunner
    from ingest.cli import main
    from ingest.manager import build_manager

    group = click.Group("ingest")
    build_manager().hook.ingest_register_commands(cli=group)
    assert sorted(group.commands) == ["search"]  # the sqlite plugin's, a built-in

    monkeypatch.chdir(tmp_path)
    env = {"INGEST_PLUGINS": "plugins.cli_greeting"}  # tests/plugins/cli_greeting.py
    result = CliRunner().invoke(main, ["greet", "heron"], env=env)
    assert (result.exit_code, result.stdout) == (0, "hello, heron\n")


def test_hook_ingest_embed(ingest_pipeline: Runner, texts: Path) -> None:
    seen: list[tuple[list[str], str]] = []

    class Embedder:
        @hookimpl
        async def ingest_embed(self, texts: Sequence[str], embedder: str) -> list[list[float]]:
            seen.append((list(texts), embedder))
            await asyncio.sleep(0)
            return [[float(len(text)), 1.0] for text in texts]

    run = run_text(
        ingest_pipeline,
        texts,
        ("lengths", Embedder()),
        transforms=["chunk"],
        embed={"embedder": "lengths"},
    )
    assert sorted(seen) == [(["alpha words here"], "lengths"), (["beta words here"], "lengths")]
    assert [(r["embedding"], r["embedding_model"]) for r in run.records] == [
        ([16.0, 1.0], "lengths"),
        ([15.0, 1.0], "lengths"),
    ]
