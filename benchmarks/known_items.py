"""Known-item queries built from a store's own chunks, for the retrieval benchmark.

For a seeded sample of chunks, each query has exactly one right answer, the chunk it was
made from:

* ``sentence``: a sentence of the chunk (8 words or more, found in no other chunk, so the
  overlap between neighbouring chunks cannot make two right answers) with a third of its
  words dropped and the rest shuffled;
* ``rare``: up to six of the chunk's rarer words (those in at most 3 chunks of the store),
  picked at random among them, in random order; a chunk with fewer than two gets none.
* ``extra``: the sentence query plus two words of another chunk that this chunk lacks, as a
  person's question holds words the passage does not. Reported, not part of the targets.
"""

from __future__ import annotations

import random
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

TARGET_KINDS = ("sentence", "rare")
KINDS = (*TARGET_KINDS, "extra")
SAMPLE = 150
SEED = 19
#: A word is one of a chunk's rarer words when at most this many chunks hold it.
RARE_CHUNKS = 3
#: The most words of a ``rare`` query.
RARE_WORDS = 6

_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


@dataclass(frozen=True)
class Query:
    """One query and the chunk it must find."""

    kind: str
    chunk_id: str
    text: str


def known_item_queries(store: Path, sample: int = SAMPLE, seed: int = SEED) -> list[Query]:
    """The queries for ``store`` (a database of the sqlite sink), in a stable order."""
    with sqlite3.connect(store) as connection:
        query = "SELECT chunk_id, text FROM chunks ORDER BY chunk_id"
        chunks = connection.execute(query).fetchall()
    frequency: Counter[str] = Counter()
    for _, text in chunks:
        frequency.update({word.lower() for word in _WORD.findall(text)})
    texts = [text for _, text in chunks]
    rng = random.Random(seed)
    queries: list[Query] = []
    for chunk_id, text in rng.sample(chunks, min(sample, len(chunks))):
        sentences = [
            s.strip()
            for s in _SENTENCE_END.split(text)
            if len(s.split()) >= 8 and sum(s.strip() in other for other in texts) == 1
        ]
        if sentences:
            words = rng.choice(sentences).split()
            kept = rng.sample(words, len(words) - len(words) // 3)
            rng.shuffle(kept)
            queries.append(Query("sentence", chunk_id, " ".join(kept)))
            own = {word.lower() for word in _WORD.findall(text)}
            foreign = [
                w for w in _WORD.findall(rng.choice(texts)) if w.lower() not in own and len(w) > 3
            ]
            if len(foreign) >= 2:
                extra = kept + rng.sample(foreign, 2)
                rng.shuffle(extra)
                queries.append(Query("extra", chunk_id, " ".join(extra)))
        # Sorted only so that the seeded sample is stable; which rare words a query gets is
        # the sample's, not the alphabet's (sorted first, digits would win every tie).
        rarer = sorted(w for w in {w.lower() for w in _WORD.findall(text)}
                       if frequency[w] <= RARE_CHUNKS)  # fmt: skip
        if len(rarer) >= 2:
            picked = rng.sample(rarer, min(RARE_WORDS, len(rarer)))
            queries.append(Query("rare", chunk_id, " ".join(picked)))
    return queries


def reciprocal_rank(found: list[str], chunk_id: str, depth: int = 10) -> float:
    """1/rank of ``chunk_id`` in the first ``depth`` of ``found``, else 0."""
    top = found[:depth]
    return 1.0 / (top.index(chunk_id) + 1) if chunk_id in top else 0.0
