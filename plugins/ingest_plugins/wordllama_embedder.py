"""The ``wordllama`` embedder: chunk vectors from WordLlama's static token embeddings.

``ingest run DIR --embed wordllama`` (loads this plugin, as ``--executor dask`` loads its
own). WordLlama (MIT) ships its ``l2_supercat`` model inside the wheel: a 32,000-token
table of 256-dimension embeddings (16 MB of float16) and the tokenizer, so nothing is
downloaded at run time; a model or a size the wheel lacks is refused at start instead of
fetched. A chunk's vector is the mean of its tokens' embeddings (WordLlama's average
pooling). ``embed.dim`` may be 64, 128 or 256: the model was trained so that the leading
components are an embedding of their own (Matryoshka), and a smaller size is a prefix of the
full vector.

The plugin reads the wheel's two files itself, with safetensors and tokenizers (WordLlama's
own dependencies), as ``WordLlama.load`` does, and pools text by text:

* importing ``wordllama`` costs each worker 0.46 s of CPU (requests, its pydantic configs,
  its Cython algorithms) on top of the 0.28 s the files take; not importing it took a
  quarter off what embedding adds to a run of the test corpus;
* ``WordLlamaInference.embed`` pads a batch to its longest text and gathers
  ``batch x longest x 256`` floats at once, which cost 2.4 s of CPU for the 1,218 chunks of
  the test corpus where gathering one text at a time (its rows stay in the CPU cache) costs
  0.1 s, and one long chunk in a batch would make it gigabytes.

The vectors equal those of ``WordLlama.load().embed`` to float rounding (tested).

The dependency is the extra ``ingest[embed]``; without it importing this module fails with
one line naming the extra, which ``--embed wordllama`` reports at start (exit 4).
"""

from __future__ import annotations

from ingest_plugins.extras import require_extra

#: Top-level modules of the ``embed`` extra, checked without importing them: only a process
#: that embeds should pay for importing them (with worker processes the driver never does).
EXTRA_MODULES = ("wordllama", "numpy", "safetensors", "tokenizers")


require_extra("the wordllama embedder", "embed", EXTRA_MODULES)

# The imports below come after the check on purpose: it must fail before anything else.
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

from ingest import PluginError, hookimpl  # noqa: E402

if TYPE_CHECKING:
    from ingest import IngestPluginManager, Settings

__all__ = ["DEFAULT_MODEL", "DIMS", "NAME", "get_model", "shipped_models"]

NAME = "wordllama"
DEFAULT_MODEL = "l2_supercat"
#: The sizes a shipped model can give: its own, or a Matryoshka prefix of it.
DIMS = (64, 128, 256)

_WEIGHTS = re.compile(r"(?P<model>[a-z0-9_]+)_(?P<dim>\d+)\.safetensors")
_MODELS: dict[tuple[str, int], Model] = {}
_MODELS_LOCK = threading.Lock()


def _package_dir() -> Path:
    spec = importlib.util.find_spec("wordllama")
    if spec is None or spec.origin is None:  # pragma: no cover - checked at import
        raise PluginError("the wordllama embedder needs the extra: pip install 'ingest[embed]'")
    return Path(spec.origin).parent


def shipped_models() -> dict[str, int]:
    """The models whose weights and tokenizer are inside the installed wheel, by full size.

    :returns: model name to dimension, e.g. ``{"l2_supercat": 256}``.
    """
    home = _package_dir()
    found: dict[str, int] = {}
    for path in sorted((home / "weights").glob("*.safetensors")):
        match = _WEIGHTS.fullmatch(path.name)
        if match is None or match["model"].endswith("_binary"):
            continue
        if (home / "tokenizers" / f"{match['model']}_tokenizer_config.json").is_file():
            found[match["model"]] = max(int(match["dim"]), found.get(match["model"], 0))
    return found


def _resolve(settings: Settings) -> tuple[str, int, int]:
    """``(model, full size, size asked)`` for the run, or a PluginError naming the setting."""
    embed = settings.embed
    model = embed.model or DEFAULT_MODEL
    models = shipped_models()
    if model not in models:
        raise PluginError(
            f"embed.model: {model!r} is not inside the installed wordllama wheel, and ingest "
            f"never downloads a model at run time; shipped: {', '.join(models) or 'none'}"
        )
    full = models[model]
    dim = embed.dim or full
    allowed = [d for d in DIMS if d <= full]
    if dim not in allowed:
        raise PluginError(
            f"embed.dim: wordllama's {model} gives vectors of "
            f"{', '.join(map(str, allowed))} components, not {dim}"
        )
    return model, full, dim


@hookimpl
def ingest_configure(settings: Settings, manager: IngestPluginManager, role: str) -> None:
    """Refuse at start a model or size the wheel cannot give (file-system checks only).

    A worker process also loads the model now, while the driver is still collecting (the
    workers start with the session), so the first document does not wait 1-2 s for it; and
    turns off the tokenizer's own thread pool, since the workers already use every CPU.
    """
    if settings.embed.embedder != NAME:
        return
    resolved = _resolve(settings)
    if role == "worker":
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        get_model(*resolved)


