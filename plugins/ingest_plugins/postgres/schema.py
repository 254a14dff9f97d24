"""The tables of the ``postgresql`` sink, made on first open, and the state row it keeps.

All of them live in one PostgreSQL schema (``ingest`` unless the URL says ``?schema=``):

* ``documents``: one row per document, its metadata as columns and as ``jsonb``;
* ``pages``: primary key ``(doc_id, number)``;
* ``chunks``: primary key ``chunk_id``, with ``embedding real[]`` and ``embedding_model`` for
  the runs that embed, and ``tsv``, a stored generated ``tsvector`` of the text under the
  schema's text search configuration ``ingest_text``, with a GIN index;
* ``ingest_state``: one row, ``store`` (a random id made with the row), ``writes`` (steps
  taken), ``writer`` (who took the last step: see :mod:`.sink`), and ``changes`` and
  ``expected`` (see below).

``ingest_text`` is English stemming, with ``unaccent`` in front of it when the server has the
extension and the user may create it (``cafe`` then finds ``café``); without it, plain English.

Statement triggers on the three record tables add one to ``changes`` on every insert,
update, delete and truncate, whoever runs it; each step of the sink ends by setting
``expected`` to ``changes``. A difference means rows were changed outside ingest (a
``DELETE`` in psql), and the sink takes a new ``store`` id, so the cache writes every document
again. A dropped table, schema or database has no such row, or another one: the same. Not
detected: a change made with the triggers disabled, or to ``ingest_state`` itself.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from ingest import UsageError

if TYPE_CHECKING:
    import psycopg

__all__ = ["SCHEMA_VERSION", "TABLES", "TS_CONFIG", "prepare", "q"]

logger = logging.getLogger("ingest.postgresql")

#: Kept in ``ingest_state.schema_version``; a schema made by a newer ingest is refused.
SCHEMA_VERSION = 1
TS_CONFIG = "ingest_text"
TABLES = ("documents", "pages", "chunks")
_TRIGGER = "ingest_counted"


def q(schema: str) -> str:
    """The schema as a quoted identifier (its name is checked to be plain when parsed)."""
    return f'"{schema}"'


def _tables(schema: str) -> list[str]:
    s = q(schema)
    return [
        f"""CREATE TABLE IF NOT EXISTS {s}.documents (
            doc_id text PRIMARY KEY,
            source text NOT NULL,
            content_id text NOT NULL,
            size bigint NOT NULL,
            media_type text NOT NULL,
            title text, author text, subject text, creator text, producer text,
            created text, modified text,
            page_count integer NOT NULL,
            encrypted boolean NOT NULL,
            metadata jsonb NOT NULL,
            chunk_count integer NOT NULL,
            ingested_at timestamptz NOT NULL DEFAULT now()
        )""",
        f"""CREATE TABLE IF NOT EXISTS {s}.pages (
            doc_id text NOT NULL REFERENCES {s}.documents ON DELETE CASCADE,
            number integer NOT NULL,
            text text NOT NULL,
            extractor text NOT NULL,
            needs_ocr boolean NOT NULL,
            provenance jsonb NOT NULL,
            PRIMARY KEY (doc_id, number)
        )""",
        f"""CREATE TABLE IF NOT EXISTS {s}.chunks (
            chunk_id text PRIMARY KEY,
            doc_id text NOT NULL REFERENCES {s}.documents ON DELETE CASCADE,
            idx integer NOT NULL,
            text text NOT NULL,
            page_start integer NOT NULL,
            page_end integer NOT NULL,
            char_start integer NOT NULL,
            char_end integer NOT NULL,
            embedding real[],
            embedding_model text,
            tsv tsvector GENERATED ALWAYS AS
                (to_tsvector('{s}.{TS_CONFIG}'::regconfig, text)) STORED
        )""",
        f"CREATE INDEX IF NOT EXISTS chunks_doc_id ON {s}.chunks (doc_id, idx)",
        f"CREATE INDEX IF NOT EXISTS chunks_tsv ON {s}.chunks USING gin (tsv)",
        f"""CREATE TABLE IF NOT EXISTS {s}.ingest_state (
            id integer PRIMARY KEY CHECK (id = 1),
            store text NOT NULL,
            writes bigint NOT NULL,
            changes bigint NOT NULL,
            expected bigint NOT NULL,
            schema_version integer NOT NULL,
            writer text
        )""",
        f"""CREATE OR REPLACE FUNCTION {s}.ingest_count_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE {s}.ingest_state SET changes = changes + 1;
                RETURN NULL;
            END
            $$""",
    ]


def prepare(
    connection: psycopg.Connection[Any], schema: str, what: str
) -> tuple[str, int, str | None]:
    """Make what is missing of the schema, and read (or start) its state, in one transaction.

    Two runs opening the same new schema at once would race on ``CREATE ... IF NOT EXISTS``
    (PostgreSQL may then fail one with a duplicate key in its catalog), so an advisory lock
    named after the schema makes them take turns.

    :param connection: an open connection, not in a transaction.
    :param schema: the schema's name.
    :param what: how messages start (``postgresql sink 'postgresql://...'``).
    :returns: ``(store, writes, writer)`` as the state row has them now.
    :raises UsageError: for a schema made by a newer ingest.
    """
    s = q(schema)
    with connection.transaction():
        connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"ingest:{schema}",)
        )
        present = _present_tables(connection, schema)
        made = False
        if present != {*TABLES, "ingest_state"} or not _has_triggers(connection, schema):
            _ensure_ts_config(connection, schema)
            for statement in _tables(schema):
                connection.execute(statement)
            for table in TABLES:
                if not _has_trigger(connection, schema, table):
                    connection.execute(
                        f"CREATE TRIGGER {_TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR "
                        f"TRUNCATE ON {s}.{table} FOR EACH STATEMENT "
                        f"EXECUTE FUNCTION {s}.ingest_count_change()"
                    )
            # Records may have changed while a table or a trigger was missing.
            made = "ingest_state" in present
        row = connection.execute(
            "SELECT store, writes, changes, expected, schema_version, writer "
            f"FROM {s}.ingest_state FOR UPDATE"
        ).fetchone()
        if row is not None and row[4] > SCHEMA_VERSION:
            raise UsageError(
                f"{what}: schema {schema!r} was made by a newer ingest (version {row[4]}, "
                f"this one writes {SCHEMA_VERSION}); upgrade ingest or pick another ?schema="
            )
        if row is not None and not made and row[2] == row[3]:
            return str(row[0]), int(row[1]), row[5]
        if row is not None:
            logger.info(
                "%s: records were changed outside ingest since its last step; it counts as "
                "a new store",
                what,
            )
        return new_store(connection, schema), 0, None


def new_store(connection: psycopg.Connection[Any], schema: str) -> str:
    """Give the schema a new store id with no writes (in the caller's transaction)."""
    store = uuid.uuid4().hex
    s = q(schema)
    connection.execute(f"DELETE FROM {s}.ingest_state")
    connection.execute(
        f"INSERT INTO {s}.ingest_state VALUES (1, %s, 0, 0, 0, %s, NULL)",
        (store, SCHEMA_VERSION),
    )
    return store


def _present_tables(connection: psycopg.Connection[Any], schema: str) -> set[str]:
    rows = connection.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
    ).fetchall()
    return {str(name) for (name,) in rows}


