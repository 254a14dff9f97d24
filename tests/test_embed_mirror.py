"""Vectors mirror the corpus too: a document replaced, pruned, re-embedded with another model
or written without vectors leaves no vector behind, in the SQLite and the JSONL sink.

The embedder is the third-party toy (``tests/plugins/toy_embedder.py``), whose vector of a
text is known, so every check compares each stored vector with the one its chunk's text
must have: a stale vector (of an old version of a chunk, or of a document that is gone)
fails the check even when the counts agree.
"""

from __future__ import annotations

import json
import sqlite3
from array import array
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import pytest
from helpers import MISSING_EMBED, ingest_run, summary
from ingest import Document, Embedding, hookimpl
from ingest.testing import SinkReport, check_sink
from ingest_plugins import sqlite_sink
from pdfgen import text_pdf
from plugins.toy_embedder import NAME as TOY
from plugins.toy_embedder import toy_vector

np = pytest.importorskip("numpy", reason=MISSING_EMBED)

TARGETS = {"jsonl": "out.jsonl", "sqlite": "out.db"}
EMBED = ["-p", TOY, "--embed", TOY]

#: Chunk id to ``(model label, vector)``, and chunk id to text, of what a sink holds.
Vectors = dict[str, tuple[str, "np.ndarray"]]


def unit(vector: Sequence[float]) -> np.ndarray:
    values = np.asarray(vector, dtype=np.float64)
    return values / np.linalg.norm(values)


def sqlite_vectors(db: Path) -> tuple[dict[str, str], Vectors]:
    """The chunks' texts and their decoded vectors; fails on a vector row that does not
    match its document's chunks (a document that is gone, or a count that differs)."""
    with closing(sqlite3.connect(db)) as connection:
        texts = dict(connection.execute("SELECT chunk_id, text FROM chunks"))
        counts = dict(connection.execute("SELECT doc_id, chunk_count FROM documents"))
        rows = connection.execute(
            "SELECT v.doc_id, m.label, m.dim, v.count, v.scales, v.vectors "
            "FROM chunk_vectors AS v JOIN vector_models AS m ON m.id = v.model_id"
        ).fetchall()
    vectors: Vectors = {}
    for doc_id, label, dim, count, scales, blob in rows:
        assert doc_id in counts, f"vectors of document {doc_id}, which the store lacks"
        assert count == counts[doc_id], f"{count} vectors for {counts[doc_id]} chunks"
        codes = np.frombuffer(blob, dtype=np.int8).reshape(count, dim).astype(np.float64)
        decoded = codes * np.frombuffer(scales, dtype="<f4")[:, None]
        for index, vector in enumerate(decoded):
            vectors[f"{doc_id}:{index}"] = (label, vector)
    return texts, vectors


def jsonl_vectors(path: Path) -> tuple[dict[str, str], Vectors]:
    records = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    texts = {r["chunk_id"]: r["text"] for r in records}
    assert len(texts) == len(records), "a chunk is in the file twice"
    vectors: Vectors = {
        r["chunk_id"]: (r["embedding_model"], np.asarray(r["embedding"]))
        for r in records
        if "embedding" in r
    }
    return texts, vectors


def check_vectors(kind: str, target: Path, model: str | None) -> dict[str, str]:
    """Every chunk has the toy vector of its text made by ``model`` (``None``: no chunk has a
    vector); returns the chunk texts by id."""
    texts, vectors = (sqlite_vectors if kind == "sqlite" else jsonl_vectors)(target)
    if model is None:
        assert vectors == {}, f"{len(vectors)} vectors left in a store written without them"
        return texts
    assert set(vectors) == set(texts), "chunks without a vector, or vectors without a chunk"
    salt = model.removeprefix(TOY).removeprefix("/")
    for chunk_id, (label, vector) in vectors.items():
        assert label == model, f"{chunk_id}: a vector of {label}, not {model}"
        cosine = float(unit(vector) @ unit(toy_vector(texts[chunk_id], salt=salt)))
        assert cosine > 0.999, f"{chunk_id}: its vector is not its text's ({cosine:.4f})"
    return texts


