"""The embed stage: ``--embed NAME``, the ``embed`` settings, where vectors are made, what a
bad embedder does, and how a model change reaches the cache and the stores.

A third-party embedder (``tests/plugins/toy_embedder.py``, a hashed bag of words with an
``async def`` hook) is loaded by dotted path, as a user's plugin would be; real PDFs, real
worker processes and a real SQLite file throughout. The built-in ``wordllama`` embedder has
its own module, ``test_wordllama.py``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from array import array
from pathlib import Path
from typing import Any

import pdfgen
import pytest
from click.testing import CliRunner
from helpers import MISSING_EMBED, env_log
from hypothesis import given
from hypothesis import strategies as st
from ingest.api import prepare
from ingest.cache.fingerprint import output_fingerprint
from ingest.cli import main
from ingest.embedding import embed_texts, model_label
from ingest.errors import PluginError, UsageError
from ingest.model import Chunk, Document, Embedding, Metadata, Page, Source
from ingest.testing import Runner
from plugins.toy_embedder import NAME as TOY
from plugins.toy_embedder import toy_vector

#: Enough text for several chunks of 200 characters per page.
PAGE = (
    "Herons nest by the weir in spring. The river floods the meadow every March. "
    "Volunteers count the birds each morning and write the numbers in a ledger. "
)


@pytest.fixture
def pdfs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    pdfgen.text_pdf(folder / "herons.pdf", [PAGE * 3, PAGE * 2])
    pdfgen.text_pdf(folder / "budget.pdf", ["Budgets and timelines for the new bridge. " * 8])
    return folder


def embed_run(ingest_pipeline: Runner, folder: Path, **settings: Any) -> Any:
    embed = {"embedder": TOY, **settings.pop("embed", {})}
    return ingest_pipeline(
        [folder], plugins=[TOY], embed=embed, chunk={"size": 200, "overlap": 20}, **settings
    )


def test_off_unless_asked(ingest_pipeline: Runner, pdfs: Path) -> None:
    run = ingest_pipeline([pdfs], plugins=[TOY], chunk={"size": 200, "overlap": 20})
    assert run.result.ingested == 2 and run.records
    assert not any("embedding" in record or "embedding_model" in record for record in run.records)


def test_a_third_party_embedder_gives_every_chunk_its_vector(
    ingest_pipeline: Runner, pdfs: Path
) -> None:
    run = embed_run(ingest_pipeline, pdfs)
    assert run.result.ingested == 2 and len(run.records) > 4
    for record in run.records:
        assert record["embedding_model"] == TOY
        # float32 exactly: the record holds what the embedder gave, not a rounded copy
        assert record["embedding"] == array("f", toy_vector(record["text"])).tolist()


def test_model_and_dim_reach_the_embedder_and_the_label(
    ingest_pipeline: Runner, pdfs: Path
) -> None:
    run = embed_run(ingest_pipeline, pdfs, embed={"model": "salted", "dim": 8})
    record = run.records[0]
    assert record["embedding_model"] == f"{TOY}/salted"
    assert record["embedding"] == array("f", toy_vector(record["text"], 8, "salted")).tolist()


def test_batches_never_exceed_batch_size_nor_mix_documents(
    ingest_pipeline: Runner, pdfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = env_log(tmp_path, monkeypatch, "TOY_EMBEDDER_LOG")
    run = embed_run(ingest_pipeline, pdfs, embed={"batch_size": 3})
    counts = [json.loads(line)["count"] for line in log.read_text().splitlines()]
    per_document: dict[str, int] = {}
    for record in run.records:
        per_document[record["doc_id"]] = per_document.get(record["doc_id"], 0) + 1
    expected = [
        min(3, chunks - start) for chunks in per_document.values() for start in range(0, chunks, 3)
    ]
    assert max(counts) <= 3 and sorted(counts) == sorted(expected)


def test_worker_processes_embed_not_the_driver(
    pdfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The vectors are made where the text is: in the worker that transformed the document."""
    log = env_log(tmp_path, monkeypatch, "TOY_EMBEDDER_LOG")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main,
        ["run", str(pdfs), "-p", TOY, "--embed", TOY, "--workers", "2", "--sink", f"jsonl:{out}",
         "-o", "chunk.size=200", "-o", "chunk.overlap=20", "--progress", "none"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    pids = {json.loads(line)["pid"] for line in log.read_text().splitlines()}
    assert pids and os.getpid() not in pids
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["embedding"] == array("f", toy_vector(r["text"])).tolist() for r in records)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("short", f"embedder '{TOY}' returned 1 vectors for 2 texts"),
        ("nan", "NaN or infinite values"),
        ("wide", "a vector of size 9 for text 0 of a batch; expected 8 (embed.dim)"),
        ("boom", "the toy model broke"),
    ],
)
def test_a_bad_embedder_fails_the_document_naming_itself(
    ingest_pipeline: Runner, pdfs: Path, model: str, message: str
) -> None:
    run = embed_run(ingest_pipeline, pdfs, embed={"model": model, "dim": 8, "batch_size": 2})
    assert run.result.failed == 2 and run.result.ingested == 0 and not run.records
    for failure in run.failures:
        assert failure.plugin == TOY and failure.reason == "error"
        assert message in failure.message


