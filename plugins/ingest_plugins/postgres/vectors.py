"""Reading the chunk vectors a ``postgresql`` schema holds, for semantic and hybrid search.

The sink stores each chunk's vector as ``real[]`` next to its text, with the model's label in
``embedding_model``; the size is the array's length. Search encodes them as the SQLite store
keeps them (int8 codes and a scale per vector, :func:`ingest_plugins.vectors.encode`), so
both stores give a query the same scores.

Memory stays bounded: the rows come through a server-side cursor, :data:`BATCH` at a time,
each batch encoded into arrays sized beforehand, so the float vectors of the whole store are
never held at once (1,000,000 vectors of 256 components: 256 MB of codes and 4 MB of
scales, as for SQLite). Each array is read as ``array_send``'s binary form and cut with numpy:
a Python float per component would cost more than the scan. The count and the rows are read
in one ``REPEATABLE READ`` transaction, so a run writing meanwhile cannot make them disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingest_plugins.postgres.schema import q
from ingest_plugins.sqlite_vectors import StoredVectors

if TYPE_CHECKING:
    import psycopg

__all__ = ["BATCH", "load_vectors", "stored_models"]

#: Rows fetched from the server-side cursor at a time.
BATCH = 4096
# array_send's header for a one-dimensional array: dimensions, a has-nulls flag, the
# element type, then the length and lower bound of the dimension.
_HEADER = 20
# Each element: its length (4) and a big-endian float4.
_ELEMENT = 8


def stored_models(connection: psycopg.Connection[Any], schema: str) -> list[tuple[str, int, int]]:
    """``(label, dim, chunks)`` of each model with vectors in the schema, most first.

    :returns: an empty list when no chunk has a vector.
    """
    rows = connection.execute(
        "SELECT embedding_model, array_length(embedding, 1) AS dim, count(*) AS n "
        f"FROM {q(schema)}.chunks "
        "WHERE embedding IS NOT NULL AND embedding_model IS NOT NULL "
        'GROUP BY 1, 2 ORDER BY n DESC, embedding_model COLLATE "C", dim'
    ).fetchall()
    return [(str(label), int(dim), int(count)) for label, dim, count in rows if dim]


def load_vectors(
    connection: psycopg.Connection[Any], schema: str, label: str, dim: int
) -> StoredVectors:
    """Read and encode every vector of one model, a batch at a time: rows ordered by
    document and chunk index, with the chunk index of each (:attr:`StoredVectors.indexes`).

    :param connection: an open connection in autocommit mode, not in a transaction.
    :param schema: the schema the sink wrote.
    :param label: the model's label.
    :param dim: components per vector.
    :raises ValueError: for a vector holding NULL components or not of ``dim`` components,
        or NaN (a damaged or hand-edited schema).
    """
    import numpy as np

    from ingest_plugins.vectors import encode

    where = (
        f"FROM {q(schema)}.chunks "
        "WHERE embedding_model = %(label)s AND array_length(embedding, 1) = %(dim)s"
    )
    params = {"label": label, "dim": dim}
    size = _HEADER + _ELEMENT * dim
    element = np.dtype([("length", ">i4"), ("value", ">f4")])
    with connection.transaction():
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        row = connection.execute(f"SELECT count(*) {where}", params).fetchone()
        total = int(row[0]) if row else 0
        codes = np.empty((total, dim), dtype=np.int8)
        scales = np.empty(total, dtype=np.float32)
        indexes = np.empty(total, dtype=np.int32)
        doc_ids: list[str] = []
        offsets: list[int] = []
        position = 0
        with connection.cursor(name="ingest_search_vectors", binary=True) as cursor:
            cursor.execute(
                f"SELECT doc_id, idx, array_send(embedding) {where} ORDER BY doc_id, idx",
                params,
            )
            while batch := cursor.fetchmany(BATCH):
                end = position + len(batch)
                if end > total:
                    raise ValueError("the stored vectors changed while they were read")
                for doc_id, _, blob in batch:
                    if len(blob) != size or bytes(blob[4:8]) != b"\0\0\0\0":
                        raise ValueError(f"the stored vectors of document {doc_id} are damaged")
                raw = np.frombuffer(b"".join(blob for _, _, blob in batch), dtype=np.uint8)
                elements = raw.reshape(len(batch), size)[:, _HEADER:].copy().view(element)
                batch_codes, batch_scales = encode(elements["value"].astype(np.float32))
                codes[position:end] = batch_codes
                scales[position:end] = batch_scales
                for doc_id, index, _ in batch:
                    if not doc_ids or doc_id != doc_ids[-1]:
                        doc_ids.append(doc_id)
                        offsets.append(position)
                    indexes[position] = index
                    position += 1
    if position != total:
        raise ValueError("the stored vectors changed while they were read")
    offsets.append(position)
    offsets_array = np.asarray(offsets, dtype=np.int64)
    return StoredVectors(label, dim, codes, scales, doc_ids, offsets_array, indexes)
