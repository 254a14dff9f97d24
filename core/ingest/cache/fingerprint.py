"""Fingerprints of what decides a run's output, so the cache knows when a rerun must redo work.

The output fingerprint (:func:`output_fingerprint`) hashes two things:

* **The settings that shape records**: every setting except those that only say what to read,
  where to write, how fast, or what to show: ``plugins`` (what they change is counted by
  version below), ``collect``, ``sinks`` (the cache keys sinks separately), ``run``,
  ``cache``, ``progress``, ``progress_interval``, ``log_level`` and ``extract.password`` (it
  decides whether an encrypted file opens, not what its text is). Everything else counts,
  plugin sections included, so a setting added later invalidates the cache rather than being
  ignored. The ``embed`` section counts only when the run embeds, and without
  ``embed.batch_size`` (how many texts go in one call changes nothing stored): a run without
  vectors keeps the fingerprint it had before embedding existed, and changing the model
  embeds again.
* **The code that shapes records**: every loaded plugin that implements ``ingest_extract``
  or ``ingest_transform``, by name, with its distribution's version and the installed
  versions of that distribution's direct requirements (a pypdfium2 upgrade changes the text
  the ``pdfium`` plugin extracts). A plugin that belongs to no installed distribution (a
  local module, ``-p mypkg.myplugin`` from a checkout) counts by a hash of its source file.
  When the run embeds, the embedder it names (``ingest_embed``) counts the same way; other
  loaded embedders do not.

The claim key (:func:`claim_key`) does the same for collection: the collect patterns (and
whether they match case-sensitively) and the versions of the plugins that claim files
(``ingest_collect_file``).

An editable install keeps its version while its code changes: use ``--force`` after editing
a first-party plugin.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import re
import sys
from collections.abc import Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

from ingest.installed import scan as scan_installed
from ingest.manager import entry_points

if TYPE_CHECKING:
    from ingest.config import Settings
    from ingest.manager import IngestPluginManager

__all__ = ["NOT_OUTPUT", "claim_key", "digest", "output_fingerprint", "plugin_version"]

#: Top-level settings that do not change what a document's records contain.
NOT_OUTPUT: frozenset[str] = frozenset(
    {"plugins", "collect", "sinks", "run", "cache", "progress", "progress_interval", "log_level"}
)
_OUTPUT_HOOKS = ("ingest_extract", "ingest_transform")
# The cache's own stat plugin answers ingest_collect_file; it is not a claim of its own.
_NOT_CLAIMING = frozenset({"ingest-cache"})
_REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Bumped when the meaning of the fingerprint changes, so old cache entries stop matching.
_FORMAT = 1


def digest(data: Any) -> str:
    """The hex SHA-256 of ``data`` as canonical JSON."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def output_fingerprint(settings: Settings, manager: IngestPluginManager) -> tuple[str, str]:
    """The fingerprint of what decides the records made from a document.

    :param settings: the run's settings.
    :param manager: the driver's plugin manager, after ``ingest_configure``.
    :returns: ``(fingerprint, described)``: 32 hex characters, and the canonical JSON they
        hash, which the cache keeps so that a miss can be explained.
    """
    shaping = settings.model_dump(mode="json", exclude=set(NOT_OUTPUT))
    shaping.get("extract", {}).pop("password", None)
    plugins = _versions(manager, _OUTPUT_HOOKS)
    embed = shaping.pop("embed", None)
    if embed and embed.get("embedder"):
        embed.pop("batch_size", None)
        shaping["embed"] = embed
        embedders = _versions(manager, ("ingest_embed",))
        plugins.update({k: v for k, v in embedders.items() if k == embed["embedder"]})
    described = {
        "format": _FORMAT,
        "settings": shaping,
        "plugins": plugins,
    }
    text = json.dumps(described, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32], text


def claim_key(settings: Settings, manager: IngestPluginManager) -> str:
    """What decides whether and how a file is claimed; a stat cache entry needs the same."""
    return digest(
        {
            "format": _FORMAT,
            "patterns": settings.collect.patterns,
            "case_sensitive": settings.collect.case_sensitive,
            "plugins": _versions(manager, ("ingest_collect_file",), skip=_NOT_CLAIMING),
        }
    )[:32]


