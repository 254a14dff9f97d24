"""The library API: ``ingest.run(paths, ...)``, ``await ingest.arun(...)``, and the one path
from settings to a running session that the CLI and the pytest fixture take too.

:func:`prepare` reads the settings' sources once (:class:`~ingest.config.SettingsStack`),
loads the plugins they name, validates the settings with the plugins' sections and calls
``ingest_configure``; :meth:`Prepared.session` makes the run. A library call and a command
line with the same settings therefore do the same thing.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ingest.config import LoadedSettings, SettingsStack
from ingest.log import apply_log_level
from ingest.manager import IngestPluginManager, build_manager, with_component_plugins
from ingest.result import RunResult
from ingest.session import Session

TRACE_ENV = "INGEST_TRACE_HOOKS"

PathsArg = Sequence[str | os.PathLike[str]] | str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A configured plugin manager and its settings, ready for a session."""

    manager: IngestPluginManager
    loaded: LoadedSettings

    def session(
        self,
        *,
        collect_only: bool = False,
        verbosity: int = 0,
        tb: str = "auto",
        force: bool = False,
        last_failed: bool = False,
        cache_clear: bool = False,
    ) -> Session:
        """A session over these settings; see :class:`~ingest.session.Session`."""
        return Session(
            self.manager,
            self.loaded.settings,
            rootdir=self.loaded.rootdir,
            collect_only=collect_only,
            verbosity=verbosity,
            tb=tb,
            force=force,
            last_failed=last_failed,
            cache_clear=cache_clear,
        )


def load_plugins(stack: SettingsStack, *, trace_hooks: bool = False) -> IngestPluginManager:
    """A plugin manager with the plugins ``stack`` names: ``-p``, ``plugins`` in every layer,
    and the installed plugin of each component the run names (``--executor dask`` loads
    ``dask``, ``--embed wordllama`` ``wordllama``, ``--sink csv:out.csv`` a plugin named
    ``csv``, as ``-p`` would).

    :raises ingest.errors.UsageError: for an unknown plugin or an invalid ``plugins`` value.
    """
    specs = with_component_plugins(stack.plugins(), stack.components())
    trace = trace_hooks or stack_env_flag(stack, TRACE_ENV)
    return build_manager(specs, trace=trace)


def stack_env_flag(stack: SettingsStack, name: str) -> bool:
    """Whether the stack's environment sets ``name`` to a true value (``1``, ``yes``...)."""
    return stack.environ.get(name, "").lower() in {"1", "true", "yes", "on"}


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
    cli_flags: Mapping[str, str] | None = None,
) -> Prepared:
    """Load plugins, read and validate the settings, and call ``ingest_configure``.

    :param plugins: ``-p`` values, added to those of the config file, ``INGEST_PLUGINS`` and
        ``-o plugins=...``.
    :param config_file: an explicit config file (``-c``); else found by walking up from cwd.
    :param cwd: where to start looking for the config file.
    :param environ: the environment to read ``INGEST_*`` from (default: ``os.environ``).
    :param cli: settings from CLI flags, by dotted key.
    :param overrides: raw ``-o key=value`` strings.
    :param trace_hooks: log every hook call (also ``INGEST_TRACE_HOOKS=1``).
    :param extra_plugins: plugin objects to register as they are, or ``(name, object)`` to
        give one a plugin name (tests, embedding); they exist only in this process, so use
        them with ``run.workers = 0``.
    :param cli_flags: dotted key to the flag that sets it, for messages and origins
        (``{"sinks": "--sink"}``); by default ``--`` and the key's last part.
    :raises ingest.errors.UsageError: for any plugin or configuration problem.
    """
    layered_cli = dict(cli or {})
    if plugins:
        layered_cli["plugins"] = [*layered_cli.get("plugins", ()), *plugins]
    stack = SettingsStack(
        config_file=config_file,
        cwd=cwd,
        environ=environ,
        cli=layered_cli,
        overrides=overrides,
        cli_flags={**({"plugins": "-p"} if plugins else {}), **(cli_flags or {})},
    )
    manager = load_plugins(stack, trace_hooks=trace_hooks)
    for plugin in extra_plugins:
        if isinstance(plugin, tuple):
            manager.register(plugin[1], name=plugin[0])
        else:
            manager.register(plugin)
    loaded = stack.load(manager.collect_sections())
    apply_log_level(loaded.settings.log_level, stack.environ)
    manager.hook.ingest_configure(settings=loaded.settings, manager=manager, role="driver")
    return Prepared(manager=manager, loaded=loaded)


