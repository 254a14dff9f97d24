"""Plugin loading: built-ins, named entry points, dotted module paths, and ``-p no:NAME``.

Built-in behaviour is registered through the same entry-point group as a third party's
plugin, under the names in :data:`DEFAULT_PLUGINS`. Any other installed plugin loads only
when it is named (``-p NAME``, the ``plugins`` setting or ``INGEST_PLUGINS``): an installed
package must never silently change what a run writes.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pluggy

from ingest import hookspecs
from ingest.errors import PluginError
from ingest.installed import entry_points as installed_entry_points

if TYPE_CHECKING:
    from pydantic import BaseModel

logger = logging.getLogger("ingest.manager")

ENTRY_POINT_GROUP = "ingest"

#: Plugins that load without being named, in registration order. Components that do
#: nothing unless a setting asks for them (extractors, sinks, transforms are picked by name)
#: so loading them never changes output by itself.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "collect",
    "pdfium",
    "pypdf",
    "pdfminer",
    "normalize",
    "dehyphenate",
    "strip_headers",
    "structure",
    "chunk",
    "dedup",
    "jsonl",
    "sqlite",
    "postgresql",
    "inprocess",
    "process",
    "reporters",
    "remote",
)

#: Plugins ``-p no:NAME`` refuses to block: without them a run cannot collect or execute.
ESSENTIAL_PLUGINS: frozenset[str] = frozenset({"collect", "inprocess"})

_HOOK_PREFIX = "ingest_"
# Frames of the import machinery say nothing about where a plugin's import failed.
_IMPORTLIB = os.path.dirname(importlib.__file__) + os.sep
_OWN = os.path.dirname(os.path.abspath(__file__)) + os.sep


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """What ``ingest plugins`` shows about one plugin."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    loaded: bool
    builtin: bool
    hooks: tuple[str, ...]
    error: str | None = None


