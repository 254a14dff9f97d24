"""The records that flow through a run: Source → Document (Pages, Chunks) or Failure.

Everything here pickles, because documents cross process boundaries between the workers
and the driver. Ids come from content, so a rerun, a resume or another worker count gives
the same records.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PDF_MEDIA_TYPE = "application/pdf"

# Pages are joined with this separator in Document.text, so chunk offsets refer to one string
# and a chunk that crosses a page boundary still reads naturally.
PAGE_SEPARATOR = "\n\n"

_HASH_BLOCK = 1 << 20


def is_url(location: Path | str) -> bool:
    """Whether a source's location is a URL (``s3://bucket/key.pdf``) rather than a path.

    :param location: a :attr:`Source.path` or :attr:`Failure.source`.
    :returns: true for a string with a ``scheme://`` prefix.
    """
    return isinstance(location, str) and "://" in location


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

    :param path: where the file is (absolute or relative to the working directory), or the
        URL of an object in a store (``s3://bucket/key.pdf``, see :func:`is_url`), which a
        worker copies to a local file (``ingest_fetch``) before extractors see the source.
    :param content_id: hash of its bytes; the document id derives from it. Empty when the
        collector could not hash it without reading it (an object in a store seen for the
        first time): the worker that reads it hashes it, and its outcome carries the id.
    :param size: size in bytes.
    :param media_type: what the collector says it is; extractors pick the types they read.
    :param stamp: for an object in a store, what the store says of its version (ETag,
        version id, modification time); the cache knows the content id of a URL whose size
        and stamp are unchanged, so it is not read again.
    """

    path: Path | str
    content_id: str
    size: int
    media_type: str = PDF_MEDIA_TYPE
    stamp: str | None = None

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
        """The id of the document made from this source (stable across renames and moves);
        empty while the content id is not known."""
        return self.content_id[:32]

    @property
    def remote(self) -> bool:
        """Whether the source is an object in a store, named by a URL."""
        return is_url(self.path)


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
class Document:
    """A source after extraction: metadata, pages and (after the chunk transform) chunks."""

    source: Source
    metadata: Metadata
    pages: list[Page]
    chunks: list[Chunk] = field(default_factory=list)

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
        source = str(self.source.path)
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

    :param source: the file (or the URL of an object in a store).
    :param reason: short machine-readable reason: ``error``, ``encrypted``, ``not-a-pdf``,
        ``unreadable``, ``timeout``, ``memory``, ``crash``, ``no-extractor``...
    :param message: what went wrong, for a human.
    :param plugin: the plugin that raised, when known.
    :param exc_type: the exception's qualified type name, when one was raised.
    :param doc_id: the document id, when the file could be hashed.
    """

    source: Path | str
    reason: str
    message: str
    plugin: str | None = None
    exc_type: str | None = None
    doc_id: str | None = None

    def describe(self) -> str:
        """One line for the summary: ``path: reason: message [plugin]``."""
        where = f" [plugin {self.plugin}]" if self.plugin else ""
        kind = f"{self.exc_type}: " if self.exc_type else ""
        return f"{self.source}: {self.reason}: {kind}{self.message}{where}"
