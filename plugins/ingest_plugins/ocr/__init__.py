"""The ``ocr`` plugin: fill the pages whose text layer is missing or unusable.

Loaded only when named (``ingest run DIR --plugin ocr``). A hook wrapper around
``ingest_extract`` looks at the document the extractor made; the pages that need OCR (see
:mod:`ingest_plugins.ocr.detect`) are rendered with PDFium at ``ocr.dpi`` and read by the
engine. A filled page gets ``extractor="ocr"``, ``needs_ocr=False`` and
``provenance["ocr"]``: engine, confidence, dpi, languages, reason, seconds and the extractor
whose text layer it replaced. Pages with a usable text layer are not touched, and a document
without a page to OCR is not opened again.

Because it wraps extraction, OCR runs wherever extraction runs: in the worker processes,
under their document timeout and memory cap. Engines come from the plugin's own hook
(:mod:`ingest_plugins.ocr.engine_hooks`); one engine is made per worker process, lazily.

The heavy dependencies are the extra ``ingest[ocr]``; without them importing this module
fails with one line naming the extra, which ``--plugin ocr`` reports at start (exit 4).
"""

from __future__ import annotations

from ingest_plugins.extras import require_extra

#: Top-level modules of the ``ocr`` extra (Pillow is ``PIL``). Checked without importing
#: them: onnxruntime and OpenCV take 0.2 s to import, too much for a driver that may have no
#: page to OCR; the engines import them in the worker.
EXTRA_MODULES = ("PIL", "pytesseract", "rapidocr_onnxruntime", "onnxruntime")


require_extra("the ocr plugin", "ocr", EXTRA_MODULES)

# The imports below come after the check on purpose: it must fail before anything else.
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Generator  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

from ingest import PDF_MEDIA_TYPE, DocumentError, Page, PluginError, hookimpl  # noqa: E402

from ingest_plugins.ocr.detect import (  # noqa: E402
    clearly_readable,
    is_sparse,
    letter_count,
    may_be_sparse,
    reason_from_text,
)
from ingest_plugins.ocr.engine_hooks import (  # noqa: E402
    BUILTIN_ENGINES,
    OcrEngine,
    PageTimeout,
    engine_manager,
)
from ingest_plugins.ocr.engines import check_engine, resolve_engine  # noqa: E402
from ingest_plugins.ocr.render import open_pdf, page_layout, render_page  # noqa: E402
from ingest_plugins.ocr.settings import OcrSettings  # noqa: E402

if TYPE_CHECKING:
    from ingest import Document, IngestPluginManager, Settings, Source
    from pydantic import BaseModel

__all__ = ["NAME", "OcrSettings", "fill_document", "get_engine"]

NAME = "ocr"

# One engine per process and settings: creating one loads models (RapidOCR: ~1 s) or asks
# Tesseract for its languages. A lock, because a threaded backend may extract in parallel.
_ENGINES: dict[str, OcrEngine] = {}
_ENGINES_LOCK = threading.Lock()

# Pages that timed out in this process: when the extractor chain falls back to the next
# extractor, the same page would be OCR'd again and time out again, doubling the wait.
_TIMED_OUT: dict[tuple[str, int], str] = {}


@hookimpl
def ingest_register_settings(register: Callable[[str, type[BaseModel]], None]) -> None:
    """Declare the ``ocr`` section (:class:`~ingest_plugins.ocr.settings.OcrSettings`)."""
    register(NAME, OcrSettings)


@hookimpl
def ingest_configure(settings: Settings, manager: IngestPluginManager, role: str) -> None:
    """Fail at start for an engine that cannot run: unknown name, no tesseract, a language
    without data. Cheap: file-system lookups only; the engine itself is made later."""
    ocr: OcrSettings = settings.ocr  # type: ignore[attr-defined]  # our section, added at run time
    if ocr.mode == "never":
        return
    name = resolve_engine(ocr)
    if name in BUILTIN_ENGINES:
        check_engine(name, ocr)
    else:
        engine_manager(name)  # imports the third-party engine, or names ocr.engine


#: Seconds a page may take to be read, by engine, at 300 dpi: about three times the median
#: of a dense A4 page on one thread here (Tesseract 2.5-3.6 s, RapidOCR 8.7-9.0 s).
PAGE_SECONDS = {"tesseract": 10.0, "rapidocr": 30.0}


@hookimpl
def ingest_page_seconds(settings: Settings) -> float | None:
    """Give OCR'd pages room in the workers' deadlines.

    Which pages need OCR is known only once they are extracted, so every page of a task gets
    the time one OCR'd page may take: an engine's :data:`PAGE_SECONDS`, scaled by the pixels
    of ``ocr.dpi`` (``ocr.page_timeout`` for a third-party engine), never more than
    ``ocr.page_timeout``. A document with a hung text layer is then killed later than
    without the plugin; ``ocr.page_timeout`` still bounds each OCR'd page.
    """
    ocr: OcrSettings = settings.ocr  # type: ignore[attr-defined]  # our section, added at run time
    if ocr.mode == "never":
        return None
    seconds = PAGE_SECONDS.get(resolve_engine(ocr))
    if seconds is None:
        return float(ocr.page_timeout)
    return min(float(ocr.page_timeout), seconds * (ocr.dpi / 300) ** 2)


