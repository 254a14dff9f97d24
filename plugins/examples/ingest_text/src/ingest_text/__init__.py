"""``ingest-text``: an ingest plugin that reads plain-text (``.txt``) and Markdown (``.md``).

It adds a file type with three hooks, the least a new file type needs:

* :func:`ingest_collect_file` claims ``*.txt`` and ``*.md`` (``*.markdown``) files found by
  the collector, as ``text/plain`` or ``text/markdown`` sources;
* :func:`ingest_extract` turns those sources into documents, whatever extractor is
  configured: the ``extractor`` setting picks among *PDF* extractors, and this plugin is
  the only one that reads text;
* :func:`ingest_extract_claim` tells ``--collect-only`` that ``text`` would take them.

A fourth, :func:`ingest_register_settings`, declares the ``text`` settings section
(:class:`TextSettings`). A fifth, :func:`~ingest_text.sink.ingest_sink_open`, opens the
``text`` sink (:mod:`ingest_text.sink`), which writes each document back out as a text file:
the worked example of a sink that replaces, deletes and says what it holds.

Choices, so that the output is predictable:

* **Pages.** Plain text is split into pages on form feeds (``\\f``), the page break of
  line-printer text, ``pdftotext`` output and old RFCs; a final form feed ends the last page
  rather than starting an empty one, and blank pages in between are kept so that page
  numbers match the original. Markdown has no pages, so a Markdown file is one page.
* **Decoding.** Bytes are decoded with ``text.encoding`` (UTF-8 by default); a leading byte
  order mark is dropped and line ends become ``\\n``. A file that does not decode *fails*
  with reason ``unreadable`` by default: silently replaced characters would go unnoticed in
  the store. ``text.errors = "replace"`` keeps such files, with U+FFFD for each bad byte.
* **Title.** The first level-1 heading (``# Title``) of a Markdown file outside code blocks,
  else the first non-empty line; at most :data:`TITLE_MAX_CHARS` characters, because the
  metadata is repeated in every chunk record.

Hook implementations take only the arguments they use: the core calls hooks with keyword
arguments, and any subset of a hook's arguments is accepted.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ingest import Document, DocumentError, Failure, Metadata, Page, Source, hookimpl
from pydantic import BaseModel, ConfigDict, field_validator

# Re-exported: the entry point names this module, whose ingest_* functions are the hooks.
from ingest_text.sink import ingest_sink_open as ingest_sink_open

if TYPE_CHECKING:
    from collections.abc import Callable

    from ingest import Settings

#: The plugin's name, as its entry point says: it names the settings section and the
#: extractor in ``Page.extractor`` and ``--collect-only``.
NAME = "text"

PLAIN_TEXT = "text/plain"
MARKDOWN = "text/markdown"
MEDIA_TYPES = frozenset({PLAIN_TEXT, MARKDOWN})
SUFFIXES: dict[str, str] = {".txt": PLAIN_TEXT, ".md": MARKDOWN, ".markdown": MARKDOWN}

TITLE_MAX_CHARS = 200

# An ATX heading: up to three spaces, 1-6 '#', a space, the text, optional closing '#'s.
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))??(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


class TextSettings(BaseModel):
    """The ``text`` settings section (``-o text.encoding=latin-1``,
    ``INGEST_TEXT__ENCODING=latin-1``, or ``text: {encoding: latin-1}`` in ``ingest.yaml``).

    :param encoding: how the files' bytes are decoded; any name Python's codecs know.
    :param errors: ``strict`` fails a file that does not decode; ``replace`` keeps it, with
        U+FFFD in place of each undecodable byte.
    """

    # Settings must pickle to reach the workers; a plain module-level model does.
    model_config = ConfigDict(extra="forbid", frozen=True)

    encoding: str = "utf-8"
    errors: Literal["strict", "replace"] = "strict"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        # Fail once, at configuration time, rather than once per document in the workers.
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value


# --------------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------------


@hookimpl
def ingest_register_settings(register: Callable[[str, type[BaseModel]], None]) -> None:
    """Declare the ``text`` settings section."""
    register(NAME, TextSettings)


@hookimpl
def ingest_collect_file(path: Path) -> Source | Failure | None:
    """Claim ``.txt``, ``.md`` and ``.markdown`` files (any letter case); ``None`` for others."""
    media_type = SUFFIXES.get(path.suffix.lower())
    if media_type is None:
        return None
    try:
        return Source.from_path(path, media_type=media_type)
    except OSError as exc:
        # The file is ours but cannot be hashed: a failure record, not a crash of the run.
        return Failure(
            source=path,
            reason="unreadable",
            message=exc.strerror or str(exc),
            plugin=NAME,
            exc_type=type(exc).__name__,
        )


@hookimpl
def ingest_extract_claim(source: Source) -> str | None:
    """Say that ``text`` takes text and Markdown sources, whatever extractor is configured."""
    return NAME if source.media_type in MEDIA_TYPES else None


@hookimpl
def ingest_extract(source: Source, settings: Settings) -> Document | None:
    """Read a text or Markdown source into a document; ``None`` for other media types.

    :raises DocumentError: reason ``unreadable`` when the file cannot be read or decoded.
    """
    if source.media_type not in MEDIA_TYPES:
        return None
    options: TextSettings = settings.text
    text = read_text(source.path, encoding=options.encoding, errors=options.errors)
    markdown = source.media_type == MARKDOWN
    texts = [text] if markdown else split_pages(text)
    return Document(
        source=source,
        metadata=Metadata(title=title_of(text, markdown=markdown), page_count=len(texts)),
        pages=[Page(number=n, text=t, extractor=NAME) for n, t in enumerate(texts, start=1)],
    )


# --------------------------------------------------------------------------------------------
# The work, as plain functions (easy to test without a pipeline)
# --------------------------------------------------------------------------------------------


def read_text(path: Path, *, encoding: str = "utf-8", errors: str = "strict") -> str:
    """The text of the file at ``path``: decoded, without a byte order mark, ``\\n`` line ends.

    :raises DocumentError: reason ``unreadable``, naming the file, when it cannot be read or
        (with ``errors="strict"``) decoded.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentError(
            "unreadable", f"{path}: cannot read: {exc.strerror or exc}", plugin=NAME
        ) from exc
    try:
        text = raw.decode(encoding, errors)
    except UnicodeDecodeError as exc:
        raise DocumentError(
            "unreadable",
            f"{path}: not valid {encoding} (byte {raw[exc.start]:#04x} at offset {exc.start}); "
            f"set text.encoding to the file's encoding, or text.errors=replace",
            plugin=NAME,
        ) from exc
    text = text.removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_pages(text: str) -> list[str]:
    """Split plain text into pages on form feeds; a trailing form feed adds no empty page.

    An empty text is one empty page: every file has at least one.
    """
    pages = text.split("\f")
    if len(pages) > 1 and pages[-1].strip() == "":
        pages.pop()
    return pages


def title_of(text: str, *, markdown: bool) -> str | None:
    """The first ``# heading`` (Markdown, outside code blocks), else the first non-empty line.

    :returns: the title, cut to :data:`TITLE_MAX_CHARS` characters, or ``None`` for a blank
        text.
    """
    lines = text.split("\n")
    if markdown:
        heading = _first_level_one_heading(lines)
        if heading:
            return _clip(heading)
    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        if markdown and (match := _HEADING.match(line)):
            # A file that starts with "## Notes" is titled "Notes", not "## Notes".
            stripped = (match[2] or "").strip()
            if not stripped:
                continue
        return _clip(stripped)
    return None


def _first_level_one_heading(lines: list[str]) -> str | None:
    in_fence = False
    for line in lines:
        if _FENCE.match(line):
            # A "# comment" inside a shell example is not a heading.
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        match = _HEADING.match(line)
        if match and len(match[1]) == 1 and match[2] and match[2].strip():
            return match[2].strip()
    return None


def _clip(title: str) -> str:
    return title if len(title) <= TITLE_MAX_CHARS else title[: TITLE_MAX_CHARS - 1] + "…"