def split_plugins(
    plugins: Sequence[str | object | tuple[str, object]],
) -> tuple[list[str], list[object | tuple[str, object]]]:
    """Plugin specs apart from plugin objects, for :func:`prepare`.

    A module object that can be imported under its own name becomes that name, so worker
    processes load it too (``ingest.run(paths, plugins=[my_module])`` with ``--workers``);
    other objects (instances, ``(name, object)`` pairs, ``__main__``) stay objects, which
    exist only in this process.

    :returns: ``(specs, objects)``.
    """
    specs: list[str] = []
    objects: list[object | tuple[str, object]] = []
    for plugin in plugins:
        if isinstance(plugin, str):
            specs.append(plugin)
        elif (
            isinstance(plugin, ModuleType)
            and plugin.__name__ != "__main__"
            and sys.modules.get(plugin.__name__) is plugin
        ):
            specs.append(plugin.__name__)
        else:
            objects.append(plugin)
    return specs, objects


def settings_as_cli(
    paths: PathsArg | None, settings: Mapping[str, Any], overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Keyword settings as the dotted keys of the CLI layer.

    :param paths: the inputs (``collect.inputs``), or ``None`` to leave them to the layers.
    :param settings: top-level keys, nested sections as dicts (``chunk={"size": 500}``).
    :param overrides: dotted keys (``{"chunk.size": 500}``), applied after ``settings``.
    """
    cli: dict[str, Any] = {}
    if paths is not None:
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        cli["collect.inputs"] = [os.fspath(p) for p in paths]
    for key, value in settings.items():
        _flatten(key, value, cli)
    cli.update(overrides or {})
    return cli


def run(
    paths: PathsArg,
    *,
    plugins: Sequence[str | object | tuple[str, object]] = (),
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    collect_only: bool = False,
    force: bool = False,
    last_failed: bool = False,
    cache_clear: bool = False,
    **settings: Any,
) -> RunResult:
    """Ingest ``paths`` and return what happened.

    Settings come from the config file and environment as for the CLI, then from
    ``settings`` (top-level keys; nested sections as dicts, e.g.
    ``run(["papers"], extract={"extractor": "pypdf"}, sinks=["sqlite:corpus.db"])``) and
    ``overrides`` (dotted keys, e.g. ``{"chunk.size": 500}``).

    :param plugins: plugin specs (names, module paths, ``no:NAME``), modules, other plugin
        objects, or ``(name, object)`` pairs. An importable module is loaded by its name (in
        worker processes too); other objects exist only in this process
        (``run.workers=0``).
    :param collect_only: list what would be ingested, parse nothing (``--collect-only``).
    :param force: redo documents the cache has as ingested (``--force``).
    :param last_failed: redo only what failed last time (``--lf``).
    :param cache_clear: empty the cache first (``--cache-clear``).
    :returns: the :class:`~ingest.result.RunResult` (counts, failures, sinks written).
    :raises ingest.errors.UsageError: for a plugin or configuration problem.
    """
    specs, objects = split_plugins(plugins)
    prepared = prepare(
        plugins=specs,
        config_file=config_file,
        cwd=cwd,
        environ=environ,
        cli=settings_as_cli(paths, settings, overrides),
        extra_plugins=objects,
    )
    session = prepared.session(
        collect_only=collect_only, force=force, last_failed=last_failed, cache_clear=cache_clear
    )
    return session.run()


async def arun(paths: PathsArg, **kwargs: Any) -> RunResult:
    """:func:`run` for async code: the run happens in a thread, the caller's loop stays free.

    :returns: the :class:`~ingest.result.RunResult`.
    """
    # Imported here: a command-line run has no use for asyncio, and it costs 20 to 40 ms.
    import asyncio

    return await asyncio.to_thread(functools.partial(run, paths, **kwargs))


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, into)
    else:
        into[prefix] = value
