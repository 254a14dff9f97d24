"""The three PDF extractors (pdfium, pypdf, pdfminer) and their shared rules (pdf_common).

Most tests run each extractor's plain function on PDFs made by :mod:`pdfgen`, so they know
exactly what each page says. The hook tests check the thin adapters through a pluggy manager
that holds only the hookspecs and the extractor under test. The corpus tests compare page
counts with ``../shared/corpus/manifest.tsv`` and skip when the corpus is absent.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import ingest.hookspecs
import pdfgen
import pluggy
import pytest
from ingest.errors import DocumentError
from ingest.model import PDF_MEDIA_TYPE, Document, Metadata, Page, Source
from ingest_plugins import pdfium_extractor, pdfminer_extractor, pypdf_extractor

Extract = Callable[..., tuple[Metadata, list[Page]]]

EXTRACTORS: dict[str, tuple[ModuleType, Extract]] = {
    "pdfium": (pdfium_extractor, pdfium_extractor.extract_with_pdfium),
    "pypdf": (pypdf_extractor, pypdf_extractor.extract_with_pypdf),
    "pdfminer": (pdfminer_extractor, pdfminer_extractor.extract_with_pdfminer),
}

MIN_CHARS = 16


@pytest.fixture(params=sorted(EXTRACTORS))
def name(request: pytest.FixtureRequest) -> str:
    """Each extractor's name in turn."""
    return str(request.param)


@pytest.fixture
def extract(name: str) -> Extract:
    """Each extractor's plain function in turn."""
    return EXTRACTORS[name][1]


def _words(text: str) -> str:
    """Whitespace collapsed: extractors may break or space lines differently."""
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------
# Text, pages, metadata
# --------------------------------------------------------------------------------------------


def test_each_page_has_its_known_text(extract: Extract, name: str, tmp_path: Path) -> None:
    path = pdfgen.multipage_pdf(tmp_path / "three.pdf", 3)
    metadata, pages = extract(path, password=None, min_chars=MIN_CHARS)
    assert metadata.page_count == 3
    assert [page.number for page in pages] == [1, 2, 3]
    for page in pages:
        assert _words(page.text) == _words(pdfgen.sample_text(page.number))
        assert page.extractor == name
        assert page.needs_ocr is False


def test_line_endings_are_newlines_only(extract: Extract, tmp_path: Path) -> None:
    """PDFium ends lines with CRLF; every extractor must give ``\\n`` only."""
    path = pdfgen.multipage_pdf(tmp_path / "two.pdf", 2)
    _, pages = extract(path, password=None, min_chars=MIN_CHARS)
    for page in pages:
        assert "\r" not in page.text
        assert f"marker-{page.number:04d}.\nThe quick" in page.text


def test_metadata_is_read_back(extract: Extract, tmp_path: Path) -> None:
    path = pdfgen.multipage_pdf(tmp_path / "meta.pdf", 2)
    metadata, _ = extract(path, password=None, min_chars=MIN_CHARS)
    assert metadata.title == pdfgen.DEFAULT_TITLE
    assert metadata.author == pdfgen.DEFAULT_AUTHOR
    assert metadata.subject == pdfgen.DEFAULT_SUBJECT
    assert metadata.creator == "tests/pdfgen.py"
    assert metadata.created == pdfgen.DEFAULT_CREATED_ISO
    assert metadata.modified is None
    assert metadata.encrypted is False


def test_absent_metadata_is_none(extract: Extract, tmp_path: Path) -> None:
    path = pdfgen.text_pdf(
        tmp_path / "bare.pdf",
        ["Plain text without any title or author."],
        title=None,
        author=None,
        subject=None,
    )
    metadata, _ = extract(path, password=None, min_chars=MIN_CHARS)
    assert (metadata.title, metadata.author, metadata.subject) == (None, None, None)


