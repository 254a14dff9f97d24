"""The records that flow through a run: Source → Document (Pages, Chunks) or Failure.

Everything here pickles, because documents cross process boundaries between the workers
and the driver. Ids come from content, so a rerun, a resume or another worker count gives
the same records.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from array import array

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

#: ``(x0, y0, x1, y1)`` in points from the page's top-left corner, ``y`` growing downwards.
BBox = tuple[float, float, float, float]

#: The kinds of :class:`Block`, in the words a Markdown or HTML reader would use.
BLOCK_KINDS = frozenset(
    {
        "heading",
        "paragraph",
        "list_item",
        "table",
        "figure",
        "caption",
        "footnote",
        "page_header",
        "page_footer",
        "marginal",
    }
)


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
class TableCell:
    """One cell of a :class:`Table`: its text and the grid positions it covers.

    :param row: 0-based row of its top-left corner.
    :param col: 0-based column of its top-left corner.
    :param text: the cell's text (lines joined by spaces).
    :param rowspan: how many rows it covers (1 for a plain cell).
    :param colspan: how many columns it covers.
    """

    row: int
    col: int
    text: str
    rowspan: int = 1
    colspan: int = 1


@dataclass(slots=True)
class Table:
    """A table found on a page: cells on a grid of ``rows`` by ``cols``.

    :param rows: number of grid rows.
    :param cols: number of grid columns.
    :param cells: the cells, row by row; a position covered by a spanning cell has no cell
        of its own.
    :param header_rows: how many leading rows are the header (repeated when a chunk
        continues the table).
    :param ruled: found from drawn rules (``True``) or from the alignment of its text.
    """

    rows: int
    cols: int
    cells: list[TableCell] = field(default_factory=list)
    header_rows: int = 1
    ruled: bool = False

    @property
    def spans(self) -> bool:
        """Whether any cell covers more than one grid position."""
        return any(cell.rowspan > 1 or cell.colspan > 1 for cell in self.cells)

    def grid(self) -> list[list[str]]:
        """The cell texts as ``rows`` lists of ``cols`` strings; a spanning cell's text is at
        its top-left position and the other positions it covers are empty."""
        grid = [["" for _ in range(self.cols)] for _ in range(self.rows)]
        for cell in self.cells:
            if 0 <= cell.row < self.rows and 0 <= cell.col < self.cols:
                grid[cell.row][cell.col] = cell.text
        return grid


@dataclass(slots=True)
class Block:
    """A piece of a page's structure: a heading, a paragraph, a list item, a table...

    Made when the structure is asked for: an extractor that sees positions and fonts (the
    ``pdfium`` one) fills :attr:`Page.blocks`, and the ``structure`` transform decides which
    blocks are headings, at which level, and which repeat on every page. Pages read without
    positions (OCR, other extractors) have none.

    :param kind: one of :data:`BLOCK_KINDS`.
    :param text: the block's text, its lines joined (a table's: its rows, one per line).
    :param bbox: where it is on the page (see :data:`BBox`).
    :param level: a heading's level (1 is the top) or a list item's depth (0 is the top).
    :param size: the font size of most of its characters, in points (0 when unknown).
    :param bold: whether most of its characters are bold.
    :param table: the table's cells, for ``kind == "table"``.
    """

    kind: str
    text: str
    bbox: BBox = (0.0, 0.0, 0.0, 0.0)
    level: int = 0
    size: float = 0.0
    bold: bool = False
    table: Table | None = None


@dataclass(slots=True)
class Page:
    """One page of a document.

    :param number: 1-based page number.
    :param text: the page's text.
    :param extractor: which plugin produced the text (``pdfium``, ``pypdf``, ``ocr``...).
    :param needs_ocr: the text layer is missing or unusable; an OCR plugin may fill it.
    :param provenance: extra facts about how the text was made (OCR engine, confidence...).
    :param blocks: the page's structure in reading order, when it was analysed.
    :param markdown: the page as Markdown, when the structure was made.
    """

    number: int
    text: str
    extractor: str
    needs_ocr: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    markdown: str | None = None

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
        # Field by field, not dataclasses.asdict: that deep-copies every value (all of them
        # immutable here), and every record a sink writes carries this dict.
        return {name: getattr(self, name) for name in _METADATA_FIELDS}


_METADATA_FIELDS = tuple(f.name for f in fields(Metadata))


@dataclass(slots=True, frozen=True)
class Embedding:
    """A chunk's vector and the model that made it (see the ``ingest_embed`` hook).

    :param model: the model's label, ``embedder/model`` (``wordllama/l2_supercat``), or the
        embedder's name alone when the run left ``embed.model`` to the embedder.
    :param vector: the embedder's output as float32 (``array("f")``): compact to pickle
        between processes, and readable by numpy without a copy (``numpy.frombuffer``).
    """

    model: str
    vector: array[float]

    @property
    def dim(self) -> int:
        """The number of components."""
        return len(self.vector)


@dataclass(slots=True)
class Chunk:
    """A piece of a document's text, sized for retrieval.

    :param doc_id: the document it comes from.
    :param index: its position among the document's chunks (0-based, stable).
    :param text: the chunk's text.
    :param page_start: first page (1-based) the chunk covers.
    :param page_end: last page (1-based) the chunk covers.
    :param char_start: offset of the chunk in ``Document.text`` (``Document.markdown``
        when chunks are cut from Markdown).
    :param char_end: end offset (exclusive) in the same string.
    :param headings: the titles of the sections the chunk sits under, outermost first.
    :param embedding: the chunk's vector, when the run embeds (``--embed NAME``).
    """

    doc_id: str
    index: int
    text: str
    page_start: int
    page_end: int
    char_start: int
    char_end: int
    # Keyword-only: two optional fields of unrelated meaning must never be filled by position.
    headings: list[str] = field(default_factory=list, kw_only=True)
    embedding: Embedding | None = field(default=None, kw_only=True)

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

    @property
    def markdown(self) -> str:
        """All pages' Markdown joined by :data:`PAGE_SEPARATOR` (a page without Markdown
        gives its text)."""
        return PAGE_SEPARATOR.join(_markdown_of(page) for page in self.pages)

    def page_spans(self, *, markdown: bool = False) -> list[tuple[int, int, int]]:
        """``(page_number, start, end)`` of each page's text within :attr:`text`.

        :param markdown: the spans within :attr:`markdown` instead.
        """
        spans: list[tuple[int, int, int]] = []
        offset = 0
        for page in self.pages:
            end = offset + len(_markdown_of(page) if markdown else page.text)
            spans.append((page.number, offset, end))
            offset = end + len(PAGE_SEPARATOR)
        return spans

    def tables(self) -> list[tuple[int, Block]]:
        """``(page_number, block)`` for every table block, in page and reading order."""
        return [
            (page.number, block)
            for page in self.pages
            for block in page.blocks
            if block.table is not None
        ]

    def table_records(self) -> list[dict[str, Any]]:
        """One JSON-ready record per table, in page and reading order, the shape sinks that
        store tables write: ``index`` (in the document), ``page``, ``bbox`` (rounded to
        0.01 pt), ``rows``, ``cols``, ``header_rows``, ``ruled``, ``cells`` (the texts, rows
        by columns, as :meth:`Table.grid`) and ``spans`` (``[row, col, rowspan, colspan]``
        of each cell covering more than one position)."""
        records = []
        for index, (number, block) in enumerate(self.tables()):
            table = block.table
            assert table is not None  # tables() yields only blocks with a table
            records.append(
                {
                    "index": index,
                    "page": number,
                    "bbox": [round(value, 2) for value in block.bbox],
                    "rows": table.rows,
                    "cols": table.cols,
                    "header_rows": table.header_rows,
                    "ruled": table.ruled,
                    "cells": table.grid(),
                    "spans": [
                        [cell.row, cell.col, cell.rowspan, cell.colspan]
                        for cell in table.cells
                        if cell.rowspan > 1 or cell.colspan > 1
                    ],
                }
            )
        return records

    def chunk_records(self) -> list[dict[str, Any]]:
        """One JSON-ready record per chunk, the shape every sink writes.

        A chunk with an embedding also has ``embedding`` (its float32 components, exact) and
        ``embedding_model`` (:attr:`Embedding.model`); records without one have neither key.
        """
        source = display_path(self.source.path)
        metadata = self.metadata.to_dict()
        records: list[dict[str, Any]] = []
        for chunk in self.chunks:
            record: dict[str, Any] = {
                "doc_id": chunk.doc_id,
                "chunk_id": chunk.chunk_id,
                "index": chunk.index,
                "source": source,
                "text": chunk.text,
                "page_start": chunk.page_start,
                "page_end": chunk.page_end,
                "char_start": chunk.char_start,
                "char_end": chunk.char_end,
                "headings": chunk.headings,
                "metadata": metadata,
            }
            if chunk.embedding is not None:
                # tolist() gives the float32 values as exact doubles: lossless, and the
                # cheapest of the encodings measured (rounding to 7 digits cost 1.5x more).
                record["embedding"] = chunk.embedding.vector.tolist()
                record["embedding_model"] = chunk.embedding.model
            records.append(record)
        return records


def _markdown_of(page: Page) -> str:
    return page.text if page.markdown is None else page.markdown


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
    :param traceback: the exception's traceback as Python prints it, when one was raised
        (in a worker process or on a Dask worker too).
    :param traceback_short: the same, one line per frame, without the frames of ingest
        and pluggy that called the plugin (``--tb=short``).
    :param logs: what libraries logged while the document was processed.
    """

    source: Path | str
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
