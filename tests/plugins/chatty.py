"""Logs as a parser library does, and through ingest's own log, for the logging tests.

Loaded by dotted path (``-p plugins.chatty``), so worker processes import it by name.

* At session start it logs ``chatty says LEVEL`` at every level on ``ingest.chatty``: which
  of those lines show tells the level in effect.
* As the transform step ``plugins.chatty`` it logs on ``chattylib.parser`` (a "library"):
  one record naming the file, and ``Could not get FontBBox`` three times; a file with
  ``fail`` in its name then fails with ``ValueError: chatty gave up``.
"""

from __future__ import annotations

import logging

from ingest import Document, Session, hookimpl

NAME = "plugins.chatty"

library = logging.getLogger("chattylib.parser")
own = logging.getLogger("ingest.chatty")


@hookimpl
def ingest_session_start(session: Session) -> None:
    """Say something at every level."""
    for level in ("DEBUG", "INFO", "WARNING", "ERROR"):
        own.log(logging.getLevelName(level), "chatty says %s", level)


@hookimpl
def ingest_transform(document: Document, step: str) -> None:
    """Log like a noisy parser; fail on request."""
    if step != NAME:
        return
    library.warning("fontTools is required to fully parse %s", document.source.path.name)
    for _ in range(3):
        library.warning("Could not get FontBBox")
    if "fail" in document.source.path.stem:
        raise ValueError("chatty gave up")
