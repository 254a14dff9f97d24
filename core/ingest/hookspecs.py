"""Every hook a plugin can implement, grouped by stage.

Conventions that hold for all of them:

* The core calls hooks with keyword arguments only, and an implementation may accept any
  subset of the arguments, so adding an argument later never breaks a plugin.
* Any implementation may be ``async def``. The core runs it to completion on the persistent
  event loop (:func:`ingest.bridge.run_sync`) before the next implementation is called, so
  ``firstresult`` and hook wrappers see its return value, not a coroutine. Hook *wrappers*
  must be plain generator functions.
* "Driver" is the process that runs ``ingest run``: it collects, dispatches, writes sinks and
  reports. "Worker" is where documents are extracted and transformed: the driver itself with
  ``--workers 0``, otherwise a worker process (or a Dask worker) that rebuilt the plugin
  manager from the plugin names and the settings.
* Components are named by their plugin's name: ``--extractor pdfium`` asks for the plugin
  registered as ``pdfium``, ``--sink jsonl:out.jsonl`` for the plugin ``jsonl``, and the
  ``transforms`` chain lists plugin names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel

    from ingest.config import Settings
    from ingest.manager import IngestPluginManager
    from ingest.model import Document, Failure, Source
    from ingest.progress import ProgressEvent
    from ingest.result import RunResult
    from ingest.session import Session
    from ingest.workers import ExecutorBackend

PROJECT_NAME = "ingest"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@hookspec
def ingest_register_settings(register: Callable[[str, type[BaseModel]], None]) -> None:
    """Declare the plugin's own settings section, before the configuration is read.

    Called once per process, on the driver and on every worker, right after the plugins are
    loaded. The section is validated by the model like the core settings: from a config file
    (``ocr: {dpi: 300}``), the environment (``INGEST_OCR__DPI=300``) or ``-o ocr.dpi=300``, and
    is then available as ``settings.ocr``.

    :param register: call ``register(section_name, PydanticModel)``; the model's defaults are
        used when the user sets nothing. A name taken by a core setting is an error.
    :returns: nothing; all implementations are called.

    .. versionadded:: 0.1
    """


@hookspec
def ingest_configure(settings: Settings, manager: IngestPluginManager, role: str) -> None:
    """Called once the settings are final, before any source is collected.

    Runs on the driver (``role == "driver"``) and again in every worker after it rebuilt the
    plugin manager (``role == "worker"``). A plugin may register further plugin objects here
    (as pytest's terminal reporter does) or fail early on settings it cannot honour by raising
    :class:`ingest.errors.PluginError`.

    :param settings: the validated settings, including every plugin's section.
    :param manager: the plugin manager of this process.
    :param role: ``"driver"`` or ``"worker"``.
    :returns: nothing; all implementations are called.

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------------------------
# Session
# --------------------------------------------------------------------------------------------


@hookspec
def ingest_session_start(session: Session) -> None:
    """Called on the driver after configuration, before collection starts.

    :param session: the run that is starting; ``session.settings``, ``session.tracker``.
    :returns: nothing; all implementations are called.

    .. versionadded:: 0.1
    """


@hookspec
def ingest_session_finish(session: Session, result: RunResult) -> None:
    """Called on the driver once every source has an outcome, or the run was stopped.

    Sinks close their files here; reporters print the summary. Called even when the run was
    interrupted or stopped by ``--maxfail``, so that what was done is kept.

    :param session: the run.
    :param result: counts, failures and exit code of the run.
    :returns: nothing; all implementations are called, in reverse registration order (so the
        terminal reporter, registered first, prints last).

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------------------------
# Collection
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def ingest_collect(
    path: str, settings: Settings, manager: IngestPluginManager
) -> list[Source | Failure] | None:
    """Turn one input given by the user (a file, a folder or a glob) into sources.

    Called on the driver, once per input. The built-in ``collect`` plugin (``trylast``) walks
    folders and globs and asks :func:`ingest_collect_file` about every file it finds; a plugin
    only needs this hook to read inputs that are not paths (a URL list, a bucket...).

    :param path: the input as the user wrote it.
    :param settings: the run's settings (``settings.collect``).
    :param manager: the plugin manager, to call ``manager.hook.ingest_collect_file``.
    :returns: the sources found, in a stable order, plus a :class:`~ingest.model.Failure` for
        each file that was found but cannot be read; ``None`` to let the next plugin try.
        The first non-``None`` result wins.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def ingest_collect_file(path: Path, settings: Settings) -> Source | Failure | None:
    """Claim one file found by the collector.

    Called on the driver for every file of a walked folder or a matched glob, and for files
    named directly. This is how a plugin adds a file type (``.txt``, ``.md``): return a
    :class:`~ingest.model.Source` with your own ``media_type``.

    :param path: the file.
    :param settings: the run's settings.
    :returns: a source; a failure for a file you claim but cannot use (say, not a PDF despite
        its name); ``None`` if the file is not yours. The first non-``None`` result wins.

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------------------------
# Extraction (worker)
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def ingest_extract(
    source: Source, settings: Settings, extractor: str, pages: range | None
) -> Document | None:
    """Turn a source into a document with pages and metadata.

    Called in a worker, once per source and extractor tried: first with the configured
    extractor, then with each name of ``extract.fallback`` while the previous one raised.
    An extractor acts only when ``extractor`` is its own name and it reads
    ``source.media_type``; a plugin that adds a file type may ignore ``extractor``. Pages
    whose text layer is missing or unusable are returned with ``needs_ocr=True``.

    Wrappers (``wrapper=True``) see the document the extractor made and may change it: the
    ``ocr`` plugin fills the pages that need it this way.

    :param source: what to read.
    :param settings: the run's settings (``settings.extract``).
    :param extractor: the name of the extractor asked for.
    :param pages: the 1-based page numbers to extract (``range(11, 21)`` is pages 11 to 20),
        or ``None`` for all. Large documents are split into such ranges across workers and
        merged back in order before the transforms; an extractor that cannot address pages
        may ignore it and return every page (the core then keeps only the asked ones).
    :returns: the document, or ``None`` when this plugin does not handle the source. The
        first non-``None`` result wins. Raise :class:`ingest.errors.DocumentError` with a
        reason (``encrypted``, ``not-a-pdf``...) for a file that cannot be read; any other
        exception fails the document with reason ``error``.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def ingest_fetch(source: Source, settings: Settings, folder: Path) -> Path | None:
    """Copy a source that lives in a store (its ``path`` is a URL) into a local file.

    Called in a worker, before extraction, for every task of a source whose ``path`` is a
    URL (``s3://bucket/key.pdf``): the driver never reads such a source, it only names it.
    The worker hashes the copy (a source collected without a content id gets it here),
    gives extractors a source whose ``path`` is the copy, and deletes ``folder`` when no task
    needs it any more (a worker keeps its last copies for the next page range of the same
    object and stamp); outcomes name the URL again. The task's deadline and memory cap
    include the copy.

    :param source: the source, with the URL in ``path``, its listed ``size`` and ``stamp``.
    :param settings: the run's settings (the plugin's own section: credentials, retries).
    :param folder: an empty private folder to write the copy into.
    :returns: the path of the copy, or ``None`` when the URL's scheme is not yours. The
        first non-``None`` result wins. Raise :class:`ingest.errors.DocumentError` (reason
        ``unreadable``, ``not-a-pdf``...) with a message naming the URL when the object
        cannot be read: the document fails alone.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def ingest_extract_claim(source: Source, settings: Settings, extractor: str) -> str | None:
    """Say, without parsing, which extractor would take a source (for ``--collect-only``).

    Called on the driver, once per source, with the configured extractor's name.

    :param source: the source.
    :param settings: the run's settings.
    :param extractor: the name of the configured extractor.
    :returns: the name of the extractor that would take it, or ``None``. First result wins.

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------------------------
# Transformation (worker)
# --------------------------------------------------------------------------------------------


@hookspec
def ingest_transform(document: Document, settings: Settings, step: str) -> None:
    """Change a document in place: clean its text, chunk it, drop duplicates...

    Called in a worker, after extraction, once for every step of the ``transforms`` chain in
    the configured order (``step`` is the step's name). A transform acts only when ``step``
    is its own name, so the chain order of the configuration is the order of the work and an
    installed plugin never changes the output unless it is named in the chain.

    :param document: the document, with all its pages merged in order.
    :param settings: the run's settings.
    :param step: the name of the chain step being run.
    :returns: nothing; all implementations are called.

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------------------------
# Embedding (worker)
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def ingest_embed(
    texts: Sequence[str], settings: Settings, embedder: str
) -> Sequence[Sequence[float]] | None:
    """Turn a batch of chunk texts into vectors, one per text.

    Called only when the run embeds (``--embed NAME``, setting ``embed.embedder``): in a
    worker, right after the ``transforms`` chain, once per ``embed.batch_size`` chunks of a
    document (a document's chunks are never mixed with another's in one call); and outside
    a run by :func:`ingest.load_embedder`, as ``ingest search --mode semantic|hybrid`` does
    to embed the query. An embedder acts only when ``embedder`` is its own name. It reads
    ``settings.embed.model`` (``None``: its default model) and ``settings.embed.dim``
    (``None``: the model's size; raise :class:`ingest.errors.PluginError` naming the setting
    for a size the model cannot give). Load a model once per process and keep it: a worker
    embeds many documents.

    The vectors are stored with the label ``embedder/model`` (the embedder's name alone when
    ``embed.model`` is empty) and their size; the embed settings and the embedder's version
    are part of the output fingerprint, so changing either embeds every document again.

    :param texts: the chunk texts, in order; never empty, at most ``embed.batch_size``.
    :param settings: the run's settings (``settings.embed``, and the plugin's own section).
    :param embedder: the name of the embedder asked for.
    :returns: ``len(texts)`` vectors of equal size (``embed.dim`` when set), in the order of
        ``texts``: a 2-D numpy array, or any sequence of float sequences; ``None`` when
        ``embedder`` is not this plugin. The first non-``None`` result wins. Vectors need
        not be normalised: cosine similarity is what search ranks by. An exception fails the
        document (reason ``error``, naming the plugin) like a failing transform.

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------------------------
# Sinks (driver)
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def ingest_sink_open(scheme: str, target: str, settings: Settings, rootdir: Path) -> object | None:
    """Open a sink named in the settings (``sinks: ["jsonl:out.jsonl"]``).

    Called on the driver, once per configured sink, after collection and before the cache
    decides what to skip, when the run has anything to write or delete or to verify. The
    plugin whose name is ``scheme`` returns an object that the core registers as a plugin for
    the rest of the run: it implements :func:`ingest_sink`, usually :func:`ingest_sink_state`
    (so that a rerun notices records lost behind its back) and :func:`ingest_session_finish`
    (to close). Opening should create what the sink needs (file, tables) and fail early.

    :param scheme: the part before the first ``:``.
    :param target: the part after it (a path, a URL...), as the user wrote it.
    :param settings: the run's settings.
    :param rootdir: the directory relative paths are resolved against.
    :returns: the sink object, or ``None`` when ``scheme`` is not yours. First result wins.

    .. versionadded:: 0.1
    """


