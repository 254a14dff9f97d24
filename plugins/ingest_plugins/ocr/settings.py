"""The ``ocr`` settings section: a plain pydantic model, importable by name.

Workers rebuild the settings class from the import path of each section, so this model must
live at module level, and this module must stay cheap to import: it is read on the driver
before any page is seen, and it imports no OCR library.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["LANGUAGE_ALIASES", "OcrSettings"]

#: Two-letter (ISO 639-1) codes people write, to the three-letter codes Tesseract and our
#: engines use; anything else must already be an engine code such as ``chi_sim``.
LANGUAGE_ALIASES: dict[str, str] = {
    "en": "eng",
    "de": "deu",
    "fr": "fra",
    "es": "spa",
    "it": "ita",
    "pt": "por",
    "nl": "nld",
    "ru": "rus",
    "ja": "jpn",
    "zh": "chi_sim",
}

# Tesseract's names: a three-letter code with an optional script or variant (chi_sim,
# deu_latf). Checked here so a typo fails on the driver, not in every worker.
_LANGUAGE = re.compile(r"[a-z]{3}(?:_[a-z]+)?")
_ENGINE = re.compile(r"[A-Za-z_][\w.\-]*")


class OcrSettings(BaseModel):
    """OCR of pages without a usable text layer (the ocr plugin)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    mode: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="auto: OCR the pages that need it; always: every page; never: none.",
    )
    engine: str = Field(
        default="auto",
        description="auto (tesseract when installed, else rapidocr), tesseract, rapidocr, or "
        "a third-party engine's name.",
    )
    languages: list[str] = Field(
        default_factory=lambda: ["eng"],
        description="Languages of the text, as Tesseract codes (eng, deu, chi_sim).",
    )
    dpi: int = Field(default=300, ge=72, le=600, description="Resolution pages are rendered at.")
    page_timeout: float = Field(
        default=60.0, gt=0, le=3600, description="Seconds allowed to recognise one page."
    )
    threads: int = Field(
        default=1, ge=1, le=64, description="Threads per engine; workers already run in parallel."
    )
    min_letters_per_sq_inch: float = Field(
        default=2.0,
        ge=0,
        description="A page mostly covered by images and with fewer letters per square inch "
        "is OCR'd too (0: off).",
    )
    tesseract_cmd: str = Field(
        default="tesseract", min_length=1, description="The tesseract program (name or path)."
    )

    @field_validator("engine")
    @classmethod
    def _engine_name(cls, value: str) -> str:
        if not _ENGINE.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an engine name (auto, tesseract, rapidocr, or a plugin's name)"
            )
        return value

    @field_validator("languages", mode="before")
    @classmethod
    def _split_languages(cls, value: Any) -> Any:
        # INGEST_OCR__LANGUAGES=eng+deu and -o ocr.languages=eng,deu read as one string.
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            return value
        return [
            part
            for item in items
            for part in (re.split(r"[+,\s]+", item) if isinstance(item, str) else [item])
            if part != ""
        ]

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one language is needed, e.g. ['eng']")
        codes: list[str] = []
        for raw in value:
            code = LANGUAGE_ALIASES.get(raw.strip().lower(), raw.strip().lower())
            if not _LANGUAGE.fullmatch(code):
                raise ValueError(
                    f"{raw!r} is not a language code; use Tesseract's three-letter codes "
                    "such as eng, deu, fra or chi_sim"
                )
            if code not in codes:
                codes.append(code)
        return codes
