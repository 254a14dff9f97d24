"""A throwaway PostgreSQL server for tests and benchmarks: initdb, pg_ctl, a Unix socket.

The server programs come from the system (Debian's ``postgresql`` package puts them in
``/usr/lib/postgresql/VERSION/bin``, off ``PATH``). ``initdb`` and ``postgres`` refuse to run
as root, so under root (CI) the server runs as the ``postgres`` user the Debian package
creates, with its folder handed to that user. :func:`unavailable` says why a server cannot be
had here, for a skip.

The server listens only on a socket in its own temporary folder (no TCP port to collide
with another test run), trusts local connections, and asks a password of one role,
``ingest_pw``, for the tests of password handling.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

PASSWORD_ROLE = "ingest_pw"
PASSWORD = "s3cret-Horse-battery"
_SERVER_USER = "postgres"


def binaries() -> Path | None:
    """The folder of ``initdb``, ``pg_ctl`` and ``postgres``: on ``PATH``, else the newest
    Debian version; ``None`` when not installed."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


def unavailable() -> str | None:
    """Why no throwaway server can be started here, or ``None`` when one can."""
    if binaries() is None:
        return "PostgreSQL's server programs (initdb, pg_ctl) are not installed (apt: postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_SERVER_USER)
        except KeyError:
            return f"running as root, and there is no {_SERVER_USER!r} user to run the server as"
    try:
        import psycopg  # noqa: F401  # why: only whether it is installed
    except ImportError:
        return "psycopg is not installed (pip install 'ingest[postgres]')"
    return None


class Server:
    """One server in a temporary folder; :meth:`start` it, :meth:`destroy` it after.

    :param fsync: keep PostgreSQL's fsync on (the benchmark); tests turn it off, since they
        never cut the power.
    """

    def __init__(self, *, fsync: bool = False) -> None:
        bindir = binaries()
        assert bindir is not None, unavailable()
        self.bindir = bindir
        self.fsync = fsync
        # Under root the server's user must reach its folder: /tmp, not a TMPDIR of root's.
        where = "/tmp" if os.geteuid() == 0 and os.path.isdir("/tmp") else None
        self.folder = Path(tempfile.mkdtemp(prefix="ingest-pg-", dir=where))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam(_SERVER_USER)
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
                  "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=reject", "-N")  # fmt: skip
        (self.data / "pg_hba.conf").write_text(
            f"local all {PASSWORD_ROLE} scram-sha-256\nlocal all all trust\n", "utf-8"
        )

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bindir / program), *args],
            capture_output=True,
            text=True,
            cwd=self.folder,
            timeout=120,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
            **self._as,
        )
        assert done.returncode == 0, f"{program} failed: {done.stderr or done.stdout}"

    def start(self) -> None:
        """Start the server (waits until it accepts connections)."""
        options = f"-k {self.folder} -c listen_addresses='' -c max_connections=50"
        if not self.fsync:
            options += " -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                  "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends the sessions, ``immediate`` is a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop and start again; connections are cut (``fast`` terminates them)."""
        self.stop(mode)
        self.start()

    def url(self, database: str = "postgres", *, user: str = "postgres", **params: str) -> str:
        """A libpq URL for ``database`` over the socket, with ``params`` as its query."""
        query = "&".join(f"{key}={quote(value, safe='')}" for key, value in params.items())
        host = quote(str(self.folder), safe="")
        return f"postgresql://{user}@{host}/{database}" + (f"?{query}" if query else "")

    def execute(self, sql: str, *args: Any, database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement as the superuser (autocommit); its rows, if any."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            cursor = connection.execute(sql, args or None)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def add_password_role(self) -> None:
        """The role that must log in with :data:`PASSWORD` (idempotent)."""
        exists = self.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", PASSWORD_ROLE)
        if not exists:
            self.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN SUPERUSER PASSWORD '{PASSWORD}'")

    def destroy(self) -> None:
        """Stop the server (if it runs) and delete its folder."""
        with contextlib.suppress(AssertionError, subprocess.SubprocessError):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def running(*, fsync: bool = False) -> Iterator[Server]:
    """A started server, destroyed on exit."""
    server = Server(fsync=fsync)
    try:
        server.start()
        yield server
    finally:
        server.destroy()
