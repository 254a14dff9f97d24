"""The ``structure`` plugin: headings, lists, tables, figures and Markdown from the page.

Structure costs work that plain text does not need, so it is made only when asked for:
``format: markdown`` (chunks cut from Markdown), ``chunk.by: section`` (chunks that follow
sections), or ``structure.enabled: true`` (Markdown per page, tables and each chunk's
headings with plain-text chunks). Then:

1. the ``pdfium`` extractor reads each page's blocks while it reads its text, in the worker
   (:mod:`ingest_plugins.structure.pdfium_reader`, :mod:`~ingest_plugins.structure.blocks`,
   :mod:`~ingest_plugins.structure.tables`), into :attr:`ingest.Page.blocks`; the page's
   text is the same as without structure;
2. the ``structure`` step of the transform chain, on the whole document, marks running
   headers and footers, decides the headings and their levels
   (:mod:`~ingest_plugins.structure.headings`) and writes each page's
   :attr:`~ingest.Page.markdown` (:mod:`~ingest_plugins.structure.markdown`). Pages without
   blocks (OCR, other extractors) get Markdown made from their text alone.

The ``chunk`` transform then cuts chunks from the text or the Markdown and gives each its
``headings`` (:mod:`~ingest_plugins.structure.sections`), and the sinks store the Markdown
and the tables. This module imports no PDF library: the extractor and the workers import it
to ask :func:`wants_structure`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingest import ConfigError, hookimpl

from ingest_plugins.structure.settings import StructureSettings

if TYPE_CHECKING:
    from collections.abc import Callable

    from ingest import Document, Settings
    from pydantic import BaseModel

__all__ = ["NAME", "StructureSettings", "check_chain", "options_of", "wants_structure"]

NAME = "structure"
CHUNK_STEP = "chunk"


def options_of(settings: Any) -> StructureSettings:
    """The ``structure`` section of ``settings`` (its defaults when the section is absent)."""
    section = getattr(settings, NAME, None)
    return section if isinstance(section, StructureSettings) else StructureSettings()


def asked_for(settings: Any) -> bool:
    """Whether the settings ask for structure, whatever the chain holds."""
    chunk = getattr(settings, "chunk", None)
    return (
        options_of(settings).enabled
        or getattr(settings, "format", "text") == "markdown"
        or getattr(chunk, "by", "size") == "section"
    )


def wants_structure(settings: Any) -> bool:
    """Whether extraction should read the pages' structure: it is asked for (see the module
    docstring) and the ``structure`` step is in the transform chain.

    :param settings: the run's settings.
    """
    return NAME in getattr(settings, "transforms", ()) and asked_for(settings)


def check_chain(settings: Any) -> None:
    """Refuse a chain where what the settings ask for cannot be made.

    :raises ConfigError: naming the settings, when ``format: markdown`` or ``chunk.by:
        section`` is asked for and the ``structure`` step is missing from ``transforms`` or
        comes after ``chunk``.
    """
    if not asked_for(settings):
        return
    chain = list(getattr(settings, "transforms", ()))
    if CHUNK_STEP not in chain:
        return
    wanted = []
    if getattr(settings, "format", "text") == "markdown":
        wanted.append("format: markdown")
    if getattr(settings.chunk, "by", "size") == "section":
        wanted.append("chunk.by: section")
    if not wanted:
        return
    if NAME not in chain:
        raise ConfigError(
            f"{' and '.join(wanted)} need the 'structure' step in transforms, before "
            f"'chunk' (transforms is {chain})"
        )
    if chain.index(NAME) > chain.index(CHUNK_STEP):
        raise ConfigError(
            f"{' and '.join(wanted)}: the 'structure' step must come before 'chunk' in "
            f"transforms (transforms is {chain})"
        )


@hookimpl
def ingest_register_settings(register: Callable[[str, type[BaseModel]], None]) -> None:
    """Declare the ``structure`` section (:class:`StructureSettings`)."""
    register(NAME, StructureSettings)


@hookimpl
def ingest_configure(settings: Settings, role: str) -> None:
    """Fail at start (on the driver) on a chain that cannot make what the settings ask for."""
    if role == "driver":
        check_chain(settings)


@hookimpl
def ingest_transform(document: Document, settings: Settings, step: str) -> None:
    """Decide headings and running headers, and write each page's Markdown, when the chain
    step is ``structure`` and structure is asked for.

    :param document: the document, all its pages merged.
    :param settings: the run's settings.
    :param step: the chain step being run.
    :returns: nothing; ``Page.blocks`` and ``Page.markdown`` are changed in place.
    """
    if step != NAME or not asked_for(settings):
        return
    from ingest_plugins.structure.headings import analyse_document
    from ingest_plugins.structure.markdown import page_markdown, text_markdown

    analyse_document(document.pages)
    for page in document.pages:
        page.markdown = page_markdown(page.blocks) if page.blocks else text_markdown(page.text)