@pytest.mark.parametrize(
    ("pages", "expected"),
    [
        (range(2, 4), [2, 3]),
        (range(4, 10), [4, 5]),  # the last range of a split may overshoot the end
        (range(1, 6, 2), [1, 3, 5]),
        (range(7, 9), []),
        (range(0), []),
    ],
)
def test_page_range_gives_only_those_pages(
    extract: Extract, tmp_path: Path, pages: range, expected: list[int]
) -> None:
    path = pdfgen.multipage_pdf(tmp_path / "five.pdf", 5)
    metadata, got = extract(path, password=None, min_chars=MIN_CHARS, pages=pages)
    assert metadata.page_count == 5
    assert [page.number for page in got] == expected
    for page in got:
        assert f"marker-{page.number:04d}" in page.text


# --------------------------------------------------------------------------------------------
# Pages that need OCR
# --------------------------------------------------------------------------------------------


def test_image_only_page_needs_ocr(extract: Extract, tmp_path: Path) -> None:
    path = pdfgen.image_only_pdf(tmp_path / "scan.pdf")
    metadata, pages = extract(path, password=None, min_chars=MIN_CHARS)
    assert metadata.page_count == 1
    assert [page.needs_ocr for page in pages] == [True]
    assert pages[0].text.strip() == ""


def test_garbage_text_page_needs_ocr(extract: Extract, tmp_path: Path) -> None:
    path = pdfgen.garbage_text_pdf(tmp_path / "garbage.pdf")
    _, pages = extract(path, password=None, min_chars=MIN_CHARS)
    assert pages[0].text.strip(), "the garbage page must have a text layer, only a bad one"
    assert pages[0].needs_ocr is True


def test_needs_ocr_per_page_in_a_mixed_document(extract: Extract, tmp_path: Path) -> None:
    path = pdfgen.mixed_pdf(tmp_path / "mixed.pdf")
    _, pages = extract(path, password=None, min_chars=MIN_CHARS)
    assert tuple(page.needs_ocr for page in pages) == pdfgen.MIXED_NEEDS_OCR


# --------------------------------------------------------------------------------------------
# Encrypted, not a PDF, truncated
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encryption", ["aes256", "rc4"])
def test_empty_user_password_opens_and_is_flagged(
    extract: Extract, tmp_path: Path, encryption: pdfgen.Encryption
) -> None:
    path = pdfgen.encrypted_pdf(tmp_path / "open.pdf", encryption=encryption)
    metadata, pages = extract(path, password=None, min_chars=MIN_CHARS)
    assert metadata.encrypted is True
    assert metadata.title == pdfgen.DEFAULT_TITLE
    assert [_words(page.text) for page in pages] == [
        _words(text) for text in pdfgen.sample_texts(2)
    ]


@pytest.mark.parametrize("password", [None, "wrong"])
def test_user_password_required_fails_as_encrypted(
    extract: Extract, name: str, tmp_path: Path, password: str | None
) -> None:
    path = pdfgen.encrypted_pdf(tmp_path / "locked.pdf", user_password="s3cret")
    with pytest.raises(DocumentError, match=r"locked\.pdf: encrypted and .*--password") as info:
        extract(path, password=password, min_chars=MIN_CHARS)
    assert info.value.reason == "encrypted"
    assert info.value.plugin == name
    assert ("incorrect" in info.value.message) is (password is not None)


@pytest.mark.parametrize("password", ["s3cret", "owner-secret"])
def test_user_or_owner_password_opens(extract: Extract, tmp_path: Path, password: str) -> None:
    path = pdfgen.encrypted_pdf(tmp_path / "locked.pdf", user_password="s3cret", pages=3)
    metadata, pages = extract(password=password, path=path, min_chars=MIN_CHARS)
    assert metadata.encrypted is True
    assert metadata.page_count == 3
    assert "marker-0003" in pages[2].text


def test_not_a_pdf_named_pdf(extract: Extract, name: str, tmp_path: Path) -> None:
    path = pdfgen.not_a_pdf(tmp_path / "archive.pdf")
    with pytest.raises(DocumentError, match=r"archive\.pdf: not a PDF") as info:
        extract(path, password=None, min_chars=MIN_CHARS)
    assert (info.value.reason, info.value.plugin) == ("not-a-pdf", name)


