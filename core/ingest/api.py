"""The library API: ``ingest.run(paths, ...)`` and ``await ingest.arun(...)``.

The CLI goes through :func:`prepare` too, so a library call and a command line with the
same settings do the same thing.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.config import (
    LoadedSettings,
    load_settings,
    peek_executor,
    peek_plugins,
    peek_setting,
)
from ingest.manager import IngestPluginManager, build_manager, with_executor_plugin
from ingest.result import RunResult
from ingest.session import Session

TRACE_ENV = "INGEST_TRACE_HOOKS"


@dataclass(frozen=True, slots=True)
class Prepared:
    """A configured plugin manager and its settings, ready for a session."""

    manager: IngestPluginManager
    loaded: LoadedSettings


def prepare(
    *,
    plugins: Sequence[str] = (),
    config_file: str | Path | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
    trace_hooks: bool = False,
    extra_plugins: Sequence[object | tuple[str, object]] = (),
) -> Prepared:
    """Load plugins, read and validate the settings, and call ``ingest_configure``.

    :param plugins: ``-p`` values, added to those of the config file and ``INGEST_PLUGINS``.
    :param config_file: an explicit config file (``-c``); else found by walking up from cwd.
    :param cwd: where to start looking for the config file.
    :param environ: the environment to read ``INGEST_*`` from (default: ``os.environ``).
    :param cli: settings from CLI flags, by dotted key.
    :param overrides: raw ``-o key=value`` strings.
    :param trace_hooks: log every hook call (also ``INGEST_TRACE_HOOKS=1``).
    :param extra_plugins: plugin objects to register as they are, or ``(name, object)`` to
        give one a plugin name (tests, embedding); they exist only in this process, so use
        them with ``run.workers = 0``.
    :raises ingest.errors.UsageError: for any plugin or configuration problem.
    """
    env = os.environ if environ is None else environ
    specs = peek_plugins(config_file=config_file, cwd=cwd, environ=env, cli_plugins=list(plugins))
    executor = peek_executor(
        config_file=config_file,
        cwd=cwd,
        environ=env,
        cli_executor=(cli or {}).get("run.executor"),
        overrides=overrides,
    )
    specs = with_executor_plugin(specs, executor)
    # Naming the embedder names its plugin too, as the executor does.
    embedder = peek_setting(
        "embed.embedder",
        flag="--embed",
        cli_value=(cli or {}).get("embed.embedder"),
        config_file=config_file,
        cwd=cwd,
        environ=env,
        overrides=overrides,
    )
    if embedder:
        specs = with_executor_plugin(specs, embedder)
    trace = trace_hooks or env.get(TRACE_ENV, "").lower() in {"1", "true", "yes", "on"}
    manager = build_manager(specs, trace=trace)
    for plugin in extra_plugins:
        if isinstance(plugin, tuple):
            manager.register(plugin[1], name=plugin[0])
        else:
            manager.register(plugin)
    loaded = load_settings(
        sections=manager.collect_sections(),
        config_file=config_file,
        cwd=cwd,
        environ=env,
        cli=cli,
        overrides=overrides,
    )
    manager.hook.ingest_configure(settings=loaded.settings, manager=manager, role="driver")
    return Prepared(manager=manager, loaded=loaded)


def run(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    plugins: Sequence[str] = (),
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    **settings: Any,
) -> RunResult:
    """Ingest ``paths`` and return what happened.

    Settings come from the config file and environment as for the CLI, then from
    ``settings`` (top-level keys; nested sections as dicts, e.g.
    ``run(["papers"], extract={"extractor": "pypdf"}, sinks=["sqlite:corpus.db"])``) and
    ``overrides`` (dotted keys, e.g. ``{"chunk.size": 500}``).

    :returns: the :class:`~ingest.result.RunResult` (counts, failures, sinks written).
    :raises ingest.errors.UsageError: for a plugin or configuration problem.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    cli: dict[str, Any] = {"collect.inputs": [os.fspath(p) for p in paths]}
    for key, value in settings.items():
        _flatten(key, value, cli)
    cli.update(overrides or {})
    prepared = prepare(plugins=plugins, config_file=config_file, cli=cli)
    session = Session(prepared.manager, prepared.loaded.settings, rootdir=prepared.loaded.rootdir)
    return session.run()


async def arun(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    **kwargs: Any,
) -> RunResult:
    """:func:`run` for async code: the run happens in a thread, the caller's loop stays free.

    :returns: the :class:`~ingest.result.RunResult`.
    """
    return await asyncio.to_thread(functools.partial(run, paths, **kwargs))


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, into)
    else:
        into[prefix] = value
