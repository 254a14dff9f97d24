"""Generators of hostile PDFs for the worker tests (see test_hostile.py).

Each function writes one small file at the path it is given and returns the path:

* :func:`flate_bomb`: a content stream that inflates to 1 GiB of zeros (a 4.5 MiB file);
* :func:`huge_length`: a stream whose ``/Length`` says 1 TiB;
* :func:`many_pages`: 10,000 pages under a balanced page tree;
* :func:`truncated_flate`: a content stream cut off in the middle of its Flate data, which
  sends pdfminer into a byte-by-byte retry that is quadratic in the inflated size;
* :func:`scattered_words`: one page with 20,000 words at random places, which pdfminer's
  layout analysis groups in time quadratic in the number of text boxes.

The PDF text is written directly (objects, xref table, trailer): no library is fast enough
for 10,000 pages, and none writes broken files on purpose.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "flate_bomb",
    "huge_length",
    "many_pages",
    "scattered_words",
    "truncated_flate",
    "write_pdf",
]

_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def write_pdf(path: Path, objects: Sequence[bytes], *, root: int = 1) -> Path:
    """Write ``objects`` (object 1 first) as a PDF with a correct xref table.

    :param objects: the body of each object, without ``N 0 obj`` / ``endobj``.
    :param root: the number of the catalog object.
    :returns: ``path``.
    """
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        root,
        xref,
    )
    path.write_bytes(bytes(out))
    return path


def _stream(data: bytes, *, extra: bytes = b"", length: int | None = None) -> bytes:
    size = len(data) if length is None else length
    return b"<< /Length %d %s>>\nstream\n" % (size, extra) + data + b"\nendstream"


def _one_page(content: bytes) -> list[bytes]:
    """Catalog, page tree, page, font, and ``content`` as object 5 (the content stream)."""
    return [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        _FONT,
        content,
    ]


def flate_bomb(path: Path, *, inflated: int = 1 << 30) -> Path:
    """One page whose content stream inflates to ``inflated`` bytes of zeros (whitespace).

    A little text comes first, so an extractor that copes has something to return. The
    zeros are compressed a block at a time, so making the bomb never holds 1 GiB, and at
    level 1, which takes a third of the time of level 9 for a 4.5 MiB file instead of 1 MiB.
    """
    packer = zlib.compressobj(1)
    parts = [packer.compress(b"BT /F1 12 Tf 72 720 Td (Flate bomb ahead) Tj ET\n")]
    block = bytes(1 << 20)
    parts.extend(packer.compress(block) for _ in range(inflated >> 20))
    parts.append(packer.compress(bytes(inflated & ((1 << 20) - 1))))
    parts.append(packer.flush())
    data = b"".join(parts)
    return write_pdf(path, _one_page(_stream(data, extra=b"/Filter /FlateDecode ")))


def huge_length(path: Path, *, length: int = 1 << 40) -> Path:
    """One page whose content stream's ``/Length`` is ``length`` (1 TiB) for 40 bytes of data."""
    data = b"BT /F1 12 Tf 72 720 Td (Liar) Tj ET"
    return write_pdf(path, _one_page(_stream(data, length=length)))


def many_pages(path: Path, *, count: int = 10_000, fanout: int = 100) -> Path:
    """``count`` pages, each saying ``Page N of many``, in a two-level page tree.

    Objects: 1 catalog, 2 font, 3 the root of the tree, then one node per ``fanout`` pages,
    then each page followed by its content stream.
    """
    groups = [range(i, min(i + fanout, count)) for i in range(0, count, fanout)]
    first_group = 4
    first_page = first_group + len(groups)
    group_refs = b" ".join(b"%d 0 R" % (first_group + g) for g in range(len(groups)))
    objects = [
        b"<< /Type /Catalog /Pages 3 0 R >>",
        _FONT,
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (group_refs, count),
    ]
    for members in groups:
        kids = b" ".join(b"%d 0 R" % (first_page + 2 * p) for p in members)
        objects.append(
            b"<< /Type /Pages /Parent 3 0 R /Kids [%s] /Count %d >>" % (kids, len(members))
        )
    for index, members in enumerate(groups):
        for p in members:
            objects.append(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] "
                b"/Resources << /Font << /F1 2 0 R >> >> /Contents %d 0 R >>"
                % (first_group + index, first_page + 2 * p + 1)
            )
            objects.append(_stream(b"BT /F1 12 Tf 72 720 Td (Page %d of many) Tj ET" % (p + 1)))
    return write_pdf(path, objects)


def truncated_flate(path: Path, *, inflated: int = 32 << 20, keep: float = 0.9) -> Path:
    """One page whose Flate content stream stops at ``keep`` of its compressed bytes.

    The whole stream inflates to ``inflated`` bytes of text-showing operators; the cut one
    to most of that, which pdfminer rebuilds one input byte at a time.
    """
    line = b"BT /F1 12 Tf 72 720 Td (truncated stream text) Tj ET\n"
    data = zlib.compress(line * (inflated // len(line)), 9)
    cut = data[: int(len(data) * keep)]
    return write_pdf(path, _one_page(_stream(cut, extra=b"/Filter /FlateDecode ")))


def scattered_words(path: Path, *, words: int = 20_000, seed: int = 6) -> Path:
    """One page with ``words`` short words, each at a random place on the page."""
    rng = random.Random(seed)
    parts = [b"BT /F1 6 Tf"]
    x = y = 0.0
    for index in range(words):
        nx, ny = rng.uniform(10, 600), rng.uniform(10, 780)
        # Td moves relative to the start of the current line.
        parts.append(b"%.1f %.1f Td (w%d) Tj" % (nx - x, ny - y, index))
        x, y = nx, ny
    parts.append(b"ET")
    return write_pdf(path, _one_page(_stream(b"\n".join(parts))))
