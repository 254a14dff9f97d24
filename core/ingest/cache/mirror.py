"""What a rerun must delete so that the sinks mirror the corpus: the store plan.

The cache records, per sink, which documents it holds and which file each one's records name
(:mod:`ingest.cache`). After collection, two kinds of stored documents are out of date:

* **replaced**: the file its records name was collected again with other bytes (edited, or
  another file copied over it). Its old document goes in the same sink step as the new one
  (``ingest_sink(batch=[new], deleted=[old])``), so a reader sees one or the other. If the
  new bytes were stored already (they are also another file's) the old document goes in a
  deletion-only step at the end of the run; if they fail to extract, the old records stay
  until the file is ingested or removed (the failure is reported and fails the run).
* **gone**: the file lies under the run's inputs (and its ``-k`` selection) and no longer
  exists. Counted in the summary, and deleted with ``--prune`` (``run.prune``).

A stored document whose bytes are still somewhere under the inputs is neither: the file that
now has them is processed and the document replaced, named after that file.

Identical bytes at two paths are one document (its id is the hash of the bytes), stored once
per sink under the first path in collection order (inputs in the order given, each folder
walked in sorted order); the other paths are skipped as "same content as ...". Deleting the
first path re-writes the document under the next one, deleting all of them makes it gone.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, final

from ingest.model import is_url

if TYPE_CHECKING:
    from ingest.model import Document

__all__ = ["InputScope", "StorePlan"]

_GLOB_CHARS = frozenset("*?[")


@final
class InputScope:
    """Which files a run's inputs cover, spelled as the collector spells them for ``-k``.

    A folder covers every file below it, a file itself, a glob what it matches (``**``
    included; ``*`` matches no ``/`` and no leading dot, as :mod:`glob`). Inputs that are
    none of these (a plugin's own kind of input) cover nothing, so nothing is ever pruned
    for them.

    :param inputs: the run's inputs, as the user wrote them.
    :param select: the compiled ``-k`` expression.
    """

    def __init__(self, inputs: Sequence[str], select: Callable[[str], bool]) -> None:
        self._select = select
        self._folders: list[tuple[str, str]] = []
        self._files: dict[str, str] = {}
        self._globs: list[tuple[str, list[str]]] = []
        self._urls: list[tuple[str, list[str] | None]] = []
        for raw in inputs:
            if is_url(raw):
                # A URL covers the keys below it, or those its pattern matches.
                pattern = raw.split("/") if _GLOB_CHARS.intersection(raw) else None
                self._urls.append((raw, pattern))
            elif os.path.isdir(raw):
                self._folders.append((os.path.abspath(raw), raw))
            elif _GLOB_CHARS.intersection(raw) and not os.path.exists(raw):
                self._globs.append((raw, _parts(os.path.normpath(raw))))
            else:
                self._files[os.path.abspath(raw)] = raw

    def covers(self, path: str) -> bool:
        """Whether the absolute ``path`` (or URL) is one the inputs would collect, ``-k``
        applied."""
        if is_url(path):
            return any(
                _url_under(raw, pattern, path) for raw, pattern in self._urls
            ) and self._select(path)
        raw = self._files.get(path)
        if raw is not None and self._select(str(Path(raw))):
            return True
        for absolute, raw in self._folders:
            relative = os.path.relpath(path, absolute)
            outside = relative in (os.curdir, os.pardir) or relative.startswith(os.pardir + os.sep)
            if not outside and self._select(str(Path(raw) / relative)):
                return True
        for raw, pattern in self._globs:
            spelled = path if os.path.isabs(raw) else os.path.relpath(path)
            if _glob_match(pattern, _parts(os.path.normpath(spelled))) and self._select(spelled):
                return True
        return False


def _url_under(raw: str, pattern: list[str] | None, url: str) -> bool:
    if pattern is not None:
        return _glob_match(pattern, url.split("/"))
    return url == raw or url.startswith(raw.rstrip("/") + "/")


def _parts(path: str) -> list[str]:
    return [part for part in path.split(os.sep) if part] or [os.sep]


def _glob_match(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_glob_match(rest, parts[skip:]) for skip in range(len(parts) + 1))
    if not parts:
        return False
    name = parts[0]
    if name.startswith(".") and not head.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, head) and _glob_match(rest, parts[1:])


@final
@dataclass
class StorePlan:
    """The stored documents a run must delete, found by :meth:`ingest.cache.RunCache.plan`.

    :param replaced: for each content id now at a path, the ids of the documents stored
        for that path before (deleted along with the new document's batch).
    :param gone: stored documents whose file no longer exists, to the path they name.
    :param unread: for each path collected without a content id (an object in a store
        whose stamp changed), the ids of the documents stored for it before: deleted along
        with the document its worker reads, unless that is the same one.
    """

    replaced: dict[str, set[str]] = field(default_factory=dict)
    gone: dict[str, str] = field(default_factory=dict)
    unread: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        stored: Iterable[tuple[str, str]],
        collected: Mapping[str, str | None],
        scope: InputScope,
    ) -> StorePlan:
        """The plan, from what the sinks hold and what this run collected.

        :param stored: ``(doc_id, path)`` of every document a sink of the run holds.
        :param collected: every path this run collected (absolute) to its content id,
            ``""`` when it is not known yet (read by a worker), or ``None`` when it was
            found but could not be read (its records are kept).
        :param scope: the run's inputs.
        """
        current = {content_id[:32] for content_id in collected.values() if content_id}
        plan = cls()
        for doc_id, path in stored:
            if doc_id in current:
                continue
            if path in collected:
                content_id = collected[path]
                if content_id:
                    plan.replaced.setdefault(content_id, set()).add(doc_id)
                elif content_id == "":
                    plan.unread.setdefault(path, set()).add(doc_id)
            elif scope.covers(path) and (is_url(path) or not os.path.lexists(path)):
                plan.gone[doc_id] = path
        return plan

    def deletions_for(self, batch: Sequence[Document], keys: Sequence[str] = ()) -> list[str]:
        """The old documents that go with ``batch``'s (each handed out once).

        :param keys: the batch's paths as :attr:`unread` keys them, in batch order.
        """
        deleted: set[str] = set()
        for document in batch:
            deleted |= self.replaced.pop(document.source.content_id, set())
        for key in keys:
            deleted |= self.unread.pop(key, set())
        deleted -= {document.doc_id for document in batch}
        return sorted(deleted)

    def leftovers(self, stored: Iterable[str]) -> list[str]:
        """The old documents of files whose new bytes a sink already held (skipped as
        unchanged), to delete at the end of the run; handed out once.

        :param stored: the content ids skipped as unchanged.
        """
        deleted: set[str] = set()
        for content_id in stored:
            deleted |= self.replaced.pop(content_id, set())
        return sorted(deleted)