def entry_points() -> dict[str, metadata.EntryPoint]:
    """The installed plugins of the ``ingest`` group, by name (first distribution wins)."""
    found: dict[str, metadata.EntryPoint] = {}
    for ep in installed_entry_points(ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def parse_specs(specs: Iterable[str]) -> tuple[list[str], set[str]]:
    """Split ``-p`` values into plugins to load and names to block.

    :param specs: names, dotted module paths, and ``no:NAME`` entries, in the user's order.
    :returns: the names to load (deduplicated, in order) and the blocked names.
    :raises PluginError: for an attempt to block an essential plugin or an empty name.
    """
    wanted: list[str] = []
    blocked: set[str] = set()
    for raw in specs:
        spec = raw.strip()
        if not spec or spec == "no:":
            raise PluginError(f"empty plugin name in {raw!r}")
        if spec.startswith("no:"):
            name = spec[3:]
            if name in ESSENTIAL_PLUGINS:
                raise PluginError(
                    f"plugin {name!r} is essential and cannot be disabled "
                    f"(essential: {', '.join(sorted(ESSENTIAL_PLUGINS))})"
                )
            blocked.add(name)
        elif spec not in wanted:
            wanted.append(spec)
    return wanted, blocked


def with_component_plugins(specs: Sequence[str], names: Iterable[str]) -> list[str]:
    """``specs`` plus the installed plugins that the settings name as components.

    Naming a component names its plugin: ``--executor dask``, ``--embed wordllama``,
    ``--extractor NAME``, a step of ``transforms`` or the scheme of a sink (``--sink
    csv:out.csv``) loads the installed plugin of that name as ``-p NAME`` would, while merely
    installing it changes nothing. Names that are built in, already named, blocked (``-p
    no:NAME``) or not installed are left to the session, which reports an unknown component
    with suggestions and the installed plugins that are not loaded.

    :param specs: ``-p`` values in order.
    :param names: component names from the settings (:meth:`SettingsStack.components`).
    :returns: the specs to load.
    """
    wanted, blocked = parse_specs(specs)
    installed = entry_points()
    extra = [
        name
        for name in dict.fromkeys(names)
        if name in installed
        and name not in DEFAULT_PLUGINS
        and name not in wanted
        and name not in blocked
    ]
    return [*specs, *extra]


def with_executor_plugin(specs: Sequence[str], executor: str) -> list[str]:
    """``specs`` plus the plugin of the executor the run names (see
    :func:`with_component_plugins`)."""
    return with_component_plugins(specs, [executor])


def _hook_arguments(function: Callable[..., Any]) -> list[str]:
    params = inspect.signature(function).parameters.values()
    return [
        p.name
        for p in params
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def _run_coroutine_function(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an ``async def`` hookimpl so pluggy sees its result, not a coroutine.

    pluggy calls implementations positionally, and ``firstresult`` or wrappers would
    otherwise treat the coroutine object itself as the result.
    """
    from ingest.bridge import run_sync

    @functools.wraps(function)
    def call(*args: Any) -> Any:
        return run_sync(function(*args))

    return call


class IngestPluginManager(pluggy.PluginManager):
    """pluggy's manager with ingest's rules: prefix discovery, clear errors, async impls."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        #: The specs a worker needs to rebuild this manager (``-p`` values incl. ``no:``).
        self.specs: list[str] = []
        #: The installed plugins (:func:`entry_points`) as :meth:`load_plugins` found them,
        #: for whoever needs them again in this run (a scan costs milliseconds).
        self.installed: dict[str, metadata.EntryPoint] | None = None

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(_HOOK_PREFIX):
            # As pytest does with `pytest_` functions: an unmarked `ingest_*` callable is a
            # hookimpl too, so that a misspelt hook name is reported instead of ignored.
            attr = getattr(plugin, name, None)
            if inspect.isroutine(attr):
                return {}
        return opts

    def get_canonical_name(self, plugin: Any) -> str:
        """The name of a plugin registered without one: a module's or class's own name, an
        object's ``module.Class`` (``-2``, ``-3``... for more objects of one class), never
        its memory address, which says nothing and changes on every run."""
        own = getattr(plugin, "__name__", None)
        if isinstance(own, str):
            return own
        kind = type(plugin)
        label = f"{kind.__module__}.{kind.__qualname__}"
        candidate, number = label, 1
        while (found := self.get_plugin(candidate)) is not None and found is not plugin:
            number += 1
            candidate = f"{label}-{number}"
        return candidate

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        """Register ``plugin`` after checking its hooks against the specs.

        :raises PluginError: naming the plugin, the hook and the bad argument.
        """
        label = name or self.get_canonical_name(plugin)
        self._check_hooks(plugin, label)
        registered = super().register(plugin, name)
        if registered is not None:
            self._bridge_async(plugin)
        return registered

    def _check_hooks(self, plugin: Any, label: str) -> None:
        known = [n for n in dir(self.hook) if n.startswith(_HOOK_PREFIX)]
        for attr in dir(plugin):
            if not attr.startswith(_HOOK_PREFIX) or self.parse_hookimpl_opts(plugin, attr) is None:
                continue
            function = getattr(plugin, attr)
            spec_caller = getattr(self.hook, attr, None)
            if spec_caller is None or spec_caller.spec is None:
                close = difflib.get_close_matches(attr, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise PluginError(f"plugin {label!r}: unknown hook {attr!r}{hint}")
            accepted = spec_caller.spec.argnames
            for argument in _hook_arguments(function):
                if argument not in accepted:
                    raise PluginError(
                        f"plugin {label!r}: hook {attr!r} has no argument {argument!r} "
                        f"(it takes: {', '.join(accepted)})"
                    )
            opts = self.parse_hookimpl_opts(plugin, attr) or {}
            is_wrapper = opts.get("wrapper") or opts.get("hookwrapper")
            if is_wrapper and not inspect.isgeneratorfunction(function):
                raise PluginError(
                    f"plugin {label!r}: hook {attr!r} is a wrapper but not a plain generator "
                    "function (async wrappers are not supported)"
                )

    def _bridge_async(self, plugin: Any) -> None:
        for caller in self.get_hookcallers(plugin) or ():
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and inspect.iscoroutinefunction(impl.function):
                    # pluggy marks the attribute Final; replacing the coroutine function
                    # with its synchronous bridge is the point of this method.
                    impl.function = _run_coroutine_function(impl.function)  # type: ignore[misc]

    # ----------------------------------------------------------------------------------------

    def load_plugins(
        self, specs: Sequence[str], *, installed: Mapping[str, str] | None = None
    ) -> None:
        """Load the built-ins and the named plugins, honouring ``no:NAME`` blocks.

        :param specs: ``-p`` values in order (names, dotted module paths, ``no:NAME``).
        :param installed: the installed plugins as another process found them (name to
            ``module:attribute``, from :meth:`installed_targets`), to load the same ones
            without scanning every installed distribution again; ``None``: scan.
        :raises PluginError: unknown plugin (with suggestions), import failure, bad hooks.
        """
        wanted, blocked = parse_specs(specs)
        self.specs = list(specs)
        for name in blocked:
            self.set_blocked(name)
        if installed is None:
            available = entry_points()
        else:
            available = {
                name: metadata.EntryPoint(name, target, ENTRY_POINT_GROUP)
                for name, target in installed.items()
            }
        self.installed = available
        for name in [*DEFAULT_PLUGINS, *wanted]:
            if self.is_blocked(name) or self.has_plugin(name):
                continue
            self._load_one(name, available)
        try:
            self.check_pending()
        except pluggy.PluginValidationError as exc:  # pragma: no cover - _check_hooks first
            raise PluginError(str(exc)) from exc

    def installed_targets(self) -> dict[str, str]:
        """The installed plugins :meth:`load_plugins` found, as name to ``module:attribute``."""
        return {name: ep.value for name, ep in (self.installed or {}).items()}

    def _load_one(self, name: str, available: dict[str, metadata.EntryPoint]) -> None:
        ep = available.get(name)
        if ep is not None:
            target = ep.value
            loader: Callable[[], Any] = ep.load
        else:
            # Not an entry point: a module path, dotted (pkg.plugin) or not (a module beside
            # the user's script, or on PYTHONPATH).
            target = name
            loader = functools.partial(importlib.import_module, name)
        try:
            plugin = loader()
        except ModuleNotFoundError as exc:
            if ep is None and "." not in name and exc.name == name:
                choices = sorted(available)
                close = difflib.get_close_matches(name, choices, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise PluginError(
                    f"unknown plugin {name!r}{hint} installed: {', '.join(choices) or 'none'} "
                    "(and no module of that name to import)"
                ) from None
            raise PluginError(import_failure(name, target, exc)) from exc
        except Exception as exc:
            raise PluginError(import_failure(name, target, exc)) from exc
        if self.is_registered(plugin):
            return  # the same module, already loaded under another name
        self.register(plugin, name)
        logger.debug("loaded plugin %s from %s", name, target)

    def not_loaded(self) -> list[str]:
        """Installed plugins (entry points) that this manager did not load, blocked ones
        marked ``(blocked)``: what an error about a missing component suggests."""
        names = []
        for name in sorted(entry_points()):
            if self.is_blocked(name):
                names.append(f"{name} (blocked)")
            elif not self.has_plugin(name):
                names.append(name)
        return names

    def collect_sections(self) -> dict[str, type[BaseModel]]:
        """Ask every plugin for its settings section (``ingest_register_settings``).

        :raises PluginError: when two plugins register the same section name.
        """
        sections: dict[str, type[BaseModel]] = {}

        def register(section: str, model: type[BaseModel]) -> None:
            if section in sections and sections[section] is not model:
                raise PluginError(f"settings section {section!r} is registered twice")
            sections[section] = model

        self.hook.ingest_register_settings(register=register)
        return sections

    def plugins_with_hook(self, hook: str) -> list[str]:
        """Names of the registered plugins that implement ``hook``."""
        caller = getattr(self.hook, hook)
        return sorted({impl.plugin_name for impl in caller.get_hookimpls()})

    def plugin_name_for_module(self, module_name: str) -> str | None:
        """The registered plugin whose code lives in ``module_name`` (for failure records)."""
        for name, plugin in self.list_name_plugin():
            owner = plugin.__name__ if inspect.ismodule(plugin) else type(plugin).__module__
            if owner == module_name:
                return name
        return None

    def enable_hook_tracing(self) -> None:
        """Log every hook call and its result (``--trace-hooks``, ``INGEST_TRACE_HOOKS=1``)."""

        def write(line: str) -> None:
            sys.stderr.write(f"[ingest hook] {line}")

        self.trace.root.setwriter(write)
        self.enable_tracing()


def build_manager(
    specs: Sequence[str] = (),
    *,
    trace: bool = False,
    installed: Mapping[str, str] | None = None,
) -> IngestPluginManager:
    """A plugin manager with the built-ins and ``specs`` loaded.

    Workers call this with the driver's :attr:`IngestPluginManager.specs` (and the installed
    plugins it found) to rebuild the same set of plugins.

    :param specs: ``-p`` values (names, dotted module paths, ``no:NAME``).
    :param trace: log every hook call to stderr.
    :param installed: see :meth:`IngestPluginManager.load_plugins`.
    :raises PluginError: see :meth:`IngestPluginManager.load_plugins`.
    """
    manager = IngestPluginManager()
    if trace:
        manager.enable_hook_tracing()
    manager.load_plugins(specs, installed=installed)
    return manager


def describe_plugins(manager: IngestPluginManager | None = None) -> list[PluginInfo]:
    """Every available plugin (installed entry points and loaded modules), for listings.

    A plugin that is not loaded is imported (not registered) to list its hooks; an import
    error is reported in :attr:`PluginInfo.error` instead of raised.
    """
    # pluggy lists blocked names with a None plugin: those are not loaded.
    loaded = {n: p for n, p in manager.list_name_plugin() if p is not None} if manager else {}
    infos: list[PluginInfo] = []
    seen: set[str] = set()
    for name, ep in sorted(entry_points().items()):
        seen.add(name)
        plugin = loaded.get(name)
        error = None
        if plugin is None:
            try:
                plugin = ep.load()
            except Exception as exc:  # listing must survive a broken plugin
                where = _raised_at(exc)
                error = f"{type(exc).__name__}: {exc}" + (f" (at {where})" if where else "")
        dist = ep.dist
        infos.append(
            PluginInfo(
                name=name,
                module=ep.value,
                distribution=dist.name if dist else None,
                version=dist.version if dist else None,
                loaded=name in loaded,
                builtin=name in DEFAULT_PLUGINS,
                hooks=_hooks_of(plugin) if plugin is not None else (),
                error=error,
            )
        )
    for name, plugin in sorted(loaded.items()):
        if name in seen or plugin is None:
            continue
        module = plugin.__name__ if inspect.ismodule(plugin) else type(plugin).__module__
        infos.append(PluginInfo(name, module, None, None, True, False, _hooks_of(plugin)))
    return infos


def import_failure(name: str, target: str, exc: BaseException) -> str:
    """What to say about a plugin that failed to import: the error and where it happened.

    :param name: the plugin's name.
    :param target: the module (or ``module:object``) it was loaded from.
    :param exc: what importing raised.
    :returns: ``plugin 'x' (pkg.x) failed to import: NameError: ... (at /p/pkg/x.py:3)``.
    """
    where = _raised_at(exc)
    at = f" (at {where})" if where else ""
    return f"plugin {name!r} ({target}) failed to import: {type(exc).__name__}: {exc}{at}"


def _raised_at(exc: BaseException) -> str | None:
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith(("<frozen", _IMPORTLIB, _OWN))
    ]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None


def _hooks_of(plugin: Any) -> tuple[str, ...]:
    return tuple(
        sorted(
            attr
            for attr in dir(plugin)
            if attr.startswith(_HOOK_PREFIX) and inspect.isroutine(getattr(plugin, attr, None))
        )
    )
