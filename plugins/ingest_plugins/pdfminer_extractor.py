"""The ``pdfminer`` extractor: layout-aware text of PDFs through pdfminer.six.

pdfminer groups characters into lines and text boxes and orders the boxes for reading
(``LAParams`` defaults), which keeps columns and table cells apart where the other extractors
run them together. It is pure Python and the slowest of the three: pick it for quality.

:func:`extract_with_pdfminer` is the whole work as a plain function (benchmarks call it to
measure the bare parser on the same code path); the hooks only adapt it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ingest import Document, Metadata, Page, hookimpl
from pdfminer.converter import PDFPageAggregator
from pdfminer.layout import LAParams, LTContainer, LTFigure, LTItem, LTText, LTTextBox
from pdfminer.pdfdocument import PDFDocument, PDFPasswordIncorrect
from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
from pdfminer.pdfpage import PDFPage
from pdfminer.pdfparser import PDFParser
from pdfminer.pdftypes import resolve1
from pdfminer.utils import decode_text

from ingest_plugins.pdf_common import (
    LastOpened,
    check_pdf_magic,
    claims,
    clean_metadata_text,
    encrypted_error,
    extract_source,
    make_page,
    pdf_date_to_iso,
    select_pages,
)

if TYPE_CHECKING:
    from ingest import Settings, Source

NAME = "pdfminer"


def extract_with_pdfminer(
    path: Path, *, password: str | None, min_chars: int, pages: range | None = None
) -> tuple[Metadata, list[Page]]:
    """Read the metadata and the text of the pages of the PDF at ``path`` with pdfminer.six.

    :param path: the PDF.
    :param password: tried when the empty user password does not open the file.
    :param min_chars: a page with fewer usable characters is flagged ``needs_ocr``.
    :param pages: 1-based page numbers to read (``range(11, 21)``: pages 11 to 20; numbers
        past the end are skipped), or ``None`` for all. The page tree is walked to count the
        pages, but the content of other pages is never interpreted. A range with pages after
        it leaves the parsed file (and its parsed fonts) to the next call for the same file in
        this thread (:class:`~ingest_plugins.pdf_common.LastOpened`).
    :returns: the metadata (``page_count`` is the whole document's) and the pages read, each
        page's text boxes in reading order, a blank line between boxes.
    :raises DocumentError: ``not-a-pdf``, or ``encrypted`` when no password opens the file.
    :raises pdfminer.pdfparser.PDFSyntaxError: and others, when pdfminer cannot read the file.
    """
    key = _LAST.key(path, password)
    opened = _LAST.take(key) or _open_file(path, password)
    kept = False
    try:
        numbers = select_pages(pages, opened.metadata.page_count)
        result = _read_pages(opened, numbers, min_chars) if numbers else []
        kept = _LAST.keep(key, opened, pages=pages, page_count=opened.metadata.page_count)
    finally:
        if not kept:
            opened.close()
    return opened.metadata, result


@dataclass(eq=False, slots=True)
class _Opened:
    """A parsed file: its open handle (pdfminer reads objects from it lazily), its pages,
    and the resource manager, so fonts are parsed once per file, across ranges too."""

    handle: BinaryIO
    pages: list[PDFPage]
    metadata: Metadata
    resources: PDFResourceManager

    def close(self) -> None:
        self.handle.close()


#: The file of the last range read, for the next range of the same file.
_LAST: LastOpened[_Opened] = LastOpened(close=_Opened.close)


def _open_file(path: Path, password: str | None) -> _Opened:
    check_pdf_magic(path, plugin=NAME)
    handle = path.open("rb")
    try:
        document = _open(handle, path, password)
        all_pages = list(PDFPage.create_pages(document))
        metadata = _metadata(document, page_count=len(all_pages))
    except BaseException:
        handle.close()
        raise
    return _Opened(handle, all_pages, metadata, PDFResourceManager(caching=True))


def _read_pages(opened: _Opened, numbers: list[int], min_chars: int) -> list[Page]:
    device = PDFPageAggregator(opened.resources, laparams=LAParams())
    interpreter = PDFPageInterpreter(opened.resources, device)
    result: list[Page] = []
    try:
        for number in numbers:
            interpreter.process_page(opened.pages[number - 1])
            result.append(make_page(number, _layout_text(device.get_result()), NAME, min_chars))
    finally:
        device.close()
    return result


def _open(handle: BinaryIO, path: Path, password: str | None) -> PDFDocument:
    # The empty password first: it opens most "protected" files.
    try:
        return PDFDocument(PDFParser(handle), password="")
    except PDFPasswordIncorrect:
        if not password:
            raise encrypted_error(path, password_given=False, plugin=NAME) from None
    handle.seek(0)
    try:
        return PDFDocument(PDFParser(handle), password=password)
    except PDFPasswordIncorrect:
        raise encrypted_error(path, password_given=True, plugin=NAME) from None


def _info_value(document: PDFDocument, key: str) -> str | None:
    # One info dictionary per xref section; the newest comes first and wins.
    for info in document.info:
        value: Any = resolve1(info.get(key))
        if isinstance(value, bytes):
            value = decode_text(value)
        text = clean_metadata_text(value)
        if text is not None:
            return text
    return None


def _metadata(document: PDFDocument, *, page_count: int) -> Metadata:
    return Metadata(
        title=_info_value(document, "Title"),
        author=_info_value(document, "Author"),
        subject=_info_value(document, "Subject"),
        creator=_info_value(document, "Creator"),
        producer=_info_value(document, "Producer"),
        created=pdf_date_to_iso(_info_value(document, "CreationDate")),
        modified=pdf_date_to_iso(_info_value(document, "ModDate")),
        page_count=page_count,
        encrypted=document.encryption is not None,
    )


def _layout_text(layout: LTItem) -> str:
    """The text of a laid-out page: text boxes in the order the layout analysis gave them.

    A text box ends with a blank line. Characters inside figures (form XObjects) are not
    grouped into boxes by the default ``LAParams``, so they are taken as they come, and a
    figure's text ends its own line. A page of images only gives an empty string.
    """
    parts: list[str] = []
    # None marks where a figure's text ends.
    stack: list[LTItem | None] = [layout]
    # Depth-first in document order, without recursion: hostile files nest figures deeply.
    while stack:
        item = stack.pop()
        if item is None:
            if parts and not parts[-1].endswith("\n"):
                parts.append("\n")
        elif isinstance(item, LTTextBox):
            parts.append(item.get_text())
            parts.append("\n")
        elif isinstance(item, LTText):
            parts.append(item.get_text())
        elif isinstance(item, LTContainer):
            if isinstance(item, LTFigure):
                stack.append(None)
            stack.extend(reversed(list(item)))
    return "".join(parts)


@hookimpl
def ingest_extract_claim(source: Source, settings: Settings, extractor: str) -> str | None:
    """Take PDF sources when ``pdfminer`` is the extractor asked for."""
    return NAME if claims(source, extractor, NAME) else None


@hookimpl
def ingest_extract(
    source: Source, settings: Settings, extractor: str, pages: range | None
) -> Document | None:
    """Extract a PDF source with :func:`extract_with_pdfminer` when ``pdfminer`` is asked for."""
    return extract_source(
        source, settings, extractor, pages, name=NAME, extract=extract_with_pdfminer
    )
