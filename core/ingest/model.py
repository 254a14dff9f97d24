"""The records that flow through a run: Source → Document (Pages, Chunks) or Failure.

Everything here pickles, because documents cross process boundaries between the workers
and the driver. Ids come from content, so a rerun, a resume or another worker count gives
the same records.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PDF_MEDIA_TYPE = "application/pdf"

# Pages are joined with this separator in Document.text, so chunk offsets refer to one string
# and a chunk that crosses a page boundary still reads naturally.
PAGE_SEPARATOR = "\n\n"

_HASH_BLOCK = 1 << 20
# A frame line of a short traceback: ``path/to/file.py:12: in function``.
_FRAME = re.compile(r"(\S.*?:\d+): in \S+$")


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as text that can be printed and stored anywhere: ``caf\\xe9.pdf``.

    A file name that is not valid UTF-8 reaches Python with its bad bytes as lone
    surrogates, which no terminal, JSON reader or SQLite column accepts; those bytes are
    shown as ``\\xNN`` escapes instead. Every other path comes back as ``str(path)``.
    Messages that may quote such a name (an exception's, a library's log record) go through
    it too.

    :param path: the path (or any text), as collected.
    :returns: printable text naming the path.
    """
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")  # the bytes the name really has
        except UnicodeEncodeError:  # a surrogate no file system gave: escape it as it is
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")
    return text


def content_id_of(path: Path) -> str:
    """The content id of a file: the hex SHA-256 of its bytes.

    :param path: the file to hash.
    :returns: 64 lowercase hex characters.
    :raises OSError: if the file cannot be read.
    """
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@dataclass(slots=True)
class Source:
    """One input file, claimed by a collector, not parsed yet.

    :param path: where the file is (absolute or relative to the working directory).
    :param content_id: hash of its bytes; the document id derives from it.
    :param size: size in bytes.
    :param media_type: what the collector says it is; extractors pick the types they read.
    """

    path: Path
    content_id: str
    size: int
    media_type: str = PDF_MEDIA_TYPE

    @classmethod
    def from_path(cls, path: Path, *, media_type: str = PDF_MEDIA_TYPE) -> Source:
        """Build a source by hashing the file at ``path``.

        :raises OSError: if the file cannot be read.
        """
        return cls(
            path=path,
            content_id=content_id_of(path),
            size=path.stat().st_size,
            media_type=media_type,
        )

    @property
    def doc_id(self) -> str:
        """The id of the document made from this source (stable across renames and moves)."""
        return self.content_id[:32]


@dataclass(slots=True)
class Page:
    """One page of a document.

    :param number: 1-based page number.
    :param text: the page's text.
    :param extractor: which plugin produced the text (``pdfium``, ``pypdf``, ``ocr``...).
    :param needs_ocr: the text layer is missing or unusable; an OCR plugin may fill it.
    :param provenance: extra facts about how the text was made (OCR engine, confidence...).
    """

    number: int
    text: str
    extractor: str
    needs_ocr: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def char_count(self) -> int:
        """Characters of text on the page."""
        return len(self.text)


@dataclass(slots=True)
class Metadata:
    """Document-level facts read from the file (absent values are ``None``)."""

    title: str | None = None
    author: str | None = None
    subject: str | None = None
    creator: str | None = None
    producer: str | None = None
    created: str | None = None
    modified: str | None = None
    page_count: int = 0
    encrypted: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return asdict(self)


@dataclass(slots=True)
class Chunk:
    """A piece of a document's text, sized for retrieval.

    :param doc_id: the document it comes from.
    :param index: its position among the document's chunks (0-based, stable).
    :param text: the chunk's text.
    :param page_start: first page (1-based) the chunk covers.
    :param page_end: last page (1-based) the chunk covers.
    :param char_start: offset of the chunk in ``Document.text``.
    :param char_end: end offset (exclusive) in ``Document.text``.
    """

    doc_id: str
    index: int
    text: str
    page_start: int
    page_end: int
    char_start: int
    char_end: int

    @property
    def chunk_id(self) -> str:
        """Stable id: the document id and the chunk's index."""
        return f"{self.doc_id}:{self.index}"


