"""What is installed: one pass over the distribution folders on ``sys.path``.

Every run asks the installed distributions three things as it starts: the plugins of the
``ingest`` entry-point group (twice: for the components the settings name and to load them),
and the versions of the plugins' distributions and of their requirements (the cache's
fingerprint). :mod:`importlib.metadata` answers each question by listing and reading every
distribution again, and reads a version by parsing the whole ``METADATA`` file as an e-mail
message: with the hundred-odd distributions of an ordinary environment that is tens of
milliseconds, on every command.

:func:`scan` lists each ``sys.path`` folder once and reads only the ``entry_points.txt``
files; the answer is kept while ``sys.path``, its folders' modification times and the
metadata folders in them are unchanged (installing or removing a distribution adds or
removes one there). The entry points it returns are :mod:`importlib.metadata`'s own objects,
made by :mod:`importlib.metadata` from the distributions that declare the group, so
``.dist`` and ``.load()`` behave as they always did. Which distribution wins a name follows
:func:`importlib.metadata.distributions`: the first on ``sys.path``.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = ["Installed", "entry_points", "scan", "version"]

_SUFFIXES = (".dist-info", ".egg-info")
# importlib.metadata's own normalisation of a distribution's name (its Prepared.normalize).
_SEPARATORS = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """A distribution name as :mod:`importlib.metadata` compares them (``Foo.Bar-baz`` is
    ``foo_bar_baz``)."""
    return _SEPARATORS.sub("_", name).lower()


@dataclass(frozen=True, slots=True)
class Installed:
    """The distributions found on ``sys.path``, the first of each name, in path order."""

    #: Normalised name to the distribution's metadata folder, or to the distribution itself
    #: for one in a zip archive or another entry that is not a folder (eggs, zipapps: rare),
    #: which :mod:`importlib.metadata` reads.
    found: dict[str, str | metadata.Distribution]
    #: Metadata folder to its ``entry_points.txt`` (folders without one are left out).
    entry_texts: dict[str, str]

    def entry_points(self, group: str) -> list[metadata.EntryPoint]:
        """Every entry point of ``group``, in ``sys.path`` order of their distributions."""
        header = f"[{group}]"
        eps: list[metadata.EntryPoint] = []
        for where in self.found.values():
            if not isinstance(where, str):
                eps.extend(where.entry_points.select(group=group))
            # A cheap test on the text first: most distributions declare other groups only.
            elif header in self.entry_texts.get(where, ""):
                dist = metadata.PathDistribution(Path(where))
                eps.extend(dist.entry_points.select(group=group))
        return eps

    def version(self, name: str) -> str | None:
        """The installed version of distribution ``name``, ``None`` when it is not installed.

        A wheel's metadata folder is named ``{name}-{version}.dist-info``, so its version is
        read from the name; any other kind of install from its metadata.
        """
        where = self.found.get(normalize(name))
        if where is None:
            return None
        if not isinstance(where, str):
            return where.version
        base = os.path.basename(where)
        if base.endswith(".dist-info"):
            _, dash, found = base[: -len(".dist-info")].partition("-")
            if dash and found:
                return found
        return metadata.PathDistribution(Path(where)).version


#: One ``sys.path`` entry as last seen: its text, modification time, and the metadata
#: folders in it (a folder's time may not move when two changes fall in one clock tick);
#: ``None`` for an entry that is no folder (a zip archive, a path inside one).
_Seen = tuple[str, int, tuple[str, ...] | None]


def _look() -> tuple[_Seen, ...]:
    """What makes a scan stale: the path entries, their times and their metadata folders."""
    seen: list[_Seen] = []
    for entry in sys.path:
        where = entry or "."
        mtime = -1
        names: tuple[str, ...] | None = ()
        try:
            mtime = os.stat(where).st_mtime_ns
            names = tuple(n for n in os.listdir(where) if n.endswith(_SUFFIXES))
        except NotADirectoryError:
            names = None
        except OSError:
            pass  # missing or unreadable: nothing found there, as importlib.metadata does
        seen.append((entry, mtime, names))
    return tuple(seen)


def _scan_now(seen: tuple[_Seen, ...]) -> Installed:
    found: dict[str, str | metadata.Distribution] = {}
    entry_texts: dict[str, str] = {}
    for entry, _, names in seen:
        where = entry or "."
        if names is None:
            # A zip archive (an egg, a zipapp) or a path in one: importlib.metadata reads it.
            for dist in metadata.distributions(path=[where]):
                found.setdefault(normalize(dist.metadata["Name"] or ""), dist)
            continue
        for name in names:
            key = normalize(name[: name.rindex(".")].partition("-")[0])
            if key in found:
                continue
            folder = os.path.join(where, name)
            found[key] = folder
            try:
                with open(os.path.join(folder, "entry_points.txt"), encoding="utf-8") as handle:
                    entry_texts[folder] = handle.read()
            except OSError:
                continue
    return Installed(found, entry_texts)


_lock = threading.Lock()
_cached: tuple[tuple[_Seen, ...], Installed] | None = None


def scan() -> Installed:
    """The installed distributions, scanned again only when ``sys.path`` or one of its
    folders changed since the last scan."""
    global _cached
    seen = _look()
    with _lock:
        if _cached is None or _cached[0] != seen:
            _cached = (seen, _scan_now(seen))
        return _cached[1]


def entry_points(group: str) -> list[metadata.EntryPoint]:
    """Every installed entry point of ``group`` (see :meth:`Installed.entry_points`)."""
    return scan().entry_points(group)


def version(name: str) -> str | None:
    """The installed version of distribution ``name`` (see :meth:`Installed.version`)."""
    return scan().version(name)
