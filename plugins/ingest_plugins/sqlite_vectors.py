"""Chunk vectors in the ``sqlite`` sink's database: how they are written and read back.

Two tables, written in the transaction that writes the document's chunks:

* ``vector_models``: one row per model label and size (``wordllama/l2_supercat``, 256);
* ``chunk_vectors``: one row per *document*: ``doc_id`` (deleted with its document),
  ``model_id``, ``count`` (the vectors are those of chunks ``0 .. count-1``, in order),
  ``scales`` (``count`` little-endian float32) and ``vectors`` (``count x dim`` int8,
  row-major). ``codes * scale`` is the embedder's vector made unit length (see
  :mod:`ingest_plugins.vectors`).

One row per document rather than per chunk, because the document is what a run replaces and
reading is what search waits for: loading 1,000,000 vectors stored one per row took 6.4 s
here, and the per-document layout reads them in well under a second (see
``benchmarks/test_search_bench.py``). A chunk's vector in SQL is still one expression:
``substr(vectors, idx * dim + 1, dim)``.

Every document written gets its old row deleted first, with or without new vectors, so a
document re-chunked by a run that does not embed keeps no vector of its old chunks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from ingest import UsageError

if TYPE_CHECKING:
    import numpy as np
    from ingest import Document

__all__ = [
    "VECTOR_SCHEMA",
    "StoredVectors",
    "check_numpy",
    "delete_vectors",
    "load_vectors",
    "stored_models",
    "write_vectors",
]

VECTOR_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS vector_models (
        id INTEGER PRIMARY KEY,
        label TEXT NOT NULL,
        dim INTEGER NOT NULL,
        UNIQUE (label, dim)
    )""",
    """CREATE TABLE IF NOT EXISTS chunk_vectors (
        doc_id TEXT PRIMARY KEY REFERENCES documents(doc_id) ON DELETE CASCADE,
        model_id INTEGER NOT NULL REFERENCES vector_models(id),
        count INTEGER NOT NULL,
        scales BLOB NOT NULL,
        vectors BLOB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS chunk_vectors_model ON chunk_vectors(model_id)",
)


def check_numpy(what: str) -> None:
    """Fail with one line when numpy, needed to encode or search vectors, is missing.

    :param what: the sink or command, for the message.
    :raises UsageError: naming the extra.
    """
    try:
        import numpy  # noqa: F401  # only checking that it imports
    except ImportError:
        raise UsageError(
            f"{what}: storing or searching chunk vectors needs numpy: "
            "pip install 'ingest[embed]'"
        ) from None


def delete_vectors(connection: sqlite3.Connection, doc_id: str) -> None:
    """Delete the stored vectors of one document, if it has any.

    Call inside the transaction that deletes or replaces the document: its vectors must go
    with its chunks, whether or not the database enforces the foreign key.
    """
    connection.execute("DELETE FROM chunk_vectors WHERE doc_id = ?", (doc_id,))


def write_vectors(connection: sqlite3.Connection, document: Document) -> None:
    """Replace the stored vectors of ``document`` by those of its chunks, if it has any.

    Call inside the transaction that writes the document's chunks.

    :raises ValueError: when only some chunks have a vector, or they disagree on model or size
        (the embed stage never makes such a document).
    """
    delete_vectors(connection, document.doc_id)
    embeddings = [chunk.embedding for chunk in document.chunks]
    present = [e for e in embeddings if e is not None]
    if not present:
        return
    if len(present) != len(embeddings):
        raise ValueError(
            f"{document.source.path}: {len(embeddings) - len(present)} of "
            f"{len(embeddings)} chunks have no vector; every chunk or none must have one"
        )
    label, dim = present[0].model, present[0].dim
    if any(e.model != label or e.dim != dim for e in present):
        raise ValueError(f"{document.source.path}: the chunks' vectors differ in model or size")
    import numpy as np

    from ingest_plugins.vectors import encode

    matrix = np.frombuffer(b"".join(e.vector.tobytes() for e in present), dtype=np.float32)
    codes, scales = encode(matrix.reshape(len(present), dim))
    connection.execute(
        "INSERT INTO chunk_vectors (doc_id, model_id, count, scales, vectors) "
        "VALUES (?, ?, ?, ?, ?)",
        (
            document.doc_id,
            _model_id(connection, label, dim),
            len(present),
            scales.astype("<f4").tobytes(),
            codes.tobytes(),
        ),
    )


def _model_id(connection: sqlite3.Connection, label: str, dim: int) -> int:
    connection.execute(
        "INSERT INTO vector_models (label, dim) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (label, dim),
    )
    (model_id,) = connection.execute(
        "SELECT id FROM vector_models WHERE label = ? AND dim = ?", (label, dim)
    ).fetchone()
    return int(model_id)


@final
@dataclass(frozen=True)
class StoredVectors:
    """Every vector of one model in a database, in one matrix.

    :param label: the model's label.
    :param dim: components per vector.
    :param codes: ``n x dim`` int8.
    :param scales: ``n`` float32.
    :param doc_ids: the document of each row of :attr:`offsets`.
    :param offsets: ``len(doc_ids) + 1`` positions: the vectors of ``doc_ids[i]`` are rows
        ``offsets[i]`` to ``offsets[i + 1]``, in the order of their chunks.
    :param indexes: the chunk index of each row, when a document's rows are not its chunks
        ``0 .. count-1`` (a store keeping one vector per chunk row); ``None`` when they are.
    """

    label: str
    dim: int
    codes: np.ndarray
    scales: np.ndarray
    doc_ids: Sequence[str]
    offsets: np.ndarray
    indexes: np.ndarray | None = None

    def chunk_ids(self, positions: Sequence[int]) -> list[str]:
        """The chunk ids of the vectors at ``positions``."""
        import numpy as np

        rows = np.searchsorted(self.offsets, np.asarray(positions), side="right") - 1
        indexes = self.indexes
        return [
            f"{self.doc_ids[row]}:"
            f"{position - int(self.offsets[row]) if indexes is None else int(indexes[position])}"
            for row, position in zip(rows.tolist(), positions, strict=True)
        ]


def stored_models(connection: sqlite3.Connection) -> list[tuple[str, int, int]]:
    """``(label, dim, chunks)`` of each model that has vectors in the database, most first.

    :returns: an empty list for a database without vectors (or without the tables).
    """
    try:
        rows = connection.execute(
            "SELECT m.label, m.dim, SUM(v.count) FROM chunk_vectors AS v "
            "JOIN vector_models AS m ON m.id = v.model_id "
            "GROUP BY m.id ORDER BY SUM(v.count) DESC, m.label"
        ).fetchall()
    except sqlite3.OperationalError:
        return []  # a database written before vectors existed
    return [(label, int(dim), int(count)) for label, dim, count in rows]


def load_vectors(connection: sqlite3.Connection, label: str, dim: int) -> StoredVectors:
    """Read every vector of one model into one matrix.

    Rows are copied one by one into arrays sized beforehand, so reading never holds the
    vectors twice (1,000,000 vectors: 256 MB of codes, 4 MB of scales).

    :raises ValueError: for a row whose blobs do not match its count and size (a damaged
        or hand-edited database).
    """
    import numpy as np

    where = (
        "FROM chunk_vectors AS v JOIN vector_models AS m ON m.id = v.model_id "
        "WHERE m.label = ? AND m.dim = ?"
    )
    documents, total = connection.execute(
        f"SELECT COUNT(*), COALESCE(SUM(v.count), 0) {where}", (label, dim)
    ).fetchone()
    codes = np.empty((total, dim), dtype=np.int8)
    scales = np.empty(total, dtype=np.float32)
    offsets = np.zeros(documents + 1, dtype=np.int64)
    doc_ids: list[str] = []
    flat = codes.reshape(-1)
    position = 0
    cursor = connection.execute(
        f"SELECT v.doc_id, v.count, v.scales, v.vectors {where} ORDER BY v.doc_id", (label, dim)
    )
    for row, (doc_id, count, scale_blob, vector_blob) in enumerate(cursor):
        end = position + count
        if len(scale_blob) != 4 * count or len(vector_blob) != dim * count or end > total:
            raise ValueError(f"the stored vectors of document {doc_id} are damaged")
        flat[position * dim : end * dim] = np.frombuffer(vector_blob, dtype=np.int8)
        scales[position:end] = np.frombuffer(scale_blob, dtype="<f4")
        doc_ids.append(doc_id)
        offsets[row + 1] = end
        position = end
    if position != total or len(doc_ids) != documents:
        raise ValueError("the stored vectors changed while they were read; search again")
    return StoredVectors(label, dim, codes, scales, doc_ids, offsets)