def test_an_unknown_embedder_stops_the_run_at_start(pdfs: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["run", str(pdfs), "--embed", "wordlama", "--sink", f"jsonl:{tmp_path / 'o'}"]
    )
    assert result.exit_code == 4
    assert "unknown embedder (setting embed.embedder) 'wordlama'" in result.output
    assert "did you mean 'wordllama'?" in result.output or "available" in result.output


@pytest.mark.parametrize("text", ["embed.dim=0", "embed.batch_size=0", "embed.colour=red"])
def test_bad_embed_settings_name_the_field(text: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=text.partition("=")[0].replace(".", r"\.")):
        prepare(cwd=tmp_path, environ={}, overrides=[text])


def test_embed_settings_come_from_every_layer(tmp_path: Path) -> None:
    (tmp_path / "ingest.yaml").write_text(f"plugins: [{TOY}]\nembed:\n  model: salted\n")
    prepared = prepare(
        cwd=tmp_path,
        environ={"INGEST_EMBED__DIM": "16", "INGEST_EMBED__EMBEDDER": TOY},
        overrides=["embed.batch_size=5"],
    )
    embed = prepared.loaded.settings.embed
    assert (embed.embedder, embed.model, embed.dim, embed.batch_size) == (TOY, "salted", 16, 5)
    assert model_label(prepared.loaded.settings) == f"{TOY}/salted"
    assert prepared.loaded.origin("embed.dim") == "env:INGEST_EMBED__DIM"


def test_naming_an_installed_embedder_loads_its_plugin(tmp_path: Path) -> None:
    pytest.importorskip("wordllama", reason=MISSING_EMBED)
    prepared = prepare(cwd=tmp_path, environ={}, cli={"embed.embedder": "wordllama"})
    assert prepared.manager.has_plugin("wordllama")
    assert not prepare(cwd=tmp_path, environ={}).manager.has_plugin("wordllama")


# -- the output fingerprint ------------------------------------------------------------------


def fingerprint(tmp_path: Path, *overrides: str) -> str:
    prepared = prepare(plugins=[TOY], cwd=tmp_path, environ={}, overrides=list(overrides))
    return output_fingerprint(prepared.loaded.settings, prepared.manager)[0]


def test_the_fingerprint_counts_the_embedder_and_its_model(tmp_path: Path) -> None:
    off = fingerprint(tmp_path)
    on = fingerprint(tmp_path, f"embed.embedder={TOY}")
    salted = fingerprint(tmp_path, f"embed.embedder={TOY}", "embed.model=salted")
    smaller = fingerprint(tmp_path, f"embed.embedder={TOY}", "embed.dim=8")
    assert len({off, on, salted, smaller}) == 4
    # Batch size changes nothing stored; model and size change nothing when not embedding.
    assert fingerprint(tmp_path, f"embed.embedder={TOY}", "embed.batch_size=7") == on
    assert fingerprint(tmp_path, "embed.model=salted", "embed.dim=8") == off


