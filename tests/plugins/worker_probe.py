"""Reports how the worker process that extracts a document is set up.

With ``WORKER_PROBE_LOG`` set to a file, every extraction appends a JSON line: the pid, the
file's name, the asked range, the collector's thresholds and how many objects start-up froze.
Loaded by dotted path (``-p plugins.worker_probe``), so worker processes import it by name.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Generator

from ingest import Document, Source, hookimpl


@hookimpl(wrapper=True)
def ingest_extract(
    source: Source, pages: range | None
) -> Generator[None, Document | None, Document | None]:
    """Append the line, then extract as usual."""
    log = os.environ.get("WORKER_PROBE_LOG")
    if log:
        line = {
            "pid": os.getpid(),
            "name": source.path.name,
            "pages": [pages.start, pages.stop] if pages is not None else None,
            "gc_threshold": list(gc.get_threshold()),
            "gc_frozen": gc.get_freeze_count(),
        }
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
    return (yield)
