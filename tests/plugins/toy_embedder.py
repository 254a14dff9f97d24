"""A third-party embedder, as a user would write one: a hashed bag of words, ``async def``.

Loaded by dotted path (``-p plugins.toy_embedder --embed plugins.toy_embedder``), so worker
processes import it by name. A text's vector has one component per hashed word bucket
(``embed.dim``, 32 by default), counting its words; ``embed.model`` picks the hash salt, and
a few model names misbehave on purpose:

* ``short``: one vector fewer than texts; ``nan``: NaN components; ``wide``: one
  component more than ``embed.dim``; ``boom``: raises.

With ``TOY_EMBEDDER_LOG`` set to a file, every call appends a JSON line: the process id and
the number of texts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import Sequence
from typing import Any

from ingest import hookimpl

NAME = "plugins.toy_embedder"
DEFAULT_DIM = 32
_WORD = re.compile(r"\w+")


def toy_vector(text: str, dim: int = DEFAULT_DIM, salt: str = "") -> list[float]:
    """The vector the toy embedder gives ``text``: word counts in hashed buckets."""
    vector = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(f"{salt}{word}".encode(), digest_size=4).digest()
        vector[int.from_bytes(digest, "little") % dim] += 1.0
    return vector


@hookimpl
async def ingest_embed(texts: Sequence[str], settings: Any, embedder: str) -> Any:
    """Hashed bags of words, one per text."""
    if embedder != NAME:
        return None
    await asyncio.sleep(0)  # an async embedder, as a client of a remote model would be
    log = os.environ.get("TOY_EMBEDDER_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"pid": os.getpid(), "count": len(texts)}) + "\n")
    model = settings.embed.model or ""
    dim = settings.embed.dim or DEFAULT_DIM
    if model == "boom":
        raise RuntimeError("the toy model broke")
    vectors = [toy_vector(text, dim, salt=model) for text in texts]
    if model == "short":
        return vectors[:-1]
    if model == "nan":
        vectors[0][0] = float("nan")
    if model == "wide":
        vectors = [[*vector, 1.0] for vector in vectors]
    return vectors