@hookspec
def ingest_sink(batch: Sequence[Document], settings: Settings, deleted: Sequence[str]) -> None:
    """Write a batch of finished documents and remove the documents in ``deleted``, as one step.

    Called on the driver, in the order documents finish, batch after batch; every sink
    receives every batch. The calls come from a thread of their own (dispatch goes on while
    a batch is written), one at a time, and not necessarily from the thread that opened the
    sink. The store mirrors the corpus: after a successful run a sink holds, for every file
    under the run's inputs, exactly the records of its current content under the current
    settings. So:

    * **Replace**: each document replaces every record the sink holds for its ``doc_id``. A
      document comes again when the settings or plugins that shape its records changed, or
      when the sink is refilled, and must then lose the chunks it no longer has.
    * **Delete**: every record of each id in ``deleted`` goes, in the same atomic step as the
      batch. A file whose bytes changed arrives as its new document in ``batch`` and its old
      one in ``deleted``: a reader of the sink sees one or the other, never both or neither.
    * **Durable when it returns**: the core records the documents in its cache only after
      every sink returned, so a run killed at any moment and run again sends again what the
      sink may already hold; it must end up there once.

    A sink that cannot delete leaves ``deleted`` out of its implementation's arguments. The
    core never sends it an empty batch, and warns once per run, naming the sink, when
    records it holds should have gone.

    :param batch: the documents. Empty only for a step that deletes and writes nothing
        (``--prune``, or a file whose new bytes were already stored from another path); such a
        step goes only to the sinks whose implementation takes ``deleted``.
    :param settings: the run's settings.
    :param deleted: ids of documents whose records must go; never the id of a document in
        ``batch``, and possibly ids the sink does not hold (nothing to do for those).
    :returns: nothing; all implementations are called. ``async def`` sinks run on the
        persistent loop.
    :raises Exception: when the step cannot be written (disk full, read-only...): keep
        nothing of it. The run then stops with one error naming the sink, its target (the
        sink object's ``path`` attribute, else the target of its spec) and the cause, and
        exits 6; what was committed before stays.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def ingest_sink_state(settings: Settings) -> tuple[str, int] | None:
    """Say which store an open sink is and how many writes it took, so that a rerun skips
    only what the sink really holds.

    Called on the driver on each sink object that :func:`ingest_sink_open` returned, alone
    (not on every plugin): once after it opened, and after every :func:`ingest_sink` step.
    The cache keeps the answer with what it recorded. On the next run, a different ``store``,
    or a ``writes`` count other than the recorded one (or one more: a step the run was killed
    after), means the sink changed behind the cache's back, and every document is written to
    it again (a refill) rather than trusted.

    :param settings: the run's settings.
    :returns: ``(store, writes)``. ``store`` names what this sink holds and must change
        whenever the sink finds records lost or changed behind its back (a file emptied, cut
        short, replaced, edited by hand; whatever its own marker can detect). ``writes``
        counts the :func:`ingest_sink` steps that changed it, kept across runs. ``None``
        when the sink cannot tell: the cache then trusts what it recorded, and, for a sink
        whose target is a file path, notices only that file being deleted or replaced. The
        first non-``None`` result wins.

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------------------------
# Progress and reporting (driver)
# --------------------------------------------------------------------------------------------


