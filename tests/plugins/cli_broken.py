"""A plugin whose ``ingest_register_commands`` crashes."""

from __future__ import annotations

import click
from ingest import hookimpl


@hookimpl
def ingest_register_commands(cli: click.Group) -> None:
    """Fail before adding anything."""
    raise RuntimeError("the broken plugin cannot add its commands")