def test_junk_before_the_header_is_accepted(extract: Extract, tmp_path: Path) -> None:
    """Readers accept bytes before ``%PDF-`` (mail headers...), within the first kilobyte."""
    path = pdfgen.multipage_pdf(tmp_path / "prefixed.pdf", 1)
    path.write_bytes(b"X-Mailer: junk\n" + path.read_bytes())
    metadata, pages = extract(path, password=None, min_chars=MIN_CHARS)
    assert metadata.page_count == 1
    assert "marker-0001" in pages[0].text


@pytest.mark.timeout(30)
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_file_fails_or_reads_but_never_hangs(
    extract: Extract, tmp_path: Path, keep: float
) -> None:
    path = pdfgen.truncated_pdf(tmp_path / "cut.pdf", pages=3, keep=keep)
    try:
        metadata, pages = extract(path, password=None, min_chars=MIN_CHARS)
    except Exception:  # any parser error is an acceptable outcome for a cut file
        return
    assert len(pages) == metadata.page_count <= 3


def test_pdfium_closes_what_it_opens(tmp_path: Path) -> None:
    """PDFium holds the file and native memory until closed (issue: memory across files)."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to count open files")
    good = pdfgen.multipage_pdf(tmp_path / "good.pdf", 2)
    locked = pdfgen.encrypted_pdf(tmp_path / "locked.pdf", user_password="s3cret")
    extract = pdfium_extractor.extract_with_pdfium
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(30):
        extract(good, password=None, min_chars=MIN_CHARS)
        with pytest.raises(DocumentError):
            extract(locked, password="wrong", min_chars=MIN_CHARS)
    assert len(os.listdir("/proc/self/fd")) == before


# --------------------------------------------------------------------------------------------
# The hooks
# --------------------------------------------------------------------------------------------


def _settings(password: str | None = None) -> Any:
    """Settings as the hooks read them: ``settings.extract.password`` and min chars.

    ``ingest.config`` was not written yet when these tests were; the hooks only read these two
    fields, so a namespace stands in for it.
    """
    return SimpleNamespace(extract=SimpleNamespace(password=password, min_chars_per_page=16))


def _manager(module: ModuleType) -> pluggy.PluginManager:
    """A manager with every hookspec and only ``module``: signatures are checked on register."""
    manager = pluggy.PluginManager(ingest.hookspecs.PROJECT_NAME)
    manager.add_hookspecs(ingest.hookspecs)
    manager.register(module)
    return manager


def test_hooks_extract_a_pdf_source(name: str, tmp_path: Path) -> None:
    manager = _manager(EXTRACTORS[name][0])
    source = Source.from_path(pdfgen.multipage_pdf(tmp_path / "doc.pdf", 3))
    claimed = manager.hook.ingest_extract_claim(source=source, settings=_settings(), extractor=name)
    assert claimed == name
    document = manager.hook.ingest_extract(
        source=source, settings=_settings(), extractor=name, pages=range(2, 3)
    )
    assert isinstance(document, Document)
    assert document.source is source
    assert document.metadata.page_count == 3
    assert [(page.number, page.extractor) for page in document.pages] == [(2, name)]


def test_hooks_pass_the_configured_password(name: str, tmp_path: Path) -> None:
    manager = _manager(EXTRACTORS[name][0])
    source = Source.from_path(pdfgen.encrypted_pdf(tmp_path / "doc.pdf", user_password="pw"))
    document = manager.hook.ingest_extract(
        source=source, settings=_settings("pw"), extractor=name, pages=None
    )
    assert document.metadata.encrypted is True
    assert len(document.pages) == 2


@pytest.mark.parametrize(
    ("extractor", "media_type"),
    [("another", PDF_MEDIA_TYPE), (None, "text/plain")],
)
def test_hooks_leave_other_extractors_and_types_alone(
    name: str, tmp_path: Path, extractor: str | None, media_type: str
) -> None:
    manager = _manager(EXTRACTORS[name][0])
    path = pdfgen.not_a_pdf(tmp_path / "notes.txt", content=b"no PDF here")
    source = Source.from_path(path, media_type=media_type)
    asked = extractor or name
    kwargs = {"source": source, "settings": _settings(), "extractor": asked}
    assert manager.hook.ingest_extract_claim(**kwargs) is None
    assert manager.hook.ingest_extract(**kwargs, pages=None) is None


# --------------------------------------------------------------------------------------------
# The shared corpus of real PDFs
# --------------------------------------------------------------------------------------------

# Small files every extractor reads, with several pages, from four different producers.
CORPUS_SAMPLE = (
    "pdfplumber__tests_pdfs_issue-463-example.pdf",
    "pdfplumber__tests_pdfs_issue-33-lorem-ipsum.pdf",
    "samplefiles__004-pdflatex-4-pages_pdflatex-4-pages.pdf",
    "pypdf__resources_outline-without-title.pdf",
    "pdfminer__samples_font-size-test.pdf",
)


def _manifest(corpus: Path) -> dict[str, dict[str, str]]:
    with (corpus / "manifest.tsv").open(newline="") as handle:
        return {row["file"]: row for row in csv.DictReader(handle, delimiter="\t")}


@pytest.mark.slow  # real corpus files, with each extractor
@pytest.mark.parametrize("filename", CORPUS_SAMPLE)
def test_corpus_sample_page_counts_and_text(
    extract: Extract, name: str, corpus: Path, filename: str
) -> None:
    row = _manifest(corpus)[filename]
    metadata, pages = extract(corpus / filename, password=None, min_chars=MIN_CHARS)
    assert metadata.page_count == int(row["pages"])
    assert [page.number for page in pages] == list(range(1, metadata.page_count + 1))
    # The manifest counts what each library gives as it gives it: PDFium's lines end in CRLF
    # (we keep LF only) and pdfminer's pages end with a form feed (we split pages instead).
    chars = sum(len(page.text) for page in pages)
    if name == "pdfium":
        chars += sum(page.text.count("\n") for page in pages)
    elif name == "pdfminer":
        chars += len(pages)
    assert chars == pytest.approx(int(row[f"{name}_chars"]), rel=0.02)


@pytest.mark.slow  # a real corpus file, whole and in ranges
def test_corpus_page_range_matches_full_extraction(extract: Extract, corpus: Path) -> None:
    """A page read alone reads as it does within the whole document (split documents)."""
    path = corpus / "samplefiles__004-pdflatex-4-pages_pdflatex-4-pages.pdf"
    _, every = extract(path, password=None, min_chars=MIN_CHARS)
    _, some = extract(path, password=None, min_chars=MIN_CHARS, pages=range(3, 5))
    assert some == every[2:4]


@pytest.mark.slow  # all 77 files
def test_corpus_page_counts_with_pdfium(corpus: Path) -> None:
    """Every corpus file with the fastest extractor (about 2 s for all 570 pages)."""
    manifest = _manifest(corpus)
    wrong = {}
    for filename, row in manifest.items():
        metadata, _ = pdfium_extractor.extract_with_pdfium(
            corpus / filename, password=None, min_chars=MIN_CHARS
        )
        if metadata.page_count != int(row["pages"]):
            wrong[filename] = (metadata.page_count, row["pages"])
    assert wrong == {}


def test_pdfium_failure_does_not_depend_on_the_file_read_before(
    tmp_path: Path, hostile: Path
) -> None:
    """PDFium keeps its last error across documents and some failed loads set none: these
    two files came out "encrypted" after a file that needs a password, and as a failure
    saying "Success" in a fresh process. A worker must give the same outcome whatever it
    read before."""
    locked = pdfgen.encrypted_pdf(tmp_path / "locked.pdf", user_password="s3cret")

    def outcome(path: Path) -> tuple[str, str]:
        try:
            pdfium_extractor.extract_with_pdfium(path, password=None, min_chars=16)
        except Exception as exc:
            return type(exc).__name__, str(exc)
        return "ok", ""

    for name in ("qpdf__issue-120.pdf", "pdfjs__poppler-395-0-fuzzed.pdf"):
        alone = outcome(hostile / name)
        assert outcome(locked)[0] == "DocumentError"  # leaves "password required" behind
        after_locked = outcome(hostile / name)
        assert after_locked == alone, name
        assert "Success" not in alone[1] and "encrypted" not in alone[1]