@hookimpl
def ingest_embed(texts: Sequence[str], settings: Settings, embedder: str) -> Any:
    """Mean-pooled WordLlama vectors of ``texts`` (float32, ``len(texts) x embed.dim``)."""
    if embedder != NAME:
        return None
    import numpy as np

    model = get_model(*_resolve(settings))
    table = model.embedding
    vectors = np.zeros((len(texts), table.shape[1]), dtype=np.float32)
    for row, ids in enumerate(model.token_ids(texts)):
        if ids:
            # Ids beyond the table cannot come from its own tokenizer; WordLlama clips them.
            rows = np.minimum(np.asarray(ids, dtype=np.intp), table.shape[0] - 1)
            vectors[row] = table[rows].mean(axis=0, dtype=np.float32)
    return vectors


#: The tokenizer configuration of the Llama 2 models that the word cache is exact for: the
#: text gets a leading "▁" and its spaces become "▁", then BPE runs on the whole string.
_LLAMA_NORMALIZER = {
    "type": "Sequence",
    "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
    ],
}
#: A word with the spaces before it, as the normalised text holds it.
_PIECE = re.compile("\u2581+[^\u2581]*|[^\u2581]+")
#: Pieces remembered per process; the cache starts again when it is full (about 30 MB).
_CACHE_SIZE = 200_000


@dataclass
class Model:
    """A loaded model: the tokenizer (no padding, no truncation) and the float32 table.

    :param tokenizer: the ``tokenizers.Tokenizer``.
    :param embedding: the ``vocabulary x dim`` float32 table.
    :param word_cache: whether :meth:`token_ids` may tokenize word by word (see there).
    """

    tokenizer: Any
    embedding: Any
    word_cache: bool = False
    _pieces: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids of each text, as the tokenizer gives them.

        With the Llama 2 tokenizer (:data:`_LLAMA_NORMALIZER`, no pre-tokenizer, BPE), no
        merge crosses the "▁" that starts a word, so tokenizing word by word gives the same
        ids as the whole text (tested on 8,000 generated texts and the test corpus) and each
        distinct word is tokenized once per process: 0.16-0.52 s of CPU for the test
        corpus's 1,218 chunks, against 1.0 s for ``encode_batch_fast``, the largest part of
        what embedding adds to a run.
        """
        if not self.word_cache:
            encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
            return [encoding.ids for encoding in encode(list(texts), add_special_tokens=False)]
        pieces, bpe = self._pieces, self.tokenizer.model
        result: list[list[int]] = []
        for text in texts:
            ids: list[int] = []
            if text:
                for piece in _PIECE.findall("\u2581" + text.replace(" ", "\u2581")):
                    known = pieces.get(piece)
                    if known is None:
                        if len(pieces) >= _CACHE_SIZE:
                            pieces.clear()
                        known = pieces[piece] = [token.id for token in bpe.tokenize(piece)]
                    ids.extend(known)
            result.append(ids)
        return result


def get_model(model: str, full: int, dim: int) -> Model:
    """The loaded model in this process (made once, then kept).

    :param model: a shipped model's name (see :func:`shipped_models`).
    :param full: its full size.
    :param dim: the size asked for (the leading components of the full table).
    :raises PluginError: the files cannot be read.
    """
    key = (model, dim)
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is None:
            loaded = _load(model, full, dim)
            _MODELS[key] = loaded
        return loaded


def _load(model: str, full: int, dim: int) -> Model:
    import numpy as np
    from safetensors import safe_open
    from tokenizers import Tokenizer

    home = _package_dir()
    weights = home / "weights" / f"{model}_{full}.safetensors"
    vocabulary = home / "tokenizers" / f"{model}_tokenizer_config.json"
    try:
        with safe_open(str(weights), framework="np", device="cpu") as handle:
            table = handle.get_tensor("embedding.weight")
        tokenizer = Tokenizer.from_file(str(vocabulary))
    except Exception as exc:  # safetensors and tokenizers raise their own types
        raise PluginError(
            f"the wordllama embedder cannot load {model!r} from {home}: {exc}"
        ) from exc
    # As WordLlama.load and WordLlamaInference: the leading columns, float32, no truncation.
    table = np.ascontiguousarray(table[:, :dim], dtype=np.float32)
    tokenizer.no_padding()
    tokenizer.no_truncation()
    # The normalizer alone, not tokenizer.to_str(): serialising and parsing the whole
    # tokenizer again cost each worker 0.19 s of CPU.
    normalizer = tokenizer.normalizer
    word_cache = (
        normalizer is not None
        and json.loads(normalizer.__getstate__()) == _LLAMA_NORMALIZER
        and tokenizer.pre_tokenizer is None
        and type(tokenizer.model).__name__ == "BPE"
    )
    return Model(tokenizer, table, word_cache)
