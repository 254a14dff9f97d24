"""A plugin settings section defined at module level, as a real plugin's would be.

Imported by name (``config_ocr_section``) in tests of ``ingest.config`` that pickle settings
into another process, which must import this model to rebuild them.

A stand-in for the real section (:class:`ingest_plugins.ocr.settings.OcrSettings`),
kept apart on purpose: the config tests must not need the ``ocr`` extra, and this module has
no hooks, so it never registers an ``ocr`` section next to the real plugin's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class OcrSettings(BaseModel):
    """Settings of the ocr plugin."""

    model_config = ConfigDict(extra="forbid")

    dpi: int = Field(300, gt=0, description="Resolution pages are rendered at for OCR.")
    languages: list[str] = Field(default_factory=lambda: ["eng"], description="OCR languages.")
    engine: Literal["auto", "tesseract", "rapidocr"] = Field("auto", description="OCR engine.")


def echo(value: object) -> object:
    """Return ``value``: run in a worker process, it round-trips ``value`` through pickle."""
    return value
