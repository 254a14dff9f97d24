"""The ``wordllama`` embedder: chunk vectors from WordLlama's static token embeddings.

``ingest run DIR --embed wordllama`` (loads this plugin, as ``--executor dask`` loads its
own). WordLlama (MIT) ships its ``l2_supercat`` model inside the wheel: a 32,000-token
table of 256-dimension embeddings (16 MB) and the tokenizer, so nothing is downloaded at run
time; a model or a size the wheel lacks is refused at start instead of fetched. A chunk's
vector is the mean of its tokens' embeddings (WordLlama's average pooling). ``embed.dim``
may be 64, 128 or 256: the model was trained so that the leading components are an
embedding of their own (Matryoshka), and a smaller size is a prefix of the full vector.

The pooling is done here, text by text, rather than by ``WordLlamaInference.embed``: that
pads a batch to its longest text and gathers ``batch x longest x 256`` floats at once, which
cost 2.4 s of CPU for the 1,218 chunks of the test corpus where gathering one text at a time
(its rows stay in the CPU cache) costs 0.1 s, and one long chunk in a batch would make it
gigabytes. The tokenizer is WordLlama's own; the result equals its ``embed`` to float
rounding (tested).

The dependency is the extra ``ingest[embed]``; without it importing this module fails with
one line naming the extra, which ``--embed wordllama`` reports at start (exit 4).
"""

from __future__ import annotations

import importlib.util

#: Top-level modules of the ``embed`` extra, checked without importing them: WordLlama and
#: numpy take 1.1 s to import here, which only a process that embeds should pay (with worker
#: processes the driver never does).
EXTRA_MODULES = ("wordllama", "numpy")


def _missing_modules() -> list[str]:
    missing = []
    for module in EXTRA_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # an import hook refused it, or a broken install
            found = False
        if not found:
            missing.append(module)
    return missing


if _missing := _missing_modules():
    raise ImportError(
        f"the wordllama embedder needs the extra: pip install 'ingest[embed]' "
        f"(missing: {', '.join(_missing)})"
    )

# The imports below come after the check on purpose: it must fail before anything else.
import logging  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
from collections.abc import Sequence  # noqa: E402
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
_MODELS: dict[tuple[str, int], Any] = {}
_MODELS_LOCK = threading.Lock()


def _package_dir() -> Path:
    spec = importlib.util.find_spec("wordllama")
    if spec is None or spec.origin is None:  # pragma: no cover - checked at import
        raise PluginError("the wordllama embedder needs the extra: pip install 'ingest[embed]'")
    return Path(spec.origin).parent


def shipped_models() -> dict[str, int]:
    """The models whose weights are inside the installed wheel, with their full size.

    :returns: model name to dimension, e.g. ``{"l2_supercat": 256}``.
    """
    found: dict[str, int] = {}
    for path in sorted((_package_dir() / "weights").glob("*.safetensors")):
        match = _WEIGHTS.fullmatch(path.name)
        if match and not match["model"].endswith("_binary"):
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
    tokenizer, table = model.tokenizer, model.embedding
    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    vectors = np.zeros((len(texts), table.shape[1]), dtype=np.float32)
    for row, encoding in enumerate(encodings):
        ids = np.asarray(encoding.ids, dtype=np.intp)
        if ids.size:
            # Ids beyond the table cannot come from its own tokenizer; WordLlama clips them.
            np.clip(ids, 0, table.shape[0] - 1, out=ids)
            vectors[row] = table[ids].mean(axis=0, dtype=np.float32)
    return vectors


def get_model(model: str, full: int, dim: int) -> Any:
    """The loaded WordLlama model in this process (made once, then kept).

    :param model: a shipped model's name (see :func:`shipped_models`).
    :param full: its full size.
    :param dim: the size asked for (a prefix of the full vectors).
    :returns: a ``WordLlamaInference`` whose tokenizer does not pad.
    :raises PluginError: the files cannot be read.
    """
    key = (model, dim)
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is None:
            loaded = _load(model, full, dim)
            _MODELS[key] = loaded
        return loaded


def _load(model: str, full: int, dim: int) -> Any:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    from wordllama import WordLlama

    # wordllama's inference module calls logging.basicConfig() when imported, which would
    # put a handler on the host's root logger and print every INFO record twice.
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    home = _package_dir()
    try:
        # cache_dir is the package itself: WordLlama looks for the tokenizer there under the
        # folder name the wheel uses, and with disable_download it never reaches the network.
        loaded = WordLlama.load(
            config=model,
            dim=full,
            trunc_dim=dim if dim != full else None,
            cache_dir=home,
            disable_download=True,
        )
    except (OSError, ValueError) as exc:
        raise PluginError(
            f"the wordllama embedder cannot load {model!r} from {home}: {exc}"
        ) from exc
    loaded.tokenizer.no_padding()
    return loaded
