"""The ``ingest`` command. Thin: parse flags, call the library, map errors to exit codes.

Heavy modules are imported inside the commands so that ``ingest --help`` and
``ingest --version`` start fast.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

from ingest import __version__
from ingest.errors import UsageError

EXIT_INTERRUPTED = 2
EXIT_INTERNAL = 3
EXIT_USAGE = 4

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


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"ERROR: {message}", err=True)
    sys.exit(code)


def _guard(function: Callable[[], int]) -> None:
    """Run a command body, mapping our errors to exit codes (tox-style one-liners)."""
    try:
        code = function()
    except UsageError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception:
        click.echo("INTERNAL ERROR: ingest crashed; please report this with the trace:", err=True)
        click.echo(traceback.format_exc(), err=True)
        sys.exit(EXIT_INTERNAL)
    else:
        sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ingest")
def main() -> None:
    """Turn piles of PDFs into clean text, pages and chunks in a store."""


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
        "run.maxfail": 1 if exitfirst else maxfail,
        "run.workers": workers,
        # A scheduler or shipped bytes only mean something to the dask executor (issue #8).
        "run.executor": executor or ("dask" if scheduler or ship_bytes else None),
        "dask.scheduler": scheduler,
        "dask.ship_bytes": ship_bytes,
        "run.timeout": timeout,
        "run.max_memory": max_memory,
        "progress": progress,
        "run.prune": prune,
    }

    def body() -> int:
        from ingest.api import prepare
        from ingest.log import setup_cli_logging
        from ingest.session import Session

        setup_cli_logging(verbose - quiet)
        prepared = prepare(
            plugins=plugins,
            config_file=config_file,
            cli=cli,
            overrides=overrides,
            trace_hooks=trace_hooks,
        )
        session = Session(
            prepared.manager,
            prepared.loaded.settings,
            rootdir=prepared.loaded.rootdir,
            collect_only=collect_only,
            verbosity=verbose - quiet,
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
        from ingest.config import peek_plugins
        from ingest.manager import build_manager, describe_plugins

        specs = peek_plugins(
            config_file=config_file, cwd=None, environ=None, cli_plugins=list(plugins)
        )
        infos = describe_plugins(build_manager(specs))
        if as_json:
            click.echo(json.dumps([info_as_dict(i) for i in infos], indent=2))
            return 0
        for info in infos:
            state = "loaded" if info.loaded else "available"
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


@main.command()
@click.argument("database", metavar="STORE")
@click.argument("query")
@click.option("--limit", default=10, show_default=True, help="How many chunks to show.")
def search(database: str, query: str, limit: int) -> None:
    """Search the chunks of an SQLite sink's file (bm25 ranking) or of a postgresql://
    URL's schema, printing source and page."""

    def body() -> int:
        from pathlib import Path

        from ingest.search import format_hits, search

        if database.startswith(("postgresql://", "postgres://")):
            # A store named by its URL is the postgresql plugin's to search.
            from ingest_plugins.postgres.search import search as search_url

            hits = search_url(database, query, limit=limit)
        else:
            hits = search(Path(database), query, limit=limit)
        if not hits:
            click.echo(f"no match for {query!r}")
            return 1
        click.echo(format_hits(hits))
        return 0

    _guard(body)
