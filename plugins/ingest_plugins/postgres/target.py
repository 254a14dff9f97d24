"""Where a ``postgresql://`` sink or search goes: the URL, its schema, and connecting to it.

A sink spec is ``scheme:target``, and ``postgresql://user@host/db`` is one already: the scheme
is ``postgresql`` and the target ``//user@host/db``, so the URL is the scheme and the target
joined again. Everything libpq understands passes through to it (``host=/run/postgresql`` for
a Unix socket, ``sslmode``, ``connect_timeout``...); ingest's own query parameters are taken
out first, since libpq refuses parameters it does not know:

* ``schema``: the PostgreSQL schema of the tables (default ``ingest``);
* ``retry``: seconds a step may spend reconnecting after the server went away (default 30).

The password comes from the URL, ``PGPASSWORD`` or ``~/.pgpass`` (libpq reads the last two
itself). It is never shown: :func:`ingest.mask_secrets` replaces it in every URL ingest
prints, and libpq's own messages name the user and host, never the password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ingest import UsageError, mask_secrets

if TYPE_CHECKING:
    import psycopg

__all__ = ["DEFAULT_RETRY_S", "DEFAULT_SCHEMA", "SCHEMES", "Target", "is_url"]

#: The schemes libpq accepts for a connection URL.
SCHEMES = ("postgresql", "postgres")
DEFAULT_SCHEMA = "ingest"
DEFAULT_RETRY_S = 30.0
#: Seconds a connection attempt may take, unless the URL says ``connect_timeout``.
DEFAULT_CONNECT_TIMEOUT_S = 10
MASKED = "**********"
# A schema is created and referred to by name; plain identifiers keep it typeable in psql
# without quotes, and 63 bytes is PostgreSQL's limit for a name.
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_OWN_PARAMS = frozenset({"schema", "retry"})


def is_url(text: str) -> bool:
    """Whether ``text`` is a PostgreSQL connection URL (``postgresql://…``, ``postgres://…``)."""
    scheme, sep, rest = text.partition(":")
    return bool(sep) and scheme.lower() in SCHEMES and rest.startswith("//")


@final
@dataclass(frozen=True, slots=True)
class Target:
    """A parsed ``postgresql://`` URL.

    :param conninfo: the URL libpq gets: ingest's own parameters taken out.
    :param schema: the schema of the tables.
    :param retry_s: seconds to keep reconnecting after the server went away mid-run.
    :param shown: the URL as given, its password masked: for messages.
    :param password: the password written in the URL, if any (to scrub it from messages).
    """

    conninfo: str
    schema: str
    retry_s: float
    shown: str
    password: str | None

    @classmethod
    def parse(cls, url: str) -> Target:
        """Read a ``postgresql://`` URL.

        :raises UsageError: naming the URL (password masked) and the part that is wrong.
        """
        shown = mask_secrets(url)
        if not is_url(url):
            raise UsageError(
                f"{shown!r} is not a PostgreSQL URL: write postgresql://USER@HOST/DATABASE"
            )
        try:
            parts = urlsplit(url)
            query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False)
            password = parts.password
        except ValueError as exc:
            raise UsageError(f"postgresql URL {shown!r}: {exc}") from None
        own = {key: value for key, value in query if key in _OWN_PARAMS}
        schema = own.get("schema", DEFAULT_SCHEMA)
        if not _SCHEMA.fullmatch(schema):
            raise UsageError(
                f"postgresql URL {shown!r}: schema {schema!r} is not a plain name (lower-case "
                "letters, digits and '_', not starting with a digit, at most 63)"
            )
        try:
            retry_s = float(own.get("retry", DEFAULT_RETRY_S))
        except ValueError:
            retry_s = -1.0
        if not 0 <= retry_s < float("inf"):
            raise UsageError(
                f"postgresql URL {shown!r}: retry={own['retry']!r} is not a number of seconds"
            )
        rest = [(key, value) for key, value in query if key not in _OWN_PARAMS]
        if not any(key == "connect_timeout" for key, _ in rest):
            rest.append(("connect_timeout", str(DEFAULT_CONNECT_TIMEOUT_S)))
        # The scheme is written as libpq wants it; the rest of the URL is kept byte for byte.
        conninfo = urlunsplit(
            ("postgresql", parts.netloc, parts.path, urlencode(rest, quote_via=quote), "")
        )
        target = cls(conninfo, schema, retry_s, shown, password or None)
        psycopg = import_psycopg(f"postgresql URL {shown!r}")
        try:
            # libpq's own parser: a misspelt parameter fails here, not as a connection error.
            psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.Error as exc:
            raise UsageError(f"postgresql URL {shown!r}: {target.scrub(str(exc))}") from None
        return target

    def scrub(self, message: str) -> str:
        """``message`` on one line, with every URL's password masked, and the password of
        this URL too wherever it appears."""
        message = " ".join(mask_secrets(message).split())
        if self.password and len(self.password) > 2:
            message = message.replace(self.password, MASKED)
        return message

    def connect(self, what: str, **options: Any) -> psycopg.Connection[Any]:
        """Open a connection, or fail with one line that names the server.

        :param what: how messages start: ``postgresql sink 'postgresql://u@h/db'``.
        :param options: passed to :func:`psycopg.connect` (``autocommit``...).
        :raises UsageError: for a missing ``psycopg``, a server that cannot be reached, a
            refused login or a missing database.
        """
        psycopg = import_psycopg(what)
        try:
            return psycopg.connect(self.conninfo, application_name="ingest", **options)
        except psycopg.Error as exc:
            raise UsageError(f"{what}: cannot connect: {self.scrub(_reason(exc))}") from None


def import_psycopg(what: str) -> Any:
    """The ``psycopg`` module, or a UsageError saying how to install it."""
    try:
        import psycopg
    except ImportError:
        raise UsageError(
            f"{what} needs psycopg 3, which is not installed: pip install 'ingest[postgres]'"
        ) from None
    return psycopg


def _reason(exc: BaseException) -> str:
    """libpq's message without psycopg's ``connection failed:`` preamble."""
    text = str(exc).strip()
    for prefix in ("connection failed: ",):
        text = text.removeprefix(prefix)
    return text or type(exc).__name__
