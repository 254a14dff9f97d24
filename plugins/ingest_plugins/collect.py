"""The default collector: files, folders (recursive) and globs; claims PDFs by pattern.

Folder walks are sorted, so a run's order is stable. Symlink loops are noticed by the
device and inode of every folder entered. Unreadable files and folders, symlinks that lead
nowhere or in a loop, and files named like a PDF that are not one become failure records
(reasons ``unreadable`` and ``not-a-pdf``) instead of crashing the run or vanishing from it.
Name patterns match case-insensitively (``*.pdf`` takes ``REPORT.PDF``) unless
``collect.case_sensitive`` is set.
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ingest import PDF_MEDIA_TYPE, Failure, Source, UsageError, display_path, hookimpl

if TYPE_CHECKING:
    from ingest import IngestPluginManager, Settings

logger = logging.getLogger("ingest.collect")

_GLOB_CHARS = frozenset("*?[")
# The PDF header may follow some junk; readers accept it within the first kilobyte.
_MAGIC_WINDOW = 1024


@hookimpl(trylast=True)
def ingest_collect(
    path: str, settings: Settings, manager: IngestPluginManager
) -> list[Source | Failure]:
    """Expand one input into sources; see the hookspec."""
    candidate = Path(path)
    found: list[Source | Failure] = []
    if candidate.is_dir():
        files = walk(
            candidate, follow_symlinks=settings.collect.follow_symlinks, unreadable=found
        )
        direct = False
    elif candidate.exists() or candidate.is_symlink():
        files = [candidate]
        direct = True
    elif _GLOB_CHARS.intersection(path):
        files = sorted(Path(p) for p in glob.glob(path, recursive=True) if not Path(p).is_dir())
        direct = False
    else:
        raise UsageError(f"file or folder not found: {path}")
    for file in files:
        item = manager.hook.ingest_collect_file(path=file, settings=settings)
        if item is not None:
            found.append(item)
        elif direct:
            found.append(
                Failure(
                    source=file,
                    reason="unsupported",
                    message=f"no plugin collects this file (patterns: {settings.collect.patterns})",
                )
            )
    return found


@hookimpl(trylast=True)
def ingest_collect_file(path: Path, settings: Settings) -> Source | Failure | None:
    """Claim files whose name matches ``collect.patterns`` as PDFs, after a magic check."""
    if not matches(path.name, settings.collect.patterns, settings.collect.case_sensitive):
        return None
    try:
        with path.open("rb") as handle:
            head = handle.read(_MAGIC_WINDOW)
        if b"%PDF-" not in head:
            return Failure(
                source=path,
                reason="not-a-pdf",
                message="no %PDF- header in the first kilobyte",
            )
        return Source.from_path(path, media_type=PDF_MEDIA_TYPE)
    except OSError as exc:
        message = exc.strerror or str(exc)
        if exc.errno == errno.ELOOP:
            message = f"symlink loop: {message}"
        return Failure(
            source=path,
            reason="unreadable",
            message=message,
            exc_type=type(exc).__name__,
        )


def matches(name: str, patterns: list[str], case_sensitive: bool = False) -> bool:
    """Whether a file name matches one of the glob ``patterns``.

    :param name: the file's name (no folder).
    :param patterns: ``collect.patterns``.
    :param case_sensitive: ``collect.case_sensitive``; else ``*.pdf`` takes ``A.PDF``.
    """
    if not case_sensitive:
        name = name.casefold()
        patterns = [pattern.casefold() for pattern in patterns]
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def walk(
    root: Path, *, follow_symlinks: bool, unreadable: list[Source | Failure] | None = None
) -> list[Path]:
    """Every file below ``root``, sorted, entering each real folder at most once.

    :param root: the folder.
    :param follow_symlinks: enter symlinked folders (loops are detected and skipped).
    :param unreadable: where a failure (reason ``unreadable``) is added for each folder
        that cannot be listed: its files would otherwise have no outcome at all.
    :returns: the files, sorted by path.
    """
    files: list[Path] = []
    visited: set[tuple[int, int]] = set()

    def on_error(error: OSError) -> None:
        folder = Path(error.filename) if error.filename else root
        reason = error.strerror or str(error)
        if unreadable is None:
            logger.warning("cannot read folder %s: %s", display_path(folder), reason)
        else:
            unreadable.append(
                Failure(
                    source=folder,
                    reason="unreadable",
                    message=f"cannot read this folder, so its files were not collected: {reason}",
                    exc_type=type(error).__name__,
                )
            )

    for folder, dirs, names in os.walk(root, followlinks=follow_symlinks, onerror=on_error):
        try:
            info = os.stat(folder)
        except OSError as exc:
            on_error(exc)
            dirs[:] = []
            continue
        key = (info.st_dev, info.st_ino)
        if key in visited:
            logger.warning(
                "symlink loop: %s leads back to a folder already walked", display_path(folder)
            )
            dirs[:] = []
            continue
        visited.add(key)
        dirs.sort()
        files.extend(Path(folder, name) for name in names)
    return sorted(files, key=lambda p: str(p))
