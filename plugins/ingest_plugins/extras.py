"""Checking that a plugin's extra is installed, before the plugin imports any of it."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

__all__ = ["require_extra"]


def require_extra(what: str, extra: str, modules: Sequence[str]) -> None:
    """Fail in one line when a top-level module of an extra is missing.

    The modules are looked up, not imported: a plugin whose dependencies are slow to import
    (onnxruntime, tokenizers) leaves that to the process that uses them.

    :param what: who needs the extra, for the message (``the ocr plugin``).
    :param extra: the extra's name (``ocr``).
    :param modules: the top-level modules the extra installs.
    :raises ImportError: naming the extra and the missing modules.
    """
    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # an import hook refused it, or a broken install
            found = False
        if not found:
            missing.append(module)
    if missing:
        raise ImportError(
            f"{what} needs the extra: pip install 'ingest[{extra}]' "
            f"(missing: {', '.join(missing)})"
        )