def ingest(*args: str, workers: int) -> str:
    """``ingest run docs ARGS``; the summary line."""
    return summary(ingest_run("docs", *args, workers=workers))


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
@pytest.mark.parametrize("kind", ["jsonl", "sqlite"])
def test_vectors_follow_replacements_prunes_and_model_changes(
    workdir: Path, kind: str, workers: int
) -> None:
    sink = ["--sink", f"{kind}:{TARGETS[kind]}"]
    target = workdir / TARGETS[kind]
    assert ingest(*sink, *EMBED, workers=workers).startswith("3 ingested in")
    first = check_vectors(kind, target, TOY)

    text_pdf(workdir / "docs" / "guide.pdf", ["Kestrels hover over the verge at dusk."])
    replaced = ingest(*sink, *EMBED, workers=workers)
    assert replaced.startswith("1 ingested, 2 skipped (unchanged)"), replaced
    second = check_vectors(kind, target, TOY)
    assert any("Kestrels" in text for text in second.values())
    assert len(set(first) - set(second)) > 0  # the old guide's chunks and vectors went

    (workdir / "docs" / "field-notes.pdf").unlink()
    pruned = ingest(*sink, *EMBED, "--prune", workers=workers)
    assert pruned.startswith("0 ingested, 2 skipped (unchanged), 1 removed in"), pruned
    third = check_vectors(kind, target, TOY)
    assert not any("herons" in text.lower() for text in third.values())

    salted = ingest(*sink, *EMBED, "-o", "embed.model=salted", workers=workers)
    assert salted.startswith("2 ingested in"), salted  # another model embeds again
    assert check_vectors(kind, target, f"{TOY}/salted") == third

    plain = ingest(*sink, "-p", TOY, workers=workers)
    assert plain.startswith("2 ingested in"), plain  # no vectors: written again without
    assert check_vectors(kind, target, None) == third


def test_vectors_deleted_by_hand_are_made_again(workdir: Path) -> None:
    sink = ["--sink", f"sqlite:{TARGETS['sqlite']}"]
    target = workdir / TARGETS["sqlite"]
    assert ingest(*sink, *EMBED, workers=0).startswith("3 ingested in")
    with closing(sqlite3.connect(target)) as db, db:  # the sqlite3 shell: no foreign keys
        db.execute("DELETE FROM chunk_vectors WHERE rowid = (SELECT MIN(rowid) FROM chunk_vectors)")
    # The store's change counter saw the delete: the cache fills the store again.
    assert ingest(*sink, *EMBED, workers=0).startswith("3 ingested in")
    check_vectors("sqlite", target, TOY)


class _EmbeddingSqliteSink:
    """The ``sqlite`` sink sent documents whose chunks have the toy's vectors, as a run with
    ``--embed`` sends them."""

    def __init__(self, folder: Path) -> None:
        sink = sqlite_sink.ingest_sink_open(scheme="sqlite", target="store.db", rootdir=folder)
        assert sink is not None
        self.sink = sink

    @hookimpl
    def ingest_sink(self, batch: Sequence[Document], deleted: Sequence[str]) -> None:
        for document in batch:
            for chunk in document.chunks:
                chunk.embedding = Embedding(TOY, array("f", toy_vector(chunk.text)))
        self.sink.write(batch, deleted)

    @hookimpl
    def ingest_sink_state(self) -> tuple[str, int]:
        return self.sink.ingest_sink_state()

    @hookimpl
    def ingest_session_finish(self) -> None:
        self.sink.close()


def test_check_sink_passes_the_sqlite_sink_with_vectors(tmp_path: Path) -> None:
    def held() -> dict[str, list[str]]:
        texts = check_vectors("sqlite", tmp_path / "store.db", TOY)
        by_document: dict[str, list[tuple[int, str]]] = {}
        for doc_id, _, index in sorted(c.rpartition(":") for c in texts):
            by_document.setdefault(doc_id, []).append((int(index), texts[f"{doc_id}:{index}"]))
        return {doc_id: [text for _, text in sorted(rows)] for doc_id, rows in by_document.items()}

    report = check_sink(lambda: _EmbeddingSqliteSink(tmp_path), held)
    assert report == SinkReport(deletes=True, states=True)
