"""The ``ingest`` command. Thin: parse flags, call the library, map errors to exit codes.

Heavy modules are imported inside the commands so that ``ingest --version`` and a built-in
command start fast. Plugins add commands through ``ingest_register_commands``; they are
loaded only when a command ingest lacks, or the list of all commands, is asked for
(:class:`IngestGroup`).
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import click

from ingest import __version__
from ingest.errors import PluginError, UsageError, WriteError
from ingest.result import ExitCode

_common_options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option(
        "-p",
        "--plugin",
        "plugins",
        multiple=True,
        metavar="NAME",
        help="Load a plugin by entry-point name or dotted module path; no:NAME blocks one.",
    ),
    click.option(
        "-c", "--config", "config_file", metavar="FILE", help="Read settings from this file."
    ),
    click.option(
        "-o",
        "--override",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one setting by dotted key, e.g. -o chunk.size=500.",
    ),
]


def _with_common(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_common_options):
        function = option(function)
    return function


def _fail(message: str, code: ExitCode = ExitCode.USAGE_ERROR) -> None:
    click.echo(f"ERROR: {message}", err=True)
    sys.exit(int(code))


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """Map our errors to exit codes (tox-style one-liners); click's own exceptions pass."""
    try:
        yield
    except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        raise
    except UsageError as exc:
        _fail(str(exc))
    except WriteError as exc:
        _fail(str(exc), ExitCode.WRITE_ERROR)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception:
        click.echo("INTERNAL ERROR: ingest crashed; please report this with the trace:", err=True)
        click.echo(traceback.format_exc(), err=True)
        sys.exit(int(ExitCode.INTERNAL_ERROR))


def _guard(function: Callable[[], int]) -> None:
    """Run a command body, mapping our errors to exit codes."""
    with _mapped_errors():
        code = function()
    sys.exit(code)


# The commands plugins add, once per invocation, in the root context's ``meta``.
_PLUGIN_COMMANDS = "ingest.plugin_commands"


class _CommandCollector(click.Group):
    """The group ``ingest_register_commands`` fills: a name may be taken only once."""

    def __init__(self, builtin: Mapping[str, click.Command]) -> None:
        super().__init__("ingest")
        self._builtin = builtin

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if name is None:
            raise PluginError(f"a plugin adds a command without a name ({_origin(cmd)})")
        if name in self._builtin:
            raise PluginError(
                f"the plugin command {name!r} ({_origin(cmd)}) has the name of one of "
                "ingest's own commands; rename it"
            )
        if name in self.commands:
            raise PluginError(
                f"two plugins add the command {name!r}: {_origin(self.commands[name])} and "
                f"{_origin(cmd)}; block one of them with INGEST_PLUGINS=no:NAME"
            )
        super().add_command(cmd, name)


def _origin(command: click.Command) -> str:
    """Where a command is defined: the module of its function (the plugin's, as a rule)."""
    return getattr(command.callback, "__module__", None) or type(command).__module__


def _plugin_commands(
    ctx: click.Context, builtin: Mapping[str, click.Command]
) -> dict[str, click.Command]:
    """The commands of the plugins a run would load, asked once per invocation.

    :param ctx: the top-level command's context, where the answer is kept.
    :param builtin: ingest's own commands, whose names a plugin may not take.
    :returns: the plugins' commands by name.
    :raises PluginError: a plugin cannot be loaded, or two commands have the same name.
    :raises ConfigError: the configuration's ``plugins`` cannot be read.
    """
    if _PLUGIN_COMMANDS not in ctx.meta:
        from ingest.api import load_plugins
        from ingest.config import SettingsStack

        # The plugins a run would load without -p: the built-ins, the `plugins` setting of
        # the configuration file and INGEST_PLUGINS (`no:NAME` blocks one, as for a run).
        manager = load_plugins(SettingsStack())
        collector = _CommandCollector(builtin)
        manager.hook.ingest_register_commands(cli=collector)
        ctx.meta[_PLUGIN_COMMANDS] = dict(collector.commands)
    commands: dict[str, click.Command] = ctx.meta[_PLUGIN_COMMANDS]
    return commands


