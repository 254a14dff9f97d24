"""Run the ``ingest`` command as a separate process, the way a user's shell does.

For what an in-process run cannot show: a process started without the right to bypass file
permissions (tests run as root in containers, and root reads a ``chmod 000`` folder), a
process with a limit on file size (``ulimit -f``), the processes a run starts, and what a
worker process prints to the terminal.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

INGEST = Path(sys.executable).with_name("ingest")
TESTS = Path(__file__).resolve().parent

#: Without these capabilities root obeys file permissions like any user.
_DROP = "-dac_override,-dac_read_search"


def unprivileged() -> list[str]:
    """The command prefix that makes a process obey file permissions (empty for a normal
    user; ``setpriv`` dropping root's overrides, when the tests run as root).

    :raises pytest.skip.Exception: as root without ``setpriv``.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    return [setpriv, "--bounding-set", _DROP]


def run_ingest(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    obey_permissions: bool = False,
    max_file_size: int | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """``ingest ARGS...`` in ``cwd``, with this process's environment plus ``env``.

    :param obey_permissions: run without root's right to ignore file permissions.
    :param max_file_size: the limit on the size of any file the run writes (``ulimit -f``),
        in bytes.
    """
    prefix = unprivileged() if obey_permissions else []
    limit: Callable[[], None] | None = None
    if max_file_size is not None:
        size = max_file_size

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    # Test plugins load by dotted path (plugins.chatty), from this folder, as in-process.
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [*prefix, str(INGEST), *map(os.fspath, args)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        check=False,
    )
