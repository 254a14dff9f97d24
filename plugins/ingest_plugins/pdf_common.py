"""What the three PDF extractors (``pdfium``, ``pypdf``, ``pdfminer``) share.

* :func:`check_pdf_magic`: refuse a file that is not a PDF before any parser sees it.
* :func:`pdf_date_to_iso`, :func:`clean_metadata_text`: metadata values as plain strings.
* :func:`text_needs_ocr`: the one heuristic that flags pages without a usable text layer.
* :func:`encrypted_error`: the one error every extractor raises for a locked file.
* :func:`select_pages`, :func:`normalize_newlines`, :func:`claims`, :func:`password_of`:
  the small rules the hook adapters and the plain extraction functions agree on.
* :class:`LastOpened`: an extractor's parsed file, kept for the next page range of it.

Nothing here imports a PDF library, so it is cheap to import on the driver.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ingest import PDF_MEDIA_TYPE, Document, DocumentError, Page

from ingest_plugins.artefacts import clean_extracted_text

if TYPE_CHECKING:
    from ingest import Metadata, Source

T = TypeVar("T")

#: The shape of the plain extraction functions (``extract_with_pdfium``...).
ExtractFunction = Callable[..., "tuple[Metadata, list[Page]]"]

__all__ = [
    "GARBAGE_SHARE",
    "MAGIC_WINDOW",
    "LastOpened",
    "check_pdf_magic",
    "claims",
    "clean_metadata_text",
    "encrypted_error",
    "extract_source",
    "make_page",
    "normalize_newlines",
    "password_of",
    "pdf_date_to_iso",
    "select_pages",
    "text_needs_ocr",
]

#: How far into a file the ``%PDF-`` marker may be: readers accept junk before it (mail
#: headers, BOMs) and so do we, within this many bytes.
MAGIC_WINDOW = 1024

#: A page whose garbage makes up more than this share of its glyphs needs OCR.
GARBAGE_SHARE = 0.2


# --------------------------------------------------------------------------------------------
# The file itself
# --------------------------------------------------------------------------------------------


def check_pdf_magic(path: Path, *, plugin: str) -> None:
    """Raise unless ``%PDF-`` occurs in the first :data:`MAGIC_WINDOW` bytes of ``path``.

    :param path: the file.
    :param plugin: the extractor asking, named in the error.
    :raises DocumentError: reason ``not-a-pdf``.
    :raises OSError: if the file cannot be read.
    """
    with path.open("rb") as handle:
        head = handle.read(MAGIC_WINDOW)
    if b"%PDF-" not in head:
        raise DocumentError(
            "not-a-pdf",
            f"{path}: not a PDF (no %PDF- header in its first {MAGIC_WINDOW} bytes)",
            plugin=plugin,
        )


def encrypted_error(path: Path, *, password_given: bool, plugin: str) -> DocumentError:
    """The error for an encrypted file that neither the empty nor the given password opens.

    :param path: the file, named in the message.
    :param password_given: whether a password was configured (it was then wrong).
    :param plugin: the extractor that tried.
    :returns: a :class:`DocumentError` with reason ``encrypted``, to raise.
    """
    why = "the password is incorrect" if password_given else "no password was given"
    return DocumentError(
        "encrypted",
        f"{path}: encrypted and {why} (set --password or extract.password)",
        plugin=plugin,
    )


def password_of(settings: Any) -> str | None:
    """The configured password as a plain string (``settings.extract.password``).

    Accepts a pydantic ``SecretStr``, a plain string or ``None``; an empty password counts as
    none, since every extractor tries the empty one anyway.
    """
    secret = getattr(settings.extract, "password", None)
    if secret is None:
        return None
    value = secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret)
    return value or None


def claims(source: Source, extractor: str, name: str) -> bool:
    """Whether the extractor called ``name`` takes ``source`` when ``extractor`` is asked for."""
    return extractor == name and source.media_type == PDF_MEDIA_TYPE


def extract_source(
    source: Source,
    settings: Any,
    extractor: str,
    pages: range | None,
    *,
    name: str,
    extract: ExtractFunction,
) -> Document | None:
    """The ``ingest_extract`` adapter every PDF extractor shares: extract, then run the
    per-page quality check (:mod:`ingest_plugins.page_quality`), which reads implausible
    pages again with the next extractor of the chain and keeps the better text.

    :param name: the extractor plugin's name.
    :param extract: its plain function, called with the settings it needs.
    :returns: the document, or ``None`` when ``name`` is not asked for or the source is not
        a PDF.
    """
    if not claims(source, extractor, name):
        return None
    password = password_of(settings)
    min_chars = settings.extract.min_chars_per_page
    metadata, page_list = extract(source.path, password=password, min_chars=min_chars, pages=pages)
    # Imported here: the check imports the other extractors' modules only when it needs one.
    from ingest_plugins.page_quality import check_pages

    check_pages(
        page_list,
        path=source.path,
        settings=settings,
        name=name,
        password=password,
        min_chars=min_chars,
    )
    return Document(source=source, metadata=metadata, pages=page_list)


class LastOpened(threading.local, Generic[T]):
    """The file an extractor parsed last in this thread, kept while more of its pages may
    be asked for.

    A long document is read in page ranges, one task each (:mod:`ingest.workers.dispatch`), and the
    worker pool gives the next range of a file to the worker that read the previous one
    when it can. Opening again means parsing the cross-reference table, the page tree and
    the resources the pages share once more: 0.05 to 0.4 s of pypdf or pdfminer on the
    test corpus's largest files. One entry per thread (a parsed file is not safe to share between
    threads); the file's identity, size and modification time are part of the key, so a
    file changed in between is opened afresh.

    :param close: releases an entry that is dropped (an open file handle, say).
    """

    def __init__(self, close: Callable[[T], None] | None = None) -> None:
        self._close = close
        self._key: tuple[object, ...] | None = None
        self._value: T | None = None

    @staticmethod
    def key(path: Path, password: str | None) -> tuple[object, ...] | None:
        """What identifies ``path`` opened with ``password``; ``None`` if it cannot be read."""
        try:
            info = os.stat(path)
        except OSError:
            return None
        return (os.fspath(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, password)

    def take(self, key: tuple[object, ...] | None) -> T | None:
        """The file kept under ``key``, now the caller's: the entry is emptied either way (an
        entry for another file is closed), so a read that fails half-way leaves nothing to
        be trusted by the next; :meth:`keep` puts it back after a success."""
        value, kept = self._value, self._key
        self._key = self._value = None
        if value is None or (key is not None and key == kept):
            return value
        if self._close is not None:
            self._close(value)
        return None

    def peek(self, key: tuple[object, ...] | None) -> T | None:
        """The file kept under ``key``, left in place (to inspect the cache)."""
        return self._value if key is not None and key == self._key else None

    def keep(
        self, key: tuple[object, ...] | None, value: T, *, pages: range | None, page_count: int
    ) -> bool:
        """Keep ``value`` if pages of the document come after ``pages`` (ranges are handed
        out in ascending order), else leave it to the caller.

        :returns: whether it was kept; if not, the caller closes it.
        """
        if key is None or pages is None or not pages or max(pages[0], pages[-1]) >= page_count:
            return False
        self._key, self._value = key, value
        return True


# --------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------


def select_pages(pages: range | None, page_count: int) -> list[int]:
    """The 1-based page numbers to extract, in order, each at most once.

    :param pages: page numbers as in :func:`ingest.hookspecs.ingest_extract`: ``range(11, 21)``
        is pages 11 to 20 (the stop is excluded, as always with ``range``); ``None`` is every
        page. Numbers outside ``1..page_count`` are skipped, so the last range of a split may
        overshoot the end of the document.
    :param page_count: the document's number of pages.
    :returns: the numbers, ascending.
    """
    if pages is None:
        return list(range(1, page_count + 1))
    return sorted({number for number in pages if 1 <= number <= page_count})


def make_page(number: int, raw_text: str, extractor: str, min_chars: int) -> Page:
    """A page from an extractor's raw text: judged for OCR as it came (garbage characters
    count there), then cleaned of extractor artefacts (hyphenation markers, non-characters;
    :mod:`ingest_plugins.artefacts`) with ``\\n`` line ends.

    :param number: the 1-based page number.
    :param raw_text: the text as the PDF library returned it.
    :param extractor: the extractor's name.
    :param min_chars: see :func:`text_needs_ocr`.
    :returns: the page.
    """
    text = normalize_newlines(raw_text)
    needs_ocr = text_needs_ocr(text, min_chars)
    return Page(
        number=number, text=clean_extracted_text(text), extractor=extractor, needs_ocr=needs_ocr
    )


def normalize_newlines(text: str) -> str:
    """Turn ``\\r\\n`` and lone ``\\r`` into ``\\n``; nothing else changes (transforms clean)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


