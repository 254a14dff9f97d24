"""Generate small PDFs with known content for tests, with fpdf2.

Every helper writes one file at the path it is given and returns that path, so a test writes
``pdfgen.multipage_pdf(tmp_path / "a.pdf")`` and knows exactly what each page says.

* :func:`multipage_pdf`, :func:`text_pdf`: pages of plain text (:func:`sample_text` is the
  text of page ``n``) and document metadata (title, author, subject, creation date).
* :func:`encrypted_pdf`: the same, encrypted with an empty or a real user password.
* :func:`image_only_pdf`: one page that is a picture of text, with no text layer.
* :func:`garbage_text_pdf`: one page whose text layer decodes to private-use characters, as a
  PDF with a broken ``/ToUnicode`` map does.
* :func:`mixed_pdf`: a text page, an image-only page and a garbage page in one document.
* :func:`not_a_pdf`, :func:`truncated_pdf`: files that fail to parse.

Only fpdf2 and Pillow (an fpdf2 dependency) draw the pages; the garbage page gets its broken
``/ToUnicode`` map from an incremental update appended here, since fpdf2 has no way to write
a wrong one on purpose.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fpdf import FPDF
from fpdf.enums import EncryptionMethod

__all__ = [
    "DEFAULT_AUTHOR",
    "DEFAULT_CREATED",
    "DEFAULT_CREATED_ISO",
    "DEFAULT_SUBJECT",
    "DEFAULT_TITLE",
    "GARBAGE_FONT",
    "MIXED_NEEDS_OCR",
    "Encryption",
    "encrypted_pdf",
    "garbage_text_pdf",
    "image_only_pdf",
    "mixed_pdf",
    "multipage_pdf",
    "not_a_pdf",
    "sample_text",
    "sample_texts",
    "text_pdf",
    "truncated_pdf",
]

DEFAULT_TITLE = "Ingest test document"
DEFAULT_AUTHOR = "Ada Tester"
DEFAULT_SUBJECT = "Known text for extractor tests"
DEFAULT_CREATED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
#: :data:`DEFAULT_CREATED` as extractors report it (ISO 8601, UTC offset spelled out).
DEFAULT_CREATED_ISO = "2024-01-02T03:04:05+00:00"

#: The base font of the garbage page; text pages use Helvetica, so only this font's text
#: turns to garbage.
GARBAGE_FONT = "Courier"

#: Which pages of :func:`mixed_pdf` have no usable text layer.
MIXED_NEEDS_OCR = (False, True, True)

Encryption = Literal["rc4", "aes128", "aes256"]

_METHODS: dict[str, EncryptionMethod] = {
    "rc4": EncryptionMethod.RC4,
    "aes128": EncryptionMethod.AES_128,
    "aes256": EncryptionMethod.AES_256,
}


def sample_text(number: int) -> str:
    """The known text of page ``number`` of :func:`multipage_pdf`: two lines, unique per page.

    Each page carries a token (``marker-0003`` on page 3) that appears on no other page, so a
    test can tell pages apart.
    """
    return (
        f"Page {number} of the sample document, marker-{number:04d}.\n"
        f"The quick brown fox jumps over the lazy dog {number} times."
    )


def sample_texts(count: int) -> list[str]:
    """The known texts of pages 1 to ``count``."""
    return [sample_text(number) for number in range(1, count + 1)]


def _new_document(
    *, title: str | None, author: str | None, subject: str | None, created: datetime | None
) -> FPDF:
    pdf = FPDF(unit="pt", format="A4")
    pdf.set_auto_page_break(auto=False)
    if title is not None:
        pdf.set_title(title)
    if author is not None:
        pdf.set_author(author)
    if subject is not None:
        pdf.set_subject(subject)
    pdf.set_creator("tests/pdfgen.py")
    pdf.set_creation_date(created)
    return pdf


def _write_text_page(pdf: FPDF, text: str, *, font: str = "Helvetica") -> None:
    pdf.add_page()
    pdf.set_font(font, size=12)
    pdf.set_xy(72, 72)
    # One cell per line: a line break in the text becomes a line on the page.
    for line in text.split("\n"):
        pdf.cell(0, 16, line, new_x="LMARGIN", new_y="NEXT")
        pdf.set_x(72)


def _image_of_text(text: str) -> io.BytesIO:
    """A PNG of ``text`` in black on white, as a scanner would give it."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (1200, 300), color=255)
    draw = ImageDraw.Draw(image)
    # Pillow's built-in font scales when FreeType is available, so no system font is needed.
    font = ImageFont.load_default(size=64)
    draw.text((40, 100), text, fill=0, font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


def _write_image_page(pdf: FPDF, text: str) -> None:
    pdf.add_page()
    pdf.image(_image_of_text(text), x=36, y=72, w=520)


def _encrypt(
    pdf: FPDF, *, user_password: str | None, owner_password: str | None, method: Encryption
) -> None:
    if user_password is None and owner_password is None:
        return
    pdf.set_encryption(
        owner_password=owner_password or "owner",
        user_password=user_password or "",
        encryption_method=_METHODS[method],
    )


def text_pdf(
    path: Path,
    texts: Sequence[str],
    *,
    title: str | None = DEFAULT_TITLE,
    author: str | None = DEFAULT_AUTHOR,
    subject: str | None = DEFAULT_SUBJECT,
    created: datetime | None = DEFAULT_CREATED,
    user_password: str | None = None,
    owner_password: str | None = None,
    encryption: Encryption = "aes256",
) -> Path:
    """Write a PDF with one page per item of ``texts`` (``\\n`` starts a new line).

    :param path: where to write.
    :param texts: the text of each page, in order; Latin-1 characters only (core font).
    :param title: the document title, or ``None`` for none (likewise author and subject).
    :param created: the creation date written to the document information.
    :param user_password: encrypt, with this user password (``""``: opens without one).
    :param owner_password: encrypt, with this owner password (``"owner"`` when only a user
        password is given).
    :param encryption: the cipher used when encrypting.
    :returns: ``path``.
    """
    pdf = _new_document(title=title, author=author, subject=subject, created=created)
    for text in texts:
        _write_text_page(pdf, text)
    _encrypt(pdf, user_password=user_password, owner_password=owner_password, method=encryption)
    pdf.output(str(path))
    return path


def numbered_pdfs(folder: Path, count: int, *, words: str) -> list[Path]:
    """Write ``doc000.pdf``, ``doc001.pdf``... into ``folder``: three pages of 25 lines each,
    every line naming its document, page and line before ``words``, so that no two pages (and
    no two documents) have the same text. Each document's title is ``Document N``.

    :param folder: an existing folder.
    :param count: how many documents.
    :param words: the rest of each line (Latin-1).
    :returns: the paths, in order.
    """
    paths: list[Path] = []
    for number in range(count):
        pages = [
            "\n".join(f"Document {number} page {page} line {line}: {words}" for line in range(25))
            for page in (1, 2, 3)
        ]
        path = folder / f"doc{number:03d}.pdf"
        paths.append(text_pdf(path, pages, title=f"Document {number}"))
    return paths


def multipage_pdf(path: Path, pages: int = 3, **options: Any) -> Path:
    """Write ``pages`` pages whose texts are :func:`sample_text` (1), (2)...

    :param options: passed to :func:`text_pdf` (metadata, passwords).
    :returns: ``path``.
    """
    return text_pdf(path, sample_texts(pages), **options)


def encrypted_pdf(
    path: Path,
    *,
    user_password: str = "",
    owner_password: str = "owner-secret",
    pages: int = 2,
    encryption: Encryption = "aes256",
) -> Path:
    """Write an encrypted :func:`multipage_pdf`.

    :param user_password: ``""`` (the default) gives a file any reader opens without asking,
        as many "protected" PDFs are; anything else must be given to read the file.
    :param owner_password: also opens the file.
    :param encryption: ``aes256`` (the default; needs ``cryptography``), ``aes128`` or ``rc4``.
    :returns: ``path``.
    """
    return text_pdf(
        path,
        sample_texts(pages),
        user_password=user_password,
        owner_password=owner_password,
        encryption=encryption,
    )


def image_only_pdf(path: Path, *, text: str = "SCANNED PAGE 1") -> Path:
    """Write one page holding only a picture of ``text``: no text layer at all.

    :returns: ``path``.
    """
    pdf = _new_document(title=DEFAULT_TITLE, author=None, subject=None, created=DEFAULT_CREATED)
    _write_image_page(pdf, text)
    pdf.output(str(path))
    return path


def _garble_font(path: Path) -> None:
    """Give every :data:`GARBAGE_FONT` font in ``path`` a ``/ToUnicode`` map into private use.

    Byte ``b`` then reads as U+E000 + ``b``: the glyphs still draw correctly, but the text
    layer is as useless as in a PDF made with a broken font subset. The change is appended as
    an incremental update (new objects, an xref section and a trailer pointing back with
    ``/Prev``), so the bytes fpdf2 wrote stay as they are.
    """
    data = path.read_bytes()
    fonts = re.findall(
        rb"\n(\d+) 0 obj\n<<\n([^>]*?/BaseFont /" + GARBAGE_FONT.encode() + rb"\n[^>]*?)>>\nendobj",
        data,
    )
    if not fonts:
        raise ValueError(f"{path}: no {GARBAGE_FONT} font dictionary found (fpdf2 output changed?)")
    trailer = data[data.rindex(b"trailer") :]
    size = int(_trailer_value(trailer, b"Size"))
    previous = int(data[data.rindex(b"startxref") + len(b"startxref") :].split()[0])
    entries = "\n".join(f"<{code:02X}> <{0xE000 + code:04X}>" for code in range(0x20, 0x7F))
    cmap = (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CMapName /Garbage def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<00> <FF>\nendcodespacerange\n"
        f"{0x7F - 0x20} beginbfchar\n{entries}\nendbfchar\n"
        "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")
    update = bytearray(data if data.endswith(b"\n") else data + b"\n")
    offsets: dict[int, int] = {size: len(update)}
    update += b"%d 0 obj\n<<\n/Length %d\n>>\nstream\n" % (size, len(cmap))
    update += cmap + b"\nendstream\nendobj\n"
    for number, body in fonts:
        offsets[int(number)] = len(update)
        update += b"%s 0 obj\n<<\n%s/ToUnicode %d 0 R\n>>\nendobj\n" % (number, body, size)
    xref = len(update)
    update += b"xref\n"
    for number in sorted(offsets):
        # Each xref entry is exactly 20 bytes, end of line included.
        update += b"%d 1\n%010d 00000 n \n" % (number, offsets[number])
    update += b"trailer\n<<\n/Size %d\n/Root %s\n" % (size + 1, _trailer_value(trailer, b"Root"))
    if b"/Info" in trailer:
        update += b"/Info %s\n" % _trailer_value(trailer, b"Info")
    update += b"/Prev %d\n>>\nstartxref\n%d\n%%%%EOF\n" % (previous, xref)
    path.write_bytes(bytes(update))


def _trailer_value(trailer: bytes, key: bytes) -> bytes:
    """The value of ``/key`` in an fpdf2 trailer: a number or an ``N 0 R`` reference."""
    match = re.search(rb"/" + key + rb" (\d+(?: \d+ R)?)", trailer)
    if match is None:
        raise ValueError(f"no /{key.decode()} in the trailer")
    return match.group(1)


def garbage_text_pdf(
    path: Path, *, text: str = "This text layer decodes to private-use garbage only."
) -> Path:
    """Write one page whose text layer reads as private-use characters (U+E000...).

    :returns: ``path``.
    """
    pdf = _new_document(title=DEFAULT_TITLE, author=None, subject=None, created=DEFAULT_CREATED)
    _write_text_page(pdf, text, font=GARBAGE_FONT)
    pdf.output(str(path))
    _garble_font(path)
    return path


def mixed_pdf(path: Path) -> Path:
    """Write three pages: text (:func:`sample_text` (1)), image only, garbage text.

    :data:`MIXED_NEEDS_OCR` says which of them need OCR.

    :returns: ``path``.
    """
    pdf = _new_document(
        title=DEFAULT_TITLE, author=DEFAULT_AUTHOR, subject=None, created=DEFAULT_CREATED
    )
    _write_text_page(pdf, sample_text(1))
    _write_image_page(pdf, "SCANNED PAGE 2")
    _write_text_page(
        pdf, "Garbage text layer on page three of the mixed sample.", font=GARBAGE_FONT
    )
    pdf.output(str(path))
    _garble_font(path)
    return path


def not_a_pdf(path: Path, *, content: bytes = b"PK\x03\x04 this is a zip, not a PDF\n") -> Path:
    """Write ``content`` (no ``%PDF-`` header) under a name that may well end in ``.pdf``.

    :returns: ``path``.
    """
    path.write_bytes(content)
    return path


def truncated_pdf(path: Path, *, pages: int = 3, keep: float = 0.5) -> Path:
    """Write a :func:`multipage_pdf` cut after ``keep`` of its bytes (no xref, no trailer).

    :param keep: the share of the bytes kept, between 0 and 1.
    :returns: ``path``.
    """
    multipage_pdf(path, pages)
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path
