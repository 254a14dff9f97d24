"""A third OCR engine, as a third party would add one: the tesseract program run directly.

Used by name (``ocr.engine=ocr_cli_engine``) in tests/test_ocr_config.py to show that an
engine outside the ocr plugin is found, made once and used. It pipes a PNG into
``tesseract stdin stdout`` with no pytesseract in between, and reports no confidence.
"""

from __future__ import annotations

import io
import subprocess
from typing import TYPE_CHECKING

from ingest_plugins.ocr.engine_hooks import PageTimeout, hookimpl

if TYPE_CHECKING:
    from ingest_plugins.ocr.settings import OcrSettings
    from PIL.Image import Image

#: How many engines this process made; the plugin must make one per process and settings.
CREATED: list[str] = []


class CliTesseract:
    """``tesseract stdin stdout -l LANGS`` per page."""

    name = "cli-tesseract"

    def __init__(self, settings: OcrSettings) -> None:
        self.languages = "+".join(settings.languages)
        self.timeout = settings.page_timeout
        CREATED.append(self.name)

    def recognize(self, image: Image) -> tuple[str, float]:
        """Read ``image`` with the tesseract program."""
        png = io.BytesIO()
        image.save(png, format="PNG")
        try:
            done = subprocess.run(
                ["tesseract", "stdin", "stdout", "-l", self.languages],
                input=png.getvalue(),
                capture_output=True,
                timeout=self.timeout,
                check=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise PageTimeout(f"tesseract ran over {self.timeout:g}s") from exc
        return done.stdout.decode("utf-8", "replace"), 0.0


@hookimpl
def ingest_ocr_engine(name: str, settings: OcrSettings) -> CliTesseract | None:
    """Make the engine when asked for by this module's name."""
    return CliTesseract(settings) if name == __name__ else None
