"""The ``structure`` settings section: a plain pydantic model, cheap to import by name."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["StructureSettings"]


class StructureSettings(BaseModel):
    """Headings, lists, tables and Markdown (the structure plugin)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(
        default=False,
        description="Make the structure even when chunks are cut from the plain text by "
        "size: Markdown per page, tables, each chunk's headings. On by itself with "
        "format markdown or chunk.by section.",
    )
    tables: bool = Field(
        default=True,
        description="Look for tables (from drawn rules and from aligned text).",
    )
    outline: bool = Field(
        default=True,
        description="Use the PDF's outline (bookmarks) to find headings and their levels.",
    )