def test_a_model_change_embeds_every_document_again(pdfs: Path, tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    base = ["run", str(pdfs), "-p", TOY, "--embed", TOY, "--workers", "0", "--progress", "none",
            "--sink", f"sqlite:{db}", "-o", "chunk.size=200", "-o", "chunk.overlap=20"]

    def run(*extra: str) -> str:
        result = CliRunner().invoke(main, [*base, *extra], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    def models() -> list[tuple[str, int, int]]:
        with sqlite3.connect(db) as connection:
            return connection.execute(
                "SELECT m.label, m.dim, SUM(v.count) FROM chunk_vectors v "
                "JOIN vector_models m ON m.id = v.model_id GROUP BY m.id"
            ).fetchall()

    assert "2 ingested" in run()
    chunks = models()[0][2]
    assert models() == [(TOY, 32, chunks)]
    assert "2 skipped" in run("-o", "embed.batch_size=2")
    assert "2 ingested" in run("-o", "embed.model=salted")
    assert models() == [(f"{TOY}/salted", 32, chunks)]  # replaced, never mixed


# -- embed_texts -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    prepared = prepare(
        plugins=[TOY],
        cwd=tmp_path_factory.mktemp("toy"),
        environ={},
        cli={"embed.embedder": TOY},
    )
    return prepared.manager, prepared.loaded.settings


@given(texts=st.lists(st.text(max_size=40), min_size=1, max_size=30), batch=st.integers(1, 7))
def test_embed_texts_keeps_order_across_batches(
    toy: tuple[Any, Any], texts: list[str], batch: int
) -> None:
    manager, settings = toy
    vectors = embed_texts(manager, settings.with_dotted({"embed.batch_size": batch}), texts)
    assert [v.tolist() for v in vectors] == [array("f", toy_vector(t)).tolist() for t in texts]


def test_embed_texts_without_an_answer_names_the_setting(toy: tuple[Any, Any]) -> None:
    manager, settings = toy
    with pytest.raises(PluginError, match=r"embed\.embedder: no plugin answered .*'nobody'"):
        embed_texts(manager, settings.with_dotted({"embed.embedder": "nobody"}), ["text"])


def test_embedding_is_compact_and_survives_pickling() -> None:
    import pickle

    chunk = Chunk("d", 0, "t", 1, 1, 0, 1, embedding=Embedding("m", array("f", [0.5] * 256)))
    document = Document(Source(Path("a.pdf"), "c" * 64, 1), Metadata(), [Page(1, "t", "x")])
    document.chunks = [chunk]
    data = pickle.dumps(document, pickle.HIGHEST_PROTOCOL)
    assert pickle.loads(data).chunks[0].embedding == chunk.embedding
    chunk.embedding, kept = None, chunk.embedding
    # 1 KB of float32 and a little framing, not 256 pickled floats (9 bytes each)
    assert len(data) - len(pickle.dumps(document, pickle.HIGHEST_PROTOCOL)) < 1200
    chunk.embedding = kept
    assert chunk.embedding is not None and chunk.embedding.dim == 256


def test_load_embedder_embeds_outside_a_run(tmp_path: Path) -> None:
    from ingest import load_embedder

    embedder = load_embedder(TOY, model="salted", dim=8, cwd=tmp_path, environ={})
    assert embedder.label == f"{TOY}/salted"
    (vector,) = embedder.embed(["herons nest"])
    assert vector.tolist() == array("f", toy_vector("herons nest", 8, "salted")).tolist()
    with pytest.raises(UsageError, match="unknown plugin 'nobody'"):
        load_embedder("nobody", cwd=tmp_path, environ={})
