"""Documents with chunk vectors of the toy embedder (``tests/plugins/toy_embedder.py``), for
the search tests of both stores: what the embed stage would hand a sink."""

from __future__ import annotations

import hashlib
from array import array
from pathlib import Path

from ingest.model import Chunk, Document, Embedding, Metadata, Page, Source
from plugins.toy_embedder import NAME as TOY
from plugins.toy_embedder import toy_vector

TEXTS = {
    "herons": [
        "grey herons nest by the weir and fish in the shallow river",
        "the heron colony grew to forty nests this spring",
    ],
    "bridge": [
        "the council approved the budget for a new footbridge over the river",
        "construction of the crossing starts after the spring floods",
    ],
    "bakery": ["sourdough bread rises overnight in a cool kitchen"],
}


def make_doc(name: str, texts: list[str], label: str | None = TOY, salt: str = "") -> Document:
    """A one-page document ``papers/NAME.pdf`` titled ``Name`` with one chunk per text, each
    with the toy embedder's vector of its text under ``label`` (none when ``label`` is
    ``None``); ``salt`` is the toy model's hash salt."""
    source = Source(Path(f"papers/{name}.pdf"), hashlib.sha256(name.encode()).hexdigest(), 1)
    document = Document(source, Metadata(title=name.title(), page_count=1), [Page(1, "", "t")])
    document.chunks = [
        Chunk(
            document.doc_id, index, text, 1, 1, 0, len(text),
            embedding=None
            if label is None
            else Embedding(label, array("f", toy_vector(text, salt=salt))),
        )
        for index, text in enumerate(texts)
    ]  # fmt: skip
    return document
