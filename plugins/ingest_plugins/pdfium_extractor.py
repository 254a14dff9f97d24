"""The ``pdfium`` extractor: text and metadata of PDFs through PDFium (pypdfium2).

The fastest of the three extractors and the most tolerant of broken files. PDFium objects
hold native memory that Python's garbage collector does not see, so every text page, page
and document is closed as soon as it is read: memory stays flat across thousands of files.

:func:`extract_with_pdfium` is the whole work as a plain function (benchmarks call it to
measure the bare parser on the same code path); the hooks only adapt it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from ingest import Document, Metadata, Page, hookimpl

from ingest_plugins.page_quality import QUALITY
from ingest_plugins.pdf_common import (
    check_pdf_magic,
    claims,
    clean_metadata_text,
    encrypted_error,
    extract_source,
    make_page,
    pdf_date_to_iso,
    select_pages,
)
from ingest_plugins.pdfium_layout import page_text, unchecked

if TYPE_CHECKING:
    from ingest import Block, Settings, Source

    from ingest_plugins.structure.pdfium_reader import PdfiumStructure
    from ingest_plugins.structure.settings import StructureSettings

NAME = "pdfium"

#: PDFium is not thread-safe (one library-wide state); a backend that runs extractions in
#: threads must not enter it twice at once, and other plugins that use PDFium in this process
#: (the OCR plugin renders pages) hold it too. Uncontended, the lock costs nothing.
PDFIUM_LOCK = threading.Lock()


def extract_with_pdfium(
    path: Path,
    *,
    password: str | None,
    min_chars: int,
    pages: range | None = None,
    structure: StructureSettings | None = None,
) -> tuple[Metadata, list[Page]]:
    """Read the metadata and the text of the pages of the PDF at ``path`` with PDFium.

    :param path: the PDF.
    :param password: tried when the empty user password does not open the file.
    :param min_chars: a page with fewer usable characters is flagged ``needs_ocr``.
    :param pages: 1-based page numbers to read (``range(11, 21)``: pages 11 to 20; numbers
        past the end are skipped), or ``None`` for all; other pages are never loaded.
    :param structure: also read each page's blocks (``Page.blocks``) with these options;
        the text is the same either way.
    :returns: the metadata (``page_count`` is the whole document's) and the pages read.
    :raises DocumentError: ``not-a-pdf``, or ``encrypted`` when no password opens the file.
    :raises pypdfium2.PdfiumError: when PDFium cannot load the file or a page.
    """
    check_pdf_magic(path, plugin=NAME)
    with PDFIUM_LOCK:
        document = _open(path, password)
        try:
            metadata = _metadata(document)
            numbers = select_pages(pages, metadata.page_count)
            reader = None
            if structure is not None:
                from ingest_plugins.structure.pdfium_reader import PdfiumStructure

                reader = PdfiumStructure(
                    document, tables=structure.tables, outline=structure.outline
                )
            return metadata, [_page(document, number, min_chars, reader) for number in numbers]
        finally:
            document.close()


#: Not a PDF: loading it sets PDFium's last error to "data format error" (see _open).
_NOT_A_PDF = b"%PDF-1.0\n%%EOF\n"


def _open(path: Path, password: str | None) -> pdfium.PdfDocument:
    # PDFium keeps its last error across documents, and some failed loads set none: such a
    # file would report the error of whatever file this process read before it (another
    # file's "password required" made it "encrypted"), so the outcome of a file would depend
    # on which worker read it. A load that fails the same way every time makes it the same.
    with contextlib.suppress(pdfium.PdfiumError):
        pdfium.PdfDocument(_NOT_A_PDF).close()
    # No password makes PDFium try the empty one, which opens most "protected" files.
    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        if exc.err_code != pdfium_c.FPDF_ERR_PASSWORD:
            raise
        if not password:
            raise encrypted_error(path, password_given=False, plugin=NAME) from None
    try:
        return pdfium.PdfDocument(path, password=password)
    except pdfium.PdfiumError as exc:
        if exc.err_code != pdfium_c.FPDF_ERR_PASSWORD:
            raise
        raise encrypted_error(path, password_given=True, plugin=NAME) from None


def _metadata(document: pdfium.PdfDocument) -> Metadata:
    info: dict[str, Any] = document.get_metadata_dict()
    return Metadata(
        title=clean_metadata_text(info.get("Title")),
        author=clean_metadata_text(info.get("Author")),
        subject=clean_metadata_text(info.get("Subject")),
        creator=clean_metadata_text(info.get("Creator")),
        producer=clean_metadata_text(info.get("Producer")),
        created=pdf_date_to_iso(info.get("CreationDate")),
        modified=pdf_date_to_iso(info.get("ModDate")),
        page_count=len(document),
        # The revision of the security handler; -1 when the file is not encrypted.
        encrypted=pdfium_c.FPDF_GetSecurityHandlerRevision(document.raw) != -1,
    )


def _page(
    document: pdfium.PdfDocument,
    number: int,
    min_chars: int,
    reader: PdfiumStructure | None = None,
) -> Page:
    page = document[number - 1]
    blocks: list[Block] = []
    try:
        textpage = page.get_textpage()
        try:
            # The whole text layer (get_text_bounded would drop text outside the page box,
            # which readers still want indexed), its lines put in reading order.
            if reader is None:
                text = page_text(textpage)
            else:
                text, blocks = reader.read(page, textpage, number - 1)
            silent = silent_text_objects(page, textpage)
        finally:
            textpage.close()
    finally:
        page.close()
    made = make_page(number, text, NAME, min_chars)
    made.blocks = blocks
    if silent is not None:
        made.provenance[QUALITY] = {"reason": "glyphs-without-text", **silent}
    return made


#: Text objects read at most per page by :func:`silent_text_objects`...
SAMPLE_OBJECTS = 200
#: ...once a first look at this many found one without text.
FIRST_LOOK = 40
#: A page is flagged when this share of the text objects read produced no character...
SILENT_SHARE = 0.05
#: ...and at least this many did.
MIN_SILENT = 3
#: Objects without a box (a font PDFium could not load, or an empty string) count only when
#: they are this share of the text objects read, at least this many, and the page has at
#: least twice as many objects as characters.
UNLOADED_SHARE = 0.6
MIN_UNLOADED = 20

_TEXT_OBJECT = pdfium_c.FPDF_PAGEOBJ_TEXT
_FORM_OBJECT = pdfium_c.FPDF_PAGEOBJ_FORM
_page_object = unchecked(pdfium_c.FPDFPage_GetObject, ctypes.c_void_p)
_form_object = unchecked(pdfium_c.FPDFFormObj_GetObject, ctypes.c_void_p)
_form_count = unchecked(pdfium_c.FPDFFormObj_CountObjects, ctypes.c_int)
_object_type = unchecked(pdfium_c.FPDFPageObj_GetType, ctypes.c_int)
_object_text = unchecked(pdfium_c.FPDFTextObj_GetText, ctypes.c_ulong)
_object_bounds = unchecked(pdfium_c.FPDFPageObj_GetBounds, ctypes.c_int)
_char_at = unchecked(pdfium_c.FPDFText_GetCharIndexAtPos, ctypes.c_int)
# How far from an object's middle another object's character may stand (points): the offset
# of a bold effect, or the gap between two glyphs of the object.
_NEAR = ctypes.c_double(4.0)


def silent_text_objects(
    page: pdfium.PdfPage, textpage: pdfium.PdfTextPage
) -> dict[str, int] | None:
    """Count the text objects of a page that draw something but gave PDFium no character.

    PDFium leaves out of a text page the glyphs of a font it cannot map to Unicode (a
    CJK font without an embedded ``/ToUnicode`` and no system font to stand in), so the page
    reads as plausible digits and punctuation. Such glyphs still belong to text objects: an
    object with a box but no text, and no character of another object at its middle (text
    drawn twice over itself for a bold effect is merged by PDFium, rightly), is the sign;
    so are objects without text and without a box (PDFium could not load their font) when
    they are most of the page's text objects and the page has far fewer characters than
    objects (an empty string alone is common).
    Only pages with about as many page objects as characters are looked at (a page of
    mapped text has several characters per object): first :data:`FIRST_LOOK` text objects
    spread over the page, and when one of them is silent (or many have no box),
    :data:`SAMPLE_OBJECTS`.

    :returns: ``{"text_objects": read, "silent_text_objects": without text}`` when at least
        :data:`MIN_SILENT` and more than :data:`SILENT_SHARE` of those read are silent,
        else ``None``.
    """
    count = pdfium_c.FPDFPage_CountObjects(page.raw)
    chars = textpage.count_chars()
    if count < MIN_SILENT or count < 0.4 * chars:
        return None
    # A first look at a few objects spread over the page clears most pages: reading an
    # object's text costs PDFium a pass over the page's characters.
    read, silent, unloaded = _scan(page, textpage, count, FIRST_LOOK)
    if silent == 0 and 2 * unloaded <= UNLOADED_SHARE * read:
        return None
    read, silent, unloaded = _scan(page, textpage, count, SAMPLE_OBJECTS)
    # Empty strings are common; glyphs without a font make up most of a page's text objects,
    # on a page with far fewer characters than objects.
    if unloaded >= MIN_UNLOADED and unloaded > UNLOADED_SHARE * read and count >= 2 * chars:
        silent += unloaded
    if silent >= MIN_SILENT and silent > SILENT_SHARE * read:
        return {"text_objects": read, "silent_text_objects": silent}
    return None


def _scan(
    page: pdfium.PdfPage, textpage: pdfium.PdfTextPage, count: int, sample: int
) -> tuple[int, int, int]:
    """Read about ``sample`` text objects spread over the page's ``count`` objects (and
    those of its forms): how many were read, silent, and without a box."""
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    bounds = tuple(map(ctypes.byref, (left, bottom, right, top)))
    text_handle = ctypes.c_void_p(ctypes.cast(textpage.raw, ctypes.c_void_p).value)
    step = max(1, count // sample)
    todo: list[tuple[ctypes.c_void_p, int, int]] = [
        (ctypes.c_void_p(ctypes.cast(page.raw, ctypes.c_void_p).value), count, 0)
    ]
    read = silent = unloaded = 0
    while todo and read < sample:
        parent, size, depth = todo.pop()
        get = _page_object if depth == 0 else _form_object
        for index in range(0, size, step if depth == 0 else 1):
            obj = ctypes.c_void_p(get(parent, index))
            kind = _object_type(obj)
            if kind == _FORM_OBJECT and depth < 4:
                todo.append((obj, _form_count(obj), depth + 1))
                continue
            if kind != _TEXT_OBJECT:
                continue
            read += 1
            # The length in bytes of the UTF-16 text with its terminator: 2 means none.
            if _object_text(obj, text_handle, None, 0) > 2 or not _object_bounds(obj, *bounds):
                continue
            if right.value - left.value < 0.01 and top.value - bottom.value < 0.01:
                # No box: glyphs of a font PDFium could not load, or an empty string.
                unloaded += 1
            elif (
                # PDFium leaves out the glyphs of text drawn twice over itself (a bold
                # effect): another object's characters stand where those would be.
                _char_at(
                    text_handle,
                    ctypes.c_double((left.value + right.value) / 2),
                    ctypes.c_double((bottom.value + top.value) / 2),
                    _NEAR,
                    _NEAR,
                ) < 0
            ):
                silent += 1
            if read >= sample:
                break
    return read, silent, unloaded


@hookimpl
def ingest_extract_claim(source: Source, settings: Settings, extractor: str) -> str | None:
    """Take PDF sources when ``pdfium`` is the extractor asked for."""
    return NAME if claims(source, extractor, NAME) else None


@hookimpl
def ingest_extract(
    source: Source, settings: Settings, extractor: str, pages: range | None
) -> Document | None:
    """Extract a PDF source with :func:`extract_with_pdfium` when ``pdfium`` is asked for
    (with each page's blocks when the structure plugin wants them)."""
    from ingest_plugins.structure import options_of, wants_structure

    extract = extract_with_pdfium
    if wants_structure(settings):
        extract = functools.partial(extract_with_pdfium, structure=options_of(settings))
    return extract_source(source, settings, extractor, pages, name=NAME, extract=extract)
