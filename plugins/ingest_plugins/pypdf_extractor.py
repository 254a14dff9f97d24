"""The ``pypdf`` extractor: text and metadata of PDFs through pypdf, in pure Python.

Slower than PDFium but with no native code, so a hostile file can cost time, never the
process. AES-encrypted files need the ``cryptography`` package (``pypdf[crypto]``).

:func:`extract_with_pypdf` is the whole work as a plain function (benchmarks call it to
measure the bare parser on the same code path); the hooks only adapt it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ingest import Document, Metadata, Page, hookimpl
from pypdf import PasswordType, PdfReader

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

NAME = "pypdf"

#: The reader of the last range read, for the next range of the same file.
_LAST: LastOpened[tuple[PdfReader, Metadata]] = LastOpened()


def extract_with_pypdf(
    path: Path, *, password: str | None, min_chars: int, pages: range | None = None
) -> tuple[Metadata, list[Page]]:
    """Read the metadata and the text of the pages of the PDF at ``path`` with pypdf.

    :param path: the PDF.
    :param password: tried when the empty user password does not open the file.
    :param min_chars: a page with fewer usable characters is flagged ``needs_ocr``.
    :param pages: 1-based page numbers to read (``range(11, 21)``: pages 11 to 20; numbers
        past the end are skipped), or ``None`` for all; the content of other pages is never
        parsed. A range with pages after it leaves the parsed file to the next call for the
        same file in this thread (:class:`~ingest_plugins.pdf_common.LastOpened`).
    :returns: the metadata (``page_count`` is the whole document's) and the pages read.
    :raises DocumentError: ``not-a-pdf``, or ``encrypted`` when no password opens the file.
    :raises pypdf.errors.PyPdfError: and others, when pypdf cannot read the file.
    """
    key = _LAST.key(path, password)
    opened = _LAST.take(key)
    if opened is None:
        check_pdf_magic(path, plugin=NAME)
        # strict=False: repair what can be repaired (bad xref offsets, missing objects) as
        # readers do, rather than fail on the first deviation from the specification.
        reader = PdfReader(path, strict=False)
        encrypted = reader.is_encrypted
        if encrypted:
            _unlock(reader, path, password)
        opened = reader, _metadata(reader, encrypted=encrypted)
    reader, metadata = opened
    numbers = select_pages(pages, metadata.page_count)
    result = [_page(reader, number, min_chars) for number in numbers]
    _LAST.keep(key, opened, pages=pages, page_count=metadata.page_count)
    return metadata, result


def _unlock(reader: PdfReader, path: Path, password: str | None) -> None:
    # The reader already tried the empty password; asking again is how to learn the answer.
    if reader.decrypt("") != PasswordType.NOT_DECRYPTED:
        return
    if not password:
        raise encrypted_error(path, password_given=False, plugin=NAME)
    # decrypt accepts the user or the owner password.
    if reader.decrypt(password) == PasswordType.NOT_DECRYPTED:
        raise encrypted_error(path, password_given=True, plugin=NAME)


def _metadata(reader: PdfReader, *, encrypted: bool) -> Metadata:
    info = reader.metadata
    page_count = len(reader.pages)
    if info is None:
        return Metadata(page_count=page_count, encrypted=encrypted)
    return Metadata(
        title=clean_metadata_text(info.title),
        author=clean_metadata_text(info.author),
        subject=clean_metadata_text(info.subject),
        creator=clean_metadata_text(info.creator),
        producer=clean_metadata_text(info.producer),
        created=pdf_date_to_iso(info.creation_date_raw),
        modified=pdf_date_to_iso(info.modification_date_raw),
        page_count=page_count,
        encrypted=encrypted,
    )


def _page(reader: PdfReader, number: int, min_chars: int) -> Page:
    return make_page(number, reader.pages[number - 1].extract_text(), NAME, min_chars)


@hookimpl
def ingest_extract_claim(source: Source, settings: Settings, extractor: str) -> str | None:
    """Take PDF sources when ``pypdf`` is the extractor asked for."""
    return NAME if claims(source, extractor, NAME) else None


@hookimpl
def ingest_extract(
    source: Source, settings: Settings, extractor: str, pages: range | None
) -> Document | None:
    """Extract a PDF source with :func:`extract_with_pypdf` when ``pypdf`` is asked for."""
    return extract_source(source, settings, extractor, pages, name=NAME, extract=extract_with_pypdf)