def _has_trigger(connection: psycopg.Connection[Any], schema: str, table: str) -> bool:
    return (
        connection.execute(
            "SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND t.tgname = %s",
            (schema, table, _TRIGGER),
        ).fetchone()
        is not None
    )


def _has_triggers(connection: psycopg.Connection[Any], schema: str) -> bool:
    return all(_has_trigger(connection, schema, table) for table in TABLES)


def _ensure_ts_config(connection: psycopg.Connection[Any], schema: str) -> None:
    """The schema's text search configuration: English stems, accents folded when the
    ``unaccent`` extension can be had."""
    s = q(schema)
    connection.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
    exists = connection.execute(
        "SELECT 1 FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace "
        "WHERE n.nspname = %s AND c.cfgname = %s",
        (schema, TS_CONFIG),
    ).fetchone()
    if exists:
        return
    connection.execute(
        f"CREATE TEXT SEARCH CONFIGURATION {s}.{TS_CONFIG} (COPY = pg_catalog.english)"
    )
    unaccent = _unaccent(connection, schema)
    if unaccent is None:
        logger.info(
            "postgresql sink: the unaccent extension is not available to this user; search "
            "in schema %s matches accented words only as written",
            schema,
        )
        return
    connection.execute(
        f"ALTER TEXT SEARCH CONFIGURATION {s}.{TS_CONFIG} "
        f"ALTER MAPPING FOR hword, hword_part, word WITH {unaccent}, english_stem"
    )


def _unaccent(connection: psycopg.Connection[Any], schema: str) -> str | None:
    """The qualified name of the ``unaccent`` dictionary, installing the extension into
    ``schema`` when the database lacks it; ``None`` when it cannot be had."""
    import psycopg

    found = connection.execute(
        "SELECT n.nspname FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace "
        "WHERE d.dictname = 'unaccent'"
    ).fetchone()
    if found is None:
        try:
            # A savepoint: a server without the extension, or a user who may not create it,
            # must not abort the transaction that makes the tables.
            with connection.transaction():
                connection.execute(f"CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA {q(schema)}")
        except psycopg.Error:
            return None
        found = (schema,)
    return f"{q(str(found[0]))}.unaccent"
