"""Chunks written per second: the ``postgresql`` sink against the ``sqlite`` sink.

The documents of ../shared/corpus are extracted and chunked once (the default transforms),
then copied ten times with new content ids, so the sinks see ten times the corpus as
distinct documents. Each round writes all of them, in steps of ``run.batch_size`` documents
as a run does, into a fresh SQLite file (WAL, ``synchronous=FULL``) or a fresh PostgreSQL
database (fsync and synchronous commit on: both durable at each step), opening and closing
the sink inside the timed part. The server is a throwaway one on this machine, over its Unix
socket (tests/pgserver.py), on the same disk as the SQLite file.

Target: PostgreSQL's chunks/s at least half of SQLite's, medians of the rounds, interleaved.

Run: ``pytest benchmarks/test_postgres_bench.py -s`` (about two minutes).
"""

from __future__ import annotations

import copy
import hashlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from ingest import hookimpl

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
sys.path.insert(0, str(REPO / "tests"))  # the throwaway server of the tests

import pgserver  # noqa: E402  # why: found through the path set just above

COPIES = 10
ROUNDS = 3
TARGET = 0.5

pytestmark = [
    pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not present"),
    pytest.mark.skipif(pgserver.unavailable() is not None, reason=str(pgserver.unavailable())),
]


class _Keep:
    """A sink that keeps the documents it is given."""

    def __init__(self) -> None:
        self.documents: list[Any] = []

    @hookimpl
    def ingest_sink(self, batch: Sequence[Any]) -> None:
        self.documents.extend(batch)


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    """The corpus, extracted and chunked, ten times over with distinct ids."""
    from ingest.api import prepare

    keep = _Keep()
    workdir = tmp_path_factory.mktemp("pg-bench")
    prepared = prepare(
        cwd=workdir,
        environ={},
        cli={
            "collect.inputs": [str(CORPUS)],
            "sinks": [],
            "progress": "none",
            "cache.enabled": False,
        },
        extra_plugins=[keep],
    )
    prepared.session().run()
    assert keep.documents, "nothing extracted"
    copies: list[Any] = []
    for number in range(COPIES):
        for document in keep.documents:
            twin = copy.deepcopy(document)
            twin.source.content_id = hashlib.sha256(
                f"{number}:{document.source.content_id}".encode()
            ).hexdigest()
            for chunk in twin.chunks:
                chunk.doc_id = twin.doc_id
            copies.append(twin)
    return copies


def _batches(documents: Sequence[Any]) -> Iterator[Sequence[Any]]:
    from ingest.config import Settings

    size = Settings().run.batch_size
    for start in range(0, len(documents), size):
        yield documents[start : start + size]


def _rate(documents: Sequence[Any], open_sink: Callable[[], Any]) -> float:
    chunks = sum(len(document.chunks) for document in documents)
    started = time.perf_counter()
    sink = open_sink()
    for batch in _batches(documents):
        sink.write(batch)
    sink.close()
    return chunks / (time.perf_counter() - started)


def test_postgresql_writes_at_least_half_as_many_chunks_per_second_as_sqlite(
    documents: list[Any], tmp_path: Path
) -> None:
    from ingest_plugins.postgres import open_sink
    from ingest_plugins.sqlite_sink import SqliteSink

    rates: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    with pgserver.running(fsync=True) as server:
        for number in range(ROUNDS):
            path = tmp_path / f"round-{number}.db"
            rates["sqlite"].append(_rate(documents, lambda p=path: SqliteSink(p)))
            url = server.create_database(f"round_{number}")
            rates["postgresql"].append(_rate(documents, lambda u=url: open_sink(u)))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    ratio = medians["postgresql"] / medians["sqlite"]
    chunks = sum(len(document.chunks) for document in documents)
    print(
        f"\n{len(documents)} documents, {chunks} chunks, {ROUNDS} rounds: "
        f"sqlite {medians['sqlite']:,.0f} chunks/s (rounds "
        f"{', '.join(f'{r:,.0f}' for r in rates['sqlite'])}), "
        f"postgresql {medians['postgresql']:,.0f} chunks/s (rounds "
        f"{', '.join(f'{r:,.0f}' for r in rates['postgresql'])}), ratio {ratio:.2f} "
        f"(target >= {TARGET})"
    )
    assert ratio >= TARGET, f"postgresql writes {ratio:.2f}x sqlite's chunks/s"
