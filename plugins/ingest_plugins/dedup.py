"""The ``dedup`` transform: drop chunks whose text repeats an earlier chunk of the document.

Two chunks are duplicates when their texts are equal after whitespace normalisation (every
run of whitespace read as one space, ends stripped), so a boilerplate paragraph repeated
with different line breaks counts once. The first occurrence is kept; later ones are
dropped. Only chunks of the same document are compared.

The surviving chunks keep their original ``index``, so their ids (``doc_id:index``) are the
same with or without this step, and after ``dedup`` the indexes may have gaps. Reindexing
would make them contiguous, but then adding or removing one duplicate paragraph, or turning
``dedup`` on or off, would shift the id of every later chunk; sinks upsert by id, so shifted
ids would leave stale records behind and break references held by downstream indexes.
Stable ids are the contract that matters (a rerun must give the same records), and
consumers that need positions can sort by ``index`` or ``char_start``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ingest import hookimpl

if TYPE_CHECKING:
    from ingest import Chunk, Document, Settings

NAME = "dedup"


def dedup_key(text: str) -> str:
    """The text two chunks must share to count as duplicates.

    :param text: a chunk's text.
    :returns: the text with every whitespace run collapsed to one space and the ends stripped.
    """
    return " ".join(text.split())


def dedup_chunks(chunks: Iterable[Chunk]) -> list[Chunk]:
    """Keep the first chunk of every distinct text, in order, with their original indexes.

    :param chunks: the chunks of one document, in order.
    :returns: the chunks whose :func:`dedup_key` was not seen before; the objects are the
        same, unchanged.
    """
    seen: set[str] = set()
    kept: list[Chunk] = []
    for chunk in chunks:
        key = dedup_key(chunk.text)
        if key in seen:
            continue
        seen.add(key)
        kept.append(chunk)
    return kept


@hookimpl
def ingest_transform(document: Document, settings: Settings, step: str) -> None:
    """Drop the duplicate chunks of the document in place when the chain step is ``dedup``.

    Runs after ``chunk`` in the chain; on a document without chunks it does nothing.

    :param document: the document whose ``chunks`` are filtered.
    :param settings: the run's settings (unused).
    :param step: the chain step being run.
    :returns: nothing.
    """
    if step != NAME:
        return
    document.chunks = dedup_chunks(document.chunks)