# pdfminer writes "(cid:42)" for a glyph it cannot map to Unicode: one glyph of garbage.
_CID = re.compile(r"\(cid:\d+\)")

# Characters no real text layer is made of: U+FFFD (a decoder gave up), C0/C1 controls other
# than whitespace, surrogates, and the private-use areas (fonts with broken /ToUnicode maps).
_GARBAGE = re.compile(
    "[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff\ufffd"
    "\U000f0000-\U000ffffd\U00100000-\U0010fffd]"
)


def text_needs_ocr(text: str, min_chars: int, *, garbage_share: float = GARBAGE_SHARE) -> bool:
    """Whether a page's text layer is missing or unusable, so OCR should read the page.

    Usable characters are letters and digits (any script). Garbage is counted in glyphs: each
    U+FFFD, control, surrogate or private-use character, and each pdfminer ``(cid:NN)`` run.

    :param text: the page's extracted text.
    :param min_chars: fewer usable characters than this means the page needs OCR (a scan with
        at most a page number on it).
    :param garbage_share: more than this share of garbage among the usable and garbage
        glyphs means the page needs OCR.
    :returns: ``True`` when the page needs OCR.
    """
    text, garbage = without_cid(text)
    garbage += len(_GARBAGE.findall(text))
    usable = sum(map(str.isalnum, text))
    if usable < min_chars:
        return True
    return garbage > 0 and garbage > garbage_share * (garbage + usable)


