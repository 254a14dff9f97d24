"""The built-in ``wordllama`` embedder: its model comes from the wheel, nothing else.

Real PDFs (fpdf2), real processes. Without the ``embed`` extra, ``--embed wordllama`` must
stop at start with one line naming the extra; with it, the run must not touch the network
nor a model cache in the home folder.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pdfgen
import pytest
from helpers import MISSING_EMBED
from hypothesis import given
from hypothesis import strategies as st
from ingest.api import prepare
from ingest.model import Document, Source
from ingest.testing import Runner
from ingest.workers.pipeline import process_source

wordllama = pytest.importorskip("wordllama", reason=MISSING_EMBED)
np = pytest.importorskip("numpy", reason=MISSING_EMBED)

TEXT = (
    "The committee approved the budget for the new footbridge across the river. "
    "Construction starts in spring and the crossing should open before the autumn floods."
)

#: Makes the extra look uninstalled: its imports fail as a missing module would.
NO_EXTRA = """\
import sys

class _NoEmbedExtra:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "wordllama":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoEmbedExtra())
"""

#: Any connection or name lookup fails, in this process and in the workers it starts.
NO_NETWORK = """\
import socket

def _refuse(*args, **kwargs):
    raise OSError("network access is blocked in this test")

socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.getaddrinfo = _refuse
socket.create_connection = _refuse
"""


@pytest.fixture
def pdf_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    pdfgen.text_pdf(folder / "bridge.pdf", [TEXT, TEXT.upper()])
    return folder


def _ingest(
    tmp_path: Path, *args: str, site: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    # An empty home: no model cache to fall back on (~/.cache/wordllama).
    env["HOME"] = str(tmp_path / "home")
    if site is not None:
        folder = tmp_path / "site"
        folder.mkdir(exist_ok=True)
        (folder / "sitecustomize.py").write_text(site)
        env["PYTHONPATH"] = str(folder)
    command = [sys.executable, "-c", "from ingest.cli import main; main()", "run", *args]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


def test_without_the_extra_it_fails_at_start_naming_it(tmp_path: Path, pdf_folder: Path) -> None:
    done = _ingest(tmp_path, str(pdf_folder), "--embed", "wordllama", site=NO_EXTRA)
    assert done.returncode == 4, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "pip install 'ingest[embed]'" in line and "plugin 'wordllama'" in line
    assert "missing: wordllama" in line
    # Without --embed the same interpreter runs: only the embedder needs the extra.
    assert _ingest(tmp_path, str(pdf_folder), site=NO_EXTRA).returncode == 0


def test_the_model_comes_from_the_wheel_without_network(
    tmp_path: Path, pdf_folder: Path
) -> None:
    out = tmp_path / "out.jsonl"
    done = _ingest(
        tmp_path, str(pdf_folder), "--embed", "wordllama", "--workers", "2",
        "--sink", f"jsonl:{out}", "--progress", "none", site=NO_NETWORK,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and all(len(r["embedding"]) == 256 for r in records)
    assert {r["embedding_model"] for r in records} == {"wordllama"}
    assert not (tmp_path / "home" / ".cache").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "embed.model=l3_supercat",
            "embed.model: 'l3_supercat' is not inside the installed wordllama wheel, and "
            "ingest never downloads a model at run time; shipped: l2_supercat",
        ),
        ("embed.dim=512", "embed.dim: wordllama's l2_supercat gives vectors of 64, 128, 256"),
        ("embed.dim=100", "not 100"),
    ],
)
def test_a_model_or_size_the_wheel_lacks_fails_at_start(
    tmp_path: Path, pdf_folder: Path, override: str, message: str
) -> None:
    done = _ingest(tmp_path, str(pdf_folder), "--embed", "wordllama", "-o", override)
    assert done.returncode == 4, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert message in line


def _document(pdf_folder: Path, tmp_path: Path, *overrides: str) -> Document:
    prepared = prepare(
        cwd=tmp_path,
        environ={},
        cli={"embed.embedder": "wordllama", "run.workers": 0},
        overrides=list(overrides),
    )
    source = Source.from_path(pdf_folder / "bridge.pdf")
    outcome = process_source(prepared.manager, prepared.loaded.settings, source)
    assert isinstance(outcome, Document), outcome
    return outcome


def test_vectors_are_wordllamas_own(tmp_path: Path, pdf_folder: Path) -> None:
    """The plugin reads the wheel's files and pools by itself: it must agree with WordLlama's
    own loader and ``embed``."""
    from wordllama import WordLlama

    document = _document(pdf_folder, tmp_path, "embed.dim=128")
    texts = [chunk.text for chunk in document.chunks]
    ours = np.stack([np.frombuffer(c.embedding.vector, np.float32) for c in document.chunks])
    home = Path(wordllama.__file__).parent
    model = WordLlama.load(trunc_dim=128, cache_dir=home, disable_download=True)
    theirs = model.embed(texts)
    assert ours.shape == theirs.shape == (len(texts), 128)
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosine.min() > 0.99999


def test_a_smaller_dim_is_a_prefix_of_the_full_vector(tmp_path: Path, pdf_folder: Path) -> None:
    full = _document(pdf_folder, tmp_path)
    small = _document(pdf_folder, tmp_path, "embed.dim=64")
    for a, b in zip(full.chunks, small.chunks, strict=True):
        assert a.embedding is not None and b.embedding is not None
        assert b.embedding.dim == 64 and b.embedding.model == "wordllama"
        assert np.allclose(a.embedding.vector[:64], b.embedding.vector, atol=1e-6)


def test_loading_the_model_leaves_the_root_logger_alone(
    tmp_path: Path, pdf_folder: Path
) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    _document(pdf_folder, tmp_path)
    assert (list(root.handlers), root.level) == before


def test_search_embeds_the_query_with_the_stored_model(
    ingest_pipeline: Runner, pdf_folder: Path, tmp_path: Path
) -> None:
    from ingest_plugins.hybrid_search import search

    db = tmp_path / "store.db"
    run = ingest_pipeline(
        [pdf_folder], embed={"embedder": "wordllama", "dim": 128}, sinks=[f"sqlite:{db}"]
    )
    assert run.result.ingested == 1
    hits = search(db, "when will the footbridge open", mode="semantic")
    assert hits and 0 < hits[0].score <= 1.0001 and hits[0].semantic_rank == 1


_PIECES = st.sampled_from(
    [*"ab cdeé\n\t.,-'\u20190123中文😀▁\u00a0\x00", "the ", "ing ", "  ", "   ", "\r\n", "Herons"]
)


@given(st.one_of(st.text(max_size=60), st.lists(_PIECES, max_size=40).map("".join)))
def test_word_by_word_tokens_are_the_tokenizers(text: str) -> None:
    """The plugin tokenizes each distinct word once; the ids must be the whole text's."""
    from ingest_plugins.wordllama_embedder import get_model

    model = get_model("l2_supercat", 256, 256)
    assert model.word_cache
    (ids,) = model.token_ids([text])
    assert ids == model.tokenizer.encode(text, add_special_tokens=False).ids
