"""A third party's plugin that adds a command: ``ingest greet NAME [--shout] [--times N]``.

Loaded by dotted path (``INGEST_PLUGINS=plugins.cli_greeting``), as an installed plugin
would be by its entry-point name. ``greet`` exercises what a plugin command can do: print,
choose its exit code, fail with a one-line usage error, or crash.
"""

from __future__ import annotations

import sys

import click
from ingest import ExitCode, UsageError, hookimpl


@hookimpl
def ingest_register_commands(cli: click.Group) -> None:
    """Add ``ingest greet``."""

    @cli.command()
    @click.argument("name")
    @click.option("--shout", is_flag=True, help="Greet in capitals.")
    @click.option("--times", type=int, default=1, show_default=True, help="How many times.")
    def greet(name: str, shout: bool, times: int) -> None:
        """Greet NAME (a test plugin's command)."""
        if times < 0:
            raise UsageError(f"--times must be 0 or more, not {times}")
        if name == "crash":
            raise RuntimeError("the greeting plugin crashed on purpose")
        for _ in range(times):
            click.echo(f"hello, {name.upper() if shout else name}")
        if times == 0:
            sys.exit(int(ExitCode.NO_INPUT))
