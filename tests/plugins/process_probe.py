"""Reports how the worker process that extracts a document was started (worker template tests).

With ``PROCESS_PROBE_LOG`` set to a file, every extraction appends a JSON line: the worker's
pid, its parent and grandparent, its session and process group, what its stdin is, the
parent-death signal it asked for, its SIGINT handler, the log handlers it kept, and whether
pypdf is imported. It also logs one warning per document (``process probe: NAME``), which
the driver must show once. Loaded by dotted path (``-p plugins.process_probe``).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Generator
from pathlib import Path

from ingest import Document, Source, hookimpl

_PR_GET_PDEATHSIG = 2


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _death_signal() -> int:
    value = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(_PR_GET_PDEATHSIG, ctypes.byref(value), 0, 0, 0)
    return value.value


@hookimpl(wrapper=True)
def ingest_extract(source: Source) -> Generator[None, Document | None, Document | None]:
    """Append the line and log the warning, then extract as usual."""
    log = os.environ.get("PROCESS_PROBE_LOG")
    if log:
        parent = os.getppid()
        line = {
            "pid": os.getpid(),
            "name": source.path.name,
            "parent": parent,
            "grandparent": _parent_of(parent),
            "parent_sid": os.getsid(parent),
            "sid": os.getsid(0),
            "pgid": os.getpgid(0),
            "stdin": os.readlink("/proc/self/fd/0"),
            "death_signal": _death_signal(),
            "sigint_default": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
            "ingest_handlers": len(logging.getLogger("ingest").handlers),
            "root_handlers": [type(h).__name__ for h in logging.getLogger().handlers],
            "pypdf": "pypdf" in sys.modules,
            "cmdline": Path("/proc/self/cmdline").read_bytes().decode(errors="replace"),
        }
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
    logging.getLogger("ingest.probe").warning("process probe: %s", source.path.name)
    return (yield)