class IngestGroup(click.Group):
    """ingest's own commands, then those plugins add through ``ingest_register_commands``.

    Plugins are loaded only when a command that is not built in is asked for, or the list of
    all commands (``ingest --help``): ``ingest --version`` and ``ingest run`` start without
    them. A plugin command's :class:`~ingest.errors.UsageError` prints as one line and exits
    4, like a built-in command's.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        try:
            added = _plugin_commands(ctx, self.commands)
        except UsageError as exc:
            # The help must still show: the plugins' problem is reported, not fatal here.
            click.echo(f"WARNING: plugin commands are not listed: {exc}", err=True)
            added = {}
        except Exception:
            click.echo("WARNING: plugin commands are not listed: a plugin crashed:", err=True)
            click.echo(traceback.format_exc(), err=True)
            added = {}
        return sorted({*self.commands, *added})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            command = _plugin_commands(ctx, self.commands).get(cmd_name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        with _mapped_errors():
            return super().invoke(ctx)


@click.group(cls=IngestGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ingest")
def main() -> None:
    """Turn piles of PDFs into clean text, pages and chunks in a store."""


#: The flag of each setting ``ingest run`` sets, where it is not ``--`` and the key's last part.
RUN_FLAGS = {
    "collect.inputs": "PATHS",
    "collect.select": "-k",
    "sinks": "--sink",
    "run.maxfail": "--maxfail",
    "dask.ship_bytes": "--ship-bytes",
}


@main.command()
@click.argument("paths", nargs=-1)
@_with_common
@click.option("--extractor", metavar="NAME", help="Extractor plugin: pdfium, pypdf, pdfminer...")
@click.option(
    "--fallback", metavar="NAMES", help="Comma-separated extractors to try when one fails."
)
@click.option("--password", metavar="TEXT", help="Password for encrypted PDFs.")
@click.option(
    "--sink", "sinks", multiple=True, metavar="SCHEME:TARGET", help="jsonl:out.jsonl, sqlite:db."
)
@click.option(
    "--format",
    "text_format",
    type=click.Choice(["text", "markdown"]),
    help="Cut chunks from the plain text or from Markdown (headings, lists, tables).",
)
@click.option(
    "--embed", metavar="NAME", help="Give every chunk a vector from this embedder (wordllama)."
)
@click.option("-k", "select", metavar="EXPR", help="Only paths matching EXPR (and/or/not).")
@click.option("--collect-only", is_flag=True, help="List what would be ingested; parse nothing.")
@click.option("-x", "--exitfirst", is_flag=True, help="Stop at the first failure.")
@click.option("--maxfail", type=int, metavar="N", help="Stop after N failures.")
@click.option("--workers", type=int, metavar="N", help="Worker processes; 0 = in-process.")
@click.option("--executor", metavar="NAME", help="Execution backend: process, inprocess, dask.")
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Dask scheduler to run on, e.g. tcp://host:8786 (implies --executor dask).",
)
@click.option(
    "--ship-bytes",
    is_flag=True,
    default=None,
    help="Send files' bytes to the Dask workers, not paths (implies --executor dask).",
)
@click.option("--timeout", type=float, metavar="SECONDS", help="Per-document time limit (floor).")
@click.option("--max-memory", metavar="SIZE", help="Memory cap per worker, e.g. 2GiB.")
@click.option(
    "--progress",
    type=click.Choice(["auto", "bar", "log", "json", "none"]),
    help="How to show progress.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    help="Level of ingest's log (wins over INGEST_LOG_LEVEL, log_level, LOG_LEVEL, -v/-q).",
)
@click.option(
    "--tb",
    type=click.Choice(["auto", "long", "short", "line", "no"]),
    default="auto",
    show_default=True,
    help="How failures' tracebacks are shown (auto: the line; short with -v, long with -vv).",
)
@click.option("-v", "--verbose", count=True, help="More detail (repeatable).")
@click.option("-q", "--quiet", count=True, help="Less detail (repeatable).")
@click.option("--trace-hooks", is_flag=True, help="Log every hook call to stderr.")
@click.option("--force", is_flag=True, help="Reprocess documents the cache has as ingested.")
@click.option(
    "--lf",
    "--last-failed",
    "last_failed",
    is_flag=True,
    help="Reprocess only the documents that failed last time (all if none failed).",
)
@click.option("--cache-clear", is_flag=True, help="Empty the cache before the run.")
@click.option(
    "--prune",
    is_flag=True,
    default=None,
    help="Remove from the sinks the records of files under PATHS that no longer exist.",
)
def run(
    paths: tuple[str, ...],
    plugins: tuple[str, ...],
    config_file: str | None,
    overrides: tuple[str, ...],
    extractor: str | None,
    fallback: str | None,
    password: str | None,
    sinks: tuple[str, ...],
    text_format: str | None,
    embed: str | None,
    select: str | None,
    collect_only: bool,
    exitfirst: bool,
    maxfail: int | None,
    workers: int | None,
    executor: str | None,
    scheduler: str | None,
    ship_bytes: bool | None,
    timeout: float | None,
    max_memory: str | None,
    progress: str | None,
    log_level: str | None,
    tb: str,
    verbose: int,
    quiet: int,
    trace_hooks: bool,
    force: bool,
    last_failed: bool,
    cache_clear: bool,
    prune: bool | None,
) -> None:
    """Ingest PATHS (files, folders, globs) into the configured sinks."""
    cli: dict[str, Any] = {
        "collect.inputs": list(paths) or None,
        "collect.select": select,
        "extract.extractor": extractor,
        "extract.fallback": [n for n in fallback.split(",") if n] if fallback is not None else None,
        "extract.password": password,
        "sinks": list(sinks) or None,
        "format": text_format,
        "embed.embedder": embed,
        "run.maxfail": 1 if exitfirst else maxfail,
        "run.workers": workers,
        # A scheduler or shipped bytes only mean something to the dask executor.
        "run.executor": executor or ("dask" if scheduler or ship_bytes else None),
        "dask.scheduler": scheduler,
        "dask.ship_bytes": ship_bytes,
        "run.timeout": timeout,
        "run.max_memory": max_memory,
        "progress": progress,
        "log_level": log_level,
        "run.prune": prune,
    }

    def body() -> int:
        from ingest.api import prepare
        from ingest.log import setup_cli_logging

        setup_cli_logging(verbose - quiet)
        prepared = prepare(
            plugins=plugins,
            config_file=config_file,
            cli=cli,
            overrides=overrides,
            trace_hooks=trace_hooks,
            cli_flags=RUN_FLAGS,
        )
        session = prepared.session(
            collect_only=collect_only,
            verbosity=verbose - quiet,
            tb=tb,
            force=force,
            last_failed=last_failed,
            cache_clear=cache_clear,
        )
        return int(session.run().exit_code)

    _guard(body)


@main.command()
@_with_common
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(
    plugins: tuple[str, ...], config_file: str | None, overrides: tuple[str, ...], as_json: bool
) -> None:
    """List every available plugin: name, module, distribution, loaded, hooks."""

    def body() -> int:
        from ingest.api import load_plugins
        from ingest.config import SettingsStack
        from ingest.manager import describe_plugins

        stack = SettingsStack(
            config_file=config_file,
            cli={"plugins": list(plugins)},
            overrides=overrides,
            cli_flags={"plugins": "-p"},
        )
        infos = describe_plugins(load_plugins(stack))
        if as_json:
            click.echo(json.dumps([info_as_dict(i) for i in infos], indent=2))
            return 0
        for info in infos:
            state = "loaded" if info.loaded else "import failed" if info.error else "available"
            origin = f"{info.distribution} {info.version}" if info.distribution else "local"
            tag = " (built-in)" if info.builtin else ""
            click.echo(f"{info.name}{tag}: {info.module} [{origin}] {state}")
            if info.error:
                click.echo(f"    import error: {info.error}")
            elif info.hooks:
                click.echo(f"    hooks: {', '.join(info.hooks)}")
        return 0

    _guard(body)


def info_as_dict(info: Any) -> dict[str, Any]:
    """A plugin listing entry as JSON-ready data."""
    return {
        "name": info.name,
        "module": info.module,
        "distribution": info.distribution,
        "version": info.version,
        "loaded": info.loaded,
        "state": "loaded" if info.loaded else "import failed" if info.error else "available",
        "builtin": info.builtin,
        "hooks": list(info.hooks),
        "error": info.error,
    }


@main.command()
@_with_common
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def config(
    plugins: tuple[str, ...], config_file: str | None, overrides: tuple[str, ...], as_json: bool
) -> None:
    """Print the effective settings and where each value came from."""

    def body() -> int:
        from ingest.api import prepare
        from ingest.config import render_config

        prepared = prepare(plugins=plugins, config_file=config_file, overrides=overrides)
        click.echo(render_config(prepared.loaded, as_json=as_json), nl=False)
        return 0

    _guard(body)
