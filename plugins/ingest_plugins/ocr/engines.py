"""The built-in engines, Tesseract and RapidOCR, registered through ``ingest_ocr_engine``.

Both import their libraries only when an engine is created (in a worker, at the first page
that needs OCR), so the driver never pays for numpy, OpenCV or onnxruntime. The cheap
checks that can fail a run at start (:func:`check_engine`) read only the file system.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest import PluginError

from ingest_plugins.ocr.engine_hooks import PageTimeout, hookimpl

if TYPE_CHECKING:
    from PIL.Image import Image

    from ingest_plugins.ocr.settings import OcrSettings

__all__ = [
    "RAPIDOCR_LANGUAGES",
    "RapidOcrEngine",
    "TesseractEngine",
    "check_engine",
    "ingest_ocr_engine",
    "resolve_engine",
    "tesseract_program",
]

#: What the recognition model inside the rapidocr-onnxruntime wheel reads (PP-OCRv4 "ch":
#: Latin script and simplified Chinese). Other languages need models we do not download.
RAPIDOCR_LANGUAGES = frozenset({"eng", "chi_sim"})

# Where Debian, Fedora, Homebrew and source builds put Tesseract's language data.
_TESSDATA_GLOBS = (
    "/usr/share/tesseract-ocr/*/tessdata",
    "/usr/share/tesseract-ocr/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)


def tesseract_program(settings: OcrSettings) -> str | None:
    """The full path of ``ocr.tesseract_cmd``, or ``None`` when it is not installed."""
    return shutil.which(settings.tesseract_cmd)


def resolve_engine(settings: OcrSettings) -> str:
    """``ocr.engine`` with ``auto`` made concrete: Tesseract when installed, else RapidOCR.

    Tesseract is preferred because on clean 300-dpi pages it was about 4x faster per page
    than RapidOCR on one thread, with a lower error rate (see the README's OCR section).
    """
    if settings.engine != "auto":
        return settings.engine
    return "tesseract" if tesseract_program(settings) else "rapidocr"


def check_engine(name: str, settings: OcrSettings) -> None:
    """Fail early, on the driver, for a built-in engine that cannot run with ``settings``.

    Only file-system lookups: cheap enough for every run, including those with no page to
    OCR. The engines check again, for sure, when they are created.

    :param name: the resolved engine name; third-party names are not checked here.
    :raises PluginError: naming ``ocr.engine``/``ocr.tesseract_cmd`` or ``ocr.languages``.
    """
    if name == "tesseract":
        if tesseract_program(settings) is None:
            raise _no_tesseract(settings)
        installed = _tessdata_languages()
        if installed is not None:
            _check_tesseract_languages(settings.languages, installed)
    elif name == "rapidocr":
        unsupported = [code for code in settings.languages if code not in RAPIDOCR_LANGUAGES]
        if unsupported:
            readable = ", ".join(sorted(RAPIDOCR_LANGUAGES))
            raise PluginError(
                f"ocr.languages: the rapidocr engine reads only {readable} with the models "
                f"in its wheel, not {', '.join(unsupported)}; use "
                "ocr.engine=tesseract for other languages"
            )


def _no_tesseract(settings: OcrSettings) -> PluginError:
    return PluginError(
        f"ocr.engine is {settings.engine!r} but the tesseract program "
        f"(ocr.tesseract_cmd={settings.tesseract_cmd!r}) was not found; install it "
        "(apt-get install tesseract-ocr) or set ocr.engine=rapidocr"
    )


def _tessdata_languages() -> set[str] | None:
    """Language codes with a ``.traineddata`` file, or ``None`` if no data folder is known."""
    folders = []
    prefix = os.environ.get("TESSDATA_PREFIX")
    if prefix:
        folders += [Path(prefix), Path(prefix) / "tessdata"]
    for pattern in _TESSDATA_GLOBS:
        folders += [Path(found) for found in sorted(glob.glob(pattern))]
    codes = {
        file.stem for folder in folders if folder.is_dir() for file in folder.glob("*.traineddata")
    }
    return codes or None


def _check_tesseract_languages(wanted: list[str], installed: set[str]) -> None:
    missing = [code for code in wanted if code not in installed]
    if missing:
        packages = " ".join(f"tesseract-ocr-{code.replace('_', '-')}" for code in missing)
        raise PluginError(
            f"ocr.languages: tesseract has no data for {', '.join(missing)} (installed: "
            f"{', '.join(sorted(installed))}); install it, e.g. apt-get install {packages}"
        )


class TesseractEngine:
    """Tesseract through pytesseract: one ``tesseract`` process per page, killed on timeout.

    :param settings: the ``ocr`` section.
    :raises PluginError: the program or a language's data is missing.
    """

    name = "tesseract"

    def __init__(self, settings: OcrSettings) -> None:
        import pytesseract

        program = tesseract_program(settings)
        if program is None:
            raise _no_tesseract(settings)
        self._pytesseract: Any = pytesseract
        pytesseract.pytesseract.tesseract_cmd = program
        _check_tesseract_languages(settings.languages, set(pytesseract.get_languages()))
        self._lang = "+".join(settings.languages)
        self._timeout = settings.page_timeout
        # Tesseract's OpenMP threads fight with the other workers for the cores: measured on
        # 2 cores, a page took 5 s with the default threads and 1 s with one. pytesseract
        # cannot pass an environment to its subprocess, so the worker's own must say it.
        os.environ.setdefault("OMP_THREAD_LIMIT", str(settings.threads))

    def recognize(self, image: Image) -> tuple[str, float]:
        """Read ``image``: text in Tesseract's reading order and the mean word confidence.

        :raises PageTimeout: Tesseract ran longer than ``ocr.page_timeout`` and was killed.
        """
        pt = self._pytesseract
        try:
            data = pt.image_to_data(
                image, lang=self._lang, timeout=self._timeout, output_type=pt.Output.DICT
            )
        except RuntimeError as exc:
            # pytesseract kills the process and says so with this message, nothing typed.
            if "timeout" in str(exc).lower():
                raise PageTimeout(f"tesseract was killed after {self._timeout:g}s") from exc
            raise
        return _tesseract_text(data)


def _tesseract_text(data: dict[str, list[Any]]) -> tuple[str, float]:
    """Rebuild the text from ``image_to_data``'s words: one line per Tesseract line, a blank
    line between paragraphs; confidence is the mean of the words' weighted by length."""
    lines: list[str] = []
    words: list[str] = []
    where: tuple[int, int, int] | None = None
    weighted = letters = 0.0
    for index, word in enumerate(data["text"]):
        word = str(word).strip()
        conf = float(data["conf"][index])
        if not word or conf < 0:
            continue
        block, par, line = data["block_num"][index], data["par_num"][index], data["line_num"][index]
        if where is not None and (block, par, line) != where:
            lines.append(" ".join(words))
            words = []
            if (block, par) != where[:2]:
                lines.append("")
        where = (block, par, line)
        words.append(word)
        weighted += conf * len(word)
        letters += len(word)
    if words:
        lines.append(" ".join(words))
    return "\n".join(lines), (weighted / letters / 100.0 if letters else 0.0)


class RapidOcrEngine:
    """RapidOCR (PP-OCRv4 models inside the wheel, run by onnxruntime): no download.

    The angle classifier is off: on clean upright pages it turned 4 of 14 lines upside down
    (reading them as nothing), and scanned pages come upright or rotated as a whole.
    onnxruntime cannot be interrupted inside a model run, so ``page_timeout`` is checked by
    the plugin after the page; the worker's document timeout is the hard limit.

    :param settings: the ``ocr`` section.
    :raises PluginError: a language the bundled models do not read.
    """

    name = "rapidocr"

    def __init__(self, settings: OcrSettings) -> None:
        check_engine(self.name, settings)
        from rapidocr_onnxruntime import RapidOCR

        self._ocr = RapidOCR(
            use_cls=False,
            print_verbose=False,
            intra_op_num_threads=settings.threads,
            inter_op_num_threads=1,
        )

    def recognize(self, image: Image) -> tuple[str, float]:
        """Read ``image``: lines top to bottom, a blank line where a gap is over a line tall."""
        import numpy as np

        result, _ = self._ocr(np.asarray(image.convert("RGB")))
        if not result:
            return "", 0.0
        lines: list[str] = []
        previous_bottom: float | None = None
        weighted = letters = 0.0
        for box, text, score in result:
            top = min(point[1] for point in box)
            bottom = max(point[1] for point in box)
            if previous_bottom is not None and lines and top - previous_bottom > bottom - top:
                lines.append("")
            lines.append(str(text))
            previous_bottom = bottom
            weighted += float(score) * len(text)
            letters += len(text)
        return "\n".join(lines), (weighted / letters if letters else 0.0)


@hookimpl
def ingest_ocr_engine(name: str, settings: OcrSettings) -> TesseractEngine | RapidOcrEngine | None:
    """Create the built-in engine called ``name`` (``tesseract`` or ``rapidocr``)."""
    if name == "tesseract":
        return TesseractEngine(settings)
    if name == "rapidocr":
        return RapidOcrEngine(settings)
    return None