@hookspec
def ingest_progress(event: ProgressEvent) -> None:
    """Hear every event of a run: collected, pages, ingested, skipped, failed, finished.

    Called on the driver, in the thread that runs the session, for each event in order.
    ``collected`` comes once, when collection ends (``event.message`` says how many). Every
    collected file then gets exactly one of ``ingested`` (once the sinks hold it;
    ``event.source``, ``event.pages``), ``skipped`` (``event.source``, ``event.message``:
    why) or ``failed`` (``event.failure``); a file that fails or is skipped while being
    collected (unreadable, or the same content as another) gets it before ``collected``.
    While a long document is read in page ranges, ``pages`` events come as each range is
    done (``event.source``, ``event.pages``: how many more), before its outcome.
    ``finished`` comes last, even when the run was stopped. Reporters (terminal bar, JSON
    lines, log lines) implement it; keep it cheap.

    :param event: ``event.kind`` (one of the six above), ``event.source``,
        ``event.failure``, ``event.pages``, ``event.message``, ``event.logs`` (for
        ``ingested``: what libraries logged while the document was made) and
        ``event.state`` (a :meth:`~ingest.progress.ProgressTracker.get_state` snapshot
        taken after the event).
    :returns: nothing; all implementations are called.

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------------------------
# Execution backend (driver)
# --------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def ingest_executor(
    name: str, settings: Settings, manager: IngestPluginManager
) -> ExecutorBackend | None:
    """Provide the backend that runs extraction and transforms.

    Called on the driver once per run with ``settings.run.executor`` (``"inprocess"`` when
    ``run.workers`` is 0). The plugin named ``name`` returns a backend: an object with
    ``run(sources)``, an iterator of ``(source, Document | Failure)`` in completion order
    that keeps a bounded window of work in flight, and ``close()``.

    :param name: the backend asked for (``inprocess``, ``process``, ``dask``...).
    :param settings: the run's settings (``settings.run``).
    :param manager: the driver's plugin manager; ``manager.specs`` are the plugin names a
        worker loads to rebuild it, and the settings pickle with their plugin sections.
    :returns: the backend, or ``None`` when ``name`` is not yours. First result wins.

    .. versionadded:: 0.1
    """


@hookspec
def ingest_page_seconds(settings: Settings) -> float | None:
    """Seconds per page that a plugin's own work adds to each task's deadline.

    Called on the driver once per run, when a worker backend (process pool, Dask) sets its
    deadlines: a task over ``k`` pages may take ``max(run.timeout, k * per_page)`` seconds,
    where ``per_page`` is ``run.timeout_per_page`` plus the sum of all answers. A plugin that
    wraps extraction with slow work on some pages (OCR) says here how long such a page may
    take, so its documents are not killed as hung; the worker is still killed, and the
    document fails with reason ``timeout``, once the sum is spent.

    :param settings: the run's settings (the plugin's own section included).
    :returns: seconds (``>= 0``), or ``None`` to add nothing. All results are summed.

    .. versionadded:: 0.1
    """


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


@hookspec
def ingest_register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``ingest`` command line (the ``sqlite`` plugin adds ``search``).

    Called in the process that runs the ``ingest`` command, at most once per invocation, and
    only when the command line names a command that ingest does not have itself, or asks for
    the list of all commands (``ingest --help``); ``ingest --version``, ``ingest run`` and
    the library API never call it. The plugins asked are those a run loads without ``-p``:
    the built-ins plus the ones the ``plugins`` setting or ``INGEST_PLUGINS`` names.

    A command reports a mistake by raising :class:`ingest.errors.UsageError`: it prints as
    one ``ERROR:`` line and exits 4, as for ingest's own commands; other exceptions are
    reported as internal errors (exit 3). Import what a command needs inside it, so that
    listing the commands stays cheap.

    :param cli: the group to add to, with ``@cli.command()`` or ``cli.add_command(command)``
        (click). A name that ingest's own commands or another plugin's command already has
        raises :class:`ingest.errors.PluginError` naming both.
    :returns: nothing; all implementations are called.

    .. versionadded:: 0.1
    """


hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for plugin functions: ``@hookimpl`` (also ``tryfirst``, ``trylast``, ``wrapper``)."""
