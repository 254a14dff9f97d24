"""The default collector: files, folders (recursive) and globs; claims PDFs by pattern.

Folder walks are sorted, so a run's order is stable. Symlink loops are noticed by the
device and inode of every folder entered; unreadable files and files named like a PDF that
are not one become failure records instead of crashing the run.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ingest import PDF_MEDIA_TYPE, Failure, Source, UsageError, hookimpl

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
    if candidate.is_dir():
        files = walk(candidate, follow_symlinks=settings.collect.follow_symlinks)
        direct = False
    elif candidate.exists() or candidate.is_symlink():
        files = [candidate]
        direct = True
    elif _GLOB_CHARS.intersection(path):
        files = sorted(Path(p) for p in glob.glob(path, recursive=True) if not Path(p).is_dir())
        direct = False
    else:
        raise UsageError(f"file or folder not found: {path}")
    found: list[Source | Failure] = []
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
    name = path.name
    if not any(fnmatch.fnmatch(name, pattern) for pattern in settings.collect.patterns):
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
        return Failure(
            source=path,
            reason="unreadable",
            message=exc.strerror or str(exc),
            exc_type=type(exc).__name__,
        )


def walk(root: Path, *, follow_symlinks: bool) -> list[Path]:
    """Every file below ``root``, sorted, entering each real folder at most once.

    :param root: the folder.
    :param follow_symlinks: enter symlinked folders (loops are detected and skipped).
    :returns: the files, sorted by path.
    """
    files: list[Path] = []
    visited: set[tuple[int, int]] = set()

    def on_error(error: OSError) -> None:
        logger.warning("cannot read folder %s: %s", error.filename, error.strerror)

    for folder, dirs, names in os.walk(root, followlinks=follow_symlinks, onerror=on_error):
        try:
            info = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        key = (info.st_dev, info.st_ino)
        if key in visited:
            logger.warning("symlink loop: %s leads back to a folder already walked", folder)
            dirs[:] = []
            continue
        visited.add(key)
        dirs.sort()
        files.extend(Path(folder, name) for name in names)
    return sorted(files, key=lambda p: str(p))
