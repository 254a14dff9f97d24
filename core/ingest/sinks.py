"""The sinks a run opened, taken together: one step to all, and what each says of itself.

Every plugin that implements ``ingest_sink`` gets every step; the sinks opened through
``ingest_sink_open`` are also asked for their state (``ingest_sink_state``) and checked for
the ability to delete. A sink can delete when its ``ingest_sink`` takes the ``deleted``
argument. One that cannot is never sent a step that only deletes, and the run warns once
that records of changed or removed files stay in it, rather than keeping them silently.

A step a sink cannot write (disk full, file too large, read-only) stops the run with a
:class:`~ingest.errors.WriteError` that names the sink, its target and the cause.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, final

from ingest.errors import WriteError
from ingest.hookspecs import hookimpl
from ingest.model import display_path
from ingest.storage import explain_write_error
from ingest.workers.pipeline import plugin_in_traceback

if TYPE_CHECKING:
    from ingest.cache import SinkState
    from ingest.config import Settings
    from ingest.manager import IngestPluginManager
    from ingest.model import Document

__all__ = ["MASK", "SINK_PREFIX", "SinkSet", "StoreSink", "mask_secrets"]

logger = logging.getLogger("ingest.session")

#: Sink objects are registered as plugins under this prefix and their ``scheme:target``
#: (its password masked).
SINK_PREFIX = "sink:"

MASK = "**********"
# scheme://user:password@host... and ?password=... (libpq URLs accept both).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:?#\s]*):[^/@?#\s]*@")
_PASSWORD_PARAM = re.compile(r"(?P<head>[?&]password=)[^&#\s]*", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``text`` with the password of every URL in it masked, as ``ingest config``, the run's
    summary and the cache show a sink such as ``postgresql://user:secret@host/db``.

    :param text: a sink spec, a setting's value, a message.
    :returns: ``postgresql://user:**********@host/db``; text without a URL password as is.
    """
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _PASSWORD_PARAM.sub(lambda m: f"{m['head']}{MASK}", text)


class StoreSink:
    """The hooks of a sink object that keeps a store (a file, a database), for a subclass to
    inherit: each step goes to :meth:`write`, ``ingest_sink_state`` reports :attr:`state`,
    and the end of the run calls :meth:`close`.

    The ``jsonl``, ``sqlite`` and ``postgresql`` sinks are such objects; a third party's store
    opened by ``ingest_sink_open`` gets the same hooks by subclassing this class and defining
    the three members below.
    """

    #: ``(store, writes)``: an id of the store that changes when it is made anew, and how
    #: many steps it took (the cache compares both with what it recorded).
    state: tuple[str, int]

    def write(self, batch: Sequence[Document], deleted: Sequence[str] = ()) -> object:
        """Write ``batch`` (each document replacing what the store holds of its id) and
        delete the documents of ``deleted``, as one step, durable when this returns."""
        raise NotImplementedError

    def close(self) -> None:
        """Apply what is pending and release the store."""
        raise NotImplementedError

    @hookimpl
    def ingest_sink(self, batch: Sequence[Document], deleted: Sequence[str]) -> None:
        """Write the batch and delete ``deleted`` as one step (:meth:`write`)."""
        self.write(batch, deleted)

    @hookimpl
    def ingest_sink_state(self) -> tuple[str, int]:
        """Which store this is, and how many steps it took (:attr:`state`)."""
        return self.state

    @hookimpl
    def ingest_session_finish(self) -> None:
        """Close the store at the end of the run (:meth:`close`)."""
        self.close()


