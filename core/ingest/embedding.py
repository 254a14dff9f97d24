"""The embed stage: chunk texts become vectors through the ``ingest_embed`` hook.

Runs in the worker, right after the ``transforms`` chain (:func:`embed_document`), and in a
searching process for the query (:func:`embed_texts`). Why the worker and not the driver:
the text is already there, the vectors travel back with the document (about a kilobyte a
chunk), the embedder runs in parallel on every worker and under the document's deadline,
and a failing embedder fails one document, named, like a failing transform. The driver
would have to embed every chunk of the run in one process, between writing batches.

The hook may return a numpy array or plain sequences; what comes back is checked here (one
vector per text, one size, finite values) so that a sink never stores a short or broken
vector, and kept as float32 :class:`array.array` rows: compact to pickle, and readable by
numpy without a copy.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

from ingest.errors import PluginError
from ingest.model import Embedding

if TYPE_CHECKING:
    from ingest.config import Settings
    from ingest.manager import IngestPluginManager
    from ingest.model import Document

__all__ = ["Embedder", "embed_document", "embed_texts", "load_embedder", "model_label"]


def model_label(settings: Settings) -> str:
    """The label vectors of this run are stored with: ``embedder/model``, or ``embedder``.

    :param settings: settings whose ``embed.embedder`` is set.
    :raises ValueError: when ``embed.embedder`` is empty (the run does not embed).
    """
    embed = settings.embed
    if not embed.embedder:
        raise ValueError("embed.embedder is empty: this run does not embed")
    return f"{embed.embedder}/{embed.model}" if embed.model else embed.embedder


def embed_texts(
    manager: IngestPluginManager, settings: Settings, texts: Sequence[str]
) -> list[array[float]]:
    """Embed ``texts`` with the run's embedder, ``embed.batch_size`` texts per hook call.

    :param manager: a plugin manager holding the embedder named by ``embed.embedder``.
    :param settings: the settings (``settings.embed``).
    :param texts: the texts, in order (may be empty).
    :returns: one float32 vector per text, in order, all of one size.
    :raises PluginError: naming the embedder, when no plugin answers to its name or what it
        returned is not one finite vector of the expected size per text. Exceptions the
        embedder raises itself propagate unchanged.
    """
    embedder = settings.embed.embedder
    if not embedder:
        raise ValueError("embed.embedder is empty: this run does not embed")
    size = settings.embed.batch_size
    vectors: list[array[float]] = []
    for start in range(0, len(texts), size):
        batch = list(texts[start : start + size])
        result = manager.hook.ingest_embed(texts=batch, settings=settings, embedder=embedder)
        if result is None:
            raise PluginError(
                f"embed.embedder: no plugin answered ingest_embed for {embedder!r}; name an "
                f"installed embedder (plugins implementing it: "
                f"{', '.join(manager.plugins_with_hook('ingest_embed')) or 'none'})"
            )
        rows = _rows(result, embedder)
        _check(rows, len(batch), settings, vectors[0] if vectors else None)
        vectors.extend(rows)
    return vectors


def embed_document(manager: IngestPluginManager, settings: Settings, document: Document) -> None:
    """Give every chunk of ``document`` its :class:`~ingest.model.Embedding`, in place.

    :raises PluginError: see :func:`embed_texts`.
    """
    if not document.chunks:
        return
    vectors = embed_texts(manager, settings, [chunk.text for chunk in document.chunks])
    label = model_label(settings)
    for chunk, vector in zip(document.chunks, vectors, strict=True):
        chunk.embedding = Embedding(label, vector)


@final
@dataclass(frozen=True)
class Embedder:
    """An embedder made ready outside a run, to embed queries (see :func:`load_embedder`).

    :param manager: a plugin manager holding the embedder, configured.
    :param settings: the settings naming it (``settings.embed``).
    """

    manager: IngestPluginManager
    settings: Settings

    @property
    def label(self) -> str:
        """The label its vectors are stored with (:func:`model_label`)."""
        return model_label(self.settings)

    def embed(self, texts: Sequence[str]) -> list[array[float]]:
        """One float32 vector per text; see :func:`embed_texts`."""
        return embed_texts(self.manager, self.settings, texts)


def load_embedder(
    embedder: str,
    *,
    model: str | None = None,
    dim: int | None = None,
    config_file: str | Path | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Embedder:
    """Load and configure an embedder, as ``--embed`` would, to embed texts outside a run.

    Search uses it to embed a query with the model a store's vectors were made with. The
    configuration is read as for a run (the embedder's own settings section may come from a
    config file or ``INGEST_*``), then ``embed.embedder``, ``embed.model`` and ``embed.dim``
    are set from the arguments.

    :param embedder: the embedder's plugin name (an entry point or a dotted module path).
    :param model: ``embed.model``; ``None`` for the embedder's default.
    :param dim: ``embed.dim``; ``None`` for the model's own size.
    :param config_file: an explicit config file; else found by walking up from ``cwd``.
    :param cwd: where to start looking for the config file.
    :param environ: where ``INGEST_*`` is read (default ``os.environ``).
    :returns: the ready embedder.
    :raises ingest.errors.UsageError: the plugin cannot be loaded or refuses the settings.
    """
    from ingest.api import prepare  # the run's own path from settings to a manager

    prepared = prepare(
        plugins=[embedder],
        config_file=config_file,
        cwd=cwd,
        environ=environ,
        cli={"embed.embedder": embedder, "embed.model": model, "embed.dim": dim},
    )
    return Embedder(prepared.manager, prepared.loaded.settings)


def _rows(result: Any, embedder: str) -> list[array[float]]:
    """The hook's answer as float32 rows; a C-contiguous float array is copied in one go."""
    try:
        view = memoryview(result)
    except TypeError:
        view = None
    if view is not None and view.ndim == 2 and view.c_contiguous and view.format in ("f", "d"):
        flat: array[float] = array(view.format)
        flat.frombytes(view.tobytes())
        if view.format == "d":
            flat = array("f", flat)
        count, dim = view.shape or (0, 0)
        return [flat[i * dim : (i + 1) * dim] for i in range(count)]
    try:
        return [array("f", row) for row in result]
    except (TypeError, ValueError, OverflowError) as exc:
        raise PluginError(
            f"embedder {embedder!r}: ingest_embed must return a sequence of float vectors "
            f"(a 2-D numpy array or lists of floats), not {type(result).__name__}: {exc}"
        ) from exc


def _check(
    rows: list[array[float]], expected: int, settings: Settings, first: array[float] | None
) -> None:
    embedder = settings.embed.embedder
    if len(rows) != expected:
        raise PluginError(
            f"embedder {embedder!r} returned {len(rows)} vectors for {expected} texts; "
            "ingest_embed must return one vector per text"
        )
    want = settings.embed.dim or (len(first) if first is not None else len(rows[0]))
    for number, row in enumerate(rows):
        if len(row) != want:
            setting = " (embed.dim)" if settings.embed.dim else ""
            raise PluginError(
                f"embedder {embedder!r} returned a vector of size {len(row)} for text "
                f"{number} of a batch; expected {want}{setting}"
            )
        if not math.isfinite(sum(row)):
            raise PluginError(
                f"embedder {embedder!r} returned a vector with NaN or infinite values for "
                f"text {number} of a batch"
            )
    if want == 0:
        raise PluginError(f"embedder {embedder!r} returned empty vectors")
