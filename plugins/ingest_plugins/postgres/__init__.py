"""The ``postgresql`` sink: documents, pages and chunks in a PostgreSQL schema, with search.

``--sink postgresql://USER@HOST/DATABASE`` (any libpq URL; ``postgres://`` too) writes to the
schema ``ingest`` of that database, or the one ``?schema=NAME`` names, creating its tables on
first use (:mod:`.schema`); ``ingest search postgresql://... QUERY`` searches it
(:mod:`.search`). Needs the ``postgres`` extra (psycopg 3): ``pip install 'ingest[postgres]'``.

The sink keeps the contract of the SQLite sink: each step replaces the records of its
documents and deletes the documents it is told to in one transaction, and it reports which
store the schema is and how many steps it took (:mod:`.sink`). Passwords are read from the
URL, ``PGPASSWORD`` or ``~/.pgpass`` and never shown (:mod:`.target`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ingest import hookimpl

from ingest_plugins.postgres.target import SCHEMES, Target, is_url

if TYPE_CHECKING:
    from ingest import Settings

    from ingest_plugins.postgres.sink import PostgresSink

__all__ = ["NAME", "SCHEMES", "Target", "ingest_sink_open", "is_url", "open_sink"]

NAME = "postgresql"


@hookimpl
def ingest_sink_open(
    scheme: str, target: str, settings: Settings, rootdir: Path
) -> PostgresSink | None:
    """Open the sink named by ``--sink postgresql://...``; ``None`` for other schemes.

    The spec splits at its first ``:``, so the plugin gets ``scheme="postgresql"`` and
    ``target="//user@host/db"``, and joins them again into the URL.

    :raises UsageError: one line, password masked, when the URL is malformed, psycopg is
        missing, or the database cannot be reached, logged into, found or written.
    """
    if scheme not in SCHEMES:
        return None
    # The run's cache folder names the writer, as the cache is what trusts the sink.
    cache_folder = rootdir / Path(settings.cache.dir).expanduser()
    return open_sink(f"{scheme}:{target}", cache_folder=cache_folder)


def open_sink(url: str, *, cache_folder: Path | None = None) -> PostgresSink:
    """Open a ``postgresql://`` URL as a sink (what ``--sink URL`` does).

    :param url: the URL.
    :param cache_folder: the cache folder of the run that writes (default
        ``.ingest_cache`` in the current directory): two sinks with the same folder are one
        writer.
    :raises UsageError: as :func:`ingest_sink_open`.
    """
    from ingest_plugins.postgres.sink import PostgresSink, writer_id

    folder = cache_folder if cache_folder is not None else Path(".ingest_cache")
    return PostgresSink(Target.parse(url), writer_id(folder))