@final
class SinkSet:
    """The run's open sinks, in the order of ``settings.sinks``.

    :param manager: the driver's plugin manager.
    :param settings: the run's settings.
    """

    def __init__(self, manager: IngestPluginManager, settings: Settings) -> None:
        self.manager = manager
        self.settings = settings
        #: The sink specs (``jsonl:out.jsonl``) and the objects opened for them.
        self.specs: list[str] = []
        self.objects: list[object] = []
        #: The specs of the sinks whose ``ingest_sink`` takes no ``deleted``.
        self.cannot_delete: list[str] = []
        #: Warnings given this run (each at most once).
        self.warnings: list[str] = []

    def add(self, spec: str, sink: object) -> None:
        """Register a sink that ``ingest_sink_open`` returned for ``spec``."""
        self.manager.register(sink, name=f"{SINK_PREFIX}{mask_secrets(spec)}")
        self.specs.append(spec)
        self.objects.append(sink)
        impls = [i for i in self.manager.hook.ingest_sink.get_hookimpls() if i.plugin is sink]
        if not all("deleted" in impl.argnames for impl in impls):
            self.cannot_delete.append(spec)

    def __bool__(self) -> bool:
        return bool(self.objects)

    def states(self) -> list[SinkState | None]:
        """Each sink's ``ingest_sink_state``, asked of that sink alone; ``[None]`` when the
        run has no sink (the cache then keys a single "no sink")."""
        if not self.objects:
            return [None]
        states: list[SinkState | None] = []
        for sink in self.objects:
            others = [plugin for plugin in self.manager.get_plugins() if plugin is not sink]
            state = self.manager.subset_hook_caller("ingest_sink_state", others)(
                settings=self.settings
            )
            states.append((str(state[0]), int(state[1])) if state is not None else None)
        return states

    def write(self, batch: Sequence[Document], deleted: Sequence[str]) -> None:
        """One step: ``batch`` written and ``deleted`` removed, in every sink.

        A step with no document goes only to the plugins whose ``ingest_sink`` takes
        ``deleted``; the others never see an empty batch.

        :raises WriteError: a sink raised: names the sink, its target and the cause.
        """
        if deleted and self.cannot_delete:
            self._warn_cannot_delete()
        try:
            self._write(batch, deleted)
        except Exception as exc:
            raise self._write_error(exc, batch, deleted) from exc

    def _write(self, batch: Sequence[Document], deleted: Sequence[str]) -> None:
        if batch:
            self.manager.hook.ingest_sink(batch=batch, settings=self.settings, deleted=deleted)
            return
        unable = [
            impl.plugin
            for impl in self.manager.hook.ingest_sink.get_hookimpls()
            if "deleted" not in impl.argnames
        ]
        self.manager.subset_hook_caller("ingest_sink", unable)(
            batch=batch, settings=self.settings, deleted=deleted
        )

    def _write_error(
        self, exc: Exception, batch: Sequence[Document], deleted: Sequence[str]
    ) -> WriteError:
        """Which sink refused the step (the plugin deepest in the traceback), its file (the
        sink object's ``path``, else the target of its spec when that is not a URL) and why;
        passwords masked."""
        name = plugin_in_traceback(self.manager, exc.__traceback__)
        target: object = None
        if name is None:
            what = "a sink"
        elif name.startswith(SINK_PREFIX):
            spec = name.removeprefix(SINK_PREFIX)
            what = f"sink {spec}"
            target = getattr(self.manager.get_plugin(name), "path", None)
            if target is None and "://" not in spec:
                target = spec.partition(":")[2] or None
        else:
            what = f"plugin {name}"
        path = os.fspath(target) if isinstance(target, str | os.PathLike) else None
        where = f" ({display_path(path)})" if path else ""
        step = (
            f"a batch of {len(batch)} documents"
            if batch
            else f"the removal of {len(deleted)} documents"
        )
        cause = explain_write_error(exc, path)
        message = f"{what}{where} could not write {step}: {cause}; the run stopped"
        return WriteError(mask_secrets(message))

    def _warn_cannot_delete(self) -> None:
        message = (
            f"sink {', '.join(self.cannot_delete)} cannot delete records (its ingest_sink "
            "takes no 'deleted' argument): records of changed or removed files stay in it"
        )
        if message not in self.warnings:
            self.warnings.append(message)
            logger.warning(message)