@hookimpl(wrapper=True)
def ingest_extract(
    source: Source, settings: Settings, extractor: str, pages: range | None
) -> Generator[None, Document | None, Document | None]:
    """Let the extractor run, then OCR the pages of its document that need it."""
    document = yield
    if document is None:
        return None
    return fill_document(document, settings)


def get_engine(ocr: OcrSettings) -> OcrEngine:
    """The engine for ``ocr`` in this process, made on first use through ``ingest_ocr_engine``.

    :raises PluginError: no engine answers to the name, or the engine refused the settings.
    """
    key = ocr.model_dump_json()
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            name = resolve_engine(ocr)
            engine = engine_manager(name).hook.ingest_ocr_engine(name=name, settings=ocr)
            if engine is None:
                raise PluginError(f"ocr.engine: no OCR engine answered to the name {name!r}")
            _ENGINES[key] = engine
        return engine


def fill_document(document: Document, settings: Settings) -> Document:
    """OCR the pages of ``document`` that need it, in place, and return it.

    :param document: what the extractor returned (for a page range: only those pages).
    :param settings: the run's settings, with the ``ocr`` section.
    :raises DocumentError: reason ``timeout`` when a page took longer than
        ``ocr.page_timeout``; other engine errors propagate and fail the document.
    """
    ocr: OcrSettings = settings.ocr  # type: ignore[attr-defined]  # our section, added at run time
    if ocr.mode == "never" or document.source.media_type != PDF_MEDIA_TYPE:
        return document
    min_chars = settings.extract.min_chars_per_page
    wanted: dict[int, str] = {}
    measure: list[int] = []
    density = ocr.min_letters_per_sq_inch
    for index, page in enumerate(document.pages):
        if ocr.mode == "auto" and clearly_readable(
            page, min_chars=min_chars, letters_per_sq_inch=density
        ):
            continue
        reason = reason_from_text(page, min_chars=min_chars)
        if reason is None and ocr.mode == "always":
            reason = "always"
        if reason is not None:
            wanted[index] = reason
        elif may_be_sparse(page, density):
            measure.append(index)
    if not wanted and not measure:
        return document  # the common case: not one more byte of the file is read
    source = document.source
    with open_pdf(source.path, settings) as pdf:
        for index in measure:
            page = document.pages[index]
            area, image_share = page_layout(pdf, page.number)
            if is_sparse(page, density, area, image_share):
                wanted[index] = "sparse"
        for index in sorted(wanted):
            page = document.pages[index]
            image, dpi = render_page(pdf, page.number, ocr.dpi)
            document.pages[index] = _recognize(source, page, image, dpi, wanted[index], ocr)
    return document


def _recognize(
    source: Source, page: Page, image: Any, dpi: int, reason: str, ocr: OcrSettings
) -> Page:
    key = (source.content_id, page.number)
    engine = get_engine(ocr)
    if key in _TIMED_OUT:
        raise _timeout(source, page, _TIMED_OUT[key], ocr)
    started = time.perf_counter()
    try:
        text, confidence = engine.recognize(image)
    except PageTimeout as exc:
        _remember_timeout(key, str(exc))
        raise _timeout(source, page, str(exc), ocr) from None
    seconds = time.perf_counter() - started
    if seconds > ocr.page_timeout:
        # Engines that cannot be interrupted (onnxruntime) are judged when the page is done.
        why = f"{engine.name} took {seconds:.1f}s"
        _remember_timeout(key, why)
        raise _timeout(source, page, why, ocr)
    facts = {
        "engine": engine.name,
        "confidence": round(confidence, 4),
        "dpi": dpi,
        "languages": list(ocr.languages),
        "reason": reason,
        "seconds": round(seconds, 3),
        "text_layer_extractor": page.extractor,
    }
    if reason == "sparse" and letter_count(text) <= letter_count(page.text):
        # The page had a little real text and OCR found no more: keep what the PDF says.
        facts["kept_text_layer"] = True
        return Page(page.number, page.text, page.extractor, False, {**page.provenance, NAME: facts})
    return Page(page.number, text, NAME, False, {**page.provenance, NAME: facts})


def _remember_timeout(key: tuple[str, int], why: str) -> None:
    if len(_TIMED_OUT) >= 64:
        _TIMED_OUT.clear()
    _TIMED_OUT[key] = why


def _timeout(source: Source, page: Page, why: str, ocr: OcrSettings) -> DocumentError:
    return DocumentError(
        "timeout",
        f"{source.path}: OCR of page {page.number} took longer than "
        f"ocr.page_timeout={ocr.page_timeout:g}s ({why})",
        plugin=NAME,
    )