def without_cid(text: str) -> tuple[str, int]:
    """``text`` without pdfminer's ``(cid:NN)`` runs, and how many there were."""
    runs = len(_CID.findall(text))
    return (_CID.sub("", text) if runs else text), runs


def garbage_count(text: str) -> int:
    """Glyphs of ``text`` that no real text layer is made of, as :func:`text_needs_ocr`
    counts them: each ``(cid:NN)`` run, U+FFFD, control, surrogate or private-use character."""
    text, runs = without_cid(text)
    return runs + len(_GARBAGE.findall(text))


# --------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------

# D:YYYYMMDDHHmmSSOHH'mm' with everything after the year optional (PDF 32000-1, 7.9.4), plus
# what writers really produce: no "D:", a trailing apostrophe, "Z" with offsets after it,
# "-0'0'"... Anything that does not fit gives None rather than a guess.
_PDF_DATE = re.compile(
    r"""
    ^\s*(?:D:)?\s*
    (?P<year>\d{4})(?P<month>\d{2})?(?P<day>\d{2})?
    (?P<hour>\d{2})?(?P<minute>\d{2})?(?P<second>\d{2})?
    (?:\.\d+)?
    (?:
        (?P<utc>Z)(?:00'?(?:00'?)?)?
        | (?P<sign>[+-])(?P<tzh>\d{2})(?:'?(?P<tzm>\d{2}))?'?
    )?
    \s*$
    """,
    re.VERBOSE,
)


def pdf_date_to_iso(value: object) -> str | None:
    """Turn a PDF date (``D:20240101120000+02'00'``) into ISO 8601 (``2024-01-01T12:00:00+02:00``).

    Missing parts default as the PDF specification says (month and day 1, time 0). A date
    without a time zone gives a naive ISO string; ``Z`` gives ``+00:00``. Values that are
    already ISO 8601 (some writers put XMP dates in the info dictionary) pass through.

    :param value: the raw value from the document information (anything: hostile files put
        numbers, names or nothing there).
    :returns: the ISO string, or ``None`` when the value is not a date we can read.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    match = _PDF_DATE.match(value)
    if match is None:
        return _iso_passthrough(value)
    parts = match.groupdict()
    try:
        tz: timezone | None = None
        if parts["utc"]:
            tz = UTC
        elif parts["sign"]:
            offset = timedelta(hours=int(parts["tzh"]), minutes=int(parts["tzm"] or 0))
            tz = timezone(-offset if parts["sign"] == "-" else offset)
        moment = datetime(
            int(parts["year"]),
            int(parts["month"] or 1),
            int(parts["day"] or 1),
            int(parts["hour"] or 0),
            int(parts["minute"] or 0),
            int(parts["second"] or 0),
            tzinfo=tz,
        )
    except ValueError:
        # Month 13, hour 25, an offset of 24 hours or more...
        return None
    return moment.isoformat()


def _iso_passthrough(value: str) -> str | None:
    try:
        return datetime.fromisoformat(value.strip()).isoformat()
    except ValueError:
        return None


def clean_metadata_text(value: object) -> str | None:
    """A metadata value as a stripped string; ``None`` when absent, empty or not text.

    NUL characters are dropped: some writers pad UTF-16 strings with them, and they break
    sinks such as SQLite text columns.
    """
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip()
    return text or None