@dataclass(slots=True)
class LogEntry:
    """A log record of a library (any logger outside ``ingest``) made while a document was
    processed. Such records are captured per document, as pytest captures a test's output,
    and shown with the document's failure or with ``-v``.

    :param logger: the logger's name (``pypdf._reader``).
    :param level: the level's name (``WARNING``).
    :param message: the formatted message.
    :param count: how many identical records were made (counted once, shown once).
    """

    logger: str
    level: str
    message: str
    count: int = 1

    def describe(self) -> str:
        """``WARNING pypdf._reader: message (x3)``."""
        times = f" (x{self.count})" if self.count > 1 else ""
        return f"{self.level} {self.logger}: {self.message}{times}"


@dataclass(slots=True)
class Document:
    """A source after extraction: metadata, pages and (after the chunk transform) chunks.

    :param logs: what libraries logged while it was extracted and transformed (see
        :class:`LogEntry`); sinks do not write it.
    """

    source: Source
    metadata: Metadata
    pages: list[Page]
    chunks: list[Chunk] = field(default_factory=list)
    logs: list[LogEntry] = field(default_factory=list)

    @property
    def doc_id(self) -> str:
        """The document id (from the source's content id)."""
        return self.source.doc_id

    @property
    def text(self) -> str:
        """All pages' text joined by :data:`PAGE_SEPARATOR`."""
        return PAGE_SEPARATOR.join(page.text for page in self.pages)

    def page_spans(self) -> list[tuple[int, int, int]]:
        """``(page_number, start, end)`` of each page's text within :attr:`text`."""
        spans: list[tuple[int, int, int]] = []
        offset = 0
        for page in self.pages:
            end = offset + len(page.text)
            spans.append((page.number, offset, end))
            offset = end + len(PAGE_SEPARATOR)
        return spans

    def chunk_records(self) -> list[dict[str, Any]]:
        """One JSON-ready record per chunk, the shape every sink writes."""
        source = display_path(self.source.path)
        metadata = self.metadata.to_dict()
        return [
            {
                "doc_id": chunk.doc_id,
                "chunk_id": chunk.chunk_id,
                "index": chunk.index,
                "source": source,
                "text": chunk.text,
                "page_start": chunk.page_start,
                "page_end": chunk.page_end,
                "char_start": chunk.char_start,
                "char_end": chunk.char_end,
                "metadata": metadata,
            }
            for chunk in self.chunks
        ]


@dataclass(slots=True)
class Failure:
    """A source that could not be ingested; failures are records too.

    :param source: the file.
    :param reason: short machine-readable reason: ``error``, ``encrypted``, ``not-a-pdf``,
        ``unreadable``, ``timeout``, ``memory``, ``crash``, ``no-extractor``...
    :param message: what went wrong, for a human.
    :param plugin: the plugin that raised, when known.
    :param exc_type: the exception's qualified type name, when one was raised.
    :param doc_id: the document id, when the file could be hashed.
    :param traceback: the exception's traceback as Python prints it, when one was raised
        (in a worker process or on a Dask worker too).
    :param traceback_short: the same, one line per frame, without the frames of ingest
        and pluggy that called the plugin (``--tb=short``).
    :param logs: what libraries logged while the document was processed.
    """

    source: Path
    reason: str
    message: str
    plugin: str | None = None
    exc_type: str | None = None
    doc_id: str | None = None
    traceback: str | None = None
    traceback_short: str | None = None
    logs: list[LogEntry] = field(default_factory=list)

    def describe(self) -> str:
        """One line for the summary: ``path: reason: message [plugin]``."""
        where = f" [plugin {self.plugin}]" if self.plugin else ""
        kind = f"{self.exc_type}: " if self.exc_type else ""
        return display_path(f"{self.source}: {self.reason}: {kind}{self.message}{where}")

    def location(self) -> str | None:
        """``file.py:12``, where the exception was raised (the last frame), if known."""
        found: str | None = None
        for line in (self.traceback_short or "").splitlines():
            match = _FRAME.match(line)
            if match is not None:
                found = match[1]
        return found