def _versions(
    manager: IngestPluginManager, hooks: tuple[str, ...], skip: frozenset[str] = frozenset()
) -> dict[str, str]:
    plugins: dict[str, object] = {}
    for hook in hooks:
        for impl in getattr(manager.hook, hook).get_hookimpls():
            name = impl.plugin_name
            if name == str(id(impl.plugin)):
                # pluggy names an unnamed plugin object by its id(), new on every run: use
                # its class instead, or the cache would never match.
                kind = type(impl.plugin)
                name = f"{kind.__module__}.{kind.__qualname__}"
            if name not in skip:
                plugins[name] = impl.plugin
    # One scan of the installed entry points for all the plugins (each distribution's
    # metadata is read once per process, see _DESCRIBED): the built-ins all come from one
    # distribution, and each scan or reading costs milliseconds that every run would pay.
    available = manager.installed if manager.installed is not None else entry_points()
    return {
        name: plugin_version(name, plugin, available=available)
        for name, plugin in sorted(plugins.items())
    }


def plugin_version(
    name: str,
    plugin: object,
    *,
    available: Mapping[str, metadata.EntryPoint] | None = None,
) -> str:
    """``dist==version (req==version, ...)`` for a plugin, or a hash of its source file.

    :param name: the plugin's registered name (an entry-point name finds its distribution
        without importing anything).
    :param plugin: the plugin object (a module, or an instance of a plugin class).
    :param available: the installed entry points (:func:`ingest.manager.entry_points`), when
        the caller has them; scanned otherwise.
    """
    module_name = plugin.__name__ if inspect.ismodule(plugin) else type(plugin).__module__
    ep = (entry_points() if available is None else available).get(name)
    dist: metadata.Distribution | None = ep.dist if ep is not None else None
    if dist is None:
        dist = _distribution_of_module(module_name)
    if dist is None:
        return _source_hash(module_name)
    where = str(getattr(dist, "_path", "")) or None
    text = _described_at(where) if where is not None else None
    if text is None:
        # .version and .requires would each read and parse the metadata file again.
        info = dist.metadata
        requires = tuple(info.get_all("Requires-Dist") or dist.requires or ())
        text = _describe_distribution(info["Name"], info["Version"], requires)
        if where is not None:
            _DESCRIBED[where] = (_mtime(where), text)
    return text


#: Descriptions made in this process, by metadata folder, with the folder's modification
#: time: the output fingerprint and the claim key both describe the built-ins' distribution,
#: and parsing its metadata (an e-mail message) costs milliseconds each time.
_DESCRIBED: dict[str, tuple[int, str]] = {}


def _mtime(where: str) -> int:
    try:
        return os.stat(where).st_mtime_ns
    except OSError:
        return -1


def _described_at(where: str) -> str | None:
    # A reinstalled distribution has a new metadata folder, with a new modification time.
    found = _DESCRIBED.get(where)
    return found[1] if found is not None and found[0] == _mtime(where) != -1 else None


def _distribution_of_module(module_name: str) -> metadata.Distribution | None:
    names = _packages_distributions().get(module_name.partition(".")[0], [])
    for dist_name in names:
        try:
            return metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            continue
    return None


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    # Scans every installed distribution's file list: done once per process, and only for a
    # plugin that is not an entry point.
    return dict(metadata.packages_distributions())


@functools.cache
def _describe_distribution(name: str, version: str, requires: tuple[str, ...]) -> str:
    parts: list[str] = []
    installed = scan_installed()  # once: each scan looks at every sys.path folder again
    for requirement in requires:
        if "extra ==" in requirement.replace('"', "'").replace("extra==", "extra =="):
            continue  # optional extras (test tools...) are not what the plugin runs with
        match = _REQUIREMENT_NAME.match(requirement)
        if match is None:
            continue
        found = installed.version(match[0])
        parts.append(f"{match[0].lower()}=={found if found is not None else 'absent'}")
    return f"{name}=={version} ({', '.join(sorted(parts))})"


def _source_hash(module_name: str) -> str:
    module = sys.modules.get(module_name)
    filename = getattr(module, "__file__", None)
    if not filename:
        return f"{module_name} (unversioned)"
    try:
        with open(filename, "rb") as handle:
            return f"{module_name} sha256:{hashlib.sha256(handle.read()).hexdigest()[:16]}"
    except OSError:
        return f"{module_name} (unreadable source)"
