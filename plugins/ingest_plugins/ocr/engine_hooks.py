"""The OCR plugin's own hook: how engines are provided, and the manager that finds them.

Engines live behind a small pluggy project of their own (``ingest_ocr``) rather than in
ingest's hookspecs: an engine is a detail of this plugin, and ingest's manager rejects hooks
it has no spec for. The built-in engines (:mod:`ingest_plugins.ocr.engines`) register
through the same hook a third party implements. A third party's engine is found, only when
``ocr.engine`` names it, as an entry point of the group :data:`ENTRY_POINT_GROUP` with that
name, or else as a module path (``ocr.engine=mypkg.myengine``), imported and registered.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol

import pluggy
from ingest import PluginError

if TYPE_CHECKING:
    from PIL.Image import Image

    from ingest_plugins.ocr.settings import OcrSettings

__all__ = [
    "BUILTIN_ENGINES",
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "OcrEngine",
    "PageTimeout",
    "engine_manager",
    "hookimpl",
    "hookspec",
    "ingest_ocr_engine",
]

PROJECT_NAME = "ingest_ocr"

#: Entry-point group where third-party engines are declared:
#: ``[project.entry-points.ingest_ocr] myengine = "mypkg.myengine"``.
ENTRY_POINT_GROUP = "ingest_ocr"

#: Engines that ship with the plugin; ``auto`` picks among these.
BUILTIN_ENGINES: tuple[str, ...] = ("tesseract", "rapidocr")

hookspec = pluggy.HookspecMarker(PROJECT_NAME)

#: Marker for engine plugins: ``@hookimpl def ingest_ocr_engine(name, settings): ...``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class PageTimeout(Exception):
    """Raised by an engine that stopped recognising a page after ``settings.page_timeout``."""


class OcrEngine(Protocol):
    """What an engine is: one instance per worker process, used for every page.

    ``recognize`` gets a grayscale page image at ``settings.dpi`` and returns the page's
    text (lines separated by ``\\n``, paragraphs by a blank line) and a confidence between
    0 and 1 (``0.0`` when the engine gives none). It should honour ``settings.page_timeout``
    by raising :class:`PageTimeout` if it can interrupt itself; the plugin checks the
    elapsed time after every page anyway.
    """

    name: str

    def recognize(self, image: Image) -> tuple[str, float]:
        """Read the text on ``image``."""
        ...


@hookspec(firstresult=True)
def ingest_ocr_engine(name: str, settings: OcrSettings) -> OcrEngine | None:
    """Create the OCR engine called ``name``.

    Called in a worker process the first time a page needs OCR, once per process and
    settings (the engine is kept and reused for every later page), and on the driver never.
    Also called for ``auto`` after it was resolved to a built-in engine's name.

    :param name: the engine asked for: ``settings.engine``, or the built-in name ``auto``
        resolved to.
    :param settings: the ``ocr`` section (languages, dpi, page_timeout, threads...).
    :returns: an object with ``name`` and ``recognize(image) -> (text, confidence)``, or
        ``None`` when ``name`` is not yours. The first non-``None`` result wins. Raise
        :class:`ingest.errors.PluginError` naming the setting (``ocr.languages``...) for
        settings the engine cannot honour.

    .. versionadded:: 0.1
    """


def engine_manager(name: str) -> pluggy.PluginManager:
    """A manager with the built-in engines and, for a third-party ``name``, its plugin.

    :param name: ``settings.engine`` (``auto`` and built-in names load nothing more).
    :returns: a new manager; callers keep it per process.
    :raises PluginError: naming ``ocr.engine`` when no installed engine has that name.
    """
    from ingest_plugins.ocr import engines

    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(sys.modules[__name__])
    manager.register(engines, "ocr.builtin")
    if name == "auto" or name in BUILTIN_ENGINES:
        return manager
    plugin = _load_third_party(name)
    manager.register(plugin, f"ocr.{name}")
    manager.check_pending()
    return manager


def _load_third_party(name: str) -> Any:
    found = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    try:
        if name in found:
            return found[name].load()
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name.partition(".")[0]:
            raise _import_failed(name, exc) from exc
    except Exception as exc:
        raise _import_failed(name, exc) from exc
    known = ["auto", *BUILTIN_ENGINES, *sorted(found)]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise PluginError(
        f"ocr.engine: unknown OCR engine {name!r}{hint} (installed: {', '.join(known)}; a "
        f"third-party engine is an entry point of the group {ENTRY_POINT_GROUP!r} or a module)"
    )


def _import_failed(name: str, exc: Exception) -> PluginError:
    return PluginError(
        f"ocr.engine: the OCR engine {name!r} failed to import: {type(exc).__name__}: {exc}"
    )
