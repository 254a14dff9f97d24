"""The ``text`` sink: each document as a plain-text file (``--sink text:FOLDER``).

One ``<doc_id>.txt`` per document in ``FOLDER`` (relative to the root directory; empty:
``ingest-text``), its pages separated by form feeds, the way this plugin reads plain text:
what it writes, it reads back.

It keeps the contract of ingest's sinks, so that the folder mirrors the corpus:

* **Replace.** A document's file is written under a temporary name, fsynced and renamed
  over the old one: a reader sees one version or the other.
* **Delete.** Its ``ingest_sink`` takes ``deleted``, and removes those documents' files. A
  folder of files is atomic per file, not per step: while a step replaces a changed file's
  document, a reader of the folder may briefly see the new file beside the old one.
* **State.** ``.ingest-text-sink.json`` keeps a random store id, the count of steps, and the
  size and modification time of every file the sink wrote. On open, a file missing or
  changed since means documents were lost behind its back: the sink takes a new store id
  (``ingest_sink_state``), and ingest writes every document to it again.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, final

from ingest import hookimpl

if TYPE_CHECKING:
    from ingest import Document

#: The sink's scheme: the plugin's name, as ``--sink text:FOLDER`` says.
SCHEME = "text"
DEFAULT_FOLDER = "ingest-text"
STATE_FILE = ".ingest-text-sink.json"
PAGE_BREAK = "\f"

# Document ids are hashes; anything else must not choose where a file goes.
_SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


@hookimpl
def ingest_sink_open(scheme: str, target: str, rootdir: Path) -> TextFolderSink | None:
    """Open ``--sink text:FOLDER``; ``None`` for other schemes."""
    if scheme != SCHEME:
        return None
    folder = Path(target or DEFAULT_FOLDER).expanduser()
    return TextFolderSink(folder if folder.is_absolute() else rootdir / folder)


@final
class TextFolderSink:
    """A folder of ``<doc_id>.txt`` files; registered as a plugin for the rest of the run.

    :param folder: the folder (created with its parents).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._state_path = folder / STATE_FILE
        self.store, self.writes, self.files = self._load()

    @hookimpl
    def ingest_sink(self, batch: Sequence[Document], deleted: Sequence[str]) -> None:
        """Write each document's file (replacing it) and remove the deleted ones' files."""
        changed = False
        for document in batch:
            path = self._path_of(document.doc_id)
            text = PAGE_BREAK.join(page.text for page in document.pages)
            temporary = path.with_name(path.name + ".tmp")
            with temporary.open("w", encoding="utf-8", errors="surrogateescape") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
            self.files[document.doc_id] = _stamp(path)
            changed = True
        for doc_id in deleted:
            if doc_id in self.files:
                self._path_of(doc_id).unlink(missing_ok=True)
                del self.files[doc_id]
                changed = True
        if changed:
            self.writes += 1
            self._save()

    @hookimpl
    def ingest_sink_state(self) -> tuple[str, int]:
        """Which store this folder is, and how many steps it took."""
        return self.store, self.writes

    def _path_of(self, doc_id: str) -> Path:
        if not _SAFE_ID.fullmatch(doc_id):
            raise ValueError(f"text sink {self.folder}: {doc_id!r} cannot name a file")
        return self.folder / f"{doc_id}.txt"

    def _load(self) -> tuple[str, int, dict[str, list[int] | None]]:
        """The saved state, if every file it lists is as the sink left it; else a new store
        that holds whatever files are there."""
        try:
            state = json.loads(self._state_path.read_text("utf-8"))
            store, writes, files = str(state["store"]), int(state["writes"]), state["files"]
            if all(_stamp(self._path_of(d)) == stamp for d, stamp in files.items()):
                return store, writes, files
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no state, or not one this sink wrote: start over
        found = {path.stem: _stamp(path) for path in self.folder.glob("*.txt")}
        return uuid.uuid4().hex, 0, found

    def _save(self) -> None:
        temporary = self._state_path.with_name(STATE_FILE + ".tmp")
        state = {"store": self.store, "writes": self.writes, "files": self.files}
        temporary.write_text(json.dumps(state), encoding="utf-8")
        os.replace(temporary, self._state_path)


def _stamp(path: Path) -> list[int] | None:
    """A file's size and modification time, or ``None`` when it is missing."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return [info.st_size, info.st_mtime_ns]
