"""A plugin whose command takes a name that is already used.

The name comes from ``CLI_CLASH_NAME`` (``greet`` by default, the command of
``plugins.cli_greeting``; ``run`` takes one of ingest's own).
"""

from __future__ import annotations

import os

import click
from ingest import hookimpl


@hookimpl
def ingest_register_commands(cli: click.Group) -> None:
    """Add a command named by ``CLI_CLASH_NAME``."""

    @cli.command(os.environ.get("CLI_CLASH_NAME", "greet"))
    def clash() -> None:
        """Never reachable: its name is taken."""
        click.echo("the clashing command ran")
